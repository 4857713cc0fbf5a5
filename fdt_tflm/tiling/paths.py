"""Channel paths for fused depthwise tiling (FDT): which op chains can be split, and how.

A path is a list of operator indices of subgraph 0 forming a chain: each op's data input
is the previous op's only output, consumed by nothing else.  The first op either splits
its weights by output channels (CONV_2D / FULLY_CONNECTED / a 1-channel depthwise; every
part reads the whole input) or is channel-wise and reads a channel slice of its input.
The ops after it are channel-wise.  The path ends by concatenating the parts, or (float
only) with a conv/dense split by input channels whose partial results are summed.

All operator knowledge comes from :mod:`fdt_tflm.catalog.rules` (the catalog's channel view)
and :mod:`fdt_tflm.catalog.ops`; no op type is named here.  The few conditions that
depend on an op's operands are the named checks in :data:`CHECKS`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np

from ..catalog.ops import CREATED, MacKind, info
from ..errors import FdtError
from ..ir.graph import Operator, Subgraph, Tensor
from ..ir.types import DTYPE_CODES
from ..catalog.rules import rule

FLOAT32 = DTYPE_CODES["FLOAT32"]
CONCAT = "concat"
PARTIAL = "partial"


def _const_ints(t: Optional[Tensor]) -> Optional[np.ndarray]:
    if t is None or not t.is_constant:
        return None
    return np.asarray(t.numpy()).reshape(-1).astype(np.int64)


def data_input_index(op: Operator) -> Optional[int]:
    """The input that carries the channel slices: input 0, or for binary ops with one constant
    operand the non-constant one."""
    r = rule(op)
    if r is not None and r.channel_check == "const_operand":
        acts = [i for i, t in enumerate(op.inputs[:2]) if t is not None and not t.is_constant]
        return acts[0] if len(acts) == 1 else None
    return 0 if op.inputs and op.inputs[0] is not None else None


def _check_const_operand(op: Operator) -> bool:
    """ADD/MUL/SUB: exactly one activation operand; the constant broadcasts or varies along channels."""
    di = data_input_index(op)
    if di is None or len(op.inputs) < 2:
        return False
    x, c = op.inputs[di], op.inputs[1 - di]
    if c is None or not c.is_constant or not x.shape:
        return False
    cs = list(c.shape) or [1]
    # the constant broadcasts to x (output shape == x's) and is either constant along the
    # channel axis or indexed by it: then slicing its last axis gives each part its operand
    return (len(cs) <= len(x.shape) and cs[-1] in (1, x.shape[-1])
            and list(op.outputs[0].shape) == list(x.shape))


def _check_channel_unpadded(op: Operator) -> bool:
    p = _const_ints(op.inputs[1] if len(op.inputs) > 1 else None)
    if p is None or p.size < 2:
        return False
    return int(p[-1]) == 0 and int(p[-2]) == 0


def _check_axes_not_last(op: Operator) -> bool:
    ax = _const_ints(op.inputs[1] if len(op.inputs) > 1 else None)
    rank = len(op.inputs[0].shape)
    if ax is None or rank == 0:
        return False
    return all(int(a) % rank != rank - 1 for a in ax) and bool(op.outputs[0].shape) and \
        op.outputs[0].shape[-1] == op.inputs[0].shape[-1]


def _check_last_axis_kept(op: Operator) -> bool:
    i, o = op.inputs[0].shape, op.outputs[0].shape
    return bool(i) and bool(o) and i[-1] == o[-1] and int(np.prod(i)) == int(np.prod(o))


CHECKS: dict[str, Callable[[Operator], bool]] = {
    "": lambda op: True,
    "const_operand": _check_const_operand,
    "channel_unpadded": _check_channel_unpadded,
    "axes_not_last": _check_axes_not_last,
    "last_axis_kept": _check_last_axis_kept,
}


def multiplier(op: Operator) -> int:
    """Output channels per input channel of a channel-wise op (depthwise multiplier, else 1)."""
    r = rule(op)
    if r is None or r.channel_multiplier is None:
        return 1
    return max(1, int(op.opt(r.channel_multiplier, 1) or 1))


def is_channel_wise(op: Operator) -> bool:
    """Output channel c depends only on input channel(s) c // m, constants sliced along."""
    r = rule(op)
    if r is None or not r.channel_wise or not op.outputs or len(op.outputs) != 1:
        return False
    di = data_input_index(op)
    if di is None:
        return False
    x, y = op.inputs[di], op.outputs[0]
    if not x.shape or not y.shape or x.dtype not in _DTYPES or y.dtype not in _DTYPES:
        return False
    if y.shape[-1] != x.shape[-1] * multiplier(op):
        return False
    check = CHECKS.get(r.channel_check)
    if check is None:
        return False
    try:
        return bool(check(op))
    except (IndexError, ValueError, TypeError, AttributeError):
        return False


_DTYPES = {DTYPE_CODES[n] for n in ("INT8", "UINT8", "INT16", "FLOAT32", "INT32")}


def _weights_ok(op: Operator, axis: Optional[int]) -> bool:
    w = op.inputs[1] if len(op.inputs) > 1 else None
    return (axis is not None and w is not None and w.is_constant and w.sparsity is None
            and w.dtype != DTYPE_CODES.get("INT4", -1) and len(w.shape) > axis)


def is_output_split_start(op: Operator) -> bool:
    """Can start a path by output channels, every part reading the whole input."""
    r = rule(op)
    if r is None or not r.channel_start or len(op.outputs) != 1 or not op.outputs[0].shape:
        return False
    if not _weights_ok(op, r.weight_out_axis):
        return False
    if any(t is not None and not t.is_constant for t in op.inputs[1:]):
        return False
    if r.channel_wise:  # depthwise: only a 1-channel input lets every part read the whole input
        return op.inputs[0] is not None and op.inputs[0].shape[-1] == 1
    return True


def is_partial_end(op: Operator) -> bool:
    """Can end a path by input channels with summed partial results (float32 only, stock ADD)."""
    r = rule(op)
    if r is None or not r.channel_partial_end or not _weights_ok(op, r.weight_in_axis):
        return False
    x = op.inputs[0]
    return (x is not None and x.dtype == FLOAT32 and op.outputs[0].dtype == FLOAT32
            and op.inputs[1].dtype == FLOAT32 and op.inputs[1].shape[r.weight_in_axis] == x.shape[-1]
            and (info(op).macs != MacKind.DENSE or len(x.shape) == 2 or not op.opt("KeepNumDims", False)))


@dataclass(frozen=True)
class PathInfo:
    """A validated path: ``start`` is "output" (weights split) or "input" (input sliced);
    ``channels`` is the count split into parts at the start (output channels for "output",
    input channels of the first op for "input")."""

    ops: tuple[int, ...]
    start: str
    end: str
    channels: int


def _single_use(sg: Subgraph, t: Tensor, consumers: dict) -> bool:
    return len(consumers.get(t, [])) == 1 and all(t is not o for o in sg.outputs) and t.is_activation


def analyze_path(sg: Subgraph, ops: Sequence[int], end: str = CONCAT, parts: int = 2,
                 consumers: Optional[dict] = None) -> PathInfo:
    """Validate a path; raise :class:`FdtError` saying why it cannot be split."""
    if end not in (CONCAT, PARTIAL):
        raise FdtError(f"path end must be {CONCAT!r} or {PARTIAL!r}, not {end!r}")
    ops = tuple(int(i) for i in ops)
    if not ops:
        raise FdtError("empty path")
    if len(set(ops)) != len(ops) or any(i < 0 or i >= len(sg.operators) for i in ops):
        raise FdtError(f"path {list(ops)} has repeated or out-of-range operator indices")
    if parts < 2:
        raise FdtError(f"parts must be at least 2, got {parts}")
    consumers = sg.consumers() if consumers is None else consumers
    chain = [sg.operators[i] for i in ops]
    body = chain[:-1] if end == PARTIAL else chain
    if end == PARTIAL:
        if len(chain) < 2:
            raise FdtError("a partial-sum path needs at least one op before its end")
        if not is_partial_end(chain[-1]):
            raise FdtError(f"op {ops[-1]} ({chain[-1].type}) cannot end a path with partial sums "
                           "(float32 CONV_2D/FULLY_CONNECTED only)")
    for k in range(1, len(chain)):
        prev, op = chain[k - 1], chain[k]
        di = 0 if (end == PARTIAL and k == len(chain) - 1) else data_input_index(op)
        if di is None or op.inputs[di] is not prev.outputs[0] or len(prev.outputs) != 1:
            raise FdtError(f"op {ops[k]} does not consume op {ops[k - 1]}'s output as its data input")
        if not _single_use(sg, prev.outputs[0], consumers):
            raise FdtError(f"tensor {prev.outputs[0].name!r} inside the path has other uses")
        if sum(1 for t in op.inputs if t is prev.outputs[0]) != 1:
            raise FdtError(f"op {ops[k]} reads the path tensor twice")
    for k, op in enumerate(body[1:], 1):
        if not is_channel_wise(op):
            raise FdtError(f"op {ops[k]} ({op.type}) is not channel-wise here")
    first = body[0]
    if is_output_split_start(first):
        start, channels = "output", first.outputs[0].shape[-1]
    elif is_channel_wise(first):
        start, channels = "input", first.inputs[data_input_index(first)].shape[-1]
    else:
        raise FdtError(f"op {ops[0]} ({first.type}) cannot start a channel path")
    if channels < parts:
        raise FdtError(f"{channels} channels cannot be split into {parts} parts")
    if end == CONCAT and parts > max_concat_parts():
        raise FdtError(f"TFLM's CONCATENATION takes at most {max_concat_parts()} inputs, not {parts}")
    return PathInfo(ops, start, end, channels)


def max_concat_parts() -> int:
    """Most parts a concatenation end can join (TFLM kernel limit, from the catalog)."""
    limit = info(CREATED.join).channel.max_inputs
    return limit if limit else 1 << 30


def valid(sg: Subgraph, ops: Sequence[int], end: str, parts: int, consumers: Optional[dict] = None) -> bool:
    try:
        analyze_path(sg, ops, end, parts, consumers)
        return True
    except FdtError:
        return False


def even_ranges(n: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` contiguous ranges covering [0, n), sizes differing by at most one (larger first)."""
    q, r = divmod(n, parts)
    out, lo = [], 0
    for i in range(parts):
        hi = lo + q + (1 if i < r else 0)
        out.append((lo, hi))
        lo = hi
    return out


def maximal_chain(sg: Subgraph, seed: int, consumers: Optional[dict] = None) -> list[int]:
    """The longest chain through op ``seed`` whose links are single-use tensors between ops that
    a path may contain (start ops above, channel-wise ops, a float partial end below)."""
    consumers = sg.consumers() if consumers is None else consumers
    producers = sg.producers()
    index = {id(op): i for i, op in enumerate(sg.operators)}
    seed_op = sg.operators[seed]
    if rule(seed_op) is None:
        return []
    chain = [seed]
    op = seed_op
    # upward: through channel-wise ops; an output-split start (conv/dense) closes the chain
    while is_channel_wise(op) and not is_output_split_start(op):
        di = data_input_index(op)
        x = op.inputs[di]
        p = producers.get(x)
        if p is None or len(p.outputs) != 1 or not _single_use(sg, x, consumers):
            break
        if not (is_channel_wise(p) or is_output_split_start(p)):
            break
        chain.insert(0, index[id(p)])
        op = p
    # downward: channel-wise ops, then possibly one partial end
    op = seed_op
    while len(op.outputs) == 1 and _single_use(sg, op.outputs[0], consumers):
        nxt = consumers[op.outputs[0]][0]
        if is_channel_wise(nxt) and nxt.inputs[data_input_index(nxt)] is op.outputs[0]:
            chain.append(index[id(nxt)])
            op = nxt
            continue
        if is_partial_end(nxt) and nxt.inputs[0] is op.outputs[0]:
            chain.append(index[id(nxt)])
        break
    return chain


def is_unary_pointwise(op: Operator) -> bool:
    """An elementwise op of one activation (a separate ReLU6, as other exporters write a
    fused activation): paths treat it as part of the op before it."""
    r = rule(op)
    return r is not None and r.spatial == "pointwise" and \
        sum(1 for t in op.inputs if t is not None and not t.is_constant) == 1


def candidate_paths(sg: Subgraph, seed: int, max_len: int = 8,
                    consumers: Optional[dict] = None) -> list[tuple[tuple[int, ...], str]]:
    """Every sub-chain containing ``seed`` of the maximal chain through it (and, when ``seed``
    can be a partial-sum end, of the chain above it) that forms a valid path for 2 parts,
    as (op indices, end).  A sub-chain never ends just before a unary pointwise op nor starts
    with one that has an op above it in the chain (that op would run on the whole tensor)."""
    consumers = sg.consumers() if consumers is None else consumers
    chains = [maximal_chain(sg, seed, consumers)]
    op = sg.operators[seed]
    if is_partial_end(op):
        above = sg.producers().get(op.inputs[0])
        if above is not None:
            chains.append(maximal_chain(sg, next(i for i, o in enumerate(sg.operators) if o is above), consumers))
    out: list[tuple[tuple[int, ...], str]] = []
    for chain in chains:
        if seed not in chain:
            continue
        s = chain.index(seed)
        glued = [is_unary_pointwise(sg.operators[i]) for i in chain]  # never cut before one
        for i in range(0, s + 1):
            if i > 0 and glued[i]:
                continue
            for j in range(s, min(len(chain), i + max_len)):
                if j + 1 < len(chain) and glued[j + 1]:
                    continue
                ops = tuple(chain[i:j + 1])
                for end in (CONCAT, PARTIAL):
                    if (ops, end) not in out and valid(sg, ops, end, 2, consumers):
                        out.append((ops, end))
    return out
