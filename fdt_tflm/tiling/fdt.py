"""Fused depthwise tiling (FDT): split a channel path into parts with stock TFLM ops only.

Each part carries a contiguous range of channels through the whole path, so the full-size
intermediate tensors never exist; only one part's slice is alive at a time once the ops
are scheduled part by part (the rewrite emits them in that order).  No work is recomputed:
the MAC count is unchanged (except the summing ADDs of a float partial-sum end).

Exactness: output-channel splits keep each output channel's arithmetic and quantisation;
channel-wise ops see the same values; STRIDED_SLICE and CONCATENATION with unchanged
quantisation are plain copies.  So int8 results are bit-exact in TFLM.  Float partial sums
change the order of additions (compared with a tolerance).
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ..ir.builder import UniqueNames
from ..ir.builder import options as make_options
from ..ir.graph import Buffer, Model, Operator, Quantization, Tensor
from ..errors import FdtError
from ..ir.types import BUILTIN_CODES, DTYPE_CODES
from ..ir.surgery import fork, replace_region
from ..catalog.ops import CREATED, operand
from ..catalog.ops import info as op_info  # ``info`` names a path here
from .paths import CONCAT, PARTIAL, PathInfo, analyze_path, data_input_index, even_ranges, multiplier
from ..catalog.rules import rule

INT8, INT16 = DTYPE_CODES["INT8"], DTYPE_CODES["INT16"]
INT32 = DTYPE_CODES["INT32"]


def copy_version(name: str, dtype: int) -> int:
    """OperatorCode version of a copy op the rewrite creates (a channel slice, a join) on this
    dtype: LiteRT refuses a model whose op versions are too low for its data (catalog)."""
    known = op_info(name)
    return known.int16_version if dtype == INT16 else known.int8_version if dtype == INT8 else 1


def _slice_quant(q: Optional[Quantization], n_along: int, lo: int, hi: int) -> Optional[Quantization]:
    """Per-channel parameters follow a slice of the axis they index; per-tensor stay."""
    if q is None:
        return None
    c = q.copy()
    if q.scale is not None and q.scale.size > 1 and q.scale.size == n_along:
        c.scale = q.scale[lo:hi].copy()
        if q.zero_point is not None and q.zero_point.size == n_along:
            c.zero_point = q.zero_point[lo:hi].copy()
        if q.min is not None and q.min.size == n_along:
            c.min = q.min[lo:hi].copy()
        if q.max is not None and q.max.size == n_along:
            c.max = q.max[lo:hi].copy()
    return c


def _new_activation(like: Tensor, width: int, name: str, lo: int = 0) -> Tensor:
    """A tensor shaped like ``like`` with ``width`` channels (last axis)."""
    shape = list(like.shape[:-1]) + [width]
    q = _slice_quant(like.quantization, like.shape[-1], lo, lo + width)
    sig = None
    if like.shape_signature is not None:
        sig = list(like.shape_signature)
        if sig:
            sig[-1] = width
    return Tensor(name, shape, like.dtype, Buffer(), q, False, sig, None, like.has_rank, dict(like.extra))


def _slice_const(t: Tensor, axis: int, lo: int, hi: int, name: str) -> Tensor:
    data = np.ascontiguousarray(np.take(t.numpy(), np.arange(lo, hi), axis=axis))
    raw = data.astype(data.dtype.newbyteorder("<")).tobytes()
    return Tensor(name, list(data.shape), t.dtype, Buffer(raw),
                  _slice_quant(t.quantization, t.shape[axis], lo, hi), False,
                  None, None, t.has_rank, dict(t.extra))


def _int_const(values: Sequence[int], name: str) -> Tensor:
    arr = np.asarray(values, dtype="<i4")
    return Tensor(name, [arr.size], INT32, Buffer(arr.tobytes()))


def _clone(op: Operator, inputs: list, outputs: list) -> Operator:
    return Operator(op.opcode, inputs, outputs,
                    op.options.copy() if op.options is not None else None,
                    op.options2.copy() if op.options2 is not None else None,
                    op.custom_options, op.custom_options_format, None, [], dict(op.extra))


class _Rewriter:
    """Builds the parts of one path inside a fork of the model (new objects only)."""

    def __init__(self, model: Model, info: PathInfo, parts: int):
        self.model, self.sg, self.info, self.parts = model, model.main, info, parts
        self.names = UniqueNames(self.sg)
        self.new_tensors: list[Tensor] = []
        self.new_ops: list[Operator] = []
        self.tag = f"fdt{info.ops[0]}"
        self._const_cache: dict[tuple, Tensor] = {}

    def tensor(self, t: Tensor) -> Tensor:
        self.new_tensors.append(t)
        return t

    def const_slice(self, t: Tensor, axis: int, lo: int, hi: int) -> Tensor:
        if lo == 0 and hi == t.shape[axis]:
            return t
        key = (id(t), axis, lo, hi)
        if key not in self._const_cache:
            self._const_cache[key] = self.tensor(_slice_const(t, axis, lo, hi, self.names(f"{t.name}/{self.tag}_{lo}_{hi}")))
        return self._const_cache[key]

    def zero_bias(self, bias: Tensor) -> Tensor:
        key = ("zero", id(bias))
        if key not in self._const_cache:
            zeros = np.zeros(bias.shape, dtype=bias.numpy().dtype)
            self._const_cache[key] = self.tensor(Tensor(
                self.names(f"{bias.name}/{self.tag}_zero"), list(bias.shape), bias.dtype,
                Buffer(zeros.astype(zeros.dtype.newbyteorder("<")).tobytes()),
                None if bias.quantization is None else bias.quantization.copy()))
        return self._const_cache[key]

    def new_op(self, name: str, inputs: list, outputs: list, version: int, **fields) -> Operator:
        code = self.model.opcode(BUILTIN_CODES[name], version)
        op = Operator(code, inputs, outputs, make_options(name, **fields))
        self.new_ops.append(op)
        return op

    # -- the three roles --------------------------------------------------------------------
    def start_output_split(self, op: Operator, lo: int, hi: int, out: Tensor) -> Operator:
        """Conv/dense (or 1-channel depthwise) computing output channels [lo, hi) from the whole input."""
        r = rule(op)
        ins = list(op.inputs)
        ins[1] = self.const_slice(op.inputs[1], r.weight_out_axis, lo, hi)
        for k in r.channel_sliced_inputs:
            if k < len(ins) and ins[k] is not None and k != 1:
                ins[k] = self.const_slice(op.inputs[k], len(op.inputs[k].shape) - 1, lo, hi)
        new = _clone(op, ins, [out])
        if r.channel_multiplier is not None:  # depthwise on one input channel: multiplier = part width
            new.options.fields[r.channel_multiplier] = hi - lo
        self.new_ops.append(new)
        return new

    def channel_wise(self, op: Operator, x: Tensor, lo: int, hi: int, out: Tensor) -> Operator:
        """A channel-wise op on input channels [lo, hi) (outputs [lo*m, hi*m))."""
        r = rule(op)
        m = multiplier(op)
        di = data_input_index(op)
        ins = list(op.inputs)
        ins[di] = x
        full = op.outputs[0].shape[-1]
        for k in r.channel_sliced_inputs:
            if k == di or k >= len(ins) or ins[k] is None or not ins[k].is_constant:
                continue
            c = op.inputs[k]
            if c.shape and c.shape[-1] == full and full > 1:
                ins[k] = self.const_slice(c, len(c.shape) - 1, lo * m, hi * m)
        known = op_info(op)
        if operand(op, known.roles.shape) is not None:  # the part's own target shape (RESHAPE)
            ins[known.roles.shape] = self.tensor(_int_const(out.shape, self.names(f"{out.name}/shape")))
        new = _clone(op, ins, [out])
        if known.shape_option is not None and new.options is not None and known.shape_option in new.options.fields:
            new.options.fields[known.shape_option] = np.asarray(out.shape, dtype=np.int32)
        self.new_ops.append(new)
        return new

    def partial_end(self, op: Operator, x: Tensor, lo: int, hi: int, first: bool, out: Tensor) -> Operator:
        """Conv/dense over input channels [lo, hi), no bias (except the first part), no activation."""
        r = rule(op)
        ins = list(op.inputs)
        ins[0] = x
        ins[1] = self.const_slice(op.inputs[1], r.weight_in_axis, lo, hi)
        if not first and len(ins) > 2 and ins[2] is not None:  # bias added once: the other parts get
            ins[2] = self.zero_bias(ins[2])                     # zeros (LiteRT's conv requires a bias)
        new = _clone(op, ins, [out])
        if new.options is not None:
            new.options.fields["FusedActivationFunction"] = 0
        self.new_ops.append(new)
        return new

    def strided_slice(self, x: Tensor, lo: int, hi: int) -> Tensor:
        rank = len(x.shape)
        y = self.tensor(_new_activation(x, hi - lo, self.names(f"{x.name}/{self.tag}_slice{lo}"), lo))
        y.quantization = None if x.quantization is None else x.quantization.copy()
        begin = self.tensor(_int_const([0] * (rank - 1) + [lo], self.names(f"{y.name}/begin")))
        end = self.tensor(_int_const(list(x.shape[:-1]) + [hi], self.names(f"{y.name}/end")))
        strides = self.tensor(_int_const([1] * rank, self.names(f"{y.name}/strides")))
        name = CREATED.channel_slice
        self.new_op(name, [x, begin, end, strides], [y], copy_version(name, x.dtype))
        return y

    # -- the whole path ---------------------------------------------------------------------
    def split_body(self, body: Sequence[Operator], start: str, p: int, lo: int, hi: int
                   ) -> tuple[Tensor, int, int]:
        """Part ``p`` (channels [lo, hi) of the start) of a chain's body: the start split by output
        channels or sliced from its input, then each channel-wise op on the slice.  Returns the
        part's last tensor and its channel range (depth multipliers widen it)."""
        x: Optional[Tensor] = None
        for k, op in enumerate(body):
            y_full = op.outputs[0]
            if k == 0 and start == "output":
                y = self.tensor(_new_activation(y_full, hi - lo, self.names(f"{y_full.name}/{self.tag}_p{p}"), lo))
                self.start_output_split(op, lo, hi, y)
            else:
                if k == 0:
                    x = self.strided_slice(op.inputs[data_input_index(op)], lo, hi)
                m = multiplier(op)
                lo, hi = lo * m, hi * m
                y = self.tensor(_new_activation(y_full, hi - lo, self.names(f"{y_full.name}/{self.tag}_p{p}"), lo))
                self.channel_wise(op, x, lo // m, hi // m, y)
            x = y
        if x is None:
            raise FdtError("internal error: an FDT path without ops")
        return x, lo, hi

    def splice(self, replaced: Sequence[int]) -> None:
        """Put the new ops where the first replaced op stood and drop the replaced ops (IR surgery
        prunes the tensors nothing uses any more)."""
        old = [self.sg.operators[i] for i in replaced]
        replace_region(self.model, old, self.new_ops, self.new_tensors, at="first")

    def build(self) -> None:
        info, sg = self.info, self.sg
        chain = [sg.operators[i] for i in info.ops]
        body = chain[:-1] if info.end == PARTIAL else chain
        ranges = even_ranges(info.channels, self.parts)
        finals: list[Tensor] = []
        for p, (lo0, hi0) in enumerate(ranges):
            x, lo, hi = self.split_body(body, info.start, p, lo0, hi0)
            if info.end == PARTIAL:
                end_op = chain[-1]
                z_full = end_op.outputs[0]
                z = self.tensor(Tensor(self.names(f"{z_full.name}/{self.tag}_sum{p}"), list(z_full.shape),
                                       z_full.dtype, Buffer(), None))
                self.partial_end(end_op, x, lo, hi, p == 0, z)
                if finals:  # running sum; the last ADD applies the activation and writes the output
                    last = p == self.parts - 1
                    acc = z_full if last else self.tensor(Tensor(
                        self.names(f"{z_full.name}/{self.tag}_acc{p}"), list(z_full.shape), z_full.dtype, Buffer(), None))
                    act = end_op.opt("FusedActivationFunction", 0) if last else 0
                    self.new_op(CREATED.sum, [finals[-1], z], [acc], 1, FusedActivationFunction=act)
                    finals.append(acc)
                else:
                    finals.append(z)
            else:
                finals.append(x)
        if info.end == CONCAT:
            y_full = body[-1].outputs[0]
            self.new_op(CREATED.join, finals, [y_full], copy_version(CREATED.join, y_full.dtype),
                        Axis=len(y_full.shape) - 1, FusedActivationFunction=0)


def apply_fdt(model: Model, path: Sequence[int], parts: int, end: str = CONCAT) -> Model:
    """A copy of ``model`` with the channel path ``path`` (operator indices of subgraph 0, in
    chain order) split into ``parts`` parts (uneven when the channel count is not a multiple).

    ``end``: "concat" (the parts are concatenated after the last op of the path) or
    "partial" (the last op is a float32 conv/dense split by input channels, parts summed
    with ADD).  Raises :class:`FdtError` if the path cannot be split.  Graph input/output
    tensors are kept as objects; the result is a fork (``ir.surgery``) sharing every untouched
    op and tensor with ``model``, which is not modified."""
    info = analyze_path(model.main, path, end, parts)
    out = fork(model)
    rw = _Rewriter(out, info, parts)
    rw.build()
    rw.splice(info.ops)
    return out
