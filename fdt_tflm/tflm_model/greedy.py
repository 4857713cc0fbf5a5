"""A faithful model of TFLM's default GreedyMemoryPlanner.

Offline-planned buffers are placed first at their fixed offsets (in the order
they were added); online buffers follow, largest first.  TFLM fills its sort
array from the tail, so buffers of equal size are visited in reverse order of
addition, and its bubble sort is stable.  Each buffer takes the first gap, in
offset order, between buffers that overlap it in time.
"""
from __future__ import annotations

from typing import Optional, Sequence

from .lifetimes import Interval


def greedy_offsets(buffers: Sequence[Interval], fixed: Optional[Sequence[Optional[int]]] = None) -> list[int]:
    """Offsets TFLM's greedy planner gives ``buffers`` (in TFLM's add order).

    ``fixed[i]`` is an offline offset for buffer i, or None to plan it online."""
    n = len(buffers)
    if n == 0:
        return []
    fixed = list(fixed) if fixed is not None else [None] * n
    offline = [i for i in range(n) if fixed[i] is not None]
    online = [i for i in range(n) if fixed[i] is None][::-1]
    online.sort(key=lambda i: -buffers[i].size)  # stable, like TFLM's bubble sort
    visit = offline + online
    offsets: list[int] = [-1] * n
    placed: list[tuple[int, int]] = []  # (offset, buffer id), kept sorted by offset, ties by insertion
    for k, b in enumerate(visit):
        want = buffers[b]
        if fixed[b] is not None:
            cand = fixed[b]
        elif k == 0:
            cand = 0
        else:
            cand = 0
            for off, other in placed:
                o = buffers[other]
                if o.first > want.last or want.first > o.last:
                    continue
                if off - cand >= want.size:
                    break
                cand = max(cand, off + o.size)
        offsets[b] = cand
        # insert after all entries with offset <= cand (TFLM inserts before the first larger one),
        # except that a new smallest entry becomes the head of the list
        pos = len(placed)
        for j, (off, _) in enumerate(placed):
            if off > cand:
                pos = j
                break
        placed.insert(pos, (cand, b))
    return offsets


def arena_extent(buffers: Sequence[Interval], offsets: Sequence[int]) -> int:
    return max((o + b.size for b, o in zip(buffers, offsets)), default=0)
