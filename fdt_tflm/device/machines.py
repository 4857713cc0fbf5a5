"""Emulated boards the device harness runs firmware on (QEMU system emulation).

Each machine names the STM32 template part (``firmware_template/stm32/cmake/parts.cmake``)
whose CPU flags and memory map fit it, and how much RAM that map gives, so the probe
buffer (a larger arena to search the smallest working one in) is sized to fit.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import FdtError

KB = 1024
# RAM the application needs besides the arena buffer: stack 8 KB, heap 4 KB, libc and TFLM statics.
RAM_RESERVE = 24 * KB


@dataclass(frozen=True)
class Machine:
    """One QEMU machine: ``qemu`` is the ``-M`` value, ``part`` the template's FDT_PART."""

    qemu: str
    cpu: str
    part: str
    ram: int

    def probe_buffer(self, header: int) -> int:
        """Bytes the arena probe may use: twice the header (at least 16 KB more), within RAM."""
        want = max(2 * header, header + 16 * KB)
        return (min(want, self.ram - RAM_RESERVE) // 16) * 16


MACHINES: dict[str, Machine] = {m.qemu: m for m in (
    Machine("netduinoplus2", "cortex-m4", "QEMU_NETDUINOPLUS2", 192 * KB),
    Machine("mps2-an386", "cortex-m4", "QEMU_MPS2_AN386", 4096 * KB),
    Machine("mps2-an505", "cortex-m33", "QEMU_MPS2_AN505", 4096 * KB),
)}
DEFAULT_MACHINE: dict[str, str] = {"cortex-m4": "netduinoplus2", "cortex-m33": "mps2-an505"}
CPUS = tuple(DEFAULT_MACHINE)


def machine_for(cpu: str, qemu: str | None = None) -> Machine:
    """The machine for ``cpu`` (its default, or ``qemu`` if that emulates the same CPU)."""
    if cpu not in DEFAULT_MACHINE:
        raise FdtError(f"unknown cpu {cpu!r} (choose from {', '.join(CPUS)})")
    m = MACHINES.get(qemu or DEFAULT_MACHINE[cpu])
    if m is None or m.cpu != cpu:
        names = ", ".join(k for k, v in MACHINES.items() if v.cpu == cpu)
        raise FdtError(f"QEMU machine {qemu!r} does not emulate a {cpu} (choose from {names})")
    return m
