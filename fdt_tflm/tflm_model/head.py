"""Predict the arena head TFLM will use for a model: lifetimes + offline plan + greedy planner."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..ir.graph import Model
from .greedy import arena_extent, greedy_offsets
from .lifetimes import Interval, lifetimes
from .offline_plan import ONLINE, read_plan


@dataclass(frozen=True)
class ArenaBytes:
    """The one shape of an arena result: TFLM's non-persistent head and persistent tail.
    Estimates, prices and measurements extend it with what they add (exactness, the host's
    tail, MACs, whether TFLM measured it)."""

    head: int
    tail: int

    @property
    def total(self) -> int:
        return self.head + self.tail

    def within(self, other: "ArenaBytes") -> bool:
        """Head and total each no larger than ``other``'s."""
        return self.head <= other.head and self.total <= other.total


@dataclass
class ArenaPrediction:
    head: int
    buffers: list[Interval]
    offsets: list[int]


def predict_head(model: Model, scratch: Optional[list[Interval]] = None) -> ArenaPrediction:
    """TFLM's non-persistent head for subgraph 0: offline offsets where the model has a plan,
    greedy placement for everything else.  ``scratch`` adds kernel scratch buffers (added
    after the tensors, as TFLM does)."""
    bufs = lifetimes(model.main)
    plan = read_plan(model)
    fixed: list[Optional[int]] = [None] * len(bufs)
    if plan is not None:
        for k, iv in enumerate(bufs):
            if plan[iv.index] != ONLINE:
                fixed[k] = plan[iv.index]
    if scratch:
        bufs = bufs + list(scratch)
        fixed = fixed + [None] * len(scratch)
    offsets = greedy_offsets(bufs, fixed)
    return ArenaPrediction(arena_extent(bufs, offsets), bufs, offsets)
