"""Tensor lifetimes exactly as TFLM's AllocationInfoBuilder computes them.

Scopes: graph inputs are created at scope 0, operator i runs at scope i+1, and
graph outputs live until the last scope.  A tensor lives from the scope of its
(last) producer to the scope of its last consumer, inclusive.  Only tensors
without data, not variable and of non-zero size are planned in the arena.
Sizes are rounded up to TFLM's 16-byte buffer alignment.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from ..ir.graph import Operator, Subgraph, Tensor

ARENA_ALIGNMENT = 16


def align(n: int, a: int = ARENA_ALIGNMENT) -> int:
    return (n + a - 1) // a * a


@dataclass(frozen=True)
class Interval:
    """One planned buffer: ``size`` bytes (aligned) alive in scopes [first, last]."""

    tensor: Optional[Tensor]
    size: int
    first: int
    last: int
    index: int  # tensor index within the subgraph (-1 for scratch buffers)

    def overlaps(self, other: "Interval") -> bool:
        return not (self.first > other.last or other.first > self.last)


def lifetimes(sg: Subgraph, order: Optional[Sequence[Operator]] = None) -> list[Interval]:
    """Planned buffers of ``sg`` in tensor order, for ``order`` (default: the stored op order)."""
    ops = list(sg.operators) if order is None else list(order)
    first: dict[int, int] = {}
    last: dict[int, int] = {}

    def created(t: Tensor, scope: int) -> None:
        first[id(t)] = scope
        last[id(t)] = scope

    for t in sg.inputs:
        created(t, 0)
    for t in sg.outputs:
        created(t, 0)
    for i, op in enumerate(ops):
        scope = i + 1
        for t in op.outputs:
            created(t, scope)
        for t in op.inputs:
            if t is not None:
                last[id(t)] = scope
        for t in op.outputs:
            last[id(t)] = scope
    end = len(ops)
    for t in sg.outputs:
        last[id(t)] = end
    out = []
    for idx, t in enumerate(sg.tensors):
        if t.is_constant or t.is_variable or t.nbytes == 0 or id(t) not in first:
            continue
        out.append(Interval(t, align(t.nbytes), first[id(t)], last[id(t)], idx))
    return out


def live_bytes_per_scope(intervals: Sequence[Interval], n_scopes: int) -> list[int]:
    live = [0] * n_scopes
    for iv in intervals:
        for s in range(iv.first, iv.last + 1):
            live[s] += iv.size
    return live


def peak_live(intervals: Sequence[Interval]) -> int:
    """The lower bound on any plan for this order: the most bytes alive at one scope."""
    if not intervals:
        return 0
    n = max(iv.last for iv in intervals) + 1
    return max(live_bytes_per_scope(intervals, n))
