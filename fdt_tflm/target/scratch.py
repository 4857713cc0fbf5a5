"""Scratch requests of an op's kernel on a target: CMSIS-NN's where that kernel set runs
its own kernel for the op, else the reference kernel's (:mod:`fdt_tflm.memory.scratch`)."""
from __future__ import annotations

from ..catalog.ops import ScratchKind, info
from ..ir.graph import Operator, Subgraph
from ..memory import scratch as reference
from ..memory.lifetimes import Interval, align
from .abi import ABI_TABLES
from .cmsis_scratch import cmsis_scratch
from .spec import Target


def scratch_requests(op: Operator, target: Target) -> list[int]:
    """Bytes of each scratch buffer ``op``'s kernel requests on ``target`` (request order)."""
    if target.kernels == "cmsis-nn":
        r = cmsis_scratch(op, target.features)
        if r is not None:
            return r
    if info(op).scratch == ScratchKind.ADD_N:  # one data pointer per input (add_n.cc)
        return [ABI_TABLES[target.abi].pointer * len([t for t in op.inputs if t is not None])]
    return reference.scratch_requests(op)


def scratch_intervals(sg: Subgraph, target: Target) -> list[Interval]:
    """One planner buffer per scratch request, alive only at its op (stored order)."""
    return [Interval(None, align(b), i + 1, i + 1, -1)
            for i, op in enumerate(sg.operators) for b in scratch_requests(op, target)]


def scratch_bytes(sg: Subgraph, target: Target) -> dict[Operator, int]:
    """Aligned scratch bytes alive during each op that requests any (for the scheduler)."""
    out: dict[Operator, int] = {}
    for op in sg.operators:
        total = sum(align(b) for b in scratch_requests(op, target))
        if total:
            out[op] = total
    return out
