"""Automatic path search: which chains to tile (FDT, and FFMT under a MAC budget), into how many parts.

The flow follows the FDT paper: schedule and plan the graph, find the buffers that make
the peak, grow candidate paths up and down from the ops that produce them, try several
partition counts, evaluate every candidate by re-scheduling and re-planning the *whole*
rewritten graph, apply the best one, and repeat until nothing improves.

The default objective is TFLM's total arena (planned head + persistent tail): every op and
tensor a rewrite adds costs tail bytes (node/registration and eval-tensor structs, kernel
op data), so a split that saves less head than it adds tail is rejected.  The tail is
priced as the target pays it (``target``, default :data:`SEARCH_TARGET`: a Cortex-M4 with
TFLM's reference kernels, the firmware's default; its 32-bit structs make each added op
and tensor cost about half of what the 64-bit host interpreter's do, so splits that pay off
on the device are no longer rejected for the host's sake).  The ``head``
objective minimises the planned head instead (the activation arena the paper reports, and
what a target with a smaller tail than the 64-bit host mostly pays for), subject to the
total never exceeding what reorder + plan alone give.  Candidates are ranked with a cheap
estimate (peak live bytes of a good order + predicted tail); only the best few get the
full offset planner.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence, Union

from ..errors import FdtError
from ..ir.graph import Model, Operator, Subgraph
from ..memory.ilp import lower_bound, plan_offsets
from ..memory.inplace import shareable_pairs
from ..memory.lifetimes import lifetimes, live_bytes_per_scope
from ..memory.scheduler import best_order, op_bound, quick_order
from ..memory.scratch import scratch_bytes, scratch_intervals
from ..memory.tail import predict_tail
from ..target import CORTEX_M4, HOST, Target
from . import OBJECTIVES
from .fdt import apply_fdt
from .ffmt import Tiles, apply_ffmt, ffmt_candidates, tile_counts
from .partial import model_macs, partial_candidates
from .paths import analyze_path, candidate_paths, max_concat_parts

Progress = Callable[[str], None]

DEFAULT_PARTS: tuple[int, ...] = (2, 3, 4, 5, 6, 8, 10, 12, 16)
SEEDS_PER_ROUND = 3  # largest buffers at the peak whose producers seed candidate paths
EXACT_PER_ROUND = 4  # candidates per round that get the full planner
MAX_ROUNDS = 12
LOOKAHEAD = 3  # plateau-flattening rewrites followed up when no single rewrite helps
LOOKAHEAD_DEPTH = 3  # rewrites applied together at most
# Head objective: FFMT candidates are ranked on the narrow beam's order (emitted tile by tile,
# their stored order's peak lies far above what the scheduler reaches: VWW 45,776 vs 41,696 B),
# which still overestimates their head by up to a few KB.  So they pass the total cap with this
# slack, and the best few whose cheap head already beats the current one get the full
# scheduler and planner (with a longer time limit: tile graphs have many independent chains)
# besides the EXACT_PER_ROUND best of all candidates.
FFMT_CAP_SLACK = 4096
FFMT_EXACT_PER_ROUND = 4
FFMT_EXACT_TIME_S = 10.0
# Whose tail the search prices: the default firmware target (emit-c / firmware size for it).
SEARCH_TARGET: Target = CORTEX_M4


# ---------------------------------------------------------------------------------------
# Evaluation: what the memory passes (reorder, plan) will make of a model, plus the tail
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Estimate:
    """Arena estimate of a model after reordering and planning: head (planned or peak-live
    bytes) + predicted persistent tail."""

    head: int
    tail: int
    exact: bool  # head from the offset planner (else the peak-live lower bound)
    host_tail: int = 0  # the 64-bit host interpreter's tail: what the never-worse guard measures

    @property
    def total(self) -> int:
        return self.head + self.tail

    @property
    def host_total(self) -> int:
        return self.head + self.host_tail


def estimate(model: Model, exact: bool = False, time_limit: float = 1.0, keep_order: bool = False,
             order_time_limit: Optional[float] = None, target: Target = SEARCH_TARGET) -> Estimate:
    """Arena estimate plus the predicted tail.  ``exact``: head after reordering (best order
    found in ``time_limit``) and offset planning, as the memory passes will do; ``keep_order``
    then also stores that order in ``model`` (which must be the caller's own);
    ``order_time_limit`` (default ``time_limit``) bounds the scheduler alone.  Cheap form:
    peak live bytes of the stored order (the search keeps the stored order good: it starts
    from a reordered model and emits each split part by part)."""
    sg = model.main
    order = best_order(sg, time_limit if order_time_limit is None else order_time_limit,
                       scratch_bytes(sg)).order if exact else list(sg.operators)
    if exact and keep_order:
        sg.operators = list(order)
    tensors = lifetimes(sg, order)
    ivs = tensors + scratch_intervals(sg, order)
    share = shareable_pairs(sg, tensors)  # in-place RESHAPEs and accumulators, as the plan pass does
    head = int(plan_offsets(ivs, time_limit=time_limit, shareable=share).arena) if exact \
        else lower_bound(ivs, share)
    tail = predict_tail(model, target)
    return Estimate(head, tail, exact, tail if target == HOST else predict_tail(model, HOST))


# ---------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------
@dataclass
class ChosenPath:
    """One applied rewrite.  ``ops`` are operator indices in the model as it was when the
    rewrite was applied (earlier rewrites renumber operators)."""

    kind: str  # "FDT" | "FFMT"
    ops: list[int]
    op_types: list[str]
    parts: int
    end: str = "concat"  # FDT: "concat" | "partial" (float) | "custom-partial" (int8, FDT_PARTIAL kernel)
    tiles: Optional[Tiles] = None  # FFMT: (rows, cols), each a count or the tile sizes
    total_before: int = 0
    total_after: int = 0
    mac_overhead_pct: float = 0.0  # cumulative, vs the original model


@dataclass(frozen=True)
class ParetoPoint:
    total: int
    head: int
    mac_overhead_pct: float
    n_paths: int


@dataclass
class SearchResult:
    model: Model
    paths: list[ChosenPath]
    pareto: list[ParetoPoint]
    baseline: Estimate
    final: Estimate
    candidates_tried: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------
# Candidates
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Candidate:
    kind: str
    ops: tuple[int, ...]
    parts: int
    end: str = "concat"
    tiles: Optional[Tiles] = None

    def apply(self, model: Model) -> Model:
        if self.kind == "FDT":
            return apply_fdt(model, self.ops, self.parts, self.end)
        return apply_ffmt(model, self.ops, self.tiles)

    def label(self, sg: Subgraph) -> str:
        types = "+".join(sg.operators[i].type for i in self.ops)
        how = f"x{self.parts}" + ("" if self.end == "concat" else " partial") if self.kind == "FDT" \
            else f"{self.tiles[0]}x{self.tiles[1]}"
        return f"{self.kind} {list(self.ops)} {types} {how}"


def peak_seeds(sg: Subgraph, order: Sequence[Operator], k: int = SEEDS_PER_ROUND) -> list[int]:
    """Ops (stored indices) that produce (or, for graph inputs, first consume) the largest
    buffers alive at the peak step of ``order``."""
    ivs = lifetimes(sg, order)
    if not ivs:
        return []
    n = max(iv.last for iv in ivs) + 1
    live = live_bytes_per_scope(ivs, n)
    peak = max(live)
    steps = [s for s, v in enumerate(live) if v == peak]
    at_peak = sorted({iv.index: iv for s in steps for iv in ivs if iv.first <= s <= iv.last}.values(),
                     key=lambda iv: (-iv.size, iv.index))
    index = {id(op): i for i, op in enumerate(sg.operators)}
    producers = sg.producers()
    consumers = sg.consumers()
    seeds: list[int] = []
    for iv in at_peak:
        ops = [producers[iv.tensor]] if iv.tensor in producers else []
        ops += consumers.get(iv.tensor, [])[:1]
        for op in ops:
            i = index[id(op)]
            if i not in seeds:
                seeds.append(i)
        if len(seeds) >= k:
            break
    # the ops running at the peak steps are seeds too (their inputs+outputs make the peak)
    for s in steps:
        if 1 <= s <= len(order):
            i = index[id(order[s - 1])]
            if i not in seeds:
                seeds.append(i)
    return seeds


def fdt_candidates(sg: Subgraph, seeds: Sequence[int], parts: Sequence[int] = DEFAULT_PARTS,
                   allow_partial: bool = True) -> list[Candidate]:
    consumers = sg.consumers()
    seen: set = set()
    out: list[Candidate] = []
    for seed in seeds:
        for ops, end in candidate_paths(sg, seed, consumers=consumers):
            if end == "partial" and not allow_partial:
                continue
            try:
                channels = analyze_path(sg, ops, end, 2, consumers).channels
            except FdtError:
                continue
            limit = max_concat_parts() if end == "concat" else channels
            for p in parts:
                c = Candidate("FDT", ops, p, end)
                if p <= min(channels, limit) and c not in seen:
                    seen.add(c)
                    out.append(c)
    return out


def _ffmt_candidates(model: Model, seeds: Sequence[int], orig_macs: int, cur_macs: int,
                     max_overhead: float, ramps: bool = False) -> list[Candidate]:
    if max_overhead <= 0:
        return []
    budget = orig_macs * max_overhead / 100.0 - (cur_macs - orig_macs)
    seedset = set(seeds)
    out = []
    try:
        cands = ffmt_candidates(model, ramps=ramps, touching=seedset)
    except FdtError:
        return []
    for c in cands:
        if c.extra_macs <= budget and seedset.intersection(c.path):
            rows, cols = tile_counts(c.tiles)
            out.append(Candidate("FFMT", tuple(c.path), rows * cols, tiles=tuple(c.tiles)))
    return out


def _partial_candidates(model: Model, seeds: Sequence[int], parts: Sequence[int]) -> list:
    """int8 partial-sum paths (FDT_PARTIAL custom kernel), only when custom ops are allowed."""
    seedset = set(seeds)
    try:
        return [c for c in partial_candidates(model, parts) if seedset.intersection(c.ops)]
    except FdtError:
        return []


# ---------------------------------------------------------------------------------------
# The search
# ---------------------------------------------------------------------------------------
@dataclass
class _Ranked:
    cand: Candidate
    model: Model
    est: Estimate
    overhead: float
    plateau: tuple[int, int]  # (peak live bytes, steps at that peak) in the stored order

    def key(self, objective: str = "total") -> tuple:
        c = self.cand
        return (*score(self.est, objective), self.overhead, c.parts, c.kind, c.ops, getattr(c, "end", ""))


def score(est: Union[Estimate, "ParetoPoint"], objective: str) -> tuple[int, int]:
    """What the search minimises, as a tuple compared lexicographically."""
    return (est.head, est.total) if objective == "head" else (est.total, est.head)


def plateau(sg: Subgraph) -> tuple[int, int]:
    """Peak live bytes of the stored order and how many steps reach it: several equal peaks
    need several rewrites before the arena shrinks (the search looks one step ahead then)."""
    ivs = lifetimes(sg)
    if not ivs:
        return (0, 0)
    live = live_bytes_per_scope(ivs, max(iv.last for iv in ivs) + 1)
    top = max(live)
    return (top, sum(1 for v in live if v == top))


@dataclass
class _Search:
    """State of one search: budget, options, counters and the points seen.  ``total_cap`` /
    ``host_cap``: the largest total a result may have on the target / on the host interpreter
    (the head objective's constraint; the host's too, since the never-worse guard measures
    there and would otherwise throw the result away)."""

    max_overhead: float
    time_budget: float
    allow_ffmt: bool
    allow_custom_ops: bool
    parts: Sequence[int]
    plan_time_limit: float
    say: Progress
    orig_macs: int
    objective: str = "total"
    total_cap: Optional[int] = None
    host_cap: Optional[int] = None
    target: Target = SEARCH_TARGET
    t0: float = field(default_factory=time.perf_counter)
    tried: int = 0
    points: list[ParetoPoint] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def out_of_time(self) -> bool:
        if time.perf_counter() - self.t0 > self.time_budget:
            if "time budget reached" not in self.notes:
                self.notes.append("time budget reached")
            return True
        return False

    def score(self, est: Estimate) -> tuple[int, int]:
        return score(est, self.objective)

    def allowed(self, est: Estimate, slack: int = 0) -> bool:
        return (self.total_cap is None or est.total <= self.total_cap + slack) and \
            (self.host_cap is None or est.host_total <= self.host_cap + slack)

    def over_cap_whatever_the_order(self, m: Model, head_bound: int) -> bool:
        """A head lower bound plus the tail already exceeds a cap (target or host)."""
        return any(cap is not None and predict_tail(m, t) + head_bound > cap
                   for cap, t in ((self.total_cap, self.target), (self.host_cap, HOST)))

    def better(self, est: Estimate, than: Estimate) -> bool:
        return self.allowed(est) and self.score(est) < self.score(than)

    def rank(self, current: Model, best: Estimate, tag: str) -> list[_Ranked]:
        """Every candidate grown from the peak of ``current``, applied and cheaply estimated."""
        sg = current.main
        seeds = peak_seeds(sg, sg.operators)
        cands = fdt_candidates(sg, seeds, self.parts, allow_partial=self.max_overhead > 0)
        if self.allow_ffmt:
            cands += _ffmt_candidates(current, seeds, self.orig_macs, model_macs(current), self.max_overhead,
                                      ramps=self.objective == "head")
        if self.allow_custom_ops:
            cands += _partial_candidates(current, seeds, self.parts)
        out: list[_Ranked] = []
        for c in cands:
            if self.out_of_time():
                break
            self.tried += 1
            try:
                m = c.apply(current)
            except (FdtError, ValueError, IndexError, KeyError, TypeError):
                continue  # a candidate a rewrite cannot express is skipped, never fatal
            ovh = 100.0 * (model_macs(m) - self.orig_macs) / self.orig_macs
            if ovh > self.max_overhead + 1e-9:
                continue
            ffmt_head = c.kind == "FFMT" and self.objective == "head"
            if ffmt_head:
                scr = scratch_bytes(m.main)
                if self.over_cap_whatever_the_order(m, op_bound(m.main, scr)):
                    continue
                m.main.operators = quick_order(m.main, scr)
            est = estimate(m, exact=False, target=self.target)
            out.append(_Ranked(c, m, est, ovh, plateau(m.main)))
            self.say(f"search {tag}: tried {self.tried} ({c.label(sg)}: ~{est.head:,} + {est.tail:,} B), "
                     f"best {best.head:,} + {best.tail:,} B")
        out.sort(key=lambda r: r.key(self.objective))
        return out

    def best_exact(self, ranked: Sequence[_Ranked], cur: Estimate, n_paths: int) -> Optional[tuple[_Ranked, Estimate]]:
        """The best of the top cheap candidates under the full planner, if it beats ``cur``.
        Head objective: also the best few FFMT candidates (their cheap head is no lower bound)."""
        best: Optional[tuple[_Ranked, Estimate]] = None
        # over the cap now means over it after planning too (the cheap total is nearly a lower
        # bound); such candidates stay in ``ranked`` for the lookahead, which may combine them
        head_ffmt = [] if self.objective != "head" else [
            r for r in ranked if r.cand.kind == "FFMT" and r.est.head < cur.head
            and self.allowed(r.est, FFMT_CAP_SLACK)][:FFMT_EXACT_PER_ROUND]
        top: list[_Ranked] = []
        for r in ranked:
            if len(top) == EXACT_PER_ROUND or self.score(r.est) >= self.score(cur):
                break  # the cheap head is a lower bound: nothing below can win
            if self.allowed(r.est):
                top.append(r)
        for r in top + [f for f in head_ffmt if all(f is not t for t in top)]:
            if self.out_of_time():
                break
            # a spatial tiling keeps the order found here (the final reorder pass, with its own time
            # limit, might not find it again); other rewrites keep their stored order, which the
            # next round's cheap estimates and seeds are based on
            tile = any(r is f for f in head_ffmt)
            ex = estimate(r.model, exact=True, time_limit=self.plan_time_limit, keep_order=tile,
                          order_time_limit=FFMT_EXACT_TIME_S if tile else None, target=self.target)
            self.points.append(ParetoPoint(ex.total, ex.head, round(r.overhead, 3), n_paths + 1))
            if self.better(ex, cur) and (best is None or (self.score(ex), r.overhead)
                                         < (self.score(best[1]), best[0].overhead)):
                best = (r, ex)
        return best

    def lookahead(self, current: Model, ranked: Sequence[_Ranked], cur: Estimate, n_paths: int,
                  tag: str) -> list[_Ranked]:
        """Rewrites that together beat ``cur`` when none does alone (the peak is reached at
        several places): follow the best few plateau-flattening rewrites (then only the best
        one at each further step, up to LOOKAHEAD_DEPTH) until a full round wins.  The last
        step's ``est`` is its exact estimate."""
        here = plateau(current.main)
        obj = self.objective
        firsts = sorted((r for r in ranked if r.plateau < here), key=lambda r: (r.plateau, r.key(obj)))
        best: list[_Ranked] = []
        for r1 in firsts[:LOOKAHEAD]:
            chain = [r1]
            for depth in range(1, LOOKAHEAD_DEPTH):
                if self.out_of_time():
                    break
                nxt = self.rank(chain[-1].model, cur, f"{tag} lookahead {depth}")
                win = self.best_exact(nxt, cur, n_paths + depth)
                if win is not None:
                    r2, ex = win
                    done = chain + [_Ranked(r2.cand, r2.model, ex, r2.overhead, r2.plateau)]
                    if not best or self.score(ex) < self.score(best[-1].est):
                        best = done
                    # a cheap tail (a 32-bit target) lets short chains win; a longer one that
                    # flattens every equal peak may win by more, so keep following the chain
                flat = sorted((r for r in nxt if r.plateau < chain[-1].plateau), key=lambda r: (r.plateau, r.key(obj)))
                if not flat:
                    break
                chain.append(flat[0])
        return best


def _chosen(r: _Ranked, sg: Subgraph, before: int, after: int) -> ChosenPath:
    c = r.cand
    custom = c.kind not in ("FDT", "FFMT")  # the FDT_PARTIAL custom-kernel end
    return ChosenPath("FDT" if custom else c.kind, list(c.ops), [sg.operators[i].type for i in c.ops], c.parts,
                      "custom-partial" if custom else c.end, getattr(c, "tiles", None), before, after,
                      round(r.overhead, 3))


def search(model: Model, max_overhead: float = 0.0, time_budget: float = 45.0,
           progress: Optional[Progress] = None, allow_ffmt: bool = True,
           parts: Sequence[int] = DEFAULT_PARTS, max_rounds: int = MAX_ROUNDS,
           plan_time_limit: float = 2.0, allow_custom_ops: bool = False,
           objective: str = "total", target: Target = SEARCH_TARGET) -> SearchResult:
    """Greedily tile ``model`` while the estimated TFLM total arena shrinks.

    ``objective``: "total" (head + tail, the default) or "head" (the planned head, with the
    total kept at or below what reorder + plan alone give; see the module docstring).
    ``target``: whose persistent tail the total prices (default :data:`SEARCH_TARGET`).

    ``max_overhead``: extra MACs allowed, percent of the original (FDT adds none; FFMT
    recomputes halos).  ``time_budget``: seconds for the whole search (best so far is
    returned when it runs out).  ``progress(msg)``: called with what is being tried.
    ``allow_custom_ops``: also try exact int8 partial-sum ends (the FDT_PARTIAL kernel,
    :mod:`fdt_tflm.tiling.partial`); the result then needs that kernel in the firmware.
    When no single rewrite helps because the peak is reached at several places, the search
    looks one rewrite ahead (the best few that flatten the peak, each followed by a round).
    The input model is not modified.  Unsupported ops simply end paths.  When a path is
    applied, the returned model's operators are also in the scheduler's order (op indices in
    ``paths`` refer to that working model, as it was when each rewrite was applied)."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective {objective!r}: expected one of {', '.join(OBJECTIVES)}")
    say = progress or (lambda msg: None)
    st = _Search(max_overhead, time_budget, allow_ffmt, allow_custom_ops, parts, plan_time_limit, say,
                 max(1, model_macs(model)), objective, target=target)
    if len(model.subgraphs) != 1:
        base = estimate(model, exact=True, time_limit=plan_time_limit, target=target)
        return SearchResult(model, [], [ParetoPoint(base.total, base.head, 0.0, 0)], base, base,
                            notes=["several subgraphs: not tiled"])
    # work on a reordered copy: candidates are then ranked by the peak of their stored order
    current = model
    order = best_order(model.main, plan_time_limit, scratch_bytes(model.main)).order
    if any(a is not b for a, b in zip(order, model.main.operators)):
        current = copy.deepcopy(model)
        pos = {id(op): i for i, op in enumerate(model.main.operators)}
        current.main.operators = [current.main.operators[pos[id(op)]] for op in order]
    cur = estimate(current, exact=True, time_limit=plan_time_limit, target=target)
    baseline = cur
    if objective == "head":
        st.total_cap, st.host_cap = baseline.total, baseline.host_total
    say(f"search: baseline total {cur.total:,} B (head {cur.head:,} + tail {cur.tail:,})")
    chosen: list[ChosenPath] = []
    st.points.append(ParetoPoint(cur.total, cur.head, 0.0, 0))
    for rnd in range(max_rounds):
        if st.out_of_time():
            break
        sg = current.main
        ranked = st.rank(current, cur, f"round {rnd + 1}")
        best = st.best_exact(ranked, cur, len(chosen))
        if best is not None:
            r, ex = best
            chosen.append(_chosen(r, sg, cur.total, ex.total))
            say(f"search: applied {r.cand.label(sg)}: total {cur.total:,} -> {ex.total:,} B "
                f"(head {cur.head:,} -> {ex.head:,} B)")
            current, cur = r.model, ex
            continue
        # look ahead: rewrites that lower the peak's plateau without raising it, then more rounds
        steps = st.lookahead(current, ranked, cur, len(chosen), f"round {rnd + 1}")
        if not steps:
            break
        before, model_before = cur.total, current
        for k, r in enumerate(steps):
            after = (estimate(r.model, exact=True, time_limit=plan_time_limit, target=target)
                     if k < len(steps) - 1 else None)
            ex_k = after if after is not None else steps[-1].est
            chosen.append(_chosen(r, model_before.main, before, ex_k.total))
            before, model_before = ex_k.total, r.model
        say(f"search: applied {len(steps)} rewrites together: total {cur.total:,} -> {steps[-1].est.total:,} B")
        current, cur = steps[-1].model, steps[-1].est
    if not chosen:  # nothing helped: hand back the input itself, not the reordered copy
        current = model
    return SearchResult(current, chosen, pareto_front(st.points, objective), baseline, cur, st.tried,
                        time.perf_counter() - st.t0, st.notes)


def pareto_front(points: Sequence[ParetoPoint], objective: str = "total") -> list[ParetoPoint]:
    """Points not beaten on both the objective's arena (total, or head) and MAC overhead, by
    increasing overhead."""
    def arena(p: ParetoPoint) -> int:
        return score(p, objective)[0]
    front: list[ParetoPoint] = []
    for p in sorted(points, key=lambda p: (p.mac_overhead_pct, arena(p), p.n_paths)):
        if not front or arena(p) < arena(front[-1]):
            front.append(p)
    return front
