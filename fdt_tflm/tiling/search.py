"""Automatic path search: which chains to tile (FDT, and FFMT under a MAC budget), into how many parts.

The flow follows the FDT paper: schedule and plan the graph, find the buffers that make
the peak, grow candidate paths up and down from the ops that produce them, try several
partition counts and tilings, price every candidate, plan the best few in full, apply the
best one, and repeat until nothing improves.

Pricing never copies the model: a rewrite yields a fork (``ir.surgery``) sharing every
untouched op and tensor, and :mod:`fdt_tflm.tiling.costview` prices it as a change to the
current graph (the window of steps its region spans, the tail, MAC and instruction deltas).
Spatial sub-chains are judged first by one representative tiling; the best few then get all
their tilings.  Work is counted, not timed (``effort``: candidates priced and planned), so
the result is the same on any machine, at any load.

The default objective is TFLM's total arena (planned head + persistent tail): every op and
tensor a rewrite adds costs tail bytes (node/registration and eval-tensor structs, kernel
op data), so a split that saves less head than it adds tail is rejected.  The tail is
priced as the target pays it (``target``: the TFLM build of ``Options.target``, default
a Cortex-M4 with TFLM's reference kernels; its 32-bit structs make each added op and tensor
cost about half of what the 64-bit host interpreter's do), and so are the kernel scratch and
the instructions a ``max_slowdown`` budget bounds.  The ``head`` objective
minimises the planned head instead (the activation arena the paper reports), subject to
the total, on the target and on the host, never exceeding the input's as TFLM runs it (or
what reorder + plan alone give, if that is more; :func:`head_caps`): never worse than the
input is the promise, below that tail may be traded for head.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Callable, Optional, Sequence, Union

from ..tflm_model.head import ArenaBytes
from ..tflm_model.instructions import predict_instructions
from ..effort import DEFAULT_EFFORT, Effort
from ..errors import FdtError
from ..ir.graph import Model, Operator, Subgraph
from ..catalog.macs import graph_macs
from ..catalog.ops import RewriteKind
from ..ir.surgery import detach, fork
from ..memory.heuristics import best_heuristic
from ..memory.ilp import lower_bound, share_set
from ..tflm_model.inplace import shareable_pairs
from ..tflm_model.lifetimes import lifetimes, live_bytes_per_scope
from ..memory.scheduler import best_order
from ..tflm_model.scratch import scratch_bytes, scratch_intervals
from ..tflm_model.tail import predict_tail
from ..tflm_model import CORTEX_M4, HOST, Target
from . import OBJECTIVES
from .costview import View, price
from .fdt import apply_fdt
from .ffmt import DEFAULT_TILE_OPTIONS, Tiles, apply_ffmt, ffmt_candidates, tile_counts
from .partial import partial_candidates
from .paths import analyze_path, candidate_paths, max_concat_parts

Progress = Callable[[str], None]

DEFAULT_PARTS: tuple[int, ...] = (2, 3, 4, 5, 6, 8, 10, 12, 16)
SEEDS_PER_ROUND = 3  # largest buffers at the peak whose producers seed candidate paths
EXACT_PER_ROUND = 4  # candidates per round that get the full scheduler and planner
MAX_ROUNDS = 12
LOOKAHEAD = 3  # plateau-flattening rewrites followed up when no single rewrite helps
LOOKAHEAD_DEPTH = 3  # rewrites applied together at most
HEAD_LOOKAHEAD = 2  # head objective: fewer chains followed (its rounds are large: spatial tilings)
# Head objective: spatial tilings are ranked on the region order the cost view finds, which
# can still lie a few KB above what the scheduler reaches on the whole graph; so the best few
# whose cheap head beats the current one get the full scheduler and planner too, and pass the
# total cap with this slack while ranked.
FFMT_CAP_SLACK = 4096
FFMT_EXACT_PER_ROUND = 4
FFMT_CHAINS_PER_ROUND = 6  # sub-chains whose every tiling is priced (after one representative each)
REPRESENTATIVE_TILES = 9
# Tilings tried per sub-chain: ffmt's defaults (up to 4x4) and finer grids for ImageNet-size
# stems (MobileNetV2-224's 112x112 maps need about 5x5 to 6x6 patches, as in MCUNetV2).
SEARCH_TILE_OPTIONS: tuple[tuple[int, int], ...] = DEFAULT_TILE_OPTIONS + ((5, 5), (6, 6))
FFMT_MAX_LEN = 16  # longest spatial sub-chain (MobileNetV2's stem to its 28x28 stage is 15 ops)
CHANNEL_SPLIT_TILINGS = 2  # head objective: best spatial tilings per round also tried with FDT inside the tiles
CHANNEL_PARTS: tuple[int, ...] = (2, 4)
MIN_HEAD_GAIN_PCT = 1  # head objective: a rewrite that grows the total must cut the head by this much
# Whose tail the search prices: the default firmware target (emit-c / firmware size for it).
SEARCH_TARGET: Target = CORTEX_M4


# ---------------------------------------------------------------------------------------
# Evaluation: what the memory passes (reorder, plan) will make of a model, plus the tail
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Estimate(ArenaBytes):
    """Arena estimate of a model after reordering and planning: head (planned or peak-live
    bytes) + predicted persistent tail."""

    exact: bool = False  # head from the offset planner (else the peak-live lower bound)
    host_tail: int = 0  # the 64-bit host interpreter's tail: what the never-worse guard measures

    @property
    def host_total(self) -> int:
        return self.head + self.host_tail


# The search's own planning effort per candidate: the heuristic planner with a short local
# search and a smaller scheduling budget (no ILP).  Candidates only need ranking; the reorder
# and plan passes then give the chosen model the full effort (and keep the better of the
# stored and the new order).
SEARCH_SCHEDULE_STATES = 20_000
SEARCH_PLAN_MOVES = 60


def _search_effort(effort: Effort) -> Effort:
    scale = effort.level / DEFAULT_EFFORT.level
    return replace(effort, schedule_states=min(effort.schedule_states, int(SEARCH_SCHEDULE_STATES * scale)),
                   plan_moves=min(effort.plan_moves, int(SEARCH_PLAN_MOVES * scale)))


def _planned_head(sg: Subgraph, order: Sequence[Operator], effort: Effort, target: Target) -> int:
    tensors = lifetimes(sg, order)
    share = share_set(shareable_pairs(sg, tensors))  # in-place RESHAPEs and accumulators, as the plan pass does
    ivs = tensors + scratch_intervals(sg, target, order)
    return int(best_heuristic(ivs, share, stop_at=lower_bound(ivs, share), moves=effort.plan_moves).arena)


def estimate(model: Model, *, exact: bool = False, keep_order: bool = False, target: Target = SEARCH_TARGET,
             effort: Effort = DEFAULT_EFFORT, schedule: bool = True) -> Estimate:
    """Arena estimate plus the predicted tail.  ``exact``: the planned head of the better of
    the stored order and the scheduler's (as the reorder + plan passes will do); ``keep_order``
    then also stores that order in ``model`` (which must be the caller's own); ``schedule=False``
    plans the stored order only (the search's candidates: the cost view ordered them).  Cheap form:
    peak live bytes of the stored order (the search keeps the stored order good: each
    candidate's region is stored in the order the cost view found best)."""
    sg = model.main
    if exact:
        effort = _search_effort(effort)
        stored = list(sg.operators)
        head, order = _planned_head(sg, stored, effort, target), stored
        sched = best_order(sg, scratch=scratch_bytes(sg, target), effort=effort).order if schedule else stored
        if any(a is not b for a, b in zip(sched, stored)):
            alt = _planned_head(sg, sched, effort, target)
            if alt < head:
                head, order = alt, sched
        if keep_order:
            sg.operators = list(order)
    else:
        tensors = lifetimes(sg)
        head = lower_bound(tensors + scratch_intervals(sg, target), shareable_pairs(sg, tensors))
    tail = predict_tail(model, target)
    return Estimate(head, tail, exact, tail if target == HOST else predict_tail(model, HOST))


# ---------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------
@dataclass
class ChosenPath:
    """One applied rewrite.  ``ops`` are operator indices in the model as it was when the
    rewrite was applied (earlier rewrites renumber operators)."""

    kind: RewriteKind  # FDT (also for the FDT_PARTIAL end, see ``end``) or FFMT
    ops: list[int]
    op_types: list[str]
    parts: int
    end: str = "concat"  # FDT: "concat" | "partial" (float) | "custom-partial" (int8, FDT_PARTIAL kernel)
    tiles: Optional[Tiles] = None  # FFMT: (rows, cols), each a count or the tile sizes
    channel_parts: int = 1  # FFMT: channel parts of each tile's channel paths
    total_before: int = 0
    total_after: int = 0
    mac_overhead_pct: float = 0.0  # cumulative, vs the original model
    instruction_overhead_pct: float = 0.0  # cumulative, predicted on the target, vs the original


@dataclass(frozen=True)
class ParetoPoint:
    total: int
    head: int
    mac_overhead_pct: float
    n_paths: int
    instruction_overhead_pct: float = 0.0  # predicted run-time cost on the target


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
    kind: RewriteKind
    ops: tuple[int, ...]
    parts: int
    end: str = "concat"
    tiles: Optional[Tiles] = None
    channel_parts: int = 1  # FFMT: each tile's channel paths also split this way (apply_ffmt)

    def apply(self, model: Model) -> Model:
        if self.kind == RewriteKind.FDT:
            return apply_fdt(model, self.ops, self.parts, self.end)
        return apply_ffmt(model, self.ops, self.tiles, self.channel_parts)

    def label(self, sg: Subgraph) -> str:
        types = "+".join(sg.operators[i].type for i in self.ops)
        how = f"x{self.parts}" + ("" if self.end == "concat" else " partial") if self.kind == RewriteKind.FDT \
            else f"{self.tiles[0]}x{self.tiles[1]}" + (f" x{self.channel_parts} channels" if self.channel_parts > 1 else "")
        return f"{self.kind.value} {list(self.ops)} {types} {how}"


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
                c = Candidate(RewriteKind.FDT, ops, p, end)
                if p <= min(channels, limit) and c not in seen:
                    seen.add(c)
                    out.append(c)
    return out


def _ffmt_candidates(model: Model, seeds: Sequence[int], max_overhead: float, ramps: bool = False) -> list[Candidate]:
    if max_overhead <= 0:
        return []
    seedset = set(seeds)
    out = []
    try:  # the cost view prices MACs of the ones tried (over budget: dropped there)
        cands = ffmt_candidates(model, SEARCH_TILE_OPTIONS, max_len=FFMT_MAX_LEN, ramps=ramps, touching=seedset)
    except FdtError:
        return []
    for c in cands:
        if seedset.intersection(c.path):
            rows, cols = tile_counts(c.tiles)
            out.append(Candidate(RewriteKind.FFMT, tuple(c.path), rows * cols, tiles=tuple(c.tiles)))
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
    model: Model  # a fork of the round's model, its region stored in the cost view's order
    est: Estimate
    overhead: float
    slowdown: Optional[float] = None  # predicted instruction overhead, % of the original's (see _Search.slow)
    _plateau: Optional[tuple[int, int]] = None
    exact_est: Optional[Estimate] = None  # its full estimate, once planned (kept: planning is dear)
    local: Optional[int] = None  # a tiling split inside its tiles: the peak in its window (see tie)

    @property
    def plateau(self) -> tuple[int, int]:
        """(peak live bytes, steps at that peak) of the stored order; only the lookahead asks."""
        if self._plateau is None:
            self._plateau = plateau(self.model.main)
        return self._plateau

    def key(self, objective: str = "total") -> tuple:
        c = self.cand
        return (*self.tie(self.est, objective), self.overhead, c.parts, c.kind, c.ops, getattr(c, "end", ""))

    def tie(self, est: Estimate, objective: str) -> tuple[int, ...]:
        """``score`` with, for the head objective, the peak inside the rewrite's own window
        between head and total: a tiling split inside its tiles that ties on the head (the
        peak is elsewhere) leaves a lower peak for the next rounds to reach."""
        if objective != "head":
            return score(est, objective)
        return (est.head, est.head if self.local is None else self.local, est.total)


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
    there and would otherwise throw the result away).  Work is counted, never timed:
    ``effort.search_evaluations`` candidates priced, ``effort.exact_evaluations`` planned."""

    max_overhead: float
    allow_ffmt: bool
    allow_custom_ops: bool
    parts: Sequence[int]
    say: Progress
    orig_macs: int
    orig_instructions: int
    max_slowdown: Optional[float] = None
    objective: str = "total"
    total_cap: Optional[int] = None
    host_cap: Optional[int] = None
    target: Target = SEARCH_TARGET
    effort: Effort = DEFAULT_EFFORT
    tried: int = 0
    exact_done: int = 0
    too_slow: int = 0  # candidates refused by the slowdown budget
    points: list[ParetoPoint] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def _note(self, msg: str) -> None:
        if msg not in self.notes:
            self.notes.append(msg)

    def out_of_work(self) -> bool:
        if self.tried >= self.effort.search_evaluations:
            self._note("work budget reached (candidates)")
            return True
        if self.exact_done >= self.effort.exact_evaluations:
            self._note("work budget reached (planned candidates)")
            return True
        return False

    def score(self, est: Estimate) -> tuple[int, int]:
        return score(est, self.objective)

    def allowed(self, est: Estimate, slack: int = 0) -> bool:
        return (self.total_cap is None or est.total <= self.total_cap + slack) and \
            (self.host_cap is None or est.host_total <= self.host_cap + slack)

    def better(self, est: Estimate, than: Estimate) -> bool:
        """Allowed and better; the head objective wants a real gain (MIN_HEAD_GAIN_PCT of the
        head), not the planner's few bytes of noise bought with a larger total."""
        if self.objective == "head" and est.total > than.total:
            return self.allowed(est) and est.head <= than.head - max(16, than.head * MIN_HEAD_GAIN_PCT // 100)
        return self.allowed(est) and self.score(est) < self.score(than)

    def candidates(self, current: Model) -> tuple[list[Candidate], dict[tuple[int, ...], list[Candidate]]]:
        """Channel and partial-sum candidates, and the spatial ones grouped by sub-chain."""
        sg = current.main
        seeds = peak_seeds(sg, sg.operators)
        cands = fdt_candidates(sg, seeds, self.parts, allow_partial=self.max_overhead > 0)
        if self.allow_custom_ops:
            cands += _partial_candidates(current, seeds, self.parts)
        chains: dict[tuple[int, ...], list[Candidate]] = {}
        if self.allow_ffmt:
            for c in _ffmt_candidates(current, seeds, self.max_overhead, ramps=self.objective == "head"):
                chains.setdefault(c.ops, []).append(c)
        return cands, chains

    def rank(self, current: Model, best: Estimate, tag: str, expand: bool = True) -> list[_Ranked]:
        """Every candidate grown from the peak of ``current``, priced as a change to it.  Spatial
        tilings in two steps: each sub-chain with one representative tiling, then every tiling
        of the FFMT_CHAINS_PER_ROUND sub-chains whose representative did best (unless not
        ``expand``: the head objective's lookahead, which only looks for a peak to flatten)."""
        view = View.of(current, self.target)
        direct, chains = self.candidates(current)
        reps = {ops: _representative(cs) for ops, cs in chains.items()}
        out = self._price(view, current, direct + list(reps.values()), tag, best)
        # a representative over a budget (MACs, slowdown) says little about its sub-chain's
        # coarser tilings: judge those sub-chains by their coarsest tiling instead
        priced = {id(r.cand) for r in out}
        coarse = {ops: min(chains[ops], key=lambda c: c.parts) for ops, rep in reps.items() if id(rep) not in priced}
        coarse = {ops: c for ops, c in coarse.items() if c != reps[ops]}
        out += self._price(view, current, list(coarse.values()), tag, best)
        done = {ops: {rep} | ({coarse[ops]} if ops in coarse else set()) for ops, rep in reps.items()}
        first = sorted((r for r in out if r.cand.kind == RewriteKind.FFMT), key=lambda r: r.key(self.objective))
        top = list(dict.fromkeys(r.cand.ops for r in first))[:FFMT_CHAINS_PER_ROUND if expand else 0]
        out += self._price(view, current, [c for ops in top for c in chains[ops] if c not in done[ops]], tag, best)
        out.sort(key=lambda r: r.key(self.objective))
        if expand and self.objective == "head":
            out += self._price(view, current, self.channel_split(out), tag, best)
            out.sort(key=lambda r: r.key(self.objective))
        return out

    def channel_split(self, ranked: Sequence[_Ranked]) -> list[Candidate]:
        """The best few spatial tilings again with FDT inside every tile (each tile's channel
        paths in CHANNEL_PARTS parts): the head objective's way below the tiles' own peak."""
        best = [r.cand for r in ranked if r.cand.kind == RewriteKind.FFMT][:CHANNEL_SPLIT_TILINGS]
        return [replace(c, channel_parts=k) for c in best for k in CHANNEL_PARTS]

    def _price(self, view: View, current: Model, cands: Sequence[Candidate], tag: str,
               best: Estimate) -> list[_Ranked]:
        sg = current.main
        out: list[_Ranked] = []
        for c in cands:
            if self.out_of_work():
                break
            self.tried += 1
            try:
                m = c.apply(current)
                p = price(view, m, instructions=self.max_slowdown is not None)
            except (FdtError, ValueError, IndexError, KeyError, TypeError):
                continue  # a candidate a rewrite cannot express is skipped, never fatal
            ovh = 100.0 * (p.macs - self.orig_macs) / self.orig_macs
            slow = None if p.instructions < 0 else \
                100.0 * (p.instructions - self.orig_instructions) / self.orig_instructions
            if slow is not None and slow > self.max_slowdown + 1e-9:
                self.too_slow += 1
                continue
            if ovh > self.max_overhead + 1e-9:
                continue
            m.main.operators = list(p.order)
            est = Estimate(p.head, p.tail, False, p.host_tail)
            out.append(_Ranked(c, m, est, ovh, slow, local=p.window if getattr(c, "channel_parts", 1) > 1 else None))
            self.say(f"search {tag}: tried {self.tried} ({c.label(sg)}: ~{est.head:,} + {est.tail:,} B), "
                     f"best {best.head:,} + {best.tail:,} B")
        return out

    def slow(self, r: _Ranked) -> float:
        """A ranked candidate's predicted instruction overhead, computed when first asked (only
        planned candidates need it unless a slowdown budget is set)."""
        if r.slowdown is None:
            r.slowdown = 100.0 * (predict_instructions(r.model, target=self.target) - self.orig_instructions) / self.orig_instructions
        return r.slowdown

    def exact(self, m: Model, kind: RewriteKind) -> Estimate:
        """The full estimate of one candidate.  Spatial tilings keep the region order the cost
        view found (their many independent tile chains make the scheduler's search wide, and the
        reorder pass reschedules the winner anyway); other rewrites are rescheduled, since where
        other branches run beside the split matters (radar's three branches)."""
        self.exact_done += 1
        return estimate(m, exact=True, keep_order=True, target=self.target, effort=self.effort,
                        schedule=kind != RewriteKind.FFMT)

    def best_exact(self, ranked: Sequence[_Ranked], cur: Estimate, n_paths: int) -> Optional[tuple[_Ranked, Estimate]]:
        """The best of the top cheap candidates under the full planner, if it beats ``cur``.
        Head objective: also the best few FFMT candidates (their cheap head is no lower bound)."""
        best: Optional[tuple[_Ranked, Estimate]] = None
        head_ffmt = [] if self.objective != "head" else [
            r for r in ranked if r.cand.kind == RewriteKind.FFMT and r.est.head < cur.head
            and self.allowed(r.est, FFMT_CAP_SLACK)][:FFMT_EXACT_PER_ROUND]
        top: list[_Ranked] = []
        for r in ranked:
            if len(top) == EXACT_PER_ROUND or self.score(r.est) >= self.score(cur):
                break  # the cheap head is a lower bound for this order: nothing below can win
            if self.allowed(r.est):
                top.append(r)
        for r in top + [f for f in head_ffmt if all(f is not t for t in top)]:
            if self.out_of_work():
                break
            ex = self.exact(r.model, r.cand.kind)
            r.exact_est = ex
            self.points.append(ParetoPoint(ex.total, ex.head, round(r.overhead, 3), n_paths + 1,
                                           round(self.slow(r), 3)))
            if self.better(ex, cur) and (best is None or (r.tie(ex, self.objective), r.overhead)
                                         < (best[0].tie(best[1], self.objective), best[0].overhead)):
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
        for r1 in firsts[:LOOKAHEAD if obj == "total" else HEAD_LOOKAHEAD]:
            chain = [r1]
            for depth in range(1, LOOKAHEAD_DEPTH):
                if self.out_of_work():
                    break
                # the chain so far may already win once scheduled and planned (its cheap
                # estimate, on the stored order, is what kept it out of the round's top few)
                ex = chain[-1].exact_est or self.exact(chain[-1].model, chain[-1].cand.kind)
                chain[-1].exact_est = ex
                if self.better(ex, cur) and (not best or self.score(ex) < self.score(best[-1].est)):
                    best = chain[:-1] + [_Ranked(chain[-1].cand, chain[-1].model, ex, chain[-1].overhead,
                                                 self.slow(chain[-1]))]
                nxt = self.rank(chain[-1].model, cur, f"{tag} lookahead {depth}", expand=obj == "total")
                win = self.best_exact(nxt, cur, n_paths + depth)
                if win is not None:
                    r2, ex = win
                    done = chain + [_Ranked(r2.cand, r2.model, ex, r2.overhead, self.slow(r2))]
                    if not best or self.score(ex) < self.score(best[-1].est):
                        best = done
                    # a cheap tail (a 32-bit target) lets short chains win; a longer one that
                    # flattens every equal peak may win by more, so keep following the chain
                flat = sorted((r for r in nxt if r.plateau < chain[-1].plateau), key=lambda r: (r.plateau, r.key(obj)))
                if not flat:
                    break
                chain.append(flat[0])
        return best


def head_caps(model: Model, baseline: Estimate, target: Target) -> tuple[int, int]:
    """The head objective's caps on the total (target, host): what the input costs as TFLM runs
    it (its own order, TFLM's greedy planner), or what reorder + plan alone give if that is
    more.  Never worse than the input is the promise (the guard measures it on the host);
    below that, tail may be traded for head."""
    from ..tflm_model.head import predict_head
    as_is = predict_head(model, scratch=scratch_intervals(model.main, target)).head + predict_tail(model, target)
    host = predict_head(model, scratch=scratch_intervals(model.main, HOST)).head + predict_tail(model, HOST)
    return max(baseline.total, as_is), max(baseline.host_total, host)


def _representative(cands: Sequence[Candidate]) -> Candidate:
    """The tiling a sub-chain is first judged by: the most tiles up to REPRESENTATIVE_TILES
    (a fine tiling shows what the sub-chain can reach), else its first tiling."""
    fit = [c for c in cands if c.parts <= REPRESENTATIVE_TILES]
    return max(fit, key=lambda c: c.parts) if fit else cands[0]


def _chosen(r: _Ranked, sg: Subgraph, before: int, after: int, slow: float) -> ChosenPath:
    c = r.cand
    custom = c.kind == RewriteKind.PARTIAL  # reported as FDT with the custom-partial end
    return ChosenPath(RewriteKind.FDT if custom else c.kind, list(c.ops), [sg.operators[i].type for i in c.ops], c.parts,
                      "custom-partial" if custom else c.end, getattr(c, "tiles", None),
                      getattr(c, "channel_parts", 1), before, after, round(r.overhead, 3), round(slow, 3))


def search(model: Model, max_overhead: float = 0.0, *, progress: Optional[Progress] = None, allow_ffmt: bool = True,
           parts: Sequence[int] = DEFAULT_PARTS, max_rounds: int = MAX_ROUNDS, allow_custom_ops: bool = False, objective: str = "total", target: Target = SEARCH_TARGET,
           effort: Effort = DEFAULT_EFFORT, max_slowdown: Optional[float] = None,
           start: Optional[SearchResult] = None) -> SearchResult:
    """Greedily tile ``model`` while the estimated TFLM total arena shrinks.

    ``objective``: "total" (head + tail, the default) or "head" (the planned head, with the
    total kept at or below the input's as TFLM runs it, or reorder + plan's if more; see the
    module docstring).
    ``target``: whose persistent tail the total prices (default :data:`SEARCH_TARGET`).

    ``max_overhead``: extra MACs allowed, percent of the original (FDT adds none; FFMT
    recomputes halos).  ``max_slowdown``: predicted extra instructions allowed, percent of the
    original's (:mod:`fdt_tflm.tflm_model.instructions`; None: no limit).  ``effort``: the work
    budget (candidates priced, candidates planned;
    :mod:`fdt_tflm.effort`); the best so far is returned when it is spent, so the result
    never depends on the machine's speed or load.
    ``progress(msg)``: called with what is being tried.
    ``start``: an earlier search of ``model`` (e.g. the total objective's) to continue from:
    its rewrites are kept and only what the objective rates better is added, so the result is
    never worse than ``start`` on this objective (overheads and caps stay those of ``model``).
    ``allow_custom_ops``: also try exact int8 partial-sum ends (the FDT_PARTIAL kernel,
    :mod:`fdt_tflm.tiling.partial`); the result then needs that kernel in the firmware.
    When no single rewrite helps because the peak is reached at several places, the search
    looks one rewrite ahead (the best few that flatten the peak, each followed by a round).
    The input model is not modified; the result shares nothing with it (it is the input
    itself when no rewrite helped).  Unsupported ops
    simply end paths.  When a path is applied, the returned model's operators are also in
    the order the planner liked best (op indices in ``paths`` refer to that working model,
    as it was when each rewrite was applied)."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective {objective!r}: expected one of {', '.join(OBJECTIVES)}")
    say = progress or (lambda msg: None)
    t0 = time.perf_counter()  # reported only; no decision depends on it
    st = _Search(max_overhead, allow_ffmt, allow_custom_ops, parts, say, max(1, graph_macs(model.main)),
                 max(1, predict_instructions(model, target=target)), max_slowdown, objective, target=target, effort=effort)
    if len(model.subgraphs) != 1:
        base = estimate(model, exact=True, target=target, effort=effort)
        return SearchResult(model, [], [ParetoPoint(base.total, base.head, 0.0, 0)], base, base,
                            notes=["several subgraphs: not tiled"])
    # work on a reordered fork: candidates are then priced against a good stored order
    current = fork(model)
    cur = estimate(current, exact=True, keep_order=True, target=target, effort=effort)
    baseline = cur
    if objective == "head":
        st.total_cap, st.host_cap = head_caps(model, baseline, target)
    say(f"search: baseline total {cur.total:,} B (head {cur.head:,} + tail {cur.tail:,})")
    chosen: list[ChosenPath] = []
    st.points.append(ParetoPoint(cur.total, cur.head, 0.0, 0))
    if start is not None and start.paths:
        current, cur, chosen = fork(start.model), start.final, list(start.paths)
        st.points += start.pareto
        say(f"search: continuing from {len(chosen)} rewrites (head {cur.head:,} B, total {cur.total:,} B)")
    for rnd in range(max_rounds):
        if st.out_of_work():
            break
        sg = current.main
        ranked = st.rank(current, cur, f"round {rnd + 1}")
        best = st.best_exact(ranked, cur, len(chosen))
        if best is not None:
            r, ex = best
            chosen.append(_chosen(r, sg, cur.total, ex.total, st.slow(r)))
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
            ex_k = estimate(r.model, exact=True, target=target, effort=effort) if k < len(steps) - 1 \
                else steps[-1].est
            chosen.append(_chosen(r, model_before.main, before, ex_k.total, st.slow(r)))
            before, model_before = ex_k.total, r.model
        say(f"search: applied {len(steps)} rewrites together: total {cur.total:,} -> {steps[-1].est.total:,} B")
        current, cur = steps[-1].model, steps[-1].est
    if not chosen and st.too_slow:
        st._note(f"no rewrite within the {max_slowdown:g} % instruction budget on the {target.label}: "
                 f"{st.too_slow} candidates would cost more run time (--max-slowdown allows more)")
    # nothing helped: hand back the input itself; else a copy that shares nothing with it
    current = model if not chosen else detach(current)
    return SearchResult(current, chosen, pareto_front(st.points, objective), baseline, cur, st.tried,
                        time.perf_counter() - t0, st.notes)


def pareto_front(points: Sequence[ParetoPoint], objective: str = "total") -> list[ParetoPoint]:
    """Points no other point beats in all of arena (the objective's: total, or head), MAC
    overhead and predicted instruction overhead, by increasing MAC overhead."""
    def cost(p: ParetoPoint) -> tuple:
        return (score(p, objective)[0], p.mac_overhead_pct, p.instruction_overhead_pct)

    def dominated(p: ParetoPoint) -> bool:
        return any(all(a <= b for a, b in zip(cost(q), cost(p))) and cost(q) != cost(p) for q in points)

    front: list[ParetoPoint] = []
    for p in sorted(points, key=lambda p: (p.mac_overhead_pct, score(p, objective)[0], p.instruction_overhead_pct,
                                           p.n_paths)):
        if not dominated(p) and all(cost(p) != cost(q) for q in front):
            front.append(p)
    return front
