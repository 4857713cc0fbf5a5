"""The public entry point: ``fdt_tflm.optimize(model) -> Result``.  The CLI is a thin layer over it.

Pipeline: read once -> (tile) -> reorder -> plan -> write once -> verify in TFLM.  A model
whose outputs differ from the original's is never returned as a saveable result.
"""
from __future__ import annotations

import html
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence, Union

from .analysis import check_optimizable, summary
from .errors import FdtError, VerificationError
from .io import load_bytes, read_model, write_model
from .ir.graph import Model
from .ir.macs import graph_macs
from .memory.lifetimes import lifetimes, peak_live

PASSES = ("tile", "reorder", "plan")
DEFAULT_PASSES = ("tile", "reorder", "plan")
ModelSource = Union[str, os.PathLike, bytes, bytearray, Model]
Progress = Callable[[str], None]


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
    report: dict
    original: bytes = b""
    verified: Optional[bool] = None
    source_path: Optional[str] = None
    _original_model: Optional[Model] = field(default=None, repr=False)

    # -- output ------------------------------------------------------------------------------
    def save(self, path: Union[str, os.PathLike], report_path: Union[str, os.PathLike, None] = None) -> None:
        """Write the model atomically (temp file + rename).  Never overwrites the input."""
        if self.verified is False:
            raise VerificationError("refusing to write a model that failed verification")
        path = os.fspath(path)
        if self.source_path and os.path.exists(path) and os.path.samefile(path, self.source_path):
            raise FdtError(f"{path}: refusing to overwrite the input model; choose another -o")
        atomic_write(path, self.data)
        if report_path is not None:
            atomic_write(os.fspath(report_path), (self.to_json() + "\n").encode())

    def to_json(self, indent: int = 2) -> str:
        return json.dumps(self.report, indent=indent, sort_keys=False)

    def summary(self) -> str:
        r = self.report
        lines = [f"fdt-tflm: {r.get('model', 'model')}"]
        lines.append(f"  arena head : {r['original_arena_bytes']:>9,} B -> {r['arena_bytes']:>9,} B "
                     f"({_pct(r['original_arena_bytes'], r['arena_bytes'])})")
        if r.get("total_arena_bytes") is not None and r.get("original_total_arena_bytes") is not None:
            lines.append(f"  arena total: {r['original_total_arena_bytes']:>9,} B -> {r['total_arena_bytes']:>9,} B "
                         f"({_pct(r['original_total_arena_bytes'], r['total_arena_bytes'])})")
        lines.append(f"  peak live bound {r['peak_live_bytes']:,} B; planned {r['planned_bytes']:,} B"
                     f"{' (optimal)' if r.get('optimal') else ''}")
        lines.append(f"  MACs {r['macs']:,} (+{r['mac_overhead_pct']:.2f} %)")
        for p in r.get("paths", []):
            lines.append(f"  {p['kind']} x{p['parts']}: {' -> '.join(p['ops'])}")
        v = r.get("verified")
        objective = f" (objective: {r['objective']})" if "tile" in r["passes"] and r.get("objective") else ""
        lines.append(f"  verified in TFLM: {'yes, bit-exact' if v else ('skipped' if v is None else 'NO')}"
                     f"; passes: {','.join(r['passes']) or 'none'}{objective}; {r['seconds']:.1f} s")
        if r.get("needs_custom_kernel"):
            lines.append("  needs the bundled FDT_PARTIAL kernel (firmware_template/fdt_kernels)")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        r = self.report
        rows = [("arena head (B)", r["original_arena_bytes"], r["arena_bytes"]),
                ("arena total (B)", r.get("original_total_arena_bytes"), r.get("total_arena_bytes")),
                ("MACs", r.get("original_macs"), r["macs"])]
        body = "".join(f"<tr><td>{html.escape(k)}</td><td>{'' if a is None else f'{a:,}'}</td>"
                       f"<td>{'' if b is None else f'{b:,}'}</td></tr>" for k, a, b in rows)
        paths = "".join(f"<li>{p['kind']} &times;{p['parts']}: {html.escape(' → '.join(p['ops']))}</li>"
                        for p in r.get("paths", []))
        return (f"<div><b>fdt-tflm</b> {html.escape(str(r.get('model', '')))}<table><tr><th></th><th>original</th>"
                f"<th>optimised</th></tr>{body}</table><ul>{paths}</ul>verified: {r.get('verified')}</div>")

    def plot(self, path: Union[str, os.PathLike, None] = None):
        """Memory over time before and after, plus the arena layout; returns a matplotlib Figure."""
        from .plot import plot_result
        return plot_result(self, path)


def _pct(a: Optional[int], b: Optional[int]) -> str:
    if not a or b is None:
        return "n/a"
    return f"{(b - a) / a * 100:+.1f} %"


def atomic_write(path: str, data: bytes) -> None:
    """Write via a temp file in the same folder, then rename: never a half-written output."""
    d = os.path.dirname(os.path.abspath(path)) or "."
    if not os.path.isdir(d):
        raise FdtError(f"{path}: folder {d} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=".fdt_tflm_", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _stderr_progress() -> Optional[Progress]:
    if not sys.stderr.isatty():
        return None
    return lambda msg: print(f"\r\033[K{msg}", end="", file=sys.stderr, flush=True)


MIN_SEARCH_BUDGET = 10.0  # seconds left for the recomputing search after the zero-overhead one


def optimize(source: ModelSource, passes: Union[str, Sequence[str], None] = None, max_overhead: float = 0.0,
             verify: bool = True, allow_custom_ops: bool = False, time_limit: float = 5.0,
             search_budget: float = 45.0, samples: int = 5, progress: Union[Progress, bool, None] = None,
             litert: bool = True, objective: str = "total") -> Result:
    """Optimise a TFLite model for TFLM.

    ``source``: a path, the model bytes or an IR Model.  ``passes``: any of tile, reorder,
    plan (default all; "none" re-serialises only).  ``max_overhead``: MAC budget in percent
    for spatial tiling (0 = no recomputation).  ``verify``: run both models in TFLM (and
    LiteRT) and refuse a result whose outputs differ.  ``search_budget``: seconds for the
    tiling search (at a budget above 0, shared by the zero-overhead and the recomputing
    search).  ``objective``: what the tiling search minimises, "total" (TFLM head +
    persistent tail) or "head" (the activation arena, with the total kept at or below what
    reorder + plan alone give).
    """
    t0 = time.perf_counter()
    if progress is True or progress is None:
        progress = _stderr_progress() if progress is None else (lambda m: print(m, file=sys.stderr))
    source_path = None
    if isinstance(source, Model):
        original = write_model(source)
    else:
        if not isinstance(source, (bytes, bytearray, memoryview)):
            source_path = os.fspath(source)
        original = load_bytes(source)
    label = os.path.basename(source_path) if source_path else "input"
    original_model = read_model(original) if source_path is None else _read_labelled(original, source_path)
    model = original_model  # passes are pure: they copy, never mutate their input
    steps = parse_passes(passes)
    if steps:
        check_optimizable(model)
    tflm_ref = _run_original(original_model, original, samples) if verify else None
    orig_info = summary(original_model)
    orig_macs = graph_macs(original_model.main)
    report: dict = {"model": label, "passes": list(steps),
                    "max_overhead_pct": max_overhead, "objective": objective}
    paths: list[dict] = []
    pareto: list[dict] = []
    needs_custom = False

    if "tile" in steps:
        from .tiling.search import score, search
        sr0 = None
        budget = search_budget
        if max_overhead > 0:
            # the search is greedy: a recomputing first step can lead somewhere worse than the
            # zero-overhead result, which a larger budget must never be.  That (fast) search runs
            # first; both share ``search_budget``.
            t_s = time.perf_counter()
            sr0 = search(model, max_overhead=0.0, time_budget=search_budget, progress=progress,
                         allow_custom_ops=allow_custom_ops, objective=objective)
            budget = max(MIN_SEARCH_BUDGET, search_budget - (time.perf_counter() - t_s))
        sr = search(model, max_overhead=max_overhead, time_budget=budget, progress=progress,
                    allow_custom_ops=allow_custom_ops, objective=objective)
        if sr0 is not None and score(sr0.final, objective) <= score(sr.final, objective):
            sr = sr0
        model = sr.model
        paths = [_path_dict(p) for p in getattr(sr, "paths", [])]
        pareto = [dict(p) if isinstance(p, dict) else _obj_dict(p) for p in getattr(sr, "pareto", [])]
    schedule = None
    plan_report = None
    if "reorder" in steps and "plan" in steps:
        from .memory.passes import reorder_and_plan
        model, schedule, plan_report = reorder_and_plan(model, time_limit=time_limit)
    elif "reorder" in steps:
        from .memory.passes import reorder
        model, schedule = reorder(model, time_limit=time_limit)
    elif "plan" in steps:
        from .memory.passes import plan
        model, plan_report = plan(model, time_limit=time_limit)
    if progress:
        progress("writing and verifying ...")
    data = write_model(model)
    model = read_model(data)
    needs_custom = any(oc.custom_code == b"FDT_PARTIAL" for oc in model.operator_codes)
    info = summary(model)
    ivs = lifetimes(model.main)
    report.update({
        "original_arena_bytes": orig_info["tflm_default_arena_bytes"],
        "arena_bytes": info["predicted_head_bytes"],
        "predicted_arena_bytes": info["predicted_head_bytes"],
        "planned_bytes": plan_report.planned_bytes if plan_report else info["predicted_head_bytes"],
        "peak_live_bytes": plan_report.peak_live_bytes if plan_report else peak_live(ivs),
        "original_peak_live_bytes": orig_info["peak_live_bytes"],
        "optimal": bool(plan_report.optimal) if plan_report else False,
        "optimality_gap": float(plan_report.gap) if plan_report else None,
        "solve_seconds": round(float(plan_report.solve_seconds), 3) if plan_report else 0.0,
        "schedule_optimal": bool(schedule.optimal) if schedule is not None else None,
        "original_total_arena_bytes": None,
        "total_arena_bytes": None,
        "original_macs": orig_macs,
        "macs": graph_macs(model.main),
        "paths": paths,
        "pareto": pareto,
        "needs_custom_kernel": needs_custom,
        "operators": info["operators"],
        "original_operators": orig_info["operators"],
        "measured": False,
        "verified": None,
    })
    report["mac_overhead_pct"] = round((report["macs"] - orig_macs) / orig_macs * 100, 3) if orig_macs else 0.0
    verified: Optional[bool] = None
    if verify:
        verified = _verify(report, original_model, original, model, data, samples, litert, needs_custom, tflm_ref)
    report["seconds"] = round(time.perf_counter() - t0, 3)
    if progress:
        progress("")
        if sys.stderr.isatty():
            print("\r\033[K", end="", file=sys.stderr)
    res = Result(model, data, report, original, verified, source_path, original_model)
    if verified is False:
        raise VerificationError(f"the optimised model's outputs differ from the original's in TFLM "
                                f"({report.get('verification', {}).get('tflm', {}).get('note', 'mismatch')}); "
                                f"nothing written")
    return res


def _read_labelled(data: bytes, path: str) -> Model:
    try:
        return read_model(data)
    except FdtError as e:
        raise FdtError(str(e).replace("input:", f"{path}:", 1)) from None


def _run_original(original_model: Model, original: bytes, samples: int):
    """Run the input in TFLM before any pass: a model TFLM cannot run is bad input (exit 2),
    and the outputs are the reference the optimised model must reproduce."""
    from .verify import make_inputs, run, runtime_available
    if not runtime_available("tflm"):
        raise FdtError("verification needs the TFLM host interpreter: pip install 'fdt-tflm[verify]' "
                       "(or pass --no-verify)")
    ref = run(original, make_inputs(original_model, samples))
    if not ref.ok:
        raise FdtError(f"TFLM cannot run the input model: {ref.error}")
    return ref


def _verify(report: dict, original_model: Model, original: bytes, model: Model, data: bytes, samples: int,
            litert: bool, needs_custom: bool, tflm_ref=None) -> bool:
    from .verify import compare_models
    if needs_custom:
        from .tiling.partial import verify_custom
        ok, details = verify_custom(original, model, samples)
        report["verification"] = details.to_dict()
        report["verified"] = bool(ok)
        # TFLM's host interpreter has no FDT_PARTIAL kernel: the arena is predicted, not measured
        from .memory.tail import predict_tail
        report["tail_bytes"] = predict_tail(model)
        report["total_arena_bytes"] = report["arena_bytes"] + report["tail_bytes"]
        ref = tflm_ref
        if ref is not None and ref.head is not None:
            report["original_arena_bytes"], report["original_total_arena_bytes"] = ref.head, ref.total
        return bool(ok)
    cmp = compare_models(original_model, original, data, n_samples=samples, litert=litert, tflm_ref=tflm_ref)
    report["verification"] = cmp.to_dict()
    if cmp.tflm.a is not None and cmp.tflm.a.head is not None:
        report["original_arena_bytes"] = cmp.tflm.a.head
        report["original_total_arena_bytes"] = cmp.tflm.a.total
    if cmp.tflm.b is not None and cmp.tflm.b.head is not None:
        report["arena_bytes"] = cmp.tflm.b.head
        report["total_arena_bytes"] = cmp.tflm.b.total
        report["tail_bytes"] = cmp.tflm.b.tail
        report["measured"] = True
    if not cmp.tflm.ran_a:
        raise FdtError(f"TFLM cannot run the input model: {cmp.tflm.note}")
    report["verified"] = bool(cmp.ok)
    return bool(cmp.ok)


def _obj_dict(o) -> dict:
    from dataclasses import asdict, is_dataclass
    return asdict(o) if is_dataclass(o) else dict(vars(o))


def _path_dict(p) -> dict:
    d = p if isinstance(p, dict) else _obj_dict(p)
    ops = list(d.get("ops", []))
    types = list(d.get("op_types", []))
    named = [f"{i}:{t}" for i, t in zip(ops, types)] if len(types) == len(ops) else [str(x) for x in ops]
    return {"kind": d.get("kind", "FDT"), "ops": named,
            "parts": d.get("parts", d.get("tiles")), **{k: v for k, v in d.items()
                                                      if k not in ("kind", "ops", "parts") and _jsonable(v)}}


def _jsonable(v) -> bool:
    try:
        json.dumps(v)
        return True
    except (TypeError, ValueError):
        return False
