#!/usr/bin/env python3
"""The benchmark behind the README's results table.

For every model in models/ and ../shared/models: TFLM's default arena (head and total,
measured), then reorder+plan, then tiling at 0 % MAC overhead (FDT), then with spatial
tiling allowed at <= 10 % and <= 30 % MAC overhead, then the head objective at <= 30 %, all
for the default target (a Cortex-M4 with TFLM's reference kernels), and the default search
for a Cortex-M4 with CMSIS-NN; each optimised model is verified in TFLM (bit-exact) and its
head/total are TFLM's measurements.  Every run keeps its wall seconds and MAC and predicted
instruction overheads (the report's, for the run's target).  The instructions measured on the
device come from ``tests/data/device_measurements.json`` (``benchmarks/device_record.py``:
QEMU icount with the device's TFLM), matched by the output's sha256.

    python benchmarks/bench.py                 # print the table
    python benchmarks/bench.py --readme        # also write it into README.md
    python benchmarks/bench.py --json out.json --models kws,mlperf_vww_mbv1_96_int8
    python benchmarks/bench.py --from-json benchmarks/results.json --readme   # table only
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fdt_tflm.api import optimize  # noqa: E402
from fdt_tflm.errors import FdtError  # noqa: E402
from fdt_tflm.io import read_model  # noqa: E402
from fdt_tflm.tflm_model import predict_arena, target_for  # noqa: E402

SHARED = REPO.parent / "shared" / "models"
MARK_BEGIN, MARK_END = "<!-- bench:begin -->", "<!-- bench:end -->"
DEVICE_DATA = REPO / "tests" / "data" / "device_measurements.json"

CONFIGS = [  # (column, passes, max_overhead %, custom ops, objective, kernels)
    ("reorder+plan", "reorder,plan", 0.0, False, "total", "reference"),
    ("FDT 0 %", "tile,reorder,plan", 0.0, False, "total", "reference"),
    ("FFMT <=10 %", "tile,reorder,plan", 10.0, False, "total", "reference"),
    ("FFMT <=30 %", "tile,reorder,plan", 30.0, False, "total", "reference"),
    ("head <=30 %", "tile,reorder,plan", 30.0, False, "head", "reference"),
    ("head 0 %", "tile,reorder,plan", 0.0, False, "head", "reference"),
    ("head <=10 %", "tile,reorder,plan", 10.0, False, "head", "reference"),
    ("CMSIS-NN 0 %", "tile,reorder,plan", 0.0, False, "total", "cmsis-nn"),
    ("custom ops", "tile,reorder,plan", 0.0, True, "total", "reference"),
]
STOCK = [c for c in CONFIGS if not c[3] and c[4] == "total" and c[5] == "reference"]
# The device record (mode, kernels) that measured a run's output, if its bytes are the same.
DEVICE_RUNS = {"FDT 0 %": ("optimized", "reference"), "head <=30 %": ("head30", "reference"),
               "CMSIS-NN 0 %": ("optimized", "cmsis-nn")}
DEVICE_KERNELS = ("reference", "cmsis-nn")  # the Cortex-M4 header columns
# The head objective against the default (total objective) at the same MAC budget: its head
# must never be larger (issue #17).
HEAD_VS_DEFAULT = (("head 0 %", "FDT 0 %"), ("head <=10 %", "FFMT <=10 %"), ("head <=30 %", "FFMT <=30 %"))
# Reach and speed goals (issue #17): model stem -> (run, goal head bytes or None, goal seconds,
# extra MAC budget %).  "head <=15 %" runs only for these models.
GOALS = {"mobilenet_v2_224": ("head <=15 %", 250_000, 60.0, 15.0),
         "mobilenet_v2_224_pytorch": ("head <=15 %", 250_000, 60.0, 15.0),
         "mlperf_vww_mbv1_96_int8": ("head <=30 %", 39_648, 10.0, 30.0),
         "tflm_person_detect_int8": ("head <=30 %", 23_600, 10.0, 30.0),
         "mlperf_ic_resnet8_int8": ("head <=30 %", 32_768, 10.0, 30.0),
         "mobilenet_v1_025_128_float": ("head <=30 %", None, 60.0, 30.0)}
REACH_RUN = ("head <=15 %", "tile,reorder,plan", 15.0, False, "head", "reference")
EXTRA_DIR = Path(os.environ.get("TMPDIR", "/tmp")) / "fdt-bench-models"


def m4_headers(model) -> dict:
    """FDT_TENSOR_ARENA_SIZE for a Cortex-M4 per kernel set (the target model; checked against QEMU in
    tests/data/device_measurements.json)."""
    return {k: predict_arena(model, target_for("cortex-m4", k)).header for k in DEVICE_KERNELS}


def model_paths(only: set[str] | None) -> list[Path]:
    """models/, ../shared/models, and the builder's on-demand models (other exporters' forms)."""
    paths = sorted((REPO / "models").glob("*.tflite"))
    if SHARED.is_dir():
        paths += sorted(SHARED.glob("*.tflite"))
    return [p for p in paths if not only or p.stem in only] + extra_models(only)


def extra_models(only: set[str] | None) -> list[Path]:
    """``models/build_models.py``'s EXTRA_MODELS, written once to EXTRA_DIR (deterministic bytes)."""
    sys.path.insert(0, str(REPO / "models"))
    from build_models import EXTRA_MODELS
    from fdt_tflm.io import write_model
    EXTRA_DIR.mkdir(parents=True, exist_ok=True)
    out = []
    for name, build in EXTRA_MODELS.items():
        if only and name not in only:
            continue
        path = EXTRA_DIR / f"{name}.tflite"
        data = write_model(build())
        if not path.is_file() or path.read_bytes() != data:
            path.write_bytes(data)
        out.append(path)
    return out


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def bench_one(path: Path) -> dict:
    """Every configuration on one model."""
    row: dict = {"model": path.stem, "runs": {}, "m4_header": m4_headers(read_model(str(path))),
                 "source": str(path), "sha256": sha256(path.read_bytes())}
    extra = [REACH_RUN] if GOALS.get(path.stem, ("",))[0] == REACH_RUN[0] else []
    for name, passes, overhead, custom, objective, kernels in CONFIGS + extra:
        try:
            res = optimize(str(path), passes=passes, max_overhead=overhead, allow_custom_ops=custom, progress=False,
                           objective=objective, kernels=kernels)
        except FdtError as e:
            row["runs"][name] = {"error": str(e)}
            continue
        r = res.report  # fdt_tflm.report.Report
        row.setdefault("default_head", r.original_arena_bytes)
        row.setdefault("default_total", r.original_total_arena_bytes)
        fb = r.guard.fallback
        row["runs"][name] = {"head": r.arena_bytes, "total": r.total_arena_bytes,
                             "mac_overhead_pct": r.mac_overhead_pct, "seconds": round(r.seconds, 2),
                             "instructions": r.instructions, "original_instructions": r.original_instructions,
                             "instruction_overhead_pct": r.instruction_overhead_pct,
                             "instructions_for": r.instructions_for, "search_notes": r.search_notes,
                             "target_header": r.target.arena_size if r.target else None,
                             "sha256": sha256(res.data),
                             "bit_exact": bool(r.verified), "optimal": r.optimal,
                             "peak_live": r.peak_live_bytes, "paths": r.to_dict()["paths"],
                             "custom": r.needs_custom_kernel, "m4_header": m4_headers(res.model),
                             "fallback": None if fb is None else f"{fb.from_variant} -> {fb.to_variant}: {fb.reason}"}
    return row


def add_device(rows: list[dict]) -> None:
    """The instruction overhead measured on the device for the runs of DEVICE_RUNS whose
    output bytes a device record measured (and whose input was measured with the same kernels)."""
    if not DEVICE_DATA.is_file():
        return
    recs = json.loads(DEVICE_DATA.read_text())["records"]
    by = {(r["model"], r["mode"], r["kernels"]): r for r in recs if r.get("cpu") == "cortex-m4" and r.get("ran")}
    for row in rows:
        name = Path(row["source"]).name
        for run, (mode, kernels) in DEVICE_RUNS.items():
            x, rec, base = row["runs"].get(run, {}), by.get((name, mode, kernels)), by.get((name, "original", kernels))
            if rec is None or base is None or rec["model_sha256"] != x.get("sha256"):
                continue
            x["device"] = {"original_instructions": base["instructions_per_inference"],
                           "instructions": rec["instructions_per_inference"], "header": rec["header_arena_bytes"],
                           "instruction_overhead_pct": round(100.0 * (rec["instructions_per_inference"]
                                                                      / base["instructions_per_inference"] - 1), 3)}


def _m4(x: dict) -> str:
    h = x.get("m4_header") if x else None
    return f"{h['reference']:,} / {h['cmsis-nn']:,}" if h else "-"


def _cell(x: dict, key: str = "head") -> str:
    if not x:
        return "-"
    if "error" in x:
        return "error"
    return f"{x[key]:,}" if x.get(key) is not None else "-"


def _pct(x: dict, key: str = "instruction_overhead_pct") -> str:
    v = x.get(key) if x else None
    return "-" if v is None else f"{round(v, 2) + 0.0:+.2f} %"  # + 0.0: no "-0.00"


def _instr(x: dict) -> str:
    """Predicted / device-measured instruction overhead of a run (on its target)."""
    return f"{_pct(x)} / {_pct(x.get('device') or {})}"


def tiling_row(r: dict) -> str:
    cells = [r["model"], f"{r.get('default_head', 0):,} / {r.get('default_total') or 0:,}"]
    for name, *_ in STOCK:
        x = r["runs"].get(name, {})
        cells.append("error" if "error" in x else f"{x['head']:,} / {x['total']:,}")
    ten, thirty = r["runs"].get("FFMT <=10 %", {}), r["runs"].get("FFMT <=30 %", {})
    fdt = r["runs"].get("FDT 0 %", {})
    cells.append(f"{ten.get('mac_overhead_pct', 0):.1f} % / {thirty.get('mac_overhead_pct', 0):.1f} %")
    cells.append(" / ".join(_pct(x) for x in (fdt, ten, thirty)))
    cells.append(_pct(fdt.get("device") or {}))
    cells.append(f"{fdt.get('seconds', 0):.1f} / {thirty.get('seconds', 0):.1f}")
    stock = [r["runs"].get(c[0], {}) for c in STOCK]
    cells.append("yes" if all(x.get("bit_exact") for x in stock if "error" not in x) else "NO")
    cells.append(_m4(fdt))
    return "| " + " | ".join(cells) + " |"


def table(rows: list[dict]) -> str:
    """Four tables: planning only, tiling under MAC budgets, the head objective, exact int8 partial sums."""
    out = ["**Without touching an op** (`--passes reorder,plan`): bytes of TFLM's arena head.", "",
           "| model | TFLM default | reorder+plan | peak-live bound | ILP optimal | seconds | "
           "Cortex-M4 header, input (ref / CMSIS-NN) | Cortex-M4 header, reorder+plan |",
           "|---|---:|---:|---:|:-:|---:|---:|---:|"]
    for r in rows:
        x = r["runs"].get("reorder+plan", {})
        out.append(f"| {r['model']} | {r.get('default_head', 0):,} | {_cell(x)} | {_cell(x, 'peak_live')} | "
                   f"{'yes' if x.get('optimal') else 'no'} | {x.get('seconds', 0):.1f} | {_m4(r)} | {_m4(x)} |")
    out += ["", "**Tiling for a Cortex-M4 with TFLM's reference kernels** (the default target; default "
            "passes `tile,reorder,plan`, stock TFLM ops only, default slowdown budget: 1 % plus the MAC "
            "budget): head / total (total = head + persistent tail), measured by TFLM's 64-bit host "
            "interpreter; the search minimises the total with the tail, scratch and instructions priced "
            "for the Cortex-M4. Instruction overhead of one invoke: predicted by the report for the "
            "Cortex-M4 (`instruction_overhead_pct`), and at 0 % as measured on the Cortex-M4 (QEMU, "
            "`device-run`). The last column is the firmware header for a Cortex-M4 (predicted; checked in "
            "QEMU, see below).", ""]
    hdr = ["model", "TFLM default"] + [c[0] for c in STOCK] + [
        "MAC overhead (<=10 % / <=30 %)", "instruction overhead, predicted (0 % / <=10 % / <=30 %)",
        "instruction overhead 0 %, measured (M4)", "seconds (0 % / 30 %)", "bit-exact",
        "Cortex-M4 header, FDT 0 % (ref / CMSIS-NN)"]
    out += ["| " + " | ".join(hdr) + " |", "|---|" + "---:|" * (len(hdr) - 3) + ":-:|---:|"]
    out += [tiling_row(r) for r in rows]
    out += ["", "**Head objective** (`--objective head --max-overhead 30`): the search minimises the head "
            "and accepts a larger persistent tail, as long as the total stays at or below the input's "
            "total as TFLM runs it; TFLM's measurements. Instruction overhead of one invoke over the input on "
            "the Cortex-M4 (reference kernels): predicted by the report / measured in QEMU.", "",
            "| model | reorder+plan | FDT 0 % (total objective) | head objective <=30 % | MAC overhead | "
            "instructions predicted / measured (M4) | seconds | bit-exact |",
            "|---|---:|---:|---:|---:|---:|---:|:-:|"]
    for r in rows:
        base, fdt, x = (r["runs"].get(k, {}) for k in ("reorder+plan", "FDT 0 %", "head <=30 %"))
        if not x or any("error" in y for y in (base, fdt, x)):
            continue
        out.append(f"| {r['model']} | {base['head']:,} / {base['total']:,} | {fdt['head']:,} / {fdt['total']:,} | "
                   f"{x['head']:,} / {x['total']:,} | {x['mac_overhead_pct']:.1f} % | {_instr(x)} | "
                   f"{x['seconds']:.1f} | {'yes' if x['bit_exact'] else 'NO'} |")
    out += ["", "**For a Cortex-M4 with CMSIS-NN** (`--kernels cmsis-nn`, the default search): CMSIS-NN "
            "runs a channel split of a convolution differently from the reference kernels (its im2col "
            "columns are rebuilt for every part), so the search, held to the default 1 % slowdown on "
            "this target, takes other rewrites or none. Header: the Cortex-M4 CMSIS-NN "
            "`FDT_TENSOR_ARENA_SIZE`; instructions: predicted / measured in QEMU.", "",
            "| model | header, input | header, reference-priced FDT 0 % | header, CMSIS-NN-priced | "
            "instructions predicted / measured (CMSIS-NN) | rewrites | seconds |",
            "|---|---:|---:|---:|---:|---|---:|"]
    for r in rows:
        x, fdt = r["runs"].get("CMSIS-NN 0 %", {}), r["runs"].get("FDT 0 %", {})
        if not x or "error" in x or "error" in fdt:
            continue
        kinds = ", ".join(f"{p['kind']} x{p['parts']}" for p in x["paths"]) or \
            ("none within 1 %" if any(n.startswith("no rewrite within") for n in x.get("search_notes", [])) else "none")
        out.append(f"| {r['model']} | {r['m4_header']['cmsis-nn']:,} | {fdt['m4_header']['cmsis-nn']:,} | "
                   f"{x['m4_header']['cmsis-nn']:,} | {_instr(x)} | {kinds} | {x['seconds']:.1f} |")
    out += ["", "**Exact int8 partial sums** (`--allow-custom-ops`, bundled FDT_PARTIAL kernel; TFLM's host "
            "build cannot run it, so head and total are the planner's prediction and outputs are checked "
            "against a bit-exact NumPy reference):", "",
            "| model | TFLM default head | head | total | MAC overhead | needs kernel | verified | "
            "Cortex-M4 header (ref / CMSIS-NN) |",
            "|---|---:|---:|---:|---:|:-:|:-:|---:|"]
    refused = []
    for r in rows:
        x = r["runs"].get("custom ops", {})
        if "error" in x:
            refused.append(f"{r['model']} (\"{x['error']}\")")
        if not x or "error" in x or not x.get("custom"):
            continue
        out.append(f"| {r['model']} | {r.get('default_head', 0):,} | {x['head']:,} | {x['total']:,} | "
                   f"{x['mac_overhead_pct']:.1f} % | yes | {'yes' if x['bit_exact'] else 'NO'} | {_m4(x)} |")
    if refused:  # models with no partial-sum row because optimize refused the run
        out += ["", "Refused with `--allow-custom-ops`: " + "; ".join(refused) + "."]
    out += reach_table(rows)
    return "\n".join(out)


def reach_table(rows: list[dict]) -> list[str]:
    """Issue #17's goals: head and seconds (optimize alone, verification included) per model."""
    out = ["", "**Reach and speed** (`--objective head`, MAC budget as given; seconds: the whole optimize "
           "run with TFLM verification, `--effort 2`, as the report's `seconds`). `*_pytorch` and "
           "`*_float` are built by `models/build_models.py --extra` (a PyTorch-style MobileNetV2 export: "
           "SAME padding, separate ReLU6, ADD operands swapped; a float32 MobileNetV1 0.25 at 128x128).", "",
           "| model | run | head, input | head | goal | MAC overhead | seconds | goal | bit-exact |",
           "|---|---|---:|---:|---:|---:|---:|---:|:-:|"]
    for r in rows:
        goal = GOALS.get(r["model"])
        x = r["runs"].get(goal[0], {}) if goal else {}
        if not x or "error" in x:
            continue
        run, head_goal, sec_goal, budget = goal
        ok_head = head_goal is None or x["head"] <= head_goal
        out.append(f"| {r['model']} | `--max-overhead {budget:g}` | {r.get('default_head', 0):,} | {x['head']:,} | "
                   f"{'-' if head_goal is None else f'<= {head_goal:,}'} {'ok' if ok_head else 'MISSED'} | "
                   f"{x['mac_overhead_pct']:.1f} % | {x['seconds']:.1f} | <= {sec_goal:g} "
                   f"{'ok' if x['seconds'] <= sec_goal else 'MISSED'} | {'yes' if x['bit_exact'] else 'NO'} |")
    out += ["", "**The head objective never behind the default**: TFLM-measured head of `--objective head` vs "
            "the total objective at the same MAC budget (0 %, <=10 %, <=30 %).", "",
            "| model | 0 %: default / head | <=10 %: default / head | <=30 %: default / head | never above |",
            "|---|---:|---:|---:|:-:|"]
    for r in rows:
        pairs = [(r["runs"].get(d, {}), r["runs"].get(h, {})) for h, d in HEAD_VS_DEFAULT]
        if any(not a or not b or "error" in a or "error" in b for a, b in pairs):
            continue
        cells = [f"{a['head']:,} / {b['head']:,}" for a, b in pairs]
        ok = all(b["head"] <= min(a["head"], pairs[0][0]["head"]) for a, b in pairs)
        out.append(f"| {r['model']} | " + " | ".join(cells) + f" | {'yes' if ok else 'NO'} |")
    return out


def write_readme(text: str) -> None:
    readme = REPO / "README.md"
    s = readme.read_text()
    block = f"{MARK_BEGIN}\n{text}\n{MARK_END}"
    if MARK_BEGIN in s:
        s = s[:s.index(MARK_BEGIN)] + block + s[s.index(MARK_END) + len(MARK_END):]
    else:
        s = s.replace("RESULTS_TABLE_PLACEHOLDER", block)
    readme.write_text(s)


def main() -> int:
    ap = argparse.ArgumentParser(description="fdt-tflm benchmark")
    ap.add_argument("--models", help="comma list of model stems (default: all)")
    ap.add_argument("--json", help="write raw results here")
    ap.add_argument("--readme", action="store_true", help="write the table into README.md")
    ap.add_argument("--from-json", metavar="FILE", help="make the table from earlier raw results, running nothing")
    args = ap.parse_args()
    only = set(args.models.split(",")) if args.models else None
    rows = []
    if args.from_json:
        rows = [r for r in json.loads(Path(args.from_json).read_text()) if not only or r["model"] in only]
    for p in [] if args.from_json else model_paths(only):
        print(f"... {p.stem}", file=sys.stderr, flush=True)
        rows.append(bench_one(p))
    add_device(rows)
    text = table(rows)
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    if args.readme:
        write_readme(text)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.exit(main())
