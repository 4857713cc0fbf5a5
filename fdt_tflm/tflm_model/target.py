"""What a target is: the ABI TFLM is compiled for, its kernel set and the CPU.

The arena TFLM needs depends on all three: the ABI sets the size of every persistent
struct (pointers are 8 B on the 64-bit host, 4 B on a Cortex-M), the kernel set sets each
kernel's op data and scratch requests, and the CPU's feature set selects CMSIS-NN's code
paths (and so its scratch sizes).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import FdtError

ABIS: tuple[str, ...] = ("host64", "cortex-m")
KERNEL_SETS: tuple[str, ...] = ("reference", "cmsis-nn")

# CPU -> (ABI, CMSIS-NN feature set: "dsp" = ARM_MATH_DSP, "mve" = ARM_MATH_MVEI, "none" = plain C).
# arm-none-eabi-gcc defines __ARM_FEATURE_DSP for cortex-m4/m7/m33/m35p (CMSIS-NN then sets ARM_MATH_DSP).
CPUS: dict[str, tuple[str, str]] = {
    "host": ("host64", "none"),
    "cortex-m0": ("cortex-m", "none"),
    "cortex-m0plus": ("cortex-m", "none"),
    "cortex-m3": ("cortex-m", "none"),
    "cortex-m4": ("cortex-m", "dsp"),
    "cortex-m7": ("cortex-m", "dsp"),
    "cortex-m33": ("cortex-m", "dsp"),
    # A Cortex-M33 built without the DSP extension (GCC -mcpu=cortex-m33+nodsp): Zephyr's
    # mps2/an521/cpu0 (the board QEMU -M mps2-an521 runs) does not select ARMV8_M_DSP, so its
    # CMSIS-NN takes the plain C paths and their scratch sizes (device-run --zephyr).
    "cortex-m33+nodsp": ("cortex-m", "none"),
    "cortex-m55": ("cortex-m", "mve"),
    "cortex-m85": ("cortex-m", "mve"),
}


@dataclass(frozen=True)
class Target:
    """One build of TFLM the arena is sized for."""

    abi: str = "cortex-m"
    kernels: str = "reference"
    cpu: str = "cortex-m4"

    def __post_init__(self) -> None:
        if self.abi not in ABIS:
            raise FdtError(f"unknown ABI {self.abi!r} (choose from {', '.join(ABIS)})")
        if self.kernels not in KERNEL_SETS:
            raise FdtError(f"unknown --kernels {self.kernels!r} (choose from {', '.join(KERNEL_SETS)})")
        if self.cpu not in CPUS:
            raise FdtError(f"unknown --cpu {self.cpu!r} (choose from {', '.join(c for c in CPUS if c != 'host')})")
        if CPUS[self.cpu][0] != self.abi:
            raise FdtError(f"CPU {self.cpu} is not a {self.abi} target")
        if self.abi == "host64" and self.kernels != "reference":
            raise FdtError("the host interpreter runs TFLM's reference kernels only (--cpu host)")

    @property
    def features(self) -> str:
        """CMSIS-NN's compile-time feature set for this CPU: dsp | mve | none."""
        return CPUS[self.cpu][1]

    @property
    def label(self) -> str:
        return f"{self.cpu}, {self.kernels} kernels"


def target_for(cpu: str = "cortex-m4", kernels: str = "reference") -> Target:
    """The target for a CPU name and kernel set (the ABI follows from the CPU)."""
    if cpu not in CPUS:
        raise FdtError(f"unknown --cpu {cpu!r} (choose from {', '.join(c for c in CPUS if c != 'host')})")
    return Target(CPUS[cpu][0], kernels, cpu)


# The TFLM Python host interpreter (what `verify` runs and every measured number comes from).
HOST = Target("host64", "reference", "host")
# The default firmware target: the most common TinyML MCU class, TFLM's reference kernels
# (what `firmware` builds unless --kernels cmsis-nn).
CORTEX_M4 = Target("cortex-m", "reference", "cortex-m4")
