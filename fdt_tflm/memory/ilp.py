"""Optimal arena offsets: heuristics first, then an ILP (PuLP + CBC) warm-started from the best one.

The problem is 2-D strip packing with fixed x (lifetimes): each buffer gets an offset,
two buffers alive at the same time must not share a byte, minimise the arena.  The
peak of live bytes is a lower bound; most TinyML graphs reach it with a heuristic, and
then no solver runs at all.  Otherwise the ILP (offsets in 16-byte units, one binary
order variable per pair of buffers that overlap in time, big-M = the heuristic arena)
either proves the heuristic optimal, improves it, or runs out of its node budget
(``Effort.ilp_nodes``, one solver thread: the same plan on any machine); it never
returns something worse than the heuristic.  A problem with more than PAIRS_PER_NODE
order variables per node of that budget skips the ILP (it would take minutes).  Every result is re-checked with an
independent overlap sweep before it is returned, because TFLM trusts offline plans.
"""
from __future__ import annotations

import importlib.util
import time
import warnings
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

from ..effort import DEFAULT_EFFORT, Effort
from ..errors import FdtError
from .heuristics import HeuristicPlan, best_heuristic, share_set
from ..tflm_model.lifetimes import ARENA_ALIGNMENT, Interval, peak_live
from ..tflm_model.offline_plan import PlanError, find_overlap

UNIT = ARENA_ALIGNMENT
# A watchdog only, never meant to fire: the node budget ends every solve long before (CBC proves
# a 40-buffer, 150-pair plan optimal in 460 nodes, 2.3 CPU s; 2,000 nodes of an 87-buffer,
# 303-pair plan from the VWW search take 8 CPU s).  If it ever fired, the solver's best plan so
# far would depend on the machine's speed.
WATCHDOG_SECONDS = 600
# Larger problems skip the ILP (a count, so the same plan on any machine): CBC's nodes grow
# dear with the pair variables; 1,000 nodes of 9,546 pairs (a MobileNetV1 tiled into 25
# patches) took 95 CPU s to close a 336 B gap.  The effort's ILP nodes scale it.
PAIRS_PER_NODE = 3


@dataclass
class OffsetPlan:
    """Offsets (bytes, 16-aligned, one per interval) and how good they are."""

    offsets: list[int]
    arena: int
    lower_bound: int
    optimal: bool
    gap: float
    method: str
    seconds: float


def plan_offsets(intervals: Sequence[Interval], *, solver: str = "cbc", shareable: Iterable[tuple[int, int]] = (),
                 effort: Effort = DEFAULT_EFFORT) -> OffsetPlan:
    """The smallest arena we can find for ``intervals`` within ``effort`` (local-search moves,
    then ILP nodes); the same plan on any machine.

    ``shareable``: pairs of interval indices allowed to sit at exactly the same offset
    (in-place operands); they may still be placed apart."""
    t0 = time.perf_counter()
    ivs = list(intervals)
    for iv in ivs:
        if iv.size % UNIT:
            raise FdtError(f"buffer size {iv.size} is not a multiple of {UNIT} bytes")
    share = share_set(shareable)
    for a, b in share:
        if b >= len(ivs):
            raise FdtError(f"shareable pair ({a}, {b}) names a buffer that does not exist")
    lb = peak_live(ivs) if not share else _shared_lower_bound(ivs, share)
    heur = best_heuristic(ivs, share, stop_at=lb, moves=effort.plan_moves)
    if heur.arena <= lb:
        return _checked(ivs, share, OffsetPlan(heur.offsets, heur.arena, lb, True, 0.0, heur.method,
                                               time.perf_counter() - t0))
    pairs = sum(1 for i in range(len(ivs)) for j in range(i + 1, len(ivs)) if ivs[i].overlaps(ivs[j]))
    if pairs > PAIRS_PER_NODE * effort.ilp_nodes:
        res, note = None, f" (ilp skipped: {pairs:,} buffer pairs)"
    else:
        res, note = _solve_ilp(ivs, share, heur, lb, effort.ilp_nodes, solver), " (ilp gave nothing)"
    if res is not None and res[1] <= heur.arena and _sound(ivs, share, res[0]):
        offsets, arena, proven = res
        method = f"ilp-{solver}" + ("" if arena < heur.arena else f" (kept {heur.method})")
    else:
        offsets, arena, proven = heur.offsets, heur.arena, False
        method = heur.method + note
    optimal = proven or arena <= lb
    gap = 0.0 if optimal or arena == 0 else (arena - lb) / arena
    return _checked(ivs, share, OffsetPlan(offsets, arena, lb, optimal, gap, method, time.perf_counter() - t0))


def lower_bound(intervals: Sequence[Interval], shareable: Iterable[tuple[int, int]] = ()) -> int:
    """The peak-live bound of any plan, counting each group of in-place buffers once."""
    share = share_set(shareable)
    return peak_live(intervals) if not share else _shared_lower_bound(intervals, share)


def _shared_lower_bound(ivs: Sequence[Interval], share: frozenset) -> int:
    """Peak live bytes where each group of buffers linked by shareable pairs counts as its largest
    member (they can at best all sit on one offset): a valid, if weaker, lower bound."""
    if not ivs:
        return 0
    n = max(iv.last for iv in ivs) + 1
    alive: list[list[int]] = [[] for _ in range(n)]
    for i, iv in enumerate(ivs):
        for s in range(iv.first, iv.last + 1):
            alive[s].append(i)
    best = 0
    for s in range(n):
        here = alive[s]
        root = {i: i for i in here}

        def find(i: int) -> int:
            while root[i] != i:
                i = root[i]
            return i

        for a, b in share:
            if a in root and b in root:
                root[find(a)] = find(b)
        groups: dict[int, int] = {}
        for i in here:
            g = find(i)
            groups[g] = max(groups.get(g, 0), ivs[i].size)
        best = max(best, sum(groups.values()))
    return best


def _solve_ilp(ivs: Sequence[Interval], share: frozenset, heur: HeuristicPlan, lb: int, nodes: int,
               solver: str) -> Optional[tuple[list[int], int, bool]]:
    """(offsets, arena, proven optimal) from the ILP, or None if the solver is unavailable or failed."""
    import pulp

    n = len(ivs)
    ub = heur.arena // UNIT
    size = [iv.size // UNIT for iv in ivs]
    prob = pulp.LpProblem("arena", pulp.LpMinimize)

    def var(name: str, lo: int = 0, hi: int = 1, cat: str = "Binary"):
        if hasattr(prob, "add_variable"):  # PuLP >= 3.3
            return prob.add_variable(name, lo, hi, cat)
        return pulp.LpVariable(name, lowBound=lo, upBound=hi, cat=cat)

    arena = var("arena", lb // UNIT, ub, "Integer")
    off = [var(f"o{i}", 0, ub - size[i], "Integer") for i in range(n)]
    prob += arena
    for i in range(n):
        prob += off[i] + size[i] <= arena
        off[i].setInitialValue(heur.offsets[i] // UNIT)
    arena.setInitialValue(ub)
    h = [o // UNIT for o in heur.offsets]
    for i in range(n):
        for j in range(i + 1, n):
            if not ivs[i].overlaps(ivs[j]):
                continue
            if (i, j) in share:
                below = var(f"b{i}_{j}")
                above = var(f"a{i}_{j}")
                same = var(f"s{i}_{j}")
                prob += below + above + same == 1
                prob += off[i] + size[i] <= off[j] + ub * (1 - below)
                prob += off[j] + size[j] <= off[i] + ub * (1 - above)
                prob += off[i] - off[j] <= ub * (1 - same)
                prob += off[j] - off[i] <= ub * (1 - same)
                s0 = int(h[i] == h[j])
                b0 = int(not s0 and h[i] + size[i] <= h[j])
                below.setInitialValue(b0)
                above.setInitialValue(int(not s0 and not b0))
                same.setInitialValue(s0)
            else:
                y = var(f"y{i}_{j}")  # 0: i below j, 1: j below i
                prob += off[i] + size[i] <= off[j] + ub * y
                prob += off[j] + size[j] <= off[i] + ub * (1 - y)
                y.setInitialValue(int(not h[i] + size[i] <= h[j]))
    cmd = _solver(pulp, solver, nodes)
    if cmd is None:
        return None
    try:
        prob.solve(cmd)
    except Exception:  # a missing or crashing solver binary must not break planning
        return None
    if prob.sol_status not in (pulp.LpSolutionOptimal, pulp.LpSolutionIntegerFeasible):
        return None
    try:
        offsets = [int(round(v.value())) * UNIT for v in off]
    except TypeError:
        return None
    total = max((o + iv.size for o, iv in zip(offsets, ivs)), default=0)
    return offsets, total, prob.sol_status == pulp.LpSolutionOptimal


def _solver(pulp, name: str, nodes: int):
    """A single-threaded solver stopped by ``nodes`` branch-and-bound nodes (deterministic)."""
    if name == "cbc":  # the CBC binary bundled with PuLP
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            kw = dict(msg=False, timeLimit=WATCHDOG_SECONDS, warmStart=True, threads=1)
            try:
                return pulp.PULP_CBC_CMD(maxNodes=nodes, **kw)
            except TypeError:  # PuLP < 2.8 has no maxNodes argument
                return pulp.PULP_CBC_CMD(options=[f"maxNodes {nodes}"], **kw)
    if name == "highs":
        if importlib.util.find_spec("highspy") is None:
            raise FdtError("solver 'highs' needs the highspy package (pip install highspy)")
        return pulp.HiGHS(msg=False, timeLimit=WATCHDOG_SECONDS, warmStart=True, threads=1, mip_max_nodes=nodes)
    raise FdtError(f"unknown solver {name!r} (use 'cbc' or 'highs')")


def _sound(ivs: Sequence[Interval], share: frozenset, offsets: Sequence[int]) -> bool:
    return _clash(ivs, share, offsets) is None and all(o >= 0 and o % UNIT == 0 for o in offsets)


def _clash(ivs: Sequence[Interval], share: frozenset, offsets: Sequence[int]):
    """Two buffers alive together that share bytes (exact sharing of shareable pairs is allowed)."""
    if not share:
        return find_overlap(list(zip(ivs, offsets)))
    order = sorted(range(len(ivs)), key=lambda i: offsets[i])
    for a_pos, a in enumerate(order):
        for b in order[a_pos + 1:]:
            if offsets[b] >= offsets[a] + ivs[a].size:
                break
            if ivs[a].overlaps(ivs[b]):
                if (min(a, b), max(a, b)) in share and offsets[a] == offsets[b]:
                    continue
                return ivs[a], ivs[b]
    return None


def _checked(ivs: Sequence[Interval], share: frozenset, plan: OffsetPlan) -> OffsetPlan:
    """Raise unless the plan is sound: TFLM would silently compute garbage otherwise."""
    if len(plan.offsets) != len(ivs) or not _sound(ivs, share, plan.offsets):
        raise PlanError(f"internal error: the {plan.method} plan overlaps; refusing it")
    return plan
