"""Instructions of one TFLM invoke per operator on Cortex-M devices, per (CPU, kernel set).

Fitted by least squares (``python benchmarks/device_ops.py --fit --write``) to per-op
instruction counts measured in QEMU (``-icount shift=0``, SysTick around each op's Eval)
with TFLM 90b983c built for the CPU (``tests/data/device_op_measurements.json``).  Rows
named ``TYPE/variant`` price a kernel's code paths apart (:data:`.instructions.VARIANTS`).
"""
from __future__ import annotations

from .instructions import COSTS, InstructionCost  # noqa: F401  (the fit writes InstructionCost rows)

# CMSIS-NN feature set -> the measured CPU that prices CPUs without measurements of their own
STAND_IN: dict[str, str] = {"dsp": "cortex-m4", "mve": "cortex-m33", "none": "cortex-m4"}

# Placeholder until the device fit is written: the host table.
DEVICE_COSTS: dict[tuple[str, str], dict[str, InstructionCost]] = {
    (cpu, kernels): COSTS for cpu in ("cortex-m4", "cortex-m33") for kernels in ("reference", "cmsis-nn")}
