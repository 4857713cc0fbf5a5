"""Kernel scratch buffers (``RequestScratchBufferInArena``) of each op on a target.

CMSIS-NN's request where that kernel set runs its own kernel for the op
(:mod:`.cmsis_scratch`), else the reference kernel's (:mod:`.reference_scratch`).  They live
only while their op runs and TFLM places them at run time into the first gap of the
(offline) plan that fits, so the planner, the scheduler and the arena replay all take
them from here, for the target the firmware is built for.
"""
from __future__ import annotations

from typing import Optional, Sequence

from ..catalog.ops import ScratchKind, info
from ..ir.graph import Operator, Subgraph
from .abi import ABI_TABLES
from .cmsis_scratch import cmsis_scratch
from .lifetimes import Interval, align
from .reference_scratch import reference_requests
from .target import Target


def scratch_requests(op: Operator, target: Target) -> list[int]:
    """Bytes of each scratch buffer ``op``'s kernel requests on ``target`` (request order)."""
    if target.kernels == "cmsis-nn":
        r = cmsis_scratch(op, target.features)
        if r is not None:
            return r
    if info(op).scratch == ScratchKind.ADD_N:  # one data pointer per input (add_n.cc)
        return [ABI_TABLES[target.abi].pointer * len([t for t in op.inputs if t is not None])]
    return reference_requests(op)


def scratch_intervals(sg: Subgraph, target: Target, order: Optional[Sequence[Operator]] = None) -> list[Interval]:
    """One planner buffer per scratch request, alive only at its op's step (``order``:
    the operators in another order than stored)."""
    ops = list(sg.operators) if order is None else list(order)
    return [Interval(None, align(b), i + 1, i + 1, -1)
            for i, op in enumerate(ops) for b in scratch_requests(op, target)]


def scratch_bytes(sg: Subgraph, target: Target) -> dict[Operator, int]:
    """Aligned scratch bytes alive during each op that requests any (for the scheduler)."""
    out: dict[Operator, int] = {}
    for op in sg.operators:
        total = sum(align(b) for b in scratch_requests(op, target))
        if total:
            out[op] = total
    return out
