#!/usr/bin/env python3
"""Fit the device instruction tables (``fdt_tflm/tflm_model/device_costs.py``) to the per-op
QEMU measurements in ``tests/data/device_op_measurements.json`` (``benchmarks/device_ops.py``
records them), and score the fit on records it never saw.

    python benchmarks/device_fit.py                 # fit on the training split, print both errors
    python benchmarks/device_fit.py --write         # ... and write the tables into device_costs.py

The split is by model: every record of a model in ``HOLDOUT`` (original and rewritten) is
held out; the sweeps and the other models train, and the tables written are that fit's, so
the held-out error is the shipped tables' own.  The error that matters is the predicted
vs measured instruction *overhead* of a rewritten model over its original, in percentage
points: that is what the search and the guard decide on.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fdt_tflm.catalog.ops import info  # noqa: E402
from fdt_tflm.tflm_model import instructions as ins  # noqa: E402

DATA = REPO / "tests" / "data" / "device_op_measurements.json"
TABLES = REPO / "fdt_tflm" / "tflm_model" / "device_costs.py"
# Models whose records the fit never sees (chosen before fitting: one per family of the shared
# models, and our radar example, whose CMSIS-NN overhead started this work).
HOLDOUT = frozenset({"tflm_person_detect_int8.tflite", "mlperf_kws_dscnn_int8.tflite", "radar.tflite"})
Config = tuple[str, str]  # (cpu, kernels)


def _callgrind() -> Any:
    """benchmarks/callgrind.py, for its least-squares helpers and feature lists."""
    if "fdt_callgrind" in sys.modules:
        return sys.modules["fdt_callgrind"]
    spec = importlib.util.spec_from_file_location("fdt_callgrind", REPO / "benchmarks" / "callgrind.py")
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    sys.modules["fdt_callgrind"] = mod
    spec.loader.exec_module(mod)
    return mod


# Which counts each kernel's cost is fitted on, beyond the host's (callgrind.FIT_FEATURES):
# CMSIS-NN's im2col kernel copies every column once per call (``cols``).
DEVICE_FEATURES: dict[str, tuple[str, ...]] = {
    "CONV_2D/kxk": ("invoke", "macs", "cols", "outputs", "pixels", "rows"),
    "CONV_2D/1x1": ("invoke", "macs", "inputs", "outputs", "pixels", "rows"),
    "CONV_2D/1x1s": ("invoke", "macs", "inputs", "outputs", "pixels", "rows"),
    "DEPTHWISE_CONV_2D/3x3": ("invoke", "macs", "taps", "outputs", "pixels", "rows"),
    "DEPTHWISE_CONV_2D/kxk": ("invoke", "macs", "taps", "cols", "outputs", "pixels", "rows"),
    "DEPTHWISE_CONV_2D/mult": ("invoke", "macs", "taps", "outputs", "pixels", "rows"),
}


@dataclass(frozen=True)
class Row:
    """One measured op: its table row, counts and instructions."""

    key: str
    counts: dict[str, float]
    instructions: int


def _shapes(op: dict[str, Any]) -> ins.OpShapes:
    return ins.OpShapes(tuple(tuple(s) for s in op["inputs"]), tuple(tuple(s) for s in op["weights"]),
                        tuple(op["output"]))


def op_key(op: dict[str, Any]) -> str:
    """The table row a recorded op is fitted to (its kernel variant where it has one)."""
    rule = ins.VARIANTS.get(info(op["type"]).cost_variant)
    return f"{op['type']}/{rule(_shapes(op))}" if rule is not None else op["type"]


def load(path: Path = DATA) -> list[dict[str, Any]]:
    return json.loads(path.read_text())["records"] if path.is_file() else []


def configs(records: Iterable[dict[str, Any]]) -> list[Config]:
    return sorted({(r["cpu"], r["kernels"]) for r in records})


def split(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(training, held out): by model, see HOLDOUT."""
    held = [r for r in records if r["model"] in HOLDOUT]
    return [r for r in records if r["model"] not in HOLDOUT], held


def features(key: str, cg: Any) -> tuple[str, ...]:
    if key in DEVICE_FEATURES:
        return DEVICE_FEATURES[key]
    return cg._fit_features(key.split("/")[0])


def fit(records: list[dict[str, Any]], config: Config) -> dict[str, ins.InstructionCost]:
    """One table for ``config`` from its records: per row key, non-negative least squares on
    the op's counts; ``_INTERPRETER`` is the mean of what Invoke runs outside the ops' Evals
    (dispatch included) divided per op and per invoke as a least-squares pair."""
    cg = _callgrind()
    rows: dict[str, list[tuple[dict[str, float], int]]] = {}
    outside: list[tuple[int, int]] = []
    for rec in records:
        if (rec["cpu"], rec["kernels"]) != config:
            continue
        for op in rec["ops"]:
            rows.setdefault(op_key(op), []).append((op["counts"], op["instructions"]))
        outside.append((len(rec["ops"]), rec["instructions_per_inference"] - sum(o["instructions"] for o in rec["ops"])))
    costs = {k: cg._fit_one(features(k, cg), data) for k, data in sorted(rows.items())}
    per_op, fixed = _dispatch(outside)
    costs = {k: _with_dispatch(c, per_op) for k, c in costs.items()}
    costs["_INTERPRETER"] = ins.InstructionCost(invoke=fixed)
    pool = [costs[t] for t in cg.FALLBACK_FROM if t in costs]
    costs["_FALLBACK"] = _with_dispatch(ins.InstructionCost(**{
        f: round(float(np.median([getattr(c, f) for c in pool])), 4) for f in ("outputs", "rows", "inputs")}), per_op) \
        if pool else ins.InstructionCost(invoke=per_op)
    return costs


def _dispatch(outside: list[tuple[int, int]]) -> tuple[float, float]:
    """(per op, per invoke) instructions Invoke spends outside the ops' Evals."""
    if not outside:
        return 0.0, 0.0
    x = np.array([[n, 1.0] for n, _ in outside])
    y = np.array([float(d) for _, d in outside])
    coef = _callgrind().nonneg_lstsq(x, y, np.ones(len(y)))
    return round(float(coef[0]), 4), round(float(coef[1]), 4)


def _with_dispatch(c: ins.InstructionCost, per_op: float) -> ins.InstructionCost:
    """The op's cost including its share of the interpreter's per-op dispatch."""
    return ins.InstructionCost(**{**{f: getattr(c, f) for f in ins.FEATURES}, "invoke": round(c.invoke + per_op, 4)})


def predicted(rec: dict[str, Any], table: dict[str, ins.InstructionCost]) -> int:
    """Instructions of one invoke of a recorded model, predicted from its ops' counts exactly
    as :func:`fdt_tflm.tflm_model.instructions.predict_instructions` predicts the model."""
    return ins.invoke_instructions(table, ((ins.row_key(op["type"], info(op["type"]).cost_variant, _shapes(op), table),
                                            op["counts"]) for op in rec["ops"]))


def overhead_errors(records: list[dict[str, Any]], tables: dict[Config, dict[str, ins.InstructionCost]]
                    ) -> list[tuple[str, str, float, float]]:
    """(config, model, measured overhead %, predicted overhead %) of every rewritten model
    whose original was measured on the same config."""
    base = {(r["cpu"], r["kernels"], r["model"]): r for r in records if r.get("mode") == "original"}
    out = []
    for rec in records:
        b = base.get((rec["cpu"], rec["kernels"], rec["model"]))
        if rec.get("mode") == "original" or b is None:
            continue
        t = tables[(rec["cpu"], rec["kernels"])]
        mo = 100.0 * (rec["instructions_per_inference"] / b["instructions_per_inference"] - 1)
        po = 100.0 * (predicted(rec, t) / predicted(b, t) - 1)
        out.append((f"{rec['cpu']}/{rec['kernels']}", f"{rec['model']} {rec['mode']}", mo, po))
    return out


def total_errors(records: list[dict[str, Any]], tables: dict[Config, dict[str, ins.InstructionCost]]) -> list[float]:
    """Predicted vs measured instructions per invoke, percent, per record."""
    return [100.0 * (predicted(r, tables[(r["cpu"], r["kernels"])]) / r["instructions_per_inference"] - 1)
            for r in records]


def table_text(tables: dict[Config, dict[str, ins.InstructionCost]]) -> str:
    """The DEVICE_COSTS literal."""
    lines = ["DEVICE_COSTS: dict[tuple[str, str], dict[str, InstructionCost]] = {"]
    for (cpu, kernels), costs in sorted(tables.items()):
        lines.append(f"    ({cpu!r}, {kernels!r}): {{")
        for k, c in costs.items():
            args = ", ".join(f"{f}={getattr(c, f)!r}" for f in ins.FEATURES if getattr(c, f))
            lines.append(f"        {json.dumps(k)}: InstructionCost({args}),")
        lines.append("    },")
    return "\n".join(lines + ["}"]) + "\n"


def write_tables(text: str) -> None:
    src = TABLES.read_text()
    start = src.index("DEVICE_COSTS: dict[tuple[str, str], dict[str, InstructionCost]] = ")
    end = src.index("\n}\n", start) + 3
    TABLES.write_text(src[:start] + text + src[end:])


def fit_all(records: list[dict[str, Any]]) -> dict[Config, dict[str, ins.InstructionCost]]:
    return {c: fit(records, c) for c in configs(records)}


def _print_errors(title: str, records: list[dict[str, Any]],
                  tables: dict[Config, dict[str, ins.InstructionCost]]) -> None:
    errs = overhead_errors(records, tables)
    tot = total_errors(records, tables)
    print(f"== {title}: {len(records)} records")
    for cfg, name, mo, po in errs:
        print(f"  {cfg:28s} {name:55s} overhead measured {mo:+7.2f} % predicted {po:+7.2f} % ({po - mo:+.2f} pp)")
    if errs:
        print(f"  worst overhead error {max(abs(p - m) for _, _, m, p in errs):.2f} pp")
    if tot:
        print(f"  worst total error {max(abs(e) for e in tot):.2f} %")


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="write the tables (fitted on the training split only)")
    args = ap.parse_args(argv)
    records = load()
    train, held = split(records)
    tables = fit_all(train)
    _print_errors("fitting error (training records)", train, tables)
    _print_errors("held-out error (records the fit never saw)", held, tables)
    if args.write:
        write_tables(table_text(tables))
        print(f"wrote {TABLES}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
