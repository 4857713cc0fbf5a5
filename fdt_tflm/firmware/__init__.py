"""Firmware emission: C sources, arena header, op resolver, templates."""
from .emit import ALIGNMENT_MARGIN, ArenaInfo, EmitResult, emit_c, measure_arena
from .targets import PARTS, fit_report
from .template import Instance, instantiate

__all__ = ["ALIGNMENT_MARGIN", "ArenaInfo", "EmitResult", "emit_c", "measure_arena", "PARTS", "fit_report",
           "Instance", "instantiate"]
