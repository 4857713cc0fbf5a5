"""Operator scheduling: the topological order of a subgraph that minimises peak live bytes.

TFLM runs operators in the order of the subgraph's operator list, and the tensor
lifetimes (hence the lower bound on any arena plan) follow from that order.  The
peak is a max over steps, so a forward dynamic programme over *down-sets* (sets of
finished operators closed under predecessors) is exact: for a down-set S the bytes
resident after S are fixed, whatever order produced S.  TinyML graphs are mostly
chains with a few parallel branches, so the number of down-sets stays small; when it
does not (or the state budget, ``Effort.schedule_states``, runs out: never the clock, so
the order is the same on any machine) each DP layer is cut to its best states (a beam search),
and the result is flagged as not optimal unless it meets a simple lower bound (the
largest inputs + outputs + scratch of any single op), which also settles most graphs
at once: chains and orders that already meet that bound are returned untouched.

Live bytes while op ``o`` runs after down-set ``S`` (TFLM's rules, see ``lifetimes``):
resident(S) + outputs of o + kernel scratch of o, where resident(S) holds every
planned tensor whose producer is in S (or that has no producer, e.g. graph inputs)
and that still has a consumer outside S or is a graph output.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterator, Optional

from ..effort import DEFAULT_EFFORT, Effort
from ..ir.graph import Operator, Subgraph
from ..tflm_model.lifetimes import align, lifetimes, peak_live

# Total states held across all DP layers before layers get cut to the beam width.
MAX_EXACT_STATES = 100_000
MAX_LAYER_STATES = 5_000
BEAM_WIDTH = 64
QUICK_BEAM = 8  # width of the first, fast pass
# Beams rank a layer's states by (max(peak so far, resident + slack), resident).  Slack 0 keeps
# the lowest peaks; a slack of about one or two op outputs prefers states that have already
# freed memory (e.g. taken the last slice of a big input) as long as that costs little peak.
# Graphs of many independent tile chains need that (VWW's first block in 8 FFMT tiles: 43,776 B
# with slack 0, 41,696 B with slack ~2 outputs); each beam runs once per slack, the best wins.
BEAM_SLACK_OUTPUTS: tuple[float, ...] = (0.0, 1.0, 2.0)


@dataclass
class Schedule:
    """An operator order and its peak live bytes under TFLM's lifetime rules."""

    order: list[Operator]
    peak: int
    optimal: bool
    method: str
    seconds: float  # reported only: no result depends on it


@dataclass
class _Budget:
    """DP/beam states one :func:`best_order` call may still create (None: unlimited)."""

    left: Optional[int]

    def spend(self, states: int) -> None:
        if self.left is not None:
            self.left -= states

    @property
    def exhausted(self) -> bool:
        return self.left is not None and self.left <= 0


@dataclass
class _Graph:
    """The scheduling problem in bitmask form (op i = bit i, in stored order)."""

    n: int
    preds: list[int]  # bitmask of ops that must run before op i
    out_bytes: list[int]  # bytes of op i's planned outputs (incl. dead ones: alive at its own step)
    keep_bytes: list[int]  # bytes of op i's outputs that stay resident after it (consumed later / graph output)
    frees: list[list[tuple[int, int]]]  # op i: (consumer mask, bytes) of tensors it may release
    base: int  # resident bytes before any op runs (graph inputs etc. still needed)
    scratch: list[int]
    succs: list[list[int]] = field(default_factory=list)  # ops that need op i (the DP's ready sets)


def _build(sg: Subgraph, scratch: Optional[dict[Operator, int]]) -> _Graph:
    ops = list(sg.operators)
    n = len(ops)
    pos = {id(op): i for i, op in enumerate(ops)}
    planned = {id(iv.tensor): iv.size for iv in lifetimes(sg)}
    producer: dict[int, int] = {}
    for i, op in enumerate(ops):
        for t in op.outputs:
            producer[id(t)] = i
    consumers: dict[int, int] = {}
    for i, op in enumerate(ops):
        for t in op.inputs:
            if t is not None:
                consumers[id(t)] = consumers.get(id(t), 0) | (1 << i)
    preds = [0] * n
    for i, op in enumerate(ops):
        for t in op.inputs:
            if t is not None and id(t) in producer and producer[id(t)] != i:
                preds[i] |= 1 << producer[id(t)]
    outputs = {id(t) for t in sg.outputs}
    out_bytes, keep_bytes = [0] * n, [0] * n
    frees: list[list[tuple[int, int]]] = [[] for _ in range(n)]
    base = 0
    seen: set[int] = set()
    for t in [*sg.tensors]:
        key = id(t)
        if key not in planned or key in seen:
            continue
        seen.add(key)
        size = planned[key]
        cmask = consumers.get(key, 0)
        p = producer.get(key)
        keeps = key in outputs or cmask != 0
        if p is None:
            base += size if keeps else 0
        else:
            out_bytes[p] += size
            if keeps:
                keep_bytes[p] += size
        if key in outputs or cmask == 0:
            continue
        # released after the last of its consumers runs; every consumer checks whether it is last
        own = (1 << p) if p is not None else 0
        for c in _bits(cmask):
            frees[c].append((cmask & ~own, size))
    sc = [0] * n
    if scratch:
        for op, b in scratch.items():
            if id(op) in pos:
                sc[pos[id(op)]] += align(int(b))
    succs: list[list[int]] = [[] for _ in range(n)]
    for i in range(n):
        for p in _bits(preds[i]):
            succs[p].append(i)
    return _Graph(n, preds, out_bytes, keep_bytes, frees, base, sc, succs)


def _bits(mask: int) -> Iterator[int]:
    """The set bits of ``mask``, lowest first."""
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


def _peak_of(sg: Subgraph, order: list[Operator], scratch: Optional[dict[Operator, int]]) -> int:
    """The peak of an order as TFLM sees it, plus scratch alive at each op's step."""
    ivs = lifetimes(sg, order)
    if not scratch:
        return peak_live(ivs)
    n = len(order) + 1
    live = [0] * n
    for iv in ivs:
        for s in range(iv.first, iv.last + 1):
            live[s] += iv.size
    for i, op in enumerate(order):
        live[i + 1] += align(int(scratch.get(op, 0)))
    return max(live, default=0)


def best_order(sg: Subgraph, *, scratch: Optional[dict[Operator, int]] = None,
               effort: Effort = DEFAULT_EFFORT) -> Schedule:
    """The operator order of ``sg`` with the smallest peak live bytes (exact when ``optimal``).

    A narrow beam search first finds a good order fast; the exact DP then only looks for
    strictly better ones, all within ``effort.schedule_states`` states.  Deterministic: states
    and ops are visited in stored order and only strict improvements replace a choice; when
    the stored order is as good, it is kept."""
    t0 = time.perf_counter()
    budget = _Budget(effort.schedule_states)
    stored = list(sg.operators)
    stored_peak = _peak_of(sg, stored, scratch)

    def done(order: list[Operator], peak: int, optimal: bool, method: str) -> Schedule:
        return Schedule(order, peak, optimal, method, time.perf_counter() - t0)

    if len(stored) <= 1 or _is_chain(sg):
        return done(stored, stored_peak, True, "stored (chain)")
    bound = op_bound(sg, scratch)
    if stored_peak <= bound:
        return done(stored, stored_peak, True, "stored (meets the per-op bound)")
    g = _build(sg, scratch)
    best, best_peak = _beams(sg, g, scratch, stored, stored_peak, QUICK_BEAM, budget)
    if best_peak > bound and not budget.exhausted:  # a wider beam sets a lower bar for the DP
        best, best_peak = _beams(sg, g, scratch, best, best_peak, BEAM_WIDTH, budget)
    best_method = "stored" if best is stored else "beam"
    if best_peak <= bound:
        return done(best, best_peak, True, f"{best_method} (meets the per-op bound)")
    found, exact = _search(g, best_peak, None, budget)
    if found is not None:
        order = [stored[i] for i in found]
        peak = _peak_of(sg, order, scratch)
        if peak < best_peak:
            best, best_peak, best_method = order, peak, "dp" if exact else "beam"
    optimal = exact or best_peak <= bound
    return done(best, best_peak, optimal, best_method if best is not stored else
                f"stored ({'dp' if exact else 'beam'} found nothing better)")


def quick_order(sg: Subgraph, scratch: Optional[dict[Operator, int]] = None) -> list[Operator]:
    """The narrow beam's order (milliseconds, no budget involved), or the stored order
    when that is as good: a cheap, deterministic stand-in for :func:`best_order` when many
    candidate graphs must be ranked."""
    stored = list(sg.operators)
    if len(stored) <= 1 or _is_chain(sg):
        return stored
    order, _ = _beams(sg, _build(sg, scratch), scratch, stored, _peak_of(sg, stored, scratch), QUICK_BEAM,
                      _Budget(None))
    return order


def _slacks(g: "_Graph") -> list[int]:
    """Beam slacks for ``g``: multiples of its mean op output size."""
    outs = [b for b in g.out_bytes if b > 0]
    mean = sum(outs) // len(outs) if outs else 0
    return sorted({int(k * mean) for k in BEAM_SLACK_OUTPUTS})


def _beams(sg: Subgraph, g: "_Graph", scratch: Optional[dict[Operator, int]], best: list[Operator],
           best_peak: int, width: int, budget: _Budget) -> tuple[list[Operator], int]:
    """The best of ``best`` and one beam of ``width`` per slack (only strict improvements count)."""
    stored = list(sg.operators)
    for slack in _slacks(g):
        found, _ = _search(g, best_peak, width, budget, slack)
        if found is not None:
            order = [stored[i] for i in found]
            peak = _peak_of(sg, order, scratch)
            if peak < best_peak:
                best, best_peak = order, peak
    return best, best_peak


def _search(g: _Graph, threshold: int, width: Optional[int], budget: _Budget,
            slack: int = 0) -> tuple[Optional[list[int]], bool]:
    """An order (op indices) whose peak is below ``threshold``, or None; and whether the search was exact.

    Layered DP over down-sets (state = finished ops as a bitmask).  ``width`` cuts every layer to
    its best states (beam, ranked with ``slack``, see BEAM_SLACK_OUTPUTS); otherwise layers are
    cut only when too large, or to one state each once ``budget`` is spent (a greedy finish)."""
    full = (1 << g.n) - 1
    # layer: mask -> (peak so far, resident bytes, ready ops as a mask); parents: mask -> (previous mask, op)
    ready0 = sum(1 << o for o in range(g.n) if not g.preds[o])
    layer: dict[int, tuple[int, int, int]] = {0: (g.base, g.base, ready0)}
    parents: dict[int, tuple[int, int]] = {}
    exact = width is None
    total_states = 1
    for _ in range(g.n):
        nxt: dict[int, tuple[int, int, int]] = {}
        for mask, (pk, res, ready) in layer.items():
            for o in _bits(ready):  # ascending, as a scan of every op would visit them
                during = res + g.out_bytes[o] + g.scratch[o]
                new_pk = pk if pk >= during else during
                if new_pk >= threshold:  # cannot beat what we have
                    continue
                bit = 1 << o
                nmask = mask | bit
                freed = sum(b for cm, b in g.frees[o] if cm & ~nmask == 0)
                new_res = res + g.keep_bytes[o] - freed
                cur = nxt.get(nmask)
                if cur is None or (new_pk, new_res) < cur[:2]:
                    new_ready = ready & ~bit
                    for s_ in g.succs[o]:
                        if not g.preds[s_] & ~nmask:
                            new_ready |= 1 << s_
                    nxt[nmask] = (new_pk, new_res, new_ready)
                    parents[nmask] = (mask, o)
        total_states += len(nxt)
        budget.spend(len(nxt))
        cap = width if width is not None else (
            1 if budget.exhausted else BEAM_WIDTH if total_states > MAX_EXACT_STATES or len(nxt) > MAX_LAYER_STATES
            else None)
        if cap is not None and len(nxt) > cap:
            exact = False
            # (every state of a layer has run as many ops: no count of done ops breaks ties)
            nxt = dict(sorted(nxt.items(), key=lambda kv: (max(kv[1][0], kv[1][1] + slack), kv[1][1]))[:cap])
        layer = nxt
        if not layer:
            break
    if full not in layer:
        return None, exact
    order: list[int] = []
    mask = full
    while mask:
        prev, o = parents[mask]
        order.append(o)
        mask = prev
    return order[::-1], exact


def op_bound(sg: Subgraph, scratch: Optional[dict[Operator, int]] = None) -> int:
    """A lower bound on the peak of every order: the planned inputs, outputs and scratch of any one op
    are alive together at its step (and the graph inputs at step 0)."""
    sizes = {id(iv.tensor): iv.size for iv in lifetimes(sg)}
    best = sum(sizes.get(id(t), 0) for t in {id(t): t for t in sg.inputs}.values())
    for op in sg.operators:
        ts = {id(t) for t in [*op.inputs, *op.outputs] if t is not None}
        here = sum(sizes.get(k, 0) for k in ts)
        if scratch:
            here += align(int(scratch.get(op, 0)))
        best = max(best, here)
    return best


def _is_chain(sg: Subgraph) -> bool:
    """Every op only depends on the op right before it: the stored order is the only one."""
    ops = list(sg.operators)
    producer = {id(t): i for i, op in enumerate(ops) for t in op.outputs}
    for i, op in enumerate(ops):
        deps = {producer[id(t)] for t in op.inputs if t is not None and id(t) in producer}
        if i > 0 and deps != {i - 1}:
            return False
    return True
