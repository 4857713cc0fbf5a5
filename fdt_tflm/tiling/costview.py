"""Price a candidate rewrite as a change to a cost view of the current graph.

The search scores hundreds of candidates per round.  A rewrite (``ir.surgery``) yields a
fork that shares every untouched operator and tensor with the current model, so what
changed is known by identity: the old region (ops gone) and the new one (ops added).  A
:class:`View` of the current model holds what does not change (live bytes at every step of
the stored order, the tail, the MACs); :func:`price` simulates only the window of steps
the region spans, and adds the tail, MAC and instruction deltas of the region's ops and
tensors.

The region's own order matters: a spatial tiling emitted tile by tile keeps its big input
alive until the last tile has sliced it.  :func:`price` also tries taking the remaining
input slices early (after the first ``c`` of them, for up to HOIST_CUTS values of ``c``),
which frees that input sooner at the price of holding the slices, and keeps the order with
the lowest peak (the one the planner will then be given).  Head and MACs are exact for the
order kept; the tail delta rounds per op where TFLM rounds per block, so it is within a few
bytes (the planned candidates get the full replay).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Sequence

from ..tflm_model.head import ArenaBytes
from ..tflm_model.instructions import CostTable, cost_table, op_instructions, predict_instructions
from ..ir.graph import Model, Operator, Tensor
from ..catalog.macs import graph_macs, op_macs
from ..tflm_model.lifetimes import align, lifetimes, live_bytes_per_scope
from ..tflm_model import HOST, Target
from ..tflm_model.abi import ABI_TABLES
from ..tflm_model.scratch import scratch_intervals, scratch_requests
from ..tflm_model.tail import op_tail, predict_tail


HOIST_CUTS = 6  # region-input cut points tried per candidate (evenly spaced when there are more)


def _planned(t: Tensor) -> int:
    return 0 if t.is_constant or t.is_variable else align(t.nbytes)


@dataclass
class View:
    """What a round's candidates are priced against: the current model in its stored order."""

    model: Model
    target: Target
    scope: dict[int, int]  # id(op) -> its step (1-based; step 0 holds the graph inputs)
    live: list[int]  # planned bytes alive at every step (tensors and scratch)
    last_use: dict[int, int]  # id(tensor) -> last step that needs it (the end for graph outputs)
    first: dict[int, int]  # id(tensor) -> step it is created
    tail: int
    host_tail: int
    macs: int
    tail_memo: dict = field(default_factory=dict)  # (target, op tail key) -> bytes, see _op_tails
    op_memo: dict = field(default_factory=dict)  # op signature (or id, ops of the view) -> (MACs, instructions)

    @classmethod
    def of(cls, model: Model, target: Target) -> "View":
        sg = model.main
        ivs = lifetimes(sg)
        live = live_bytes_per_scope(ivs + scratch_intervals(sg, target), len(sg.operators) + 1)
        tail = predict_tail(model, target)
        return cls(model, target, {id(op): i + 1 for i, op in enumerate(sg.operators)}, live,
                   {id(iv.tensor): iv.last for iv in ivs}, {id(iv.tensor): iv.first for iv in ivs},
                   tail, tail if target == HOST else predict_tail(model, HOST), graph_macs(model.main))

    @cached_property
    def cost_table(self) -> CostTable:
        return cost_table(self.target)

    @cached_property
    def instructions(self) -> int:
        """Predicted instructions of one invoke on the target; only a slowdown budget asks."""
        return predict_instructions(self.model, target=self.target)

    @cached_property
    def _peaks_around(self) -> tuple[list[int], list[int]]:
        """Highest live bytes before each step and after it (the steps a window leaves alone)."""
        before, after, hi = [0] * len(self.live), [0] * len(self.live), 0
        for s, x in enumerate(self.live):
            before[s], hi = hi, max(hi, x)
        hi = 0
        for s in range(len(self.live) - 1, -1, -1):
            after[s], hi = hi, max(hi, self.live[s])
        return before, after

    def outside(self, a: int, b: int) -> int:
        """Highest live bytes at the steps outside a..b."""
        before, after = self._peaks_around
        return max(before[a], after[b])


@dataclass(frozen=True)
class Priced(ArenaBytes):
    """A candidate's estimate: ``head`` is the peak live bytes of ``order`` (the candidate's
    stored order with its region in the best order found)."""

    host_tail: int = 0
    macs: int = 0
    instructions: int = 0
    order: tuple[Operator, ...] = ()
    window: int = 0  # peak live bytes inside the candidate's window of steps


@dataclass(frozen=True)
class _Step:
    """One op of a window, reduced to what the simulation needs."""

    reads: tuple[tuple[int, int], ...]  # (tensor id, planned bytes), each tensor once
    writes: tuple[tuple[int, int], ...]
    scratch: int


def _step(op: Operator, memo: dict[int, _Step], target: Target) -> _Step:
    if id(op) not in memo:
        reads = {id(t): n for t in op.inputs if t is not None for n in [_planned(t)] if n}
        memo[id(op)] = _Step(tuple(reads.items()), tuple((id(t), n) for t in op.outputs for n in [_planned(t)] if n),
                             sum(align(x) for x in scratch_requests(op, target)))
    return memo[id(op)]


def _simulate(v: View, window: Sequence[_Step], a: int, b: int) -> int:
    """Peak live bytes over ``window``, the ops that replace steps a..b of the current order
    (tensors it reads that were made before it count from the start; tensors it makes or
    reads die at their last use in it unless something after step b needs them)."""
    uses: dict[int, int] = {}
    size: dict[int, int] = {}
    for st in window:
        for k, n in st.reads:
            uses[k] = uses.get(k, 0) + 1
            size[k] = n
    last_use, first = v.last_use, v.first
    live = sum(size[k] for k in uses if first.get(k, a) < a)
    peak = 0
    for st in window:
        made = sum(n for _, n in st.writes)
        peak = max(peak, live + made + st.scratch)
        live += made
        for k, n in st.reads:
            uses[k] -= 1
            if uses[k] == 0 and last_use.get(k, 0) <= b:
                live -= n
        for k, n in st.writes:
            if k not in uses and last_use.get(k, 0) <= b:
                live -= n
    return peak


def _passing(v: View, window_reads: set[int], a: int, b: int) -> int:
    """Bytes alive across the whole window that it does not read (produced before, used after)."""
    sg = v.model.main
    return sum(_planned(t) for t in sg.tensors
               if id(t) not in window_reads and v.first.get(id(t), b + 1) < a and v.last_use.get(id(t), -1) > b)


def _hoist_orders(region: Sequence[Operator], produced: set[int]) -> list[list[Operator]]:
    """The emitted order, and for every c the order whose region-input readers after the c-th
    are taken right before it (frees a big input early)."""
    feeders = [i for i, op in enumerate(region)
               if all(t is None or id(t) not in produced for t in op.inputs)]
    orders = [list(region)]
    m = len(feeders) - 1
    cuts = sorted({round(k * m / HOIST_CUTS) for k in range(HOIST_CUTS)}) if m > HOIST_CUTS else range(m)
    for c in cuts:
        at = feeders[c]
        moved = set(feeders[c:])
        rest = [op for i, op in enumerate(region) if i >= at and i not in moved]
        orders.append(list(region[:at]) + [region[i] for i in feeders[c:]] + rest)
    return orders


def price(v: View, cand: Model, instructions: bool = True) -> Priced:
    """The candidate's estimated head (peak live bytes), tails, MACs and (unless not
    ``instructions``: -1, the instruction model is the dearest part) instructions, as a change
    to ``v``."""
    cur, sg = v.model.main, cand.main
    new_ids = {id(op) for op in sg.operators}
    new_ops = [op for op in sg.operators if id(op) not in v.scope]
    old_ops = [op for op in cur.operators if id(op) not in new_ids]
    if not old_ops:
        return Priced(max(v.live), v.tail, v.host_tail, v.macs, v.instructions, tuple(sg.operators))
    steps = [v.scope[id(op)] for op in old_ops]
    a, b = min(steps), max(steps)
    between = {id(op) for op in cur.operators[a - 1:b] if id(op) in new_ids}
    produced = {id(t) for op in new_ops for t in op.outputs}
    window_reads = {id(t) for op in new_ops + [o for o in cur.operators[a - 1:b] if id(o) in between]
                    for t in op.inputs if t is not None}
    base = _passing(v, window_reads, a, b)
    best: tuple[int, list[Operator]] = (-1, [])
    memo: dict[int, _Step] = {}
    new_set = {id(op) for op in new_ops}
    for region in _hoist_orders(new_ops, produced):
        window = _in_place(sg.operators, region, between, new_set)
        peak = base + _simulate(v, [_step(op, memo, v.target) for op in window], a, b)
        if best[0] < 0 or peak < best[0]:
            best = (peak, window)
    order = _with_window(sg.operators, best[1], between, new_set)
    n_instr = -1 if not instructions else \
        v.instructions + _instructions(v, new_ops) - _instructions(v, old_ops)
    return Priced(max(v.outside(a, b), best[0]), *_tails(v, cand, old_ops, new_ops), _macs(v, old_ops, new_ops),
                  n_instr, tuple(order), best[0])


def _in_place(ops: Sequence[Operator], region: Sequence[Operator], between: set[int], new: set[int]) -> list[Operator]:
    """The window as it runs: the ops that stayed between the old ones, and the region, in
    the candidate's arrangement with the region's ops replaced by ``region``'s order."""
    it = iter(region)
    return [next(it) if id(op) in new else op for op in ops if id(op) in new or id(op) in between]


def _with_window(ops: Sequence[Operator], window: Sequence[Operator], between: set[int],
                 new: set[int]) -> list[Operator]:
    it = iter(window)
    return [next(it) if id(op) in new or id(op) in between else op for op in ops]


def _tail_key(op: Operator) -> tuple:
    """What an op's tail depends on: its code, operand count and the constant operands' shapes
    (per-channel arrays follow the weights), so a tile op costs what its original does."""
    return (op.opcode.key(), len(op.inputs), len(op.outputs),
            tuple(None if t is None or not t.is_constant else (tuple(t.shape), t.dtype) for t in op.inputs[1:]),
            tuple(op.outputs[0].shape[-1:]) if op.outputs else ())


def _op_tails(v: View, ops: Sequence[Operator], target: Target) -> int:
    total = 0
    for op in ops:
        key = (target, _tail_key(op))
        if key not in v.tail_memo:
            v.tail_memo[key] = op_tail(op, target)
        total += v.tail_memo[key]
    return total


def _signature(op: Operator) -> tuple:
    """What an op's instructions depend on: its code, options and operand shapes (a spatial
    tiling's equal tiles, and every candidate's copies of one op, are priced once)."""
    opts = () if op.options is None else tuple(
        (k, x if isinstance(x, (int, float, str, bool, type(None))) else repr(x)) for k, x in op.options.fields.items())
    return (op.opcode.key(), opts,
            tuple(None if t is None else (tuple(t.shape), t.is_constant, t.dtype) for t in op.inputs),
            tuple(tuple(t.shape) for t in op.outputs))


def _facts(v: View, op: Operator) -> tuple[int, int]:
    """(MACs, instructions) of one op: once per op of the view (its ops are priced again with
    every candidate that removes them) and once per signature for a candidate's new ops."""
    own = id(op) in v.scope
    got = v.op_memo.get(id(op)) if own else None
    if got is None:
        sig = _signature(op)
        got = v.op_memo.get(sig)
        if got is None:
            got = v.op_memo[sig] = (op_macs(op), op_instructions(op, v.cost_table))
        if own:
            v.op_memo[id(op)] = got
    return got


def _instructions(v: View, ops: Sequence[Operator]) -> int:
    return sum(_facts(v, op)[1] for op in ops)


def _tails(v: View, cand: Model, old: Sequence[Operator], new: Sequence[Operator]) -> tuple[int, int]:
    d_tensors = len(cand.main.tensors) - len(v.model.main.tensors)
    out = []
    for t in (v.target, HOST):
        ev = ABI_TABLES[t.abi]["TfLiteEvalTensor"].size
        base = v.tail if t == v.target else v.host_tail
        out.append(base + d_tensors * ev + _op_tails(v, new, t) - _op_tails(v, old, t))
    return out[0], out[1]


def _macs(v: View, old: Sequence[Operator], new: Sequence[Operator]) -> int:
    return v.macs + sum(_facts(v, op)[0] for op in new) - sum(_facts(v, op)[0] for op in old)
