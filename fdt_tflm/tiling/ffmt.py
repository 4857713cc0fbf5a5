"""Fused feature-map tiling (FFMT): split a chain of spatial ops along height/width.

A chain of window ops (conv, depthwise conv, pooling, explicit PAD) and pointwise ops is
rewritten into ``th x tw`` independent tile computations, so the chain's large
intermediate feature maps never exist at once.  Each output tile's input region is
inferred backwards through kernel size, stride, dilation and padding; the overlap (halo)
between neighbouring tiles is recomputed, which costs extra MACs.

Everything is expressed with stock TFLM builtin ops and is bit-exact in TFLM:

* input tiles are SLICE copies (quantisation unchanged);
* a tile op keeps SAME padding where TFLM's SAME arithmetic on the tile's own sizes gives
  exactly the border padding the tile needs on both axes (e.g. the bottom-right tile of a
  stride-2 op that pads only after); no PAD op is needed then.  Every other tile op runs
  with VALID padding, and where it touches the border of a SAME-padded op the padding is
  made explicit: conv/depthwise skip out-of-image taps, which equals taps of value "input
  zero point", so an int8 PAD (TFLM pads with the output zero
  point, and PAD keeps the quantisation) is exact; max pooling pads with the dtype's
  lowest value (PADV2); average pooling divides by the number of in-image taps, so a
  tiling that would need explicit padding there is refused (see ``rules.spatial_border``);
* tiles are joined with CONCATENATION (each tile row along W, then the rows along H);
* a chain may run through residual blocks: an intermediate output that also feeds a later
  pointwise op of the chain (the ADD's skip operand) is computed per tile over the hull of
  what its consumers read, and each consumer that reads less gets a SLICE of that tile
  (tile-local coordinates), so the skip never exists at full size either.

Anything unsupported raises :class:`FfmtUnsupported`; the search catches it and leaves
the chain untiled.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional, Sequence, Union

import numpy as np

from ..catalog.ops import CREATED, info
from ..errors import FdtError
from ..ir.builder import GraphBuilder, options
from ..ir.graph import Model, Operator, Subgraph, Tensor
from ..ir.surgery import fork, replace_region
from ..catalog.macs import graph_macs
from ..ir.types import BUILTIN_CODES, DTYPE_NUMPY
from ..catalog.rules import rule
from .fdt import apply_fdt
from .paths import CONCAT, is_output_split_start, is_unary_pointwise, maximal_chain, valid

PADDING_SAME, PADDING_VALID = 0, 1  # tflite Padding enum
H_AXIS, W_AXIS = 1, 2

# One axis of a tiling: a number of near-equal tiles, or the explicit tile sizes (output
# rows/columns of the chain's last op, in order).  ``Tiles`` = (H axis, W axis).
AxisSplit = Union[int, tuple[int, ...]]
Tiles = tuple[AxisSplit, AxisSplit]

DEFAULT_MAX_LEN = 8  # longest sub-chain ffmt_candidates enumerates unless told otherwise
DEFAULT_TILE_OPTIONS: tuple[tuple[int, int], ...] = (
    (2, 1), (1, 2), (2, 2), (3, 1), (1, 3), (2, 3), (3, 2), (3, 3), (4, 1), (1, 4), (2, 4), (4, 2), (4, 4))


class FfmtUnsupported(FdtError):
    """This chain/tiling cannot be expressed exactly; the caller leaves it untiled."""


# --------------------------------------------------------------------------------------
# Geometry
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Span:
    """A half-open index range ``[lo, hi)`` along one spatial axis."""

    lo: int
    hi: int

    @property
    def size(self) -> int:
        return self.hi - self.lo


@dataclass(frozen=True)
class AxisGeom:
    """How one spatial axis of an op's output reads its input: out[i] <- in[i*stride - pad_before + (0..eff_k-1)]."""

    eff_k: int
    stride: int
    pad_before: int
    in_size: int

    def same_matches(self, n_out: int, n_in: int, before: int) -> bool:
        """Whether TFLM's SAME arithmetic on a tile of these sizes pads exactly ``before``.

        TFLM derives SAME padding per op from its own sizes (out = ceil(in / stride),
        pad_before = max((out - 1) * stride + eff_k - in, 0) // 2) and skips taps outside
        the input, so a tile whose needed padding equals that runs unchanged, without PAD.
        Taps past the tile's end are out of the image (the span was clipped to it) or never read."""
        if (n_in + self.stride - 1) // self.stride != n_out:
            return False
        return max((n_out - 1) * self.stride + self.eff_k - n_in, 0) // 2 == before

    def input_span(self, out: Span) -> tuple[Span, int, int]:
        """The in-image input span an output span needs, and the padding before/after it."""
        lo = out.lo * self.stride - self.pad_before
        hi = (out.hi - 1) * self.stride - self.pad_before + self.eff_k
        return Span(max(lo, 0), min(hi, self.in_size)), max(0, -lo), max(0, hi - self.in_size)


@dataclass(frozen=True)
class Step:
    """One op of the chain as FFMT sees it."""

    index: int  # position in the subgraph's operator list
    kind: str  # rules.spatial: "window" | "pad" | "pointwise"
    border: str  # rules.spatial_border (window ops only)
    h: AxisGeom
    w: AxisGeom
    same: bool = False  # the op uses SAME padding (border tiles may keep it instead of a PAD)
    # pointwise ops: (operand position, chain step) of operands produced earlier in the chain
    # than the previous op (a residual ADD's skip connection), read from that step's tile
    skips: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class TileStep:
    """One op of one tile: the output region it computes, the input region it reads, the padding."""

    out_h: Span
    out_w: Span
    in_h: Span
    in_w: Span
    pads: tuple[int, int, int, int]  # top, bottom, left, right
    same: bool = False  # window op: SAME padding on the tile's own sizes yields exactly ``pads`` (no PAD op)
    folded: bool = False  # PAD op: not emitted; the next (VALID window) op runs SAME on the unpadded tile


@dataclass
class FfmtPlan:
    """The complete tiling of a chain: per tile (row-major), per op of the chain."""

    path: list[int]
    tiles: Tiles
    steps: list[Step]
    tile_steps: list[list[TileStep]]  # [tile][op]


def split_sizes(n: int, k: int) -> list[Span]:
    """``n`` split into ``k`` near-equal consecutive spans (the first ``n % k`` one larger)."""
    if k < 1 or k > n:
        raise FfmtUnsupported(f"cannot split {n} into {k} tiles")
    base, rem = divmod(n, k)
    spans, lo = [], 0
    for i in range(k):
        hi = lo + base + (1 if i < rem else 0)
        spans.append(Span(lo, hi))
        lo = hi
    return spans


def ramp_sizes(n: int, k: int) -> tuple[int, ...]:
    """``n`` split into ``k`` sizes growing by about one from first to last (sum ``n``).

    Why: while the graph input (or any big tensor the chain reads) is still alive, the
    outputs of the finished tiles pile up next to it; small early tiles and larger late
    ones (run after the big input is freed by the scheduler) flatten that peak.  On VWW,
    rows 5,6,6,7 x columns 12,12 reach a lower head than any even grid of 6-9 tiles."""
    if k < 1 or k > n:
        raise FfmtUnsupported(f"cannot split {n} into {k} tiles")
    raw = [n / k + (i - (k - 1) / 2) for i in range(k)]
    sizes = [max(1, int(np.floor(r + 0.5))) for r in raw]
    i = k - 1
    while sum(sizes) != n:  # fix rounding from the large end (shrink) or the small end (grow)
        if sum(sizes) > n and sizes[i] > 1:
            sizes[i] -= 1
        elif sum(sizes) < n:
            sizes[k - 1 - i] += 1
        i = (i - 1) % k
    return tuple(sorted(sizes))


def axis_spans(n: int, split: AxisSplit) -> list[Span]:
    """The spans of one tiled axis of length ``n``: ``split`` near-equal tiles, or these sizes."""
    if isinstance(split, (int, np.integer)):
        return split_sizes(n, int(split))
    sizes = [int(x) for x in split]
    if not sizes or any(x < 1 for x in sizes) or sum(sizes) != n:
        raise FfmtUnsupported(f"tile sizes {tuple(sizes)} do not split {n}")
    spans, lo = [], 0
    for x in sizes:
        spans.append(Span(lo, lo + x))
        lo += x
    return spans


def tile_counts(tiles: Tiles) -> tuple[int, int]:
    """(rows, columns) of tiles of a tiling given as counts or sizes per axis."""
    return tuple(int(a) if isinstance(a, (int, np.integer)) else len(a) for a in tiles)  # type: ignore[return-value]


def tiling_variants(n_h: int, n_w: int, counts: tuple[int, int]) -> list[Tiles]:
    """Even tiling and, on axes with 3+ tiles, the ramped one (:func:`ramp_sizes`): deduplicated."""
    def per_axis(n: int, k: int) -> list[AxisSplit]:
        opts: list[AxisSplit] = [k]
        if 3 <= k <= n:
            r = ramp_sizes(n, k)
            if [sp.size for sp in split_sizes(n, k)] != list(r):
                opts.append(r)
        return opts
    return [(a, b) for a in per_axis(n_h, counts[0]) for b in per_axis(n_w, counts[1])]


def _window_axis(op: Operator, axis: int) -> AxisGeom:
    """Geometry of a conv/depthwise/pool op along H (axis 1) or W (axis 2), TFLM's SAME arithmetic."""
    sfx = "H" if axis == H_AXIS else "W"
    inp, out = op.inputs[0], op.outputs[0]
    k = op.opt("FilterHeight" if axis == H_AXIS else "FilterWidth")
    if k is None:  # conv/depthwise: kernel size from the OHWI / 1HWO weights
        if len(op.inputs) < 2 or op.inputs[1] is None or len(op.inputs[1].shape) != 4:
            raise FfmtUnsupported(f"{op.type}: no 4-D weights")
        k = op.inputs[1].shape[axis]
    stride = int(op.opt("Stride" + sfx, 1))
    dil = int(op.opt(f"Dilation{sfx}Factor", 1) or 1)
    eff = (int(k) - 1) * dil + 1
    n_in, n_out = inp.shape[axis], out.shape[axis]
    padding = op.opt("Padding", PADDING_SAME)
    if padding == PADDING_SAME:
        expect = (n_in + stride - 1) // stride
        pad_before = max((n_out - 1) * stride + eff - n_in, 0) // 2
    elif padding == PADDING_VALID:
        expect = (n_in - eff + stride) // stride
        pad_before = 0
    else:
        raise FfmtUnsupported(f"{op.type}: unknown padding {padding}")
    if expect != n_out or stride < 1 or eff < 1:
        raise FfmtUnsupported(f"{op.type}: output size {n_out} does not match its geometry")
    if dil != 1 and op.opt("FilterHeight") is not None:
        raise FfmtUnsupported(f"{op.type}: dilated pooling")
    return AxisGeom(eff, stride, pad_before, n_in)


def _pad_axis(op: Operator, axis: int) -> AxisGeom:
    """An explicit PAD along one axis is a window of size 1 shifted by the padding before."""
    if len(op.inputs) < 2 or op.inputs[1] is None or not op.inputs[1].is_constant:
        raise FfmtUnsupported(f"{op.type}: paddings are not constant")
    pads = op.inputs[1].numpy().reshape(-1, 2)
    if pads.shape[0] != 4 or pads[0].any() or pads[3].any():
        raise FfmtUnsupported(f"{op.type}: pads batch or channels")
    before, after = int(pads[axis][0]), int(pads[axis][1])
    if before < 0 or after < 0:
        raise FfmtUnsupported(f"{op.type}: negative padding")
    n_in = op.inputs[0].shape[axis]
    if op.outputs[0].shape[axis] != n_in + before + after:
        raise FfmtUnsupported(f"{op.type}: output shape does not match paddings")
    return AxisGeom(1, 1, before, n_in)


def _identity_axis(op: Operator, axis: int) -> AxisGeom:
    return AxisGeom(1, 1, 0, op.outputs[0].shape[axis])


_AXIS_GEOMETRY = {"window": _window_axis, "pad": _pad_axis, "pointwise": _identity_axis}


def _path_input(op: Operator, prev: Optional[Tensor]) -> Tensor:
    """The activation the chain flows through into ``op``."""
    if prev is not None:
        return prev
    t = op.inputs[0] if op.inputs else None
    if t is None or not t.is_activation:
        raise FfmtUnsupported(f"{op.type}: first input is not an activation")
    return t


@dataclass(frozen=True)
class GraphIndex:
    """What the chain analysis looks up, built once per graph (not once per sub-chain)."""

    consumers: dict
    outputs: frozenset
    where: dict  # id(op) -> its index

    @classmethod
    def of(cls, sg: Subgraph) -> "GraphIndex":
        return cls(sg.consumers(), frozenset(id(t) for t in sg.outputs),
                   {id(op): n for n, op in enumerate(sg.operators)})


def analyse_chain(sg: Subgraph, path: Sequence[int], open_end: bool = False,
                  index: Optional[GraphIndex] = None) -> list[Step]:
    """Check that ``path`` is a tileable chain and describe each op's spatial geometry.

    Each op consumes the previous op's output; an intermediate output may also feed later
    pointwise ops of the chain (a residual ADD's skip operand), but nothing outside it.
    ``open_end``: consumers after the chain's last op are allowed too (the chain may still
    grow to include them; :func:`ffmt_chains` uses this).  ``index``: ``GraphIndex.of(sg)``,
    passed by callers that analyse many sub-chains of one graph."""
    path = list(path)
    if not path:
        raise FfmtUnsupported("empty path")
    if any(not 0 <= i < len(sg.operators) for i in path) or any(b <= a for a, b in zip(path, path[1:])):
        raise FfmtUnsupported("path indices must be increasing operator indices")
    steps: list[Step] = []
    produced: dict[int, int] = {}  # id of a chain op's output -> its step
    prev: Optional[Tensor] = None
    for k, i in enumerate(path):
        steps.append(_analyse_op(sg, i, prev, produced))
        prev = sg.operators[i].outputs[0]
        produced[id(prev)] = k
    _check_consumers(sg, path, steps, open_end, index or GraphIndex.of(sg))
    return steps


def _analyse_op(sg: Subgraph, i: int, prev: Optional[Tensor], produced: dict[int, int]) -> Step:
    """One op of a chain entered through ``prev`` (None: the chain starts here)."""
    op = sg.operators[i]
    r = rule(op)
    if r is None or r.spatial not in _AXIS_GEOMETRY:
        raise FfmtUnsupported(f"{op.type} cannot be tiled spatially")
    if len(op.outputs) != 1:
        raise FfmtUnsupported(f"{op.type}: more than one output")
    data = _path_input(op, prev)
    out = op.outputs[0]
    if r.spatial in ("window", "pad") and op.inputs[0] is not data:
        raise FfmtUnsupported(f"{op.type}: the chain does not enter through input 0")
    if prev is not None and all(t is not prev for t in op.inputs):
        raise FfmtUnsupported(f"op {i} does not consume the output of the previous op of the chain")
    if len(data.shape) != 4 or len(out.shape) != 4 or data.shape[0] != out.shape[0]:
        raise FfmtUnsupported(f"{op.type}: not a 4-D NHWC op")
    if r.spatial == "pointwise" and data.shape[:3] != out.shape[:3]:
        raise FfmtUnsupported(f"{op.type}: the chain operand is broadcast")
    if r.spatial == "pad" and not (data.quantization is None and out.quantization is None) \
            and not (data.quantization is not None and data.quantization.same_as(out.quantization)):
        raise FfmtUnsupported(f"{op.type}: requantising pad")
    skips: list[tuple[int, int]] = []
    for pos, t in enumerate(op.inputs):
        if t is None or t is data or id(t) not in produced:
            continue
        if r.spatial != "pointwise" or len(t.shape) != 4 or t.shape[:3] != out.shape[:3]:
            raise FfmtUnsupported(f"{op.type}: reads the chain's {t.name} other than as a same-sized skip operand")
        skips.append((pos, produced[id(t)]))
    geo = _AXIS_GEOMETRY[r.spatial]
    same = r.spatial == "window" and op.opt("Padding", PADDING_SAME) == PADDING_SAME
    return Step(i, r.spatial, r.spatial_border, geo(op, H_AXIS), geo(op, W_AXIS), same, tuple(skips))


def _check_consumers(sg: Subgraph, path: list[int], steps: list[Step], open_end: bool, index: GraphIndex) -> None:
    """Every intermediate output feeds the next op and, as a skip operand, later ops of the chain only."""
    consumers, outputs, where = index.consumers, index.outputs, index.where
    step_of = {i: k for k, i in enumerate(path)}
    skip_reads = {(j, k) for k, st in enumerate(steps) for _, j in st.skips}
    for k, i in enumerate(path[:-1]):
        out = sg.operators[i].outputs[0]
        if id(out) in outputs:
            raise FfmtUnsupported(f"{out.name} is a graph output")
        for c in consumers.get(out, []):
            n = where[id(c)]
            kc = step_of.get(n)
            if kc == k + 1 or (kc is not None and (k, kc) in skip_reads) or (open_end and n > path[-1]):
                continue
            raise FfmtUnsupported(f"{out.name} is used outside the chain")


def plan_ffmt(model: Model, path_op_indices: Sequence[int], tiles: Tiles) -> FfmtPlan:
    """Tile regions for every op of the chain; raises :class:`FfmtUnsupported`."""
    return _plan(model.main, analyse_chain(model.main, path_op_indices), tiles)


def _plan(sg: Subgraph, steps: list[Step], tiles: Tiles) -> FfmtPlan:
    try:
        th, tw = tile_counts(tiles)
    except (TypeError, ValueError):
        raise FfmtUnsupported(f"tiles {tiles!r}: expected (rows, columns), each a count or sizes") from None
    if th < 1 or tw < 1 or th * tw < 2:
        raise FfmtUnsupported(f"tiles {tiles}: need at least two tiles")
    last = sg.operators[steps[-1].index].outputs[0]
    tile_steps = [_plan_tile(sg, steps, sh, sw) for sh in axis_spans(last.shape[H_AXIS], tiles[0])
                  for sw in axis_spans(last.shape[W_AXIS], tiles[1])]
    return FfmtPlan([st.index for st in steps], tiles, steps, tile_steps)


def _hull(a: Optional[tuple[Span, Span]], b: tuple[Span, Span]) -> tuple[Span, Span]:
    if a is None:
        return b
    return Span(min(a[0].lo, b[0].lo), max(a[0].hi, b[0].hi)), Span(min(a[1].lo, b[1].lo), max(a[1].hi, b[1].hi))


def _plan_tile(sg: Subgraph, steps: list[Step], sh: Span, sw: Span) -> list[TileStep]:
    """One output tile's regions, backwards: each op computes the hull of what its consumers
    in the chain read (the next op's input region, and the output region of any later op that
    takes it as a skip operand); a consumer reading less gets a SLICE of that tile."""
    need: list[Optional[tuple[Span, Span]]] = [None] * len(steps)
    need[-1] = (sh, sw)
    per_op: list[TileStep] = []
    for k in range(len(steps) - 1, -1, -1):
        st = steps[k]
        oh, ow = need[k]  # type: ignore[misc]
        ih, pt, pb = st.h.input_span(oh)
        iw, pl, pr = st.w.input_span(ow)
        if ih.size <= 0 or iw.size <= 0:
            raise FfmtUnsupported("a tile reads no input")
        pads = (pt, pb, pl, pr)
        same = st.kind == "window" and st.same and any(pads) \
            and st.h.same_matches(oh.size, ih.size, pt) and st.w.same_matches(ow.size, iw.size, pl)
        if any(pads) and not same and st.kind == "window" and st.border == "refuse":
            op = sg.operators[st.index]
            raise FfmtUnsupported(f"{op.type}: a tile needs explicit padding, which would change it")
        folded = any(pads) and _folds_into_next(sg, steps, k, per_op[-1] if per_op else None, ih, iw, pt, pl)
        if folded:  # the consumer keeps its input region (in padded coordinates) but runs SAME
            per_op[-1] = dataclasses.replace(per_op[-1], same=True)
        per_op.append(TileStep(oh, ow, ih, iw, pads, same, folded))
        if k > 0:
            need[k - 1] = _hull(need[k - 1], (ih, iw))
        for _, j in st.skips:
            need[j] = _hull(need[j], (oh, ow))
    return per_op[::-1]


def _folds_into_next(sg: Subgraph, steps: list[Step], k: int, nxt: Optional[TileStep],
                     ih: Span, iw: Span, pt: int, pl: int) -> bool:
    """Whether the PAD of step ``k`` in this tile can be left out, the next op running SAME.

    Keras pads before a stride-2 VALID depthwise (ZeroPadding2D); the bottom/right tiles pad
    after, which is what TFLM's SAME arithmetic gives on the unpadded tile's sizes
    (``AxisGeom.same_matches``).  A conv/depthwise skips out-of-image taps, which equals taps
    of the input zero point, and PAD fills with it (its quantisation is kept): exact, and
    the padded copy never exists."""
    st = steps[k]
    if st.kind != "pad" or nxt is None or info(sg.operators[st.index]).name != CREATED.zero_pad:
        return False
    win = steps[k + 1]
    if win.kind != "window" or win.same or win.border != "zero_point" or nxt.same or any(nxt.pads):
        return False
    if any(j == k for later in steps[k + 1:] for _, j in later.skips):
        return False
    return win.h.same_matches(nxt.out_h.size, ih.size, pt) and win.w.same_matches(nxt.out_w.size, iw.size, pl)


# --------------------------------------------------------------------------------------
# MAC accounting
# --------------------------------------------------------------------------------------
def _region_shape(n: int, h: Span, w: Span, c: int) -> list[int]:
    return [n, h.size, w.size, c]


def _other_inputs_sliced(op: Operator, data: Tensor, out: Tensor, skips: Sequence[tuple[int, int]] = ()) -> list[int]:
    """Positions of a pointwise op's non-chain operands that must be sliced per tile
    (``skips``: the operands read from an earlier op's tile instead, see ``Step.skips``).

    An operand either has the output's full height and width (sliced with the tile, 4-D
    only) or is broadcast over both (height and width 1: passed as is); anything else is
    refused."""
    res = []
    from_tiles = {pos for pos, _ in skips}
    for pos, t in enumerate(op.inputs):
        if t is None or t is data or pos in from_tiles:
            continue
        if len(t.shape) > 4:
            raise FfmtUnsupported(f"{op.type}: operand {t.name} has rank > 4")
        shp = [1] * (4 - len(t.shape)) + list(t.shape)
        hw, out_hw = shp[H_AXIS:W_AXIS + 1], out.shape[H_AXIS:W_AXIS + 1]
        if hw == [1, 1]:
            continue
        if hw != out_hw or len(t.shape) != 4:
            raise FfmtUnsupported(f"{op.type}: operand {t.name} broadcasts in an unsupported way")
        res.append(pos)
    return res


def ffmt_recompute_macs(model: Model, path_op_indices: Sequence[int], tiles: Tiles) -> int:
    """Extra MACs of tiling this chain (halo recomputation, explicit pads; ``macs.op_macs``
    units): the rewritten graph's MACs less the model's."""
    return graph_macs(apply_ffmt(model, path_op_indices, tiles).main) - graph_macs(model.main)


def ffmt_overhead_pct(model: Model, path_op_indices: Sequence[int], tiles: Tiles) -> float:
    """MAC overhead in percent of the whole model's MACs (extra / original * 100)."""
    base = graph_macs(model.main)
    return 100.0 * ffmt_recompute_macs(model, path_op_indices, tiles) / max(1, base)


# --------------------------------------------------------------------------------------
# Candidates for the search
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FfmtCandidate:
    """A sub-chain and a tiling the analysis accepts (the search prices the ones it tries)."""

    path: tuple[int, ...]
    tiles: Tiles


def ffmt_chains(model: Model) -> list[list[int]]:
    """Maximal chains of spatially tileable ops, each op followed by the first consumer of its
    output; other consumers must join the chain later as skip operands of pointwise ops (a
    residual block), so only the sub-chains :func:`analyse_chain` accepts are tileable."""
    sg = model.main
    chains: list[list[int]] = []
    used: set[int] = set()
    index = GraphIndex.of(sg)
    pos, consumers, outputs = index.where, index.consumers, index.outputs
    for i in range(len(sg.operators)):
        if i in used:
            continue
        chain = [i]
        try:
            analyse_chain(sg, chain, index=index)
        except FfmtUnsupported:
            continue
        while True:
            out = sg.operators[chain[-1]].outputs[0]
            cons = sorted(pos[id(c)] for c in consumers.get(out, []))
            if id(out) in outputs or not cons:
                break
            try:
                analyse_chain(sg, chain + [cons[0]], open_end=True, index=index)
            except FfmtUnsupported:
                break
            chain.append(cons[0])
        used.update(chain)
        chains.append(chain)
    return chains


def ffmt_candidates(model: Model, tile_options: Sequence[Tiles] = DEFAULT_TILE_OPTIONS,
                    max_len: int = DEFAULT_MAX_LEN, ramps: bool = False,
                    touching: Optional[set[int]] = None) -> list[FfmtCandidate]:
    """Every contiguous sub-chain (with at least one window op, up to ``max_len`` ops besides
    unary pointwise ones such as a separate activation) x tiling
    the chain analysis accepts.  ``max_len``: chains through residual blocks are long
    (MobileNetV2's stem to its 28x28 stage is 15 ops).  ``ramps``: also the ramped variant of
    each count-only tiling (:func:`tiling_variants`); the search uses them when it ranks
    FFMT candidates on a scheduled order (the head objective).  ``touching``: only sub-chains
    containing one of these op indices (the search's seeds).  Nothing is planned here: the
    search prices only the few it tries, and a tiling that cannot be expressed fails there.
    Deterministic order."""
    sg = model.main
    index = GraphIndex.of(sg)
    res: list[FfmtCandidate] = []
    for chain in ffmt_chains(model):
        for a in range(len(chain)):
            for b in range(a + 1, _reach(sg, chain, a, max_len) + 1):
                sub = chain[a:b]
                if touching is not None and not touching.intersection(sub):
                    continue
                if not any(rule(sg.operators[i]).spatial == "window" for i in sub):
                    continue
                try:
                    analyse_chain(sg, sub, index=index)
                except FfmtUnsupported:
                    continue
                last = sg.operators[sub[-1]].outputs[0]
                options_here: list[Tiles] = []
                for t in tile_options:
                    counted = all(isinstance(a, (int, np.integer)) for a in t)
                    for v in (tiling_variants(last.shape[H_AXIS], last.shape[W_AXIS], t) if ramps and counted else [t]):
                        if v not in options_here:
                            options_here.append(v)
                res += [FfmtCandidate(tuple(sub), tuple(tiles)) for tiles in options_here]
    return res


def _reach(sg: Subgraph, chain: list[int], a: int, max_len: int) -> int:
    """End of the longest sub-chain from ``chain[a]`` with ``max_len`` ops, not counting
    unary pointwise ops (a separate ReLU6 is part of its conv, as when fused)."""
    n, b = 0, a
    while b < len(chain):
        n += not is_unary_pointwise(sg.operators[chain[b]])
        if n > max_len:
            break
        b += 1
    return b


# --------------------------------------------------------------------------------------
# The rewrite
# --------------------------------------------------------------------------------------
class _Emitter:
    """Creates the tile tensors/ops of one rewrite; shares identical int32 constants."""

    def __init__(self, model: Model):
        self.model = model
        self.b = GraphBuilder(model)
        self.ops: list[Operator] = []
        self._consts: dict[tuple, Tensor] = {}

    def op(self, name: str, inputs: list[Optional[Tensor]], outputs: list[Tensor], opts, int8: bool) -> Operator:
        version = info(name).int8_version if int8 else 1  # LiteRT checks versions against the data
        o = Operator(self.model.opcode(BUILTIN_CODES[name], version), inputs, outputs, opts)
        self.ops.append(o)
        return o

    def int32(self, name: str, values: list) -> Tensor:
        arr = np.asarray(values, np.int32)
        key = (arr.shape, arr.tobytes())
        if key not in self._consts:
            self._consts[key] = self.b.const(name, arr)
        return self._consts[key]

    def like(self, t: Tensor, name: str, shape: list[int]) -> Tensor:
        return self.b.tensor(name, shape, t.dtype, None if t.quantization is None else t.quantization.copy())

    def slice(self, x: Tensor, h: Span, w: Span, name: str) -> Tensor:
        """SLICE of a spatial region (a plain copy: quantisation unchanged).

        SLICE rather than STRIDED_SLICE: TFLM's SLICE kernel keeps no op data and has no
        builtin parameters, and its ``size`` operand is shared by equal-sized tiles, so each
        tile costs ~150 B less persistent tail on the host (see ``tflm_model.tail``)."""
        if (h.size, w.size) == tuple(x.shape[1:3]):
            return x
        n, c = x.shape[0], x.shape[3]
        y = self.like(x, name, [n, h.size, w.size, c])
        begin = self.int32("ffmt_begin", [0, h.lo, w.lo, 0])
        size = self.int32("ffmt_size", [n, h.size, w.size, c])
        self.op(CREATED.region_copy, [x, begin, size], [y], options(CREATED.region_copy), _is_int8(x))
        return y

    def pad(self, x: Tensor, pads: tuple[int, int, int, int], fill: str, name: str) -> Tensor:
        t, b, l, r = pads
        n, h, w, c = x.shape
        y = self.like(x, name, [n, h + t + b, w + l + r, c])
        paddings = self.int32("ffmt_paddings", [[0, 0], [t, b], [l, r], [0, 0]])
        if fill not in ("zero_point", "lowest"):
            raise FfmtUnsupported(f"no explicit padding for border rule {fill!r}")
        # the zero-point PAD fills with the output zero point (== input's: same quantisation);
        # the value PAD (max pooling) with the dtype's lowest value, its third input
        name = CREATED.border_pad(fill)
        fills = [self.lowest(x)] if name == CREATED.value_pad else []
        self.op(name, [x, paddings, *fills], [y], options(name), _is_int8(x))
        return y

    def lowest(self, x: Tensor) -> Tensor:
        """PADV2's fill for max pooling: the dtype's lowest value, quantised like ``x`` (shared)."""
        q = x.quantization
        key = ("lowest", x.dtype, None if q is None else tuple(
            None if a is None else a.tobytes() for a in (q.scale, q.zero_point)))
        if key not in self._consts:
            dt = np.dtype(DTYPE_NUMPY[x.dtype])
            low = np.iinfo(dt).min if dt.kind in "iu" else np.finfo(dt).min
            self._consts[key] = self.b.const("ffmt_lowest", np.array([low], dt), None if q is None else q.copy())
        return self._consts[key]

    def concat(self, parts: list[Tensor], axis: int, out: Tensor) -> None:
        self.op(CREATED.join, parts, [out], options(CREATED.join, Axis=axis, FusedActivationFunction=0),
                _is_int8(out))


def _is_int8(t: Tensor) -> bool:
    return np.dtype(DTYPE_NUMPY.get(t.dtype, np.float32)).kind in "iu"


def _tile_op(em: _Emitter, op: Operator, inputs: list[Optional[Tensor]], out: Tensor,
             padding: Optional[int] = None) -> Operator:
    """A copy of ``op`` on new tensors (window ops: with ``padding``, SAME or VALID; weights shared)."""
    opts = None if op.options is None else op.options.copy()
    if padding is not None and opts is not None and "Padding" in opts.fields:
        opts.fields["Padding"] = padding
    o = dataclasses.replace(op, inputs=inputs, outputs=[out], options=opts,
                            options2=None if op.options2 is None else op.options2.copy(),
                            intermediates=[], extra=dict(op.extra))
    em.ops.append(o)
    return o


def _local(span: Span, within: Span) -> Span:
    """``span`` in the coordinates of a tile that covers ``within``."""
    return Span(span.lo - within.lo, span.hi - within.lo)


def _emit_tile(em: _Emitter, steps: list[Step], per_op: list[TileStep], path_ops: list[Operator],
               tag: str) -> Tensor:
    """The ops of one tile in chain order; returns its part of the chain's last output.

    The first op reads a SLICE of the full input map; every later op reads its producer's
    tile, sliced where that tile is larger than what it needs (``_plan_tile``)."""
    made: list[Tensor] = []  # per step: its tile tensor, region per_op[k].out_h x per_op[k].out_w
    prev_orig: Optional[Tensor] = None
    for k, (st, ts, op) in enumerate(zip(steps, per_op, path_ops)):
        data = _path_input(op, prev_orig)
        out = op.outputs[0]
        if k == 0:
            cur = em.slice(data, ts.in_h, ts.in_w, f"{data.name}/{tag}")
        elif per_op[k - 1].folded:  # the unpadded tile; this op pads it itself (SAME)
            cur = made[-1]
        else:
            src = per_op[k - 1]
            cur = em.slice(made[-1], _local(ts.in_h, src.out_h), _local(ts.in_w, src.out_w), f"{data.name}/{tag}_in")
        shape = _region_shape(out.shape[0], ts.out_h, ts.out_w, out.shape[3])
        if st.kind == "window":
            explicit = any(ts.pads) and not ts.same
            x = em.pad(cur, ts.pads, st.border, f"{out.name}/{tag}_pad") if explicit else cur
            y = em.like(out, f"{out.name}/{tag}", shape)
            _tile_op(em, op, [x, *op.inputs[1:]], y, PADDING_SAME if ts.same else PADDING_VALID)
        elif st.kind == "pad":
            if any(ts.pads) and not ts.folded:
                y = em.like(out, f"{out.name}/{tag}", shape)
                paddings = em.int32("ffmt_paddings", [[0, 0], [ts.pads[0], ts.pads[1]],
                                                      [ts.pads[2], ts.pads[3]], [0, 0]])
                _tile_op(em, op, [cur, paddings, *op.inputs[2:]], y)
            else:  # inside the padded image the pad is a no-op; or the next op pads (``folded``)
                y = cur
        else:
            y = _emit_pointwise(em, st, ts, op, data, cur, made, per_op, tag)
        made.append(y)
        prev_orig = out
    return made[-1]


def _emit_pointwise(em: _Emitter, st: Step, ts: TileStep, op: Operator, data: Tensor, cur: Tensor,
                    made: list[Tensor], per_op: list[TileStep], tag: str) -> Tensor:
    """A pointwise op of one tile: the chain operand is ``cur``, a skip operand is read from
    the tile of the step that made it, other full-size operands are sliced to the tile."""
    out = op.outputs[0]
    sliced = set(_other_inputs_sliced(op, data, out, st.skips))
    skips = dict(st.skips)
    ins: list[Optional[Tensor]] = []
    for pos, t in enumerate(op.inputs):
        if t is data:
            ins.append(cur)
        elif pos in skips:
            src = per_op[skips[pos]]
            ins.append(em.slice(made[skips[pos]], _local(ts.out_h, src.out_h), _local(ts.out_w, src.out_w),
                                f"{t.name}/{tag}_skip"))
        elif pos in sliced and t.is_activation:
            ins.append(em.slice(t, ts.out_h, ts.out_w, f"{t.name}/{tag}"))
        elif pos in sliced:
            arr = t.numpy()[:, ts.out_h.lo:ts.out_h.hi, ts.out_w.lo:ts.out_w.hi, :]
            ins.append(em.b.const(f"{t.name}/{tag}", arr,
                                  None if t.quantization is None else t.quantization.copy(), t.dtype))
        else:
            ins.append(t)
    y = em.like(out, f"{out.name}/{tag}", _region_shape(out.shape[0], ts.out_h, ts.out_w, out.shape[3]))
    _tile_op(em, op, ins, y)
    return y


def apply_ffmt(model: Model, path_op_indices: Sequence[int], tiles: Tiles, inner_parts: int = 1) -> Model:
    """A copy of ``model`` with the chain ``path_op_indices`` computed in ``tiles = (H split, W split)``
    tiles, each a tile count (near-equal tiles) or the tile sizes along that axis of the chain's
    last output.  ``inner_parts`` > 1: inside every tile, each channel path (a conv that
    splits by output channels, then channel-wise ops such as a PAD and a depthwise conv) is
    also split into that many parts, joined before the next channel-mixing op (FDT within the
    patch: MobileNetV2's expanded maps never exist whole, not even per tile).  Raises
    :class:`FfmtUnsupported` (the original is never modified)."""
    m, tile_ops = _tiled(model, path_op_indices, tiles)
    if inner_parts > 1:
        m = _split_tiles(m, tile_ops, inner_parts)
    return m


def _tiled(model: Model, path_op_indices: Sequence[int], tiles: Tiles) -> tuple[Model, list[list[Operator]]]:
    """The tiled fork and, per tile, the ops it runs (in order)."""
    plan = plan_ffmt(model, path_op_indices, tiles)
    m = fork(model)
    sg = m.main
    path_ops = [sg.operators[i] for i in plan.path]
    em = _Emitter(m)
    th, tw = tile_counts(plan.tiles)
    tile_outs, tile_ops = [], []
    for t_idx, per_op in enumerate(plan.tile_steps):
        first = len(em.ops)
        tile_outs.append(_emit_tile(em, plan.steps, per_op, path_ops, f"ffmt_t{t_idx // tw}_{t_idx % tw}"))
        tile_ops.append(em.ops[first:])
    final = path_ops[-1].outputs[0]
    rows: list[Tensor] = []
    for i in range(th):
        row = tile_outs[i * tw:(i + 1) * tw]
        if tw == 1:
            rows.append(row[0])
            continue
        r_out = final if th == 1 else em.like(final, f"{final.name}/ffmt_row{i}",
                                               [final.shape[0], row[0].shape[1], *final.shape[2:]])
        em.concat(row, W_AXIS, r_out)
        rows.append(r_out)
    if th > 1:
        em.concat(rows, H_AXIS, final)
    # the tile ops replace the chain at the position of its last op (their tensors are already in)
    replace_region(m, path_ops, em.ops, at="last")
    return m, tile_ops


def _split_tiles(m: Model, tile_ops: list[list[Operator]], parts: int) -> Model:
    """FDT on every channel path inside every tile (see :func:`apply_ffmt`); a tile without
    one is left as it is, and no path at all raises :class:`FfmtUnsupported`."""
    split = 0
    for ops in tile_ops:
        for path in _tile_channel_paths(m.main, ops, parts):
            index = {id(op): i for i, op in enumerate(m.main.operators)}
            try:
                m = apply_fdt(m, [index[id(op)] for op in path], parts)
            except FdtError:
                continue
            split += 1
    if not split:
        raise FfmtUnsupported("no channel path inside the tiles")
    return m


def _tile_channel_paths(sg: Subgraph, ops: list[Operator], parts: int) -> list[list[Operator]]:
    """Per output-split start among a tile's ops, the longest path down from it (inside the
    tile, with a window op) that FDT can split into ``parts`` and join with a concatenation."""
    index = {id(op): i for i, op in enumerate(sg.operators)}
    inside = {id(op) for op in ops}
    consumers = sg.consumers()
    out: list[list[Operator]] = []
    for op in ops:
        if not is_output_split_start(op):
            continue
        chain = maximal_chain(sg, index[id(op)], consumers)
        down = chain[chain.index(index[id(op)]):]
        down = down[:next((k for k, i in enumerate(down) if id(sg.operators[i]) not in inside), len(down))]
        for n in range(len(down), 1, -1):
            if any(rule(sg.operators[i]).spatial == "window" for i in down[1:n]) and \
                    valid(sg, tuple(down[:n]), CONCAT, parts, consumers):
                out.append([sg.operators[i] for i in down[:n]])
                break
    return out
