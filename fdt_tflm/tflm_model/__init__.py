"""The model of TFLM on a Target (CPU, ABI, kernel set): what the optimiser, the guard, the
report and the firmware header ask about a model without running it.

Per Target it gives the arena replay (:mod:`.replay`, :mod:`.arena`), kernel scratch
(:mod:`.scratch`), the persistent tail (:mod:`.tail`) and instructions per op
(:mod:`.instructions`), and for every target the lifetimes (:mod:`.lifetimes`), TFLM's greedy
planner (:mod:`.greedy`, :mod:`.head`), in-place aliasing (:mod:`.inplace`) and the offline
plan (:mod:`.offline_plan`).  It sits above the IR and the op catalog and below every pass.

    from fdt_tflm.tflm_model import target_for, predict_arena
    arena = predict_arena(model, target_for("cortex-m4", "cmsis-nn"))
    arena.header  # FDT_TENSOR_ARENA_SIZE for that target
"""
from __future__ import annotations

from .arena import TargetArena, predict_arena
from .target import CORTEX_M4, CPUS, HOST, KERNEL_SETS, Target, target_for

__all__ = ["Target", "HOST", "CORTEX_M4", "CPUS", "KERNEL_SETS", "target_for", "predict_arena", "TargetArena"]
