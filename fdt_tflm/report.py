"""The report of one ``optimize`` run: a typed, frozen record, serialised in one place.

Users parse the JSON in CI, so its shape is a contract: every field is documented in
``docs/report.md`` and described by ``report.schema.json`` (next to this file); change
either together with ``SCHEMA_VERSION``.  The report is built once, at the end of the
pipeline, and nothing patches it afterwards (it is frozen).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

SCHEMA_VERSION = 1
SCHEMA_PATH = Path(__file__).with_name("report.schema.json")
# What can vouch for the written model's outputs (the report's ``verified_by``): TFLM's host
# interpreter (LiteRT as a second opinion), the bit-exact NumPy reference of the whole graph
# (FDT_PARTIAL models: the host build has no such kernel), or nothing to check (the input kept).
VERIFIERS: dict[str, str] = {
    "tflm": "TFLM host interpreter, bit-exact",
    "numpy-reference": "bit-exact NumPy reference; TFLM's host build has no FDT_PARTIAL kernel",
    "input": "the input kept as given",
}


@dataclass(frozen=True)
class PathEntry:
    """One rewrite the tiling search applied (op indices as in the model when it was applied)."""

    kind: str  # "FDT" | "FFMT"
    ops: list[str]  # "index:OP_TYPE"
    op_types: list[str]
    parts: int
    end: str  # "concat" | "partial" | "custom-partial"
    tiles: Optional[list[Any]]  # FFMT: [rows, cols], each a count or a list of tile sizes
    total_before: int
    total_after: int
    mac_overhead_pct: float
    instruction_overhead_pct: float  # cumulative, predicted on the target, vs the original
    channel_parts: int = 1  # FFMT: each tile's channel paths split into this many parts (FDT in the tile)


@dataclass(frozen=True)
class ParetoEntry:
    """A point the search evaluated that no other beats on all of arena (the objective's),
    MAC overhead and predicted instruction overhead."""

    total: int
    head: int
    mac_overhead_pct: float
    n_paths: int
    instruction_overhead_pct: float


@dataclass(frozen=True)
class Attempt:
    """One model the never-worse guard checked, in the order it tried them."""

    variant: str  # the passes applied ("tile,reorder,plan", "none"), or "input" (the input bytes as given)
    head_bytes: Optional[int]
    total_arena_bytes: Optional[int]
    measured: bool  # numbers from TFLM (else the planner's prediction)
    verified: Optional[bool]
    accepted: bool
    note: str = ""
    target_arena_size: Optional[int] = None  # FDT_TENSOR_ARENA_SIZE predicted for the report's target
    instruction_overhead_pct: Optional[float] = None  # predicted on the target, vs the input


@dataclass(frozen=True)
class Fallback:
    """Why the guard did not keep the requested passes' model."""

    from_variant: str
    to_variant: str
    reason: str


@dataclass(frozen=True)
class Guard:
    """Never worse than the input: the kept model's head and total are each <= the input's."""

    measured: bool  # the input's numbers come from TFLM (else predicted: verification off)
    input_head_bytes: int
    input_total_arena_bytes: int
    kept: str  # the variant of the written model (see Attempt.variant)
    attempts: list[Attempt] = field(default_factory=list)
    fallback: Optional[Fallback] = None
    input_target_arena_size: Optional[int] = None  # the input's FDT_TENSOR_ARENA_SIZE on the target
    max_slowdown_pct: Optional[float] = None  # the instruction budget each attempt was held to


@dataclass(frozen=True)
class TargetPrediction:
    """TFLM's arena on a microcontroller target, predicted from TFLM's sources (no run):
    :func:`fdt_tflm.tflm_model.predict_arena` for the input and for the written model."""

    cpu: str
    kernels: str
    abi: str
    original_head_bytes: int
    original_tail_bytes: int
    original_arena_size: int  # FDT_TENSOR_ARENA_SIZE the input would need
    head_bytes: int
    tail_bytes: int
    scratch_bytes: int
    min_working_bytes: int
    arena_size: int  # FDT_TENSOR_ARENA_SIZE for the written model
    unmodelled: list[str]  # op types whose kernel is not in the target's tables (estimates)


@dataclass(frozen=True)
class Report:
    """What one ``optimize`` run did and measured.  ``report["arena_bytes"]`` reads the JSON
    value of a field (nested records as dicts), for notebooks written against the old dict."""

    model: str
    passes: list[str]
    requested_passes: list[str]
    objective: str
    max_overhead_pct: float
    max_slowdown_pct: Optional[float]  # the predicted-instruction budget the search was given; None: no limit
    original_arena_bytes: int
    original_total_arena_bytes: Optional[int]
    original_peak_live_bytes: int
    original_macs: int
    original_operators: int
    arena_bytes: int
    total_arena_bytes: Optional[int]
    tail_bytes: Optional[int]
    predicted_arena_bytes: int
    planned_bytes: int
    peak_live_bytes: int
    optimal: bool
    optimality_gap: Optional[float]
    solve_seconds: float
    schedule_optimal: Optional[bool]
    macs: int
    mac_overhead_pct: float
    # One TFLM invoke on the target (``instructions_for``), predicted per op by
    # fdt_tflm.tflm_model.instructions (fitted to QEMU icount on the device, callgrind on the
    # host): MACs miss the copies tiling adds, small-tile costs and CMSIS-NN's im2col.
    original_instructions: int
    instructions: int
    instruction_overhead_pct: float
    instructions_for: str
    operators: int
    paths: list[PathEntry]
    pareto: list[ParetoEntry]
    search_notes: list[str]  # what the tiling search said: work budgets reached, nothing within the slowdown budget
    needs_custom_kernel: bool
    measured: bool
    verified: Optional[bool]
    verified_by: Optional[str]  # what checked the outputs: one of VERIFIERS, None with verification off
    verification: Optional[dict]
    learned_scratch: list[str]  # what TFLM was probed for: kernels whose scratch no table of ours knows
    guard: Guard
    target: Optional[TargetPrediction]
    seconds: float
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict:
        """The JSON object (plain dicts, lists and scalars)."""
        return _plain(dataclasses.asdict(self))

    def to_json(self, indent: Optional[int] = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    # -- read-only mapping access, for code written against the old report dict ----------
    def __getitem__(self, key: str) -> Any:
        if key not in _FIELD_NAMES:
            raise KeyError(key)
        return self.to_dict()[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if key in _FIELD_NAMES else default

    def keys(self) -> list[str]:
        return list(_FIELD_NAMES)

    def __contains__(self, key: object) -> bool:
        return key in _FIELD_NAMES

    def __iter__(self) -> Iterator[str]:
        return iter(_FIELD_NAMES)


_FIELD_NAMES = tuple(f.name for f in dataclasses.fields(Report))


def _plain(x: Any) -> Any:
    """Tuples (FFMT tile sizes) as lists, recursively, so that to_dict() equals its JSON."""
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def load_schema() -> dict:
    """The JSON Schema of ``Report.to_dict()``."""
    return json.loads(SCHEMA_PATH.read_text())
