"""Targets: which TFLM build the arena is sized for (ABI, kernel set, CPU), and the
prediction of its arena from TFLM's sources (no device, no host run needed).

    from fdt_tflm.tflm_model import target_for, predict_arena
    arena = predict_arena(model, target_for("cortex-m4", "cmsis-nn"))
    arena.header  # FDT_TENSOR_ARENA_SIZE for that target
"""
from __future__ import annotations

from typing import Any

from .target import CORTEX_M4, CPUS, HOST, KERNEL_SETS, Target, target_for

__all__ = ["Target", "HOST", "CORTEX_M4", "CPUS", "KERNEL_SETS", "target_for", "predict_arena", "TargetArena"]


def __getattr__(name: str) -> Any:  # lazy: arena imports the memory passes, which import this package
    if name in ("predict_arena", "TargetArena"):
        from . import arena
        return getattr(arena, name)
    raise AttributeError(name)
