"""The scratch TFLM's CMSIS-NN kernels add to the head, per CPU feature set (``kernels="cmsis-nn"``).

The rules themselves are :mod:`fdt_tflm.tflm_model.cmsis_scratch` (exact for GCC at the
pinned CMSIS-NN); this module lists them per op and prices them in the planner model
for a header sized from a host measurement (an explicit :class:`~.emit.ArenaInfo`).
Without one, the header comes from :func:`fdt_tflm.tflm_model.predict_arena`, which replays
the CMSIS-NN kernels' op data, scratch and tail as well.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import FdtError
from ..ir.graph import Model
from ..tflm_model.lifetimes import Interval, align
from ..tflm_model.head import predict_head
from ..tflm_model.cmsis_scratch import SCRATCH_RULES, cmsis_scratch

# CPU feature sets CMSIS-NN distinguishes at compile time.
ARCHS: dict[str, str] = {
    "dsp": "Cortex-M4/M7/M33/M35P with the DSP extension (ARM_MATH_DSP)",
    "mve": "Cortex-M55/M85 with Helium (ARM_MATH_MVEI)",
    "none": "Cortex-M0/M0+/M3 (plain C paths)",
}


@dataclass(frozen=True)
class ScratchRequest:
    """One scratch buffer a CMSIS-NN kernel requests for operator ``op_index``."""

    op_index: int
    op_type: str
    size: int
    rule: str


def scratch_requests(model: Model, arch: str = "dsp") -> list[ScratchRequest]:
    """Every scratch buffer CMSIS-NN kernels would request for subgraph 0, in op order."""
    if arch not in ARCHS:
        raise FdtError(f"unknown CMSIS-NN architecture {arch!r} (choose from {', '.join(ARCHS)})")
    out = []
    for i, op in enumerate(model.main.operators):
        for size in cmsis_scratch(op, arch) or []:
            out.append(ScratchRequest(i, op.type, size, SCRATCH_RULES[op.key.table_name].__doc__ or op.type))
    return out


def extra_scratch(model: Model, arch: str = "dsp") -> int:
    """Bytes the head grows when CMSIS-NN scratch buffers are planned in (>= 0)."""
    reqs = scratch_requests(model, arch)
    if not reqs:
        return 0
    bufs = [Interval(None, align(r.size), r.op_index + 1, r.op_index + 1, -1) for r in reqs]
    return max(0, predict_head(model, bufs).head - predict_head(model).head)
