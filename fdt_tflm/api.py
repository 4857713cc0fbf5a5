"""The public entry point: ``fdt_tflm.optimize(model) -> Result``.  The CLI is a thin layer over it.

The steps live in :mod:`fdt_tflm.pipeline`; the report is :class:`fdt_tflm.report.Report`.
A model whose outputs differ from the original's is never returned as a saveable result,
and a result is never worse than its input (head and total, measured by TFLM).
"""
from __future__ import annotations

import html
import os
import sys
import warnings
from dataclasses import dataclass, field
from typing import Optional, Sequence, Union

from .effort import DEFAULT_LEVEL, effort as effort_budgets
from .errors import FdtError, VerificationError
from .io.atomic import atomic_write, write_all  # noqa: F401  (atomic_write re-exported for callers)
from .ir.graph import Model
from .pipeline import DEFAULT_PASSES, PASSES, ModelSource, Options, Progress, run, stderr_progress
from .report import VERIFIERS, Report
from .tflm_model.target import CORTEX_M4, Target, target_for

__all__ = ["optimize", "Result", "parse_passes", "PASSES", "DEFAULT_PASSES", "ModelSource", "Progress"]


def parse_passes(spec: Union[str, Sequence[str], None]) -> tuple[str, ...]:
    """``"reorder,plan"`` -> ("reorder", "plan"); ``"none"`` -> (); None -> the default."""
    if spec is None:
        return DEFAULT_PASSES
    items = [p.strip().lower() for p in (spec.split(",") if isinstance(spec, str) else spec) if p.strip()]
    if items in (["none"], []):
        return ()
    bad = [p for p in items if p not in PASSES]
    if bad:
        raise FdtError(f"unknown pass {bad[0]!r}; choose from {', '.join(PASSES)} or 'none'")
    return tuple(p for p in PASSES if p in items)  # canonical order: tile before reorder before plan


@dataclass
class Result:
    """An optimised model with its report.  ``save()`` refuses a model that failed verification."""

    model: Model
    data: bytes
    report: Report
    original: bytes = b""
    verified: Optional[bool] = None
    source_path: Optional[str] = None
    _original_model: Optional[Model] = field(default=None, repr=False)
    target: Target = CORTEX_M4  # the TFLM build everything was priced for (optimize's cpu=, kernels=)

    # -- output ------------------------------------------------------------------------------
    def save(self, path: Union[str, os.PathLike], report_path: Union[str, os.PathLike, None] = None) -> None:
        """Write the model (and the report) atomically, both or neither; never over the input."""
        if self.verified is False:
            raise VerificationError("refusing to write a model that failed verification")
        files = {os.fspath(path): self.data}
        if report_path is not None:
            files[os.fspath(report_path)] = (self.to_json() + "\n").encode()
        write_all(files, protect=[self.source_path] if self.source_path else [])

    def to_json(self, indent: int = 2) -> str:
        return self.report.to_json(indent)

    def summary(self) -> str:
        r = self.report
        lines = [f"fdt-tflm: {r.model}",
                 f"  arena head : {r.original_arena_bytes:>9,} B -> {r.arena_bytes:>9,} B "
                 f"({_pct(r.original_arena_bytes, r.arena_bytes)})"]
        if r.total_arena_bytes is not None and r.original_total_arena_bytes is not None:
            lines.append(f"  arena total: {r.original_total_arena_bytes:>9,} B -> {r.total_arena_bytes:>9,} B "
                         f"({_pct(r.original_total_arena_bytes, r.total_arena_bytes)})")
        lines.append(f"  peak live bound {r.peak_live_bytes:,} B; planned {r.planned_bytes:,} B"
                     f"{' (optimal)' if r.optimal else ''}")
        budget = "" if "tile" not in r.passes else \
            ("; no slowdown budget" if r.max_slowdown_pct is None else f"; slowdown budget {r.max_slowdown_pct:g} %")
        lines.append(f"  MACs {r.macs:,} (+{r.mac_overhead_pct:.2f} %); instructions per invoke "
                     f"{r.original_instructions:,} -> {r.instructions:,} ({r.instruction_overhead_pct:+.2f} %, "
                     f"predicted for {r.instructions_for}{budget})")
        if "tile" in r.passes and not r.paths and r.max_slowdown_pct is not None and _slowdown_note(r):
            lines.append(f"  {_slowdown_note(r)}")
        lines += [f"  {p.kind} x{p.parts}{_inside(p)}: {' -> '.join(p.ops)}" for p in r.paths]
        v = r.verified
        objective = f" (objective: {r.objective})" if "tile" in r.passes else ""
        by = f" ({VERIFIERS[r.verified_by]})" if v and r.verified_by else ""
        lines.append(f"  verified: {'yes' if v else ('skipped' if v is None else 'NO')}{by}"
                     f"; passes: {','.join(r.passes) or 'none'}{objective}; {r.seconds:.1f} s")
        lines.append("  " + _guard_line(r))
        if r.target is not None:
            t = r.target
            lines.append(f"  {t.cpu}, {t.kernels} kernels (predicted): arena {t.original_arena_size:,} B -> "
                         f"{t.arena_size:,} B ({_pct(t.original_arena_size, t.arena_size)})")
        if r.learned_scratch:
            lines.append(f"  kernel scratch learned from TFLM: {'; '.join(r.learned_scratch)}")
        if r.needs_custom_kernel:
            lines.append("  needs the bundled FDT_PARTIAL kernel (firmware_template/fdt_kernels)")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        r = self.report
        rows = [("arena head (B)", r.original_arena_bytes, r.arena_bytes),
                ("arena total (B)", r.original_total_arena_bytes, r.total_arena_bytes),
                ("MACs", r.original_macs, r.macs)]
        body = "".join(f"<tr><td>{html.escape(k)}</td><td>{'' if a is None else f'{a:,}'}</td>"
                       f"<td>{'' if b is None else f'{b:,}'}</td></tr>" for k, a, b in rows)
        paths = "".join(f"<li>{p.kind} &times;{p.parts}: {html.escape(' → '.join(p.ops))}</li>" for p in r.paths)
        return (f"<div><b>fdt-tflm</b> {html.escape(r.model)}<table><tr><th></th><th>original</th>"
                f"<th>optimised</th></tr>{body}</table><ul>{paths}</ul>verified: {r.verified}<br>"
                f"{html.escape(_guard_line(r))}</div>")

    def plot(self, path: Union[str, os.PathLike, None] = None):
        """Memory over time before and after, plus the arena layout; returns a matplotlib Figure
        (also written to ``path``, atomically, if given)."""
        from .plot import plot_result
        return self._drawn(plot_result(self), path)

    def plot_pareto(self, path: Union[str, os.PathLike, None] = None):
        """The tiling search's Pareto front (arena vs MAC overhead and vs predicted instruction
        overhead, the chosen point highlighted); returns a matplotlib Figure (also written to
        ``path``, atomically, if given; the format follows its extension)."""
        from .plot import plot_pareto
        return self._drawn(plot_pareto(self.report), path)

    def _drawn(self, fig, path: Union[str, os.PathLike, None]):
        """Write ``fig`` to ``path`` whole or not at all, never over the input."""
        if path is not None:
            from .plot import figure_bytes
            write_all({os.fspath(path): figure_bytes(fig, path)},
                      protect=[self.source_path] if self.source_path else [])
        return fig


def check_slowdown(pct: Optional[float]) -> Optional[float]:
    """``max_slowdown`` as given, if it is None or a percentage >= 0 (ValueError otherwise)."""
    if pct is not None and not pct >= 0:  # `not >=`: NaN is refused too
        raise ValueError(f"max_slowdown must be a percentage >= 0 or None, not {pct!r}")
    return pct


def _pct(a: Optional[int], b: Optional[int]) -> str:
    if not a or b is None:
        return "n/a"
    return f"{(b - a) / a * 100:+.1f} %"


def _inside(p) -> str:
    """A spatial tiling's channel split inside every tile, in words (empty without one)."""
    return f" (each tile's channel paths x{p.channel_parts})" if p.channel_parts > 1 else ""


def _slowdown_note(r: Report) -> str:
    """Says so when the search kept no rewrite because every one cost more run time than the
    budget allowed (the memory that is free, reorder and plan, is still taken)."""
    notes = [n for n in r.search_notes if n.startswith("no rewrite within")]
    return notes[0] if notes else ""


def _guard_line(r: Report) -> str:
    """One line: was the requested result kept, and on what evidence."""
    g = r.guard
    if g.fallback is not None:
        return (f"never worse than the input: fell back from {g.fallback.from_variant} to {g.fallback.to_variant} "
                f"({g.fallback.reason})")
    if g.attempts[-1].measured:
        basis = "measured by TFLM"
    elif r.needs_custom_kernel:
        basis = "predicted: TFLM's host build has no FDT_PARTIAL kernel"
    else:
        basis = "predicted: verification off"
    return f"never worse than the input: head and total <= the input's ({basis})"


def optimize(source: ModelSource, passes: Union[str, Sequence[str], None] = None, max_overhead: float = 0.0,
             verify: bool = True, allow_custom_ops: bool = False, *, samples: int = 5,
             progress: Union[Progress, bool, None] = None,
             litert: bool = True, objective: str = "total", effort: int = DEFAULT_LEVEL,
             max_slowdown: Optional[float] = None, cpu: str = "cortex-m4", kernels: str = "reference",
             target: Optional[Target] = None, time_limit: Optional[float] = None,
             search_budget: Optional[float] = None) -> Result:
    """Optimise a TFLite model for TFLM.

    ``source``: a path, the model bytes or an IR Model.  ``passes``: any of tile, reorder,
    plan (default all; "none" re-serialises only).  ``max_overhead``: MAC budget in percent
    for spatial tiling (0 = no recomputation).  ``verify``: run both models in TFLM (and
    LiteRT) and refuse a result whose outputs differ.  ``effort``: 1..5 (default 2), how much
    work the search, scheduler and planner may do, counted, never timed: the same input gives
    the same bytes on any machine (ValueError outside 1..5).  ``time_limit`` and
    ``search_budget`` (seconds) are deprecated: a DeprecationWarning, then ignored.  ``cpu`` / ``kernels`` (or
    ``target``, a :class:`fdt_tflm.tflm_model.Target`): the TFLM build the model is for; the
    search prices its tail, kernel scratch and instructions, the planner reserves its scratch,
    the guard and the report predict for it (FdtError for an unknown CPU).  ``objective``: what the tiling
    search minimises, "total" (TFLM head + persistent tail) or "head" (the activation arena,
    with the total kept at or below the input's as TFLM runs it).  ``max_slowdown``: the
    tiling search's budget of predicted extra instructions per invoke on the target, percent
    of the input's (:mod:`fdt_tflm.tflm_model.instructions`; None: the default, 1 %, FDT's
    zero-overhead promise; ``math.inf``: no limit; ValueError if negative).  If the
    result's head or total would exceed the input's, fewer passes are applied
    (``report.guard`` says which and why).
    """
    for name, value in (("time_limit", time_limit), ("search_budget", search_budget)):
        if value is not None:
            warnings.warn(f"optimize({name}=) is deprecated and ignored: work is bounded by effort=1..5, "
                          "never by seconds", DeprecationWarning, stacklevel=2)
    effort_budgets(effort)  # a bad level fails here, before any work
    check_slowdown(max_slowdown)
    if progress is True or progress is None:
        progress = stderr_progress() if progress is None else (lambda m: print(m, file=sys.stderr))
    opts = Options(parse_passes(passes), max_overhead, verify, allow_custom_ops, samples=samples, litert=litert,
                   objective=objective, progress=progress or None, effort=effort, max_slowdown=max_slowdown,
                   target=target or target_for(cpu, kernels))
    out = run(source, opts)
    return Result(out.kept.candidate.model, out.kept.candidate.data, out.report, out.source.data,
                  out.kept.verified, out.source.path, out.source.model, opts.target)
