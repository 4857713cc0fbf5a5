#!/usr/bin/env python3
"""The benchmark behind the README's results table.

For every model in models/ and ../shared/models: TFLM's default arena (head and total,
measured), then reorder+plan, then tiling at 0 % MAC overhead (FDT), then with spatial
tiling allowed at <= 10 % and <= 30 % MAC overhead; each optimised model is verified in
TFLM (bit-exact) and its head/total are TFLM's measurements.

    python benchmarks/bench.py                 # print the table
    python benchmarks/bench.py --readme        # also write it into README.md
    python benchmarks/bench.py --json out.json --models kws,mlperf_vww_mbv1_96_int8
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fdt_tflm.api import optimize  # noqa: E402
from fdt_tflm.errors import FdtError  # noqa: E402

SHARED = REPO.parent / "shared" / "models"
MARK_BEGIN, MARK_END = "<!-- bench:begin -->", "<!-- bench:end -->"

CONFIGS = [  # (column, passes, max_overhead %, custom ops)
    ("reorder+plan", "reorder,plan", 0.0, False),
    ("FDT 0 %", "tile,reorder,plan", 0.0, False),
    ("FFMT <=10 %", "tile,reorder,plan", 10.0, False),
    ("FFMT <=30 %", "tile,reorder,plan", 30.0, False),
]


def model_paths(only: set[str] | None) -> list[Path]:
    paths = sorted((REPO / "models").glob("*.tflite"))
    if SHARED.is_dir():
        paths += sorted(SHARED.glob("*.tflite"))
    return [p for p in paths if not only or p.stem in only]


def bench_one(path: Path) -> dict:
    row: dict = {"model": path.stem, "runs": {}}
    for name, passes, overhead, custom in CONFIGS:
        t0 = time.perf_counter()
        try:
            res = optimize(str(path), passes=passes, max_overhead=overhead, allow_custom_ops=custom, progress=False)
        except FdtError as e:
            row["runs"][name] = {"error": str(e)}
            continue
        r = res.report
        row.setdefault("default_head", r["original_arena_bytes"])
        row.setdefault("default_total", r["original_total_arena_bytes"])
        row["runs"][name] = {"head": r["arena_bytes"], "total": r["total_arena_bytes"],
                             "mac_overhead_pct": r["mac_overhead_pct"], "seconds": round(time.perf_counter() - t0, 2),
                             "bit_exact": bool(r["verified"]), "optimal": r["optimal"],
                             "peak_live": r["peak_live_bytes"], "paths": r.get("paths", [])}
    return row


def table(rows: list[dict]) -> str:
    hdr = ["model", "TFLM head", "TFLM total"] + [f"{c[0]} head / total" for c in CONFIGS] + \
          ["MAC overhead (30 % run)", "optimize s (FDT 0 % / 30 %)", "bit-exact"]
    out = ["| " + " | ".join(hdr) + " |", "|" + "---|" * len(hdr)]
    for r in rows:
        cells = [r["model"], f"{r.get('default_head', 0):,}", f"{r.get('default_total') or 0:,}"]
        for name, *_ in CONFIGS:
            x = r["runs"].get(name, {})
            cells.append("error" if "error" in x else f"{x['head']:,} / {x['total']:,}")
        last = r["runs"].get(CONFIGS[-1][0], {})
        fdt = r["runs"].get("FDT 0 %", {})
        cells.append(f"{last.get('mac_overhead_pct', 0):.1f} %" if "error" not in last else "-")
        cells.append(f"{fdt.get('seconds', 0):.1f} / {last.get('seconds', 0):.1f}")
        cells.append("yes" if all(x.get("bit_exact") for x in r["runs"].values() if "error" not in x) else "NO")
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


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
    args = ap.parse_args()
    only = set(args.models.split(",")) if args.models else None
    rows = []
    for p in model_paths(only):
        print(f"... {p.stem}", file=sys.stderr, flush=True)
        rows.append(bench_one(p))
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
