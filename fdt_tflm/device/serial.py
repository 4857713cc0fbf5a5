"""Parse what the firmware prints over semihosting.

The normal lines (``output i (TYPE, n bytes): ...``, ``fdt: arena_used_bytes N of M``,
``fdt: done (status S)``) are the ones users' scripts parse too; the ``fdt-probe:`` lines
come from ``common/fdt_probe.inc`` (compiled in with FDT_ARENA_PROBE / FDT_SYSTICK_COUNT).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

from ..errors import FdtError

_USED = re.compile(r"^fdt: arena_used_bytes (\d+) of (\d+)", re.M)
_ALLOC_FAIL = re.compile(r"^fdt: AllocateTensors failed with an arena of (\d+) bytes", re.M)
_DONE = re.compile(r"^fdt: done \(status (-?\d+)\)", re.M)
_BUFFER = re.compile(r"^fdt-probe: buffer (\d+)", re.M)
_CALIB = re.compile(r"^fdt-probe: calibration ticks (\d+) for (\d+) instructions", re.M)
_INVOKE = re.compile(r"^fdt-probe: invoke ticks (\d+) overhead (\d+)", re.M)
_HEX = re.compile(r"^fdt-probe: output (\d+) hex ([0-9a-f]*)$", re.M)
_FULL = re.compile(r"^fdt-probe: full_buffer allocate (yes|no) invoke (yes|no) arena_used_bytes (\d+)", re.M)
_MINUS = re.compile(r"^fdt-probe: minus_32 size (\d+) allocate (yes|no) invoke (yes|no)", re.M)
_MIN = re.compile(r"^fdt-probe: min_working_arena_bytes (\d+|none)", re.M)
_UNEXPECTED = re.compile(r"^fdt-probe: unexpected: (.*)$", re.M)
_OP_INVOKE = re.compile(r"^fdt-probe: op_invoke ticks (\d+) events (\d+)", re.M)
_OP = re.compile(r"^fdt-probe: op (\d+) ticks (\d+)$", re.M)
_OP_OVERHEAD = re.compile(r"^fdt-probe: op_overhead ticks (\d+)(?: pairs (\d+))?", re.M)
_TWO_HEADER = re.compile(r"^fdt-probe: two_arenas header persistent (\d+) non_persistent (\d+) "
                         r"allocate (yes|no) invoke (yes|no)", re.M)
_TWO_MINUS = re.compile(r"^fdt-probe: two_arenas (persistent|non_persistent)_minus_32 size (\d+) "
                        r"allocate (yes|no) invoke (yes|no)", re.M)
_TWO_MIN = re.compile(r"^fdt-probe: two_arenas min_(persistent|non_persistent)_bytes (\d+|none)", re.M)


@dataclass
class SerialReport:
    """Everything one firmware run printed, as numbers (None: the line was absent)."""

    status: Optional[int] = None
    used_in_header: Optional[int] = None  # the normal run's arena_used_bytes
    header_alloc_failed: bool = False
    buffer: Optional[int] = None
    calib_ticks: Optional[int] = None
    calib_instructions: Optional[int] = None
    invoke_ticks: Optional[int] = None
    overhead_ticks: Optional[int] = None
    outputs: dict[int, bytes] = field(default_factory=dict)
    full_allocates: Optional[bool] = None
    full_invokes: Optional[bool] = None
    full_used: Optional[int] = None
    minus32_size: Optional[int] = None
    minus32_allocates: Optional[bool] = None
    min_working: Optional[int] = None
    op_invoke_ticks: Optional[int] = None  # FDT_OP_PROFILE: the profiled Invoke, profiler included
    op_events: Optional[int] = None  # profiler events counted (op_ticks holds those kept)
    op_ticks: Optional[list[int]] = None  # SysTick ticks per event (operator), in Invoke order
    op_overhead_ticks: Optional[int] = None  # ticks of op_overhead_pairs empty Begin/End pairs
    op_overhead_pairs: int = 1
    # FDT_TWO_ARENAS: the header's two sizes, whether AllocateTensors + Invoke work with them,
    # with 32 B less in one of them (the other unchanged), and the smallest working size of
    # each (the other at its header size; 0: not even the probe's buffer works)
    two_persistent: Optional[int] = None
    two_non_persistent: Optional[int] = None
    two_works: Optional[bool] = None
    two_persistent_minus32_works: Optional[bool] = None
    two_non_persistent_minus32_works: Optional[bool] = None
    two_min_persistent: Optional[int] = None
    two_min_non_persistent: Optional[int] = None
    ended: bool = False

    @property
    def systick_hz(self) -> Optional[int]:
        """SysTick's clock: the calibration's ticks per instruction (1 ns each under QEMU's
        -icount shift=0), rounded to whole MHz as emulated clocks are (168 MHz netduinoplus2,
        20 MHz mps2-an505); the rounding removes the calibration's +-1 tick error."""
        if not self.calib_ticks or not self.calib_instructions:
            return None
        return round(self.calib_ticks * 1e9 / self.calib_instructions / 1e6) * 1_000_000 or None

    @property
    def instructions(self) -> Optional[int]:
        """Instructions of one Invoke: its SysTick ticks (less the timer-read overhead) times
        the nanoseconds per tick (1 instruction per ns); +-1 tick."""
        hz = self.systick_hz
        if hz is None or self.invoke_ticks is None:
            return None
        return round((self.invoke_ticks - (self.overhead_ticks or 0)) * 1e9 / hz)

    @property
    def op_instructions(self) -> Optional[list[int]]:
        """Instructions per profiled operator: its window's ticks less an empty Begin/End pair's
        (averaged over the pairs measured), times the nanoseconds per tick; +-1 tick each, so a
        tiny op may come out slightly negative."""
        hz = self.systick_hz
        if hz is None or self.op_ticks is None:
            return None
        empty = (self.op_overhead_ticks or 0) / max(self.op_overhead_pairs, 1)
        return [round((t - empty) * 1e9 / hz) for t in self.op_ticks]


def _int(m: Optional[re.Match], group: int = 1) -> Optional[int]:
    return int(m.group(group)) if m else None


def parse_serial(text: str) -> SerialReport:
    """A :class:`SerialReport` from the firmware's output; FdtError on a probe anomaly."""
    unexpected = _UNEXPECTED.search(text)
    if unexpected:
        raise FdtError(f"device probe: {unexpected.group(1)}")
    r = SerialReport(status=_int(_DONE.search(text)), used_in_header=_int(_USED.search(text)),
                     header_alloc_failed=bool(_ALLOC_FAIL.search(text)), buffer=_int(_BUFFER.search(text)),
                     ended="fdt-probe: end" in text)
    if (m := _CALIB.search(text)):
        r.calib_ticks, r.calib_instructions = int(m.group(1)), int(m.group(2))
    if (m := _INVOKE.search(text)):
        r.invoke_ticks, r.overhead_ticks = int(m.group(1)), int(m.group(2))
    r.outputs = {int(m.group(1)): bytes.fromhex(m.group(2)) for m in _HEX.finditer(text)}
    if (m := _FULL.search(text)):
        r.full_allocates, r.full_invokes, r.full_used = m.group(1) == "yes", m.group(2) == "yes", int(m.group(3))
    if (m := _MINUS.search(text)):
        r.minus32_size, r.minus32_allocates = int(m.group(1)), m.group(2) == "yes"
    if (m := _MIN.search(text)):
        r.min_working = None if m.group(1) == "none" else int(m.group(1))
    if (m := _OP_INVOKE.search(text)):
        r.op_invoke_ticks, r.op_events = int(m.group(1)), int(m.group(2))
        ops = {int(o.group(1)): int(o.group(2)) for o in _OP.finditer(text)}
        if sorted(ops) != list(range(len(ops))):
            raise FdtError("device probe: the op profile's event indices are not 0, 1, ...")
        r.op_ticks = [ops[i] for i in range(len(ops))]
    if (m := _OP_OVERHEAD.search(text)):
        r.op_overhead_ticks, r.op_overhead_pairs = int(m.group(1)), int(m.group(2) or 1)
    if (m := _TWO_HEADER.search(text)):
        r.two_persistent, r.two_non_persistent = int(m.group(1)), int(m.group(2))
        r.two_works = m.group(3) == "yes" and m.group(4) == "yes"
    for m in _TWO_MINUS.finditer(text):
        works = m.group(3) == "yes" and m.group(4) == "yes"
        if m.group(1) == "persistent":
            r.two_persistent_minus32_works = works
        else:
            r.two_non_persistent_minus32_works = works
    for m in _TWO_MIN.finditer(text):
        v = 0 if m.group(2) == "none" else int(m.group(2))
        if m.group(1) == "persistent":
            r.two_min_persistent = v
        else:
            r.two_min_non_persistent = v
    return r
