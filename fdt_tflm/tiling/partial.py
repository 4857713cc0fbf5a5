"""Exact int8 partial-sum FDT: a channel path ending in a CONV_2D / FULLY_CONNECTED split by
its *input* channels, the parts summed in int32 by the bundled FDT_PARTIAL custom kernel.

Why a custom op: every stock int8 conv/dense requantises its own output, so summing int8
partial results with a stock ADD rounds once per part and is not exact.  FDT_PARTIAL keeps
an int32 accumulator between the parts and requantises once, with exactly the original
op's per-channel multipliers and shifts, so the rewritten model is bit-identical to the
original (proved by :func:`fdt_tflm.verify.custom.verify_custom` with the NumPy reference,
which matches TFLM).

The path (operator indices of subgraph 0, chain order) is:
    body      a valid FDT channel path (see :mod:`fdt_tflm.tiling.paths`): an op split by
              output channels (conv, dense, 1-channel depthwise) or a channel-wise op on an
              input slice, then channel-wise ops;
    [RESHAPE] optionally one flatten between the body and a dense end (absorbed: the dense
              weight columns of each slice are gathered instead);
    end       int8 CONV_2D or FULLY_CONNECTED with constant weights.
Each part i runs body_i then FDT_PARTIAL_i (acc_i = acc_{i-1} + W_i x_i); the last part adds
the bias, requantises and writes the original output tensor.  acc_{i-1} and acc_i may share
arena bytes (the kernel reads every element before writing it): the catalog marks the pair
in place, and the plan pass (:mod:`fdt_tflm.memory.passes`) lets them share.

Opt-in only: a model rewritten here runs only on firmware that registers FDT_PARTIAL
(firmware_template/fdt_kernels); :func:`needs_custom_kernel` tells whether a model does.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from ..catalog.ops import CREATED, RewriteKind, FDT_PARTIAL_CODE, MacKind, info
from ..errors import FdtError
from ..ir.graph import Buffer, Model, Operator, Subgraph, Tensor
from ..ir.surgery import fork
from ..ir.types import DTYPE_CODES
from ..reference.fixedpoint import activation_range
from ..reference.ops import conv_padding, fc_multipliers, per_channel_multipliers
from ..reference.partial_op import KIND_CONV, KIND_FC, PartialParams
from .fdt import _Rewriter
from .paths import CONCAT, PathInfo, analyze_path, data_input_index, even_ranges

INT8, INT32 = DTYPE_CODES["INT8"], DTYPE_CODES["INT32"]
CUSTOM = 32
END_KIND = {MacKind.CONV: KIND_CONV, MacKind.DENSE: KIND_FC}  # the kernel's kind by the end's MAC formula
DEFAULT_PARTS = (2, 4, 8)


# ---------------------------------------------------------------------------------------------
# path analysis
@dataclass(frozen=True)
class PartialPath:
    """A validated partial-sum path: ``body`` (a concat-style FDT path), an optional flatten
    RESHAPE, and the conv/dense ``end``; ``channels`` is the channel count at the end's input."""

    body: PathInfo
    reshape: Optional[int]
    end: int
    channels: int

    @property
    def ops(self) -> tuple[int, ...]:
        return self.body.ops + ((self.reshape,) if self.reshape is not None else ()) + (self.end,)


def _zp(t: Tensor) -> int:
    q = t.quantization
    return 0 if q is None or q.zero_point is None or q.zero_point.size == 0 else int(q.zero_point[0])


def _quantised(t: Optional[Tensor]) -> bool:
    q = None if t is None else t.quantization
    return q is not None and q.scale is not None and q.scale.size > 0


def _single_use(sg: Subgraph, t: Tensor, consumers: dict) -> bool:
    return len(consumers.get(t, [])) == 1 and all(t is not o for o in sg.outputs) and t.is_activation


def _end_kind(op: Operator) -> Optional[int]:
    """FDT_PARTIAL's kernel kind for an op that can end a path by input channels (conv, dense), else None."""
    known = info(op)
    return END_KIND.get(known.macs) if known.channel.partial_end else None


def _is_conv(op: Operator) -> bool:
    return info(op).macs == MacKind.CONV


def _is_dense(op: Operator) -> bool:
    return info(op).macs == MacKind.DENSE


def _is_flatten(op: Operator) -> bool:
    """A layout-only op the channel rules know (a reshape or squeeze), absorbed before a dense end."""
    known = info(op)
    return known.layout_only and known.tileable


def _end_problem(end: Operator, feature: Tensor) -> Optional[str]:
    """Why ``end`` cannot be an exact int8 partial-sum end fed by ``feature`` (None if it can)."""
    if _end_kind(end) is None:
        return f"{end.type} cannot end a partial-sum path (int8 CONV_2D/FULLY_CONNECTED only)"
    x, w = end.inputs[0], end.inputs[1] if len(end.inputs) > 1 else None
    b = end.inputs[2] if len(end.inputs) > 2 else None
    y = end.outputs[0]
    if x is None or w is None or not w.is_constant or w.sparsity is not None:
        return f"{end.type} needs constant dense weights"
    if not (x.dtype == INT8 and y.dtype == INT8 and w.dtype == INT8 and feature.dtype == INT8):
        return "FDT_PARTIAL supports int8 activations and weights only"
    if not (_quantised(x) and _quantised(y) and _quantised(w)):
        return "int8 tensors of the end op must be quantised"
    if b is not None and (not b.is_constant or b.dtype != INT32):
        return "the bias must be a constant int32 tensor"
    if w.quantization.zero_point is not None and np.any(w.quantization.zero_point != 0):
        return "weights with a non-zero zero point are not supported"
    act = int(end.opt("FusedActivationFunction", 0))
    if act not in (0, 1, 2, 3):
        return f"fused activation {act} is not supported"
    c = feature.shape[-1] if feature.shape else 0
    if _is_conv(end):
        if len(w.shape) != 4 or len(feature.shape) != 4 or w.shape[3] != c or end.inputs[0] is not feature:
            return "CONV_2D end: filter depth must equal the channel count of the path"
    else:
        k = w.shape[1] if len(w.shape) == 2 else 0
        n = feature.num_elements
        if k == 0 or c == 0 or k % c or n % k:
            return "FULLY_CONNECTED end: its input rows must be whole multiples of the path's channels"
        rows = n // k
        if int(np.prod(y.shape[:-1])) != rows or y.shape[-1] != w.shape[0]:
            return "FULLY_CONNECTED end: output shape does not match"
    return None


def analyze_partial(sg: Subgraph, path: Sequence[int], parts: int = 2,
                    consumers: Optional[dict] = None) -> PartialPath:
    """Validate a partial-sum path; raise :class:`FdtError` saying why it cannot be split."""
    ops = tuple(int(i) for i in path)
    if len(ops) < 2:
        raise FdtError("a partial-sum path needs at least one op before its conv/dense end")
    if any(i < 0 or i >= len(sg.operators) for i in ops) or len(set(ops)) != len(ops):
        raise FdtError(f"path {list(ops)} has repeated or out-of-range operator indices")
    consumers = sg.consumers() if consumers is None else consumers
    end_i = ops[-1]
    end = sg.operators[end_i]
    reshape_i: Optional[int] = None
    body_ops = ops[:-1]
    if len(body_ops) >= 2 and _is_flatten(sg.operators[body_ops[-1]]) and _is_dense(end):
        reshape_i, body_ops = body_ops[-1], body_ops[:-1]
    body = analyze_path(sg, body_ops, CONCAT, parts, consumers)
    feature = sg.operators[body_ops[-1]].outputs[0]
    if not _single_use(sg, feature, consumers):
        raise FdtError(f"tensor {feature.name!r} at the end of the body has other uses")
    link = feature
    if reshape_i is not None:
        r = sg.operators[reshape_i]
        if r.inputs[0] is not feature or not _single_use(sg, r.outputs[0], consumers):
            raise FdtError(f"op {reshape_i} (RESHAPE) is not a private flatten between the body and the end")
        link = r.outputs[0]
    if end.inputs[0] is not link:
        raise FdtError(f"op {end_i} does not consume the path's output as its input")
    problem = _end_problem(end, feature if _is_dense(end) else link)
    if problem:
        raise FdtError(problem)
    return PartialPath(body, reshape_i, end_i, feature.shape[-1])


# ---------------------------------------------------------------------------------------------
# the rewrite
def _end_params(end: Operator, first: bool, last: bool, feature: Tensor) -> PartialParams:
    x, w, y = end.inputs[0], end.inputs[1], end.outputs[0]
    sx, sy = float(x.quantization.scale[0]), float(y.quantization.scale[0])
    n_out = w.shape[0]
    if _is_conv(end):
        kh, kw = w.shape[1], w.shape[2]
        sh, sw = int(end.opt("StrideH", 1)), int(end.opt("StrideW", 1))
        dh, dw = int(end.opt("DilationHFactor", 1)), int(end.opt("DilationWFactor", 1))
        pad = (conv_padding(feature.shape[1], kh, sh, dh, y.shape[1]),
               conv_padding(feature.shape[2], kw, sw, dw, y.shape[2]))
        mult, shift = per_channel_multipliers(sx, w.quantization.scale, sy, n_out)
        kind, stride, dil = KIND_CONV, (sh, sw), (dh, dw)
    else:
        mult, shift = fc_multipliers(sx, w.quantization.scale, sy, n_out)
        kind, stride, dil, pad = KIND_FC, (1, 1), (1, 1), (0, 0)
    lo, hi = activation_range(int(end.opt("FusedActivationFunction", 0)), sy, _zp(y))
    p = PartialParams(kind, first, last, -_zp(x), _zp(y), lo, hi, stride, dil, pad)
    if last:
        p.multiplier, p.shift = mult.astype(np.int32), shift.astype(np.int32)
    return p


def _end_weights(end: Operator, feature: Tensor, lo: int, hi: int) -> np.ndarray:
    w = end.inputs[1].numpy()
    if _is_conv(end):
        return np.ascontiguousarray(w[..., lo:hi])
    c = feature.shape[-1]
    units, k = w.shape
    return np.ascontiguousarray(w.reshape(units, k // c, c)[:, :, lo:hi].reshape(units, -1))


def apply_partial(model: Model, path: Sequence[int], parts: int) -> Model:
    """A copy of ``model`` with ``path`` split into ``parts`` parts ending in FDT_PARTIAL ops.

    Raises :class:`FdtError` if the path cannot be split exactly."""
    pp = analyze_partial(model.main, path, parts)
    out = fork(model)
    sg = out.main
    rw = _Rewriter(out, pp.body, parts)
    rw.tag = f"fdtp{pp.body.ops[0]}"
    chain = [sg.operators[i] for i in pp.body.ops]
    end = sg.operators[pp.end]
    feature = chain[-1].outputs[0]
    z_full = end.outputs[0]
    code = out.opcode(CUSTOM, 1, FDT_PARTIAL_CODE)
    acc: Optional[Tensor] = None
    for p, (lo0, hi0) in enumerate(even_ranges(pp.body.channels, parts)):
        x, lo, hi = rw.split_body(chain, pp.body.start, p, lo0, hi0)
        first, last = p == 0, p == parts - 1
        w_arr = _end_weights(end, feature, lo, hi)
        w_full = end.inputs[1]
        w_t = rw.tensor(Tensor(rw.names(f"{w_full.name}/{rw.tag}_{lo}_{hi}"), list(w_arr.shape), w_full.dtype,
                               Buffer(w_arr.astype(np.int8).tobytes()),
                               None if w_full.quantization is None else w_full.quantization.copy()))
        if last:
            z = z_full
        else:
            z = rw.tensor(Tensor(rw.names(f"{z_full.name}/{rw.tag}_acc{p}"), list(z_full.shape), INT32, Buffer()))
        bias = end.inputs[2] if last and len(end.inputs) > 2 else None
        params = _end_params(end, first, last, feature)
        ins = [x, w_t, acc, bias]
        while ins and ins[-1] is None:
            ins.pop()
        rw.new_ops.append(Operator(code, ins, [z], None, None, params.encode(), 0))
        acc = z
    rw.splice(pp.ops)
    return out


# ---------------------------------------------------------------------------------------------
# cost model
def is_fdt_partial(op: Operator) -> bool:
    """An op of our partial-sum kernel (matched on its custom code by the catalog)."""
    return info(op).name == CREATED.partial


def needs_custom_kernel(model: Model) -> bool:
    """True when the model only runs on firmware that registers the bundled FDT_PARTIAL kernel."""
    return any(is_fdt_partial(op) for sg in model.subgraphs for op in sg.operators)


# ---------------------------------------------------------------------------------------------
# candidates for the search (opt-in: --allow-custom-ops)
@dataclass(frozen=True)
class PartialCandidate:
    """One partial-sum rewrite the search may try (only with ``allow_custom_ops=True``)."""

    ops: tuple[int, ...]
    parts: int
    kind: RewriteKind = RewriteKind.PARTIAL
    needs_custom_kernel: bool = True

    def apply(self, model: Model) -> Model:
        return apply_partial(model, self.ops, self.parts)

    def label(self, sg: Subgraph) -> str:
        types = "+".join(sg.operators[i].type for i in self.ops)
        return f"FDT {list(self.ops)} {types} x{self.parts} int8 partial (FDT_PARTIAL kernel)"


def partial_candidates(model: Model, parts: Sequence[int] = DEFAULT_PARTS, max_len: int = 8) -> list[PartialCandidate]:
    """Every valid partial-sum path of subgraph 0 (each int8 conv/dense end, every body length),
    for each part count that fits the channels; deterministic order."""
    sg = model.main
    consumers = sg.consumers()
    producers = sg.producers()
    index = {id(op): i for i, op in enumerate(sg.operators)}
    out: list[PartialCandidate] = []
    for e, end in enumerate(sg.operators):
        if _end_kind(end) is None or not end.inputs or end.inputs[0] is None:
            continue
        chain: list[int] = []
        t = end.inputs[0]
        while len(chain) < max_len:
            op = producers.get(t)
            if op is None or len(op.outputs) != 1 or not _single_use(sg, t, consumers):
                break
            chain.insert(0, index[id(op)])
            di = 0 if _is_flatten(op) else data_input_index(op)
            if di is None or op.inputs[di] is None:
                break
            t = op.inputs[di]
        for s in range(len(chain)):
            path = tuple(chain[s:]) + (e,)
            for p in parts:
                try:
                    analyze_partial(sg, path, p, consumers)
                except FdtError:
                    continue
                out.append(PartialCandidate(path, p))
    return out
