"""The arena a target needs for a model, predicted from TFLM's sources (no run needed).

``predict_arena(model, target)`` replays AllocateTensors (:mod:`.replay`) with the planner's
head (:func:`fdt_tflm.memory.tflm_model.predict_head`, offline plan + the target kernels'
scratch buffers) and finds the smallest arena in which it succeeds.  That number is what
the firmware header must say; head + tail alone is not always enough, because
AllocateTensors first needs room at the head for temporaries (the planner's 40 B per
buffer, one ``AllocationInfo`` per tensor, Prepare's temporary tensors) while most of the
tail already exists.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..ir.graph import Model
from ..memory.tflm_model import predict_head
from .cmsis_scratch import unmodelled_ops
from .kernels import kernel_for
from .replay import ARENA_ALIGN, OutOfArena, Replay, replay
from .scratch import scratch_intervals, scratch_requests
from .spec import Target

_MAX_ARENA = 1 << 30


@dataclass(frozen=True)
class TargetArena:
    """The arena of one model on one target, in bytes.

    ``head``: the planned non-persistent section (activations + kernel scratch);
    ``planned``: its activations alone; ``scratch`` = head - planned; ``tail``: the
    persistent section after AllocateTensors; ``temp_need``: what the smallest working
    arena needs beyond head + tail (AllocateTensors' temporaries); ``min_working``: the
    smallest arena that allocates; ``header``: ``FDT_TENSOR_ARENA_SIZE`` (min_working
    rounded up to the 16-byte buffer alignment); ``unmodelled``: op types whose kernel is
    not in the tables (their numbers are estimates)."""

    target: Target
    head: int
    planned: int
    scratch: int
    tail: int
    temp_need: int
    min_working: int
    header: int
    unmodelled: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        """Head + tail: what ``arena_used_bytes()`` reports after AllocateTensors."""
        return self.head + self.tail

    def to_dict(self) -> dict:
        return {"target": {"abi": self.target.abi, "kernels": self.target.kernels, "cpu": self.target.cpu},
                "head": self.head, "planned": self.planned, "scratch": self.scratch, "tail": self.tail,
                "temp_need": self.temp_need, "min_working": self.min_working, "header": self.header,
                "unmodelled": list(self.unmodelled)}


def _run(model: Model, target: Target, size: int, head: int) -> Replay:
    return replay(model, target, size, head, lambda op: scratch_requests(op, target))


def _works(model: Model, target: Target, size: int, head: int) -> bool:
    try:
        _run(model, target, size, head)
        return True
    except OutOfArena:
        return False


def min_working_arena(model: Model, target: Target, head: int) -> int:
    """Smallest arena size in which the replayed AllocateTensors succeeds (bisection: success
    is monotone in the size, as in the host probe)."""
    lo, hi = 0, ARENA_ALIGN
    while not _works(model, target, hi, head):
        lo, hi = hi, hi * 2
        if hi > _MAX_ARENA:
            raise OutOfArena("no arena up to 1 GiB works")
    while hi - lo > 1:  # invariant: lo fails (or is 0), hi works
        mid = (lo + hi) // 2
        if _works(model, target, mid, head):
            hi = mid
        else:
            lo = mid
    return hi


def unmodelled(model: Model, target: Target) -> tuple[str, ...]:
    ops = [op for sg in model.subgraphs for op in sg.operators]
    missing = {op.type for op in ops if kernel_for(op.type, target.kernels) is None}
    if target.kernels == "cmsis-nn":
        missing |= set(unmodelled_ops(ops))
    return tuple(sorted(missing))


def predict_arena(model: Model, target: Target) -> TargetArena:
    """Head, tail, scratch, temporary need, smallest working arena and header for ``model`` on
    ``target`` (subgraph 0 planned; TFLM plans further subgraphs alongside)."""
    planned = predict_head(model).head
    head = predict_head(model, scratch=scratch_intervals(model.main, target)).head
    need = min_working_arena(model, target, head)
    tail = _run(model, target, _MAX_ARENA, head).tail
    header = -(-need // ARENA_ALIGN) * ARENA_ALIGN
    return TargetArena(target, head, planned, head - planned, tail, max(0, need - head - tail), need, header,
                       unmodelled(model, target))
