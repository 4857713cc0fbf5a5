"""The arena a target needs for a model, predicted from TFLM's sources (no run needed).

``predict_arena(model, target)`` replays AllocateTensors (:mod:`.replay`) with the planner's
head (:func:`fdt_tflm.tflm_model.head.predict_head`, offline plan + the target kernels'
scratch buffers) and finds the smallest arena in which it succeeds.  That number is what
the firmware header must say; head + tail alone is not always enough, because
AllocateTensors first needs room at the head for temporaries (the planner's 40 B per
buffer, one ``AllocationInfo`` per tensor, Prepare's temporary tensors) while most of the
tail already exists.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..ir.graph import Model, Operator, Subgraph
from .head import predict_head
from .cmsis_scratch import unmodelled_ops
from .kernels import kernel_for, unknown_scratch
from .lifetimes import Interval, align
from .reference_scratch import is_known
from .replay import ARENA_ALIGN, UNBOUNDED, OutOfArena, Replay, replay
from .scratch import scratch_requests
from .target import Target


def header_scratch(op: Operator, target: Target) -> list[int]:
    """The scratch requests the header charges for ``op``: what TFLM was measured to request
    (learned), else for a kernel the op catalog does not know (custom ops: the Signal
    library's SignalRfft, TFLite_Detection_PostProcess) what its source requests (the kernel
    table's ``scratch``; none for a table kernel without one; the bound
    :func:`.kernels.unknown_scratch` for an op in no table), else :func:`.scratch.scratch_requests`."""
    if op.learned_scratch is None and not is_known(op):
        k = kernel_for(op.key.table_name, target.kernels)
        if k is None:
            return unknown_scratch(op)  # the upper bound (kernels.unknown_bound)
        return [b for b in (k.scratch(op) if k.scratch is not None else []) if b > 0]
    return scratch_requests(op, target)


def header_scratch_intervals(sg: Subgraph, target: Target) -> list[Interval]:
    """:func:`.scratch.scratch_intervals` with :func:`header_scratch`: one planner buffer per
    request, alive only at its op's step."""
    return [Interval(None, align(b), i + 1, i + 1, -1)
            for i, op in enumerate(sg.operators) for b in header_scratch(op, target)]



@dataclass(frozen=True)
class TargetArena:
    """The arena of one model on one target, in bytes.

    ``head``: the planned non-persistent section (activations + kernel scratch);
    ``planned``: its activations alone; ``scratch`` = head - planned; ``tail``: the
    persistent section after AllocateTensors; ``temp_need``: what the smallest working
    arena needs beyond head + tail (AllocateTensors' temporaries); ``min_working``: the
    smallest arena that allocates; ``header``: ``FDT_TENSOR_ARENA_SIZE`` (min_working
    rounded up to the 16-byte buffer alignment); ``persistent_arena`` /
    ``non_persistent_arena``: the two buffers for ``MicroAllocator::Create`` with separate
    arenas (so that the tail can live in another RAM; predicted, not checked on a device);
    ``unmodelled``: op types whose kernel is not in the tables (their numbers are estimates)."""

    target: Target
    head: int
    planned: int
    scratch: int
    tail: int
    temp_need: int
    min_working: int
    header: int
    persistent_arena: int = 0
    non_persistent_arena: int = 0
    unmodelled: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        """Head + tail: what ``arena_used_bytes()`` reports after AllocateTensors."""
        return self.head + self.tail

    def to_dict(self) -> dict:
        return {"target": {"abi": self.target.abi, "kernels": self.target.kernels, "cpu": self.target.cpu},
                "head": self.head, "planned": self.planned, "scratch": self.scratch, "tail": self.tail,
                "temp_need": self.temp_need, "min_working": self.min_working, "header": self.header,
                "persistent_arena": self.persistent_arena, "non_persistent_arena": self.non_persistent_arena,
                "unmodelled": list(self.unmodelled)}


def _run(model: Model, target: Target, size: int, head: int, split: bool = False) -> Replay:
    return replay(model, target, size, head, lambda op: header_scratch(op, target), split=split)


def _works(model: Model, target: Target, size: int, head: int, split: bool) -> bool:
    try:
        _run(model, target, size, head, split)
        return True
    except OutOfArena:
        return False


def min_working_arena(model: Model, target: Target, head: int, split: bool = False) -> int:
    """Smallest arena size in which the replayed AllocateTensors succeeds (bisection: success
    is monotone in the size, as in the host probe).  ``split``: the non-persistent arena's."""
    lo, hi = 0, ARENA_ALIGN
    while not _works(model, target, hi, head, split):
        lo, hi = hi, hi * 2
        if hi > UNBOUNDED:
            raise OutOfArena("no arena up to 1 GiB works")
    while hi - lo > 1:  # invariant: lo fails (or is 0), hi works
        mid = (lo + hi) // 2
        if _works(model, target, mid, head, split):
            hi = mid
        else:
            lo = mid
    return hi


def unmodelled(model: Model, target: Target) -> tuple[str, ...]:
    ops = [op for sg in model.subgraphs for op in sg.operators]
    missing = {op.type for op in ops if kernel_for(op.key.table_name, target.kernels) is None}
    if target.kernels == "cmsis-nn":
        missing |= set(unmodelled_ops(ops))
    return tuple(sorted(missing))


def predict_arena(model: Model, target: Target) -> TargetArena:
    """Head, tail, scratch, temporary need, smallest working arena and header for ``model`` on
    ``target`` (subgraph 0 planned; TFLM plans further subgraphs alongside)."""
    planned = predict_head(model).head
    head = predict_head(model, scratch=header_scratch_intervals(model.main, target)).head
    need = min_working_arena(model, target, head)
    tail = _run(model, target, UNBOUNDED, head).tail
    split_tail = _run(model, target, UNBOUNDED, head, split=True).tail
    return TargetArena(target, head, planned, head - planned, tail, max(0, need - head - tail), need, _up16(need),
                       _up16(split_tail), min_working_arena(model, target, head, split=True),
                       unmodelled(model, target))


def _up16(n: int) -> int:
    return -(-n // ARENA_ALIGN) * ARENA_ALIGN
