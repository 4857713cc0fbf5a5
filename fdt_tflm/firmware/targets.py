"""Fit check: does the arena (RAM) and the model (flash) fit a common microcontroller?

Sizes are what one TFLM tensor arena can actually use, not the marketing total:
the arena is one contiguous array, so on parts with split RAM the largest block counts.
The reserves are what the rest of a minimal TFLM application needs besides arena and
model (stack, interpreter object, libc, and for flash the TFLM runtime with a handful
of kernels plus start-up code, or the Zephyr kernel on the nRF parts).  They are rough,
deliberately generous numbers: "fits" means "fits with that margin".
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..errors import FdtError

KB = 1024


@dataclass(frozen=True)
class Part:
    """One microcontroller: usable contiguous RAM for the arena, flash, and reserves."""

    name: str
    core: str
    ram: int  # bytes of contiguous RAM one arena can use
    flash: int
    ram_reserve: int  # stack, interpreter, libc / RTOS
    flash_reserve: int  # TFLM runtime + kernels + start-up / RTOS
    note: str = ""


PARTS: dict[str, Part] = {p.name: p for p in [
    Part("STM32F446", "cortex-m4f", 128 * KB, 512 * KB, 16 * KB, 96 * KB,
         "SRAM1 112 KB + SRAM2 16 KB are contiguous at 0x20000000"),
    Part("STM32F746", "cortex-m7", 320 * KB, 1024 * KB, 16 * KB, 96 * KB,
         "DTCM 64 KB + SRAM1 240 KB + SRAM2 16 KB are contiguous at 0x20000000"),
    Part("STM32H743", "cortex-m7", 512 * KB, 2048 * KB, 16 * KB, 96 * KB,
         "1 MB RAM in total, but split; the largest block is AXI SRAM (512 KB at 0x24000000), "
         "which is what one arena can use (stack and .data go to DTCM)"),
    Part("nRF52832", "cortex-m4f", 64 * KB, 512 * KB, 24 * KB, 128 * KB,
         "Zephyr kernel and stacks take the reserve"),
    Part("nRF52840", "cortex-m4f", 256 * KB, 1024 * KB, 24 * KB, 128 * KB,
         "Zephyr kernel and stacks take the reserve"),
    Part("nRF5340", "cortex-m33", 512 * KB, 1024 * KB, 24 * KB, 128 * KB,
         "application core; network core RAM/flash not counted"),
]}


def get_part(name: str) -> Part:
    """A part by name, case-insensitively (``stm32h743`` works)."""
    for p in PARTS.values():
        if p.name.lower() == name.lower():
            return p
    raise FdtError(f"unknown part {name!r} (known: {', '.join(PARTS)}; or give --target-ram/--target-flash)")


def parse_size(text: str) -> int:
    """'256K', '1M', '65536' -> bytes (for --target-ram / --target-flash)."""
    s = str(text).strip().upper().removesuffix("B")
    mult = {"K": KB, "M": KB * KB}.get(s[-1:], 1)
    num = s[:-1] if s[-1:] in ("K", "M") else s
    try:
        value = float(num) * mult
    except ValueError:
        raise FdtError(f"bad size {text!r}: use bytes or a K/M suffix, e.g. 256K") from None
    if value <= 0:
        raise FdtError(f"bad size {text!r}: must be positive")
    return int(value)


def _check(part: Part, arena_bytes: int, model_bytes: int) -> dict:
    ram_free = part.ram - part.ram_reserve - arena_bytes
    flash_free = part.flash - part.flash_reserve - model_bytes
    return {
        "part": part.name, "core": part.core, "ram": part.ram, "flash": part.flash,
        "arena": arena_bytes, "model": model_bytes,
        "ram_reserve": part.ram_reserve, "flash_reserve": part.flash_reserve,
        "ram_free": ram_free, "flash_free": flash_free,
        "ram_pct": round(100.0 * arena_bytes / part.ram, 1), "flash_pct": round(100.0 * model_bytes / part.flash, 1),
        "fits_ram": ram_free >= 0, "fits_flash": flash_free >= 0, "fits": ram_free >= 0 and flash_free >= 0,
        "note": part.note,
    }


def fit_report(arena_bytes: int, model_bytes: int, part: Optional[str] = None,
               ram: Optional[int] = None, flash: Optional[int] = None) -> list[dict]:
    """One row per part (all known parts, or just ``part``): whether arena and model fit.

    ``ram``/``flash`` override the table (for ``part``, or as a 'custom' part when no
    part is named); overridden sizes get the same reserves as the part (or the smallest
    reserves of the table for a custom part)."""
    if part is None and ram is None and flash is None:
        return [_check(p, arena_bytes, model_bytes) for p in PARTS.values()]
    if part is not None:
        base = get_part(part)
    else:
        base = Part("custom", "?", 0, 0, min(p.ram_reserve for p in PARTS.values()),
                    min(p.flash_reserve for p in PARTS.values()), "sizes given on the command line")
        if ram is None or flash is None:
            raise FdtError("give both --target-ram and --target-flash, or a --part")
    chosen = Part(base.name, base.core, base.ram if ram is None else ram, base.flash if flash is None else flash,
                  base.ram_reserve, base.flash_reserve, base.note)
    return [_check(chosen, arena_bytes, model_bytes)]


def format_fit_report(rows: list[dict]) -> str:
    """A small text table for the CLI."""
    lines = [f"{'part':<10} {'arena/RAM':>20} {'model/flash':>22}  fits"]
    for r in rows:
        lines.append(f"{r['part']:<10} {r['arena']:>8} / {r['ram'] // KB:>4} KB {r['ram_pct']:>5.1f}% "
                     f"{r['model']:>8} / {r['flash'] // KB:>5} KB {r['flash_pct']:>5.1f}%  "
                     f"{'yes' if r['fits'] else 'NO'}")
    return "\n".join(lines)
