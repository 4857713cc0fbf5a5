"""Fast offset heuristics for the planner: several placement orders, first-fit or best-fit.

Each heuristic visits the buffers in some priority order and puts each one into a gap
between already placed buffers that overlap it in time.  No single order wins on every
graph (Pisarchyk & Lee 2020 compare greedy-by-size and greedy-by-breadth), so the
planner runs them all and keeps the smallest arena; the best one also warm-starts the ILP.
Offsets are in bytes and stay multiples of 16 because every size is.
"""
from __future__ import annotations

from dataclasses import dataclass
import random
from typing import Callable, Iterable, Optional, Sequence

from ..effort import PLAN_MOVES
from ..tflm_model.greedy import arena_extent, greedy_offsets
from ..tflm_model.lifetimes import Interval


@dataclass(frozen=True)
class HeuristicPlan:
    offsets: list[int]
    arena: int
    method: str


# The local search's moves are counted, never timed, so the result does not depend on machine
# speed.  Each move re-places all n buffers (n + overlapping pairs steps); on large graphs the
# moves are also capped at WORK_PER_MOVE steps each on average (2,000 moves: 10M steps, ~4 CPU s).
WORK_PER_MOVE = 5_000


def share_set(shareable: Iterable[tuple[int, int]]) -> frozenset:
    """Normalised shareable pairs: (min, max) tuples."""
    return frozenset((min(a, b), max(a, b)) for a, b in shareable if a != b)


def overlap_lists(intervals: Sequence[Interval]) -> list[list[int]]:
    """For each buffer, the buffers alive at the same time (computed once per plan, so that
    :func:`place` only looks at those)."""
    n = len(intervals)
    by_start = sorted(range(n), key=lambda i: (intervals[i].first, i))
    out: list[list[int]] = [[] for _ in range(n)]
    for k, i in enumerate(by_start):
        last = intervals[i].last
        for j in by_start[k + 1:]:
            if intervals[j].first > last:
                break
            out[i].append(j)
            out[j].append(i)
    return out


def place(intervals: Sequence[Interval], order: Sequence[int], best_fit: bool = False,
          shareable: frozenset = frozenset(), overlaps: Optional[list[list[int]]] = None) -> list[int]:
    """Offsets for ``intervals`` placing them in ``order``; each takes the lowest (or tightest) gap.

    A buffer may sit exactly on top of a shareable partner (same offset), never partly.
    ``overlaps``: :func:`overlap_lists` of ``intervals`` (computed here when not given)."""
    if overlaps is None:
        overlaps = overlap_lists(intervals)
    offsets = [-1] * len(intervals)
    sizes = [iv.size for iv in intervals]
    for b in order:
        want = intervals[b]
        busy = [(offsets[o], offsets[o] + sizes[o], o) for o in overlaps[b] if offsets[o] >= 0]  # placed ones
        # a shareable partner is still in the way anywhere but exactly on top of it
        partners = [o for _, _, o in busy if (min(b, o), max(b, o)) in shareable] if shareable else []
        busy.sort()
        candidates: list[tuple[int, int]] = []  # (gap size, offset)
        cur = 0
        for lo, hi, _ in busy:
            if lo - cur >= want.size:
                candidates.append((lo - cur, cur))
                if not best_fit:
                    break
            cur = max(cur, hi)
        if best_fit or not candidates:
            candidates.append((1 << 62, cur))
        for p in partners:  # on top of a partner, if nothing else is in the way there
            off = offsets[p]
            if all(hi <= off or lo >= off + want.size for lo, hi, o in busy
                   if not (o in partners and offsets[o] == off)):
                candidates.append((-1, off))  # sharing wastes nothing
        if best_fit:
            offsets[b] = min(candidates)[1]
        else:
            offsets[b] = min(off for _, off in candidates) if partners else candidates[0][1]
    return offsets


def _orders(intervals: Sequence[Interval], overlaps: list[list[int]]) -> dict[str, list[int]]:
    """Priority orders worth trying; ties always fall back to the buffer index (deterministic).
    ``overlaps``: :func:`overlap_lists` of ``intervals``."""
    idx = range(len(intervals))
    length = lambda i: intervals[i].last - intervals[i].first + 1  # noqa: E731
    conflicts = [len(overlaps[i]) for i in idx]
    keys: dict[str, Callable[[int], tuple]] = {
        "size": lambda i: (-intervals[i].size, i),
        "area": lambda i: (-intervals[i].size * length(i), i),
        "lifetime": lambda i: (-length(i), -intervals[i].size, i),
        "conflicts": lambda i: (-conflicts[i], -intervals[i].size, i),
        "start": lambda i: (intervals[i].first, -intervals[i].size, i),
    }
    return {name: sorted(idx, key=k) for name, k in keys.items()}


def _breadth_order(intervals: Sequence[Interval]) -> list[int]:
    """Greedy by breadth: scopes with the most live bytes first, within a scope largest first."""
    if not intervals:
        return []
    n = max(iv.last for iv in intervals) + 1
    live = [0] * n
    alive: list[list[int]] = [[] for _ in range(n)]
    for i, iv in enumerate(intervals):
        for s in range(iv.first, iv.last + 1):
            live[s] += iv.size
            alive[s].append(i)
    seen: set[int] = set()
    out: list[int] = []
    for s in sorted(range(n), key=lambda s: (-live[s], s)):
        here = [i for i in alive[s] if i not in seen]
        for i in sorted(here, key=lambda i: (-intervals[i].size, i)):
            seen.add(i)
            out.append(i)
    return out


def best_heuristic(intervals: Sequence[Interval], shareable: frozenset = frozenset(),
                   stop_at: int = 0, moves: int = PLAN_MOVES) -> HeuristicPlan:
    """Run every heuristic and keep the smallest arena (the first one wins ties), then try to improve
    the best placement order by a seeded local search of at most ``moves`` moves (swap two
    buffers, keep if not worse).

    ``stop_at``: return as soon as a plan reaches this arena (the lower bound)."""
    best = None
    best_order: Optional[list[int]] = None
    best_fit = False
    if not shareable:  # TFLM's own planner: the baseline any plan must beat
        offs = greedy_offsets(intervals)
        best = HeuristicPlan(offs, arena_extent(intervals, offs), "tflm-greedy")
        if best.arena <= stop_at:
            return best
    overlaps = overlap_lists(intervals)
    orders = _orders(intervals, overlaps)
    orders["breadth"] = _breadth_order(intervals)
    for name, order in orders.items():
        for bf in (False, True):
            offs = place(intervals, order, bf, shareable, overlaps)
            arena = arena_extent(intervals, offs)
            if best is None or arena < best.arena:
                best = HeuristicPlan(offs, arena, f"{'best' if bf else 'first'}-fit by {name}")
                best_order, best_fit = list(order), bf
                if arena <= stop_at:
                    return best
    assert best is not None
    if best_order is None:  # TFLM's greedy won: search from its visiting order (largest first)
        best_order = orders["size"]
    return _local_search(intervals, shareable, best, best_order, best_fit, stop_at, moves, overlaps)


def _local_search(intervals: Sequence[Interval], shareable: frozenset, best: HeuristicPlan, order: list[int],
                  best_fit: bool, stop_at: int, moves: int,
                  overlaps: Optional[list[list[int]]] = None) -> HeuristicPlan:
    """Seeded search on the placement order (deterministic: a count of moves, no clock), keeping
    any order that is not worse.  Moves alternate: a buffer that reaches the arena's top moves to
    an earlier place (it gets placed while more room is left: the move that lowers the top),
    or two random buffers swap (to leave plateaus)."""
    n = len(order)
    if n < 2 or moves <= 0:
        return best
    rng = random.Random(0)
    if overlaps is None:
        overlaps = overlap_lists(intervals)
    work = n + sum(len(o) for o in overlaps)  # one placement's steps
    cur = list(order)
    cur_offs = place(intervals, cur, best_fit, shareable, overlaps)
    cur_arena = arena_extent(intervals, cur_offs)
    for it in range(min(moves, max(50, moves * WORK_PER_MOVE // work))):
        cand = list(cur)
        if it % 2 == 0:
            top = [k for k, b in enumerate(cur) if cur_offs[b] + intervals[b].size == cur_arena and k > 0]
            if not top:
                continue
            i = top[rng.randrange(len(top))]
            cand.insert(rng.randrange(i), cand.pop(i))
        else:
            i, j = rng.randrange(n), rng.randrange(n)
            if i == j:
                continue
            cand[i], cand[j] = cand[j], cand[i]
        offs = place(intervals, cand, best_fit, shareable, overlaps)
        arena = arena_extent(intervals, offs)
        if arena <= cur_arena:
            cur, cur_offs, cur_arena = cand, offs, arena
            if arena < best.arena:
                best = HeuristicPlan(offs, arena, "local search")
                if arena <= stop_at:
                    break
    return best
