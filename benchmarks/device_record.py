#!/usr/bin/env python3
"""Record device measurements: the data the arena predictor is checked against.

Every configuration below (models/ and ../shared/models) is measured with ``fdt-tflm device-run`` (the STM32 firmware
project, built with the device's TFLM, run in QEMU) and written to
``tests/data/device_measurements.json``, one record per (model, mode, kernels, machine).
Records are replaced one by one and the file is rewritten after each (under a lock, so
recorders for different kernels/CPUs may run side by side), so an interrupted run keeps
what it measured; re-run with ``--only`` to refresh a part.

    python benchmarks/device_record.py --tree reference=/path/tree_ref --tree cmsis-nn=/path/tree_cmsis \\
        --tflm-commit 90b983c2b3f1480642e040bbd2ddb37b998f3424 [--only mode=original,cpu=cortex-m4] [--list]

Trees: see docs/firmware.md, "Getting a TFLM tree".  Each record stores the firmware
model's sha256: when the optimiser's output changes, the record is stale (tests can tell).
"""
from __future__ import annotations

import argparse
import datetime
import fcntl
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fdt_tflm.cli import _optimize_for_firmware  # noqa: E402
from fdt_tflm.device import DeviceOptions, device_run  # noqa: E402
from fdt_tflm.errors import FdtError  # noqa: E402

SHARED = REPO.parent / "shared" / "models"
OUT = REPO / "tests" / "data" / "device_measurements.json"
KERNELS = ("reference", "cmsis-nn")
SHARED_MODELS = ("mlperf_ad_toycar_int8", "mlperf_ic_resnet8_int8", "mlperf_kws_dscnn_int8",
                 "mlperf_vww_mbv1_96_int8", "tflm_micro_speech_int8", "tflm_micro_speech_lstm_int8",
                 "tflm_person_detect_int8")
REPO_MODELS = tuple(REPO / "models" / f"{m}.tflite" for m in ("convdense", "kws", "radar"))
CUSTOM_OP_MODELS = (REPO / "models" / "convdense.tflite", SHARED / "tflm_micro_speech_int8.tflite")
M33_MODELS = ("mlperf_ad_toycar_int8", "mlperf_kws_dscnn_int8", "mlperf_vww_mbv1_96_int8",
              "tflm_micro_speech_lstm_int8")
FLAGS = {"original": ["--no-optimize"], "optimized": [], "custom-ops": ["--allow-custom-ops"],
         "head30": ["--objective", "head", "--max-overhead", "30"], "slowdown50": ["--max-slowdown", "50"]}
# A record's mode -> (the harness's mode, objective, MAC budget %, slowdown budget %)
HARNESS_MODE = {"original": ("original", "total", 0.0, None), "optimized": ("optimized", "total", 0.0, None),
                "custom-ops": ("custom-ops", "total", 0.0, None), "head30": ("optimized", "head", 30.0, None),
                "slowdown50": ("optimized", "total", 0.0, 50.0)}
# The CMSIS-NN trade-off of the README: radar's memory when the run time is allowed
SLOWDOWN_MODELS = (REPO / "models" / "radar.tflite",)


@dataclass(frozen=True)
class Config:
    """One measurement: which model, how its firmware is made, where it runs."""

    path: Path
    mode: str
    kernels: str
    cpu: str

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.path.name, self.mode, self.kernels, self.cpu)

    def as_filter(self) -> dict[str, str]:
        return {"model": self.path.stem, "mode": self.mode, "kernels": self.kernels, "cpu": self.cpu}


def plan() -> list[Config]:
    """All configurations, grouped by (kernels, cpu) so that each build directory is reused."""
    out = []
    for cpu, models in (("cortex-m4", SHARED_MODELS), ("cortex-m33", M33_MODELS)):
        for kernels in KERNELS:
            for mode in ("original", "optimized", "head30"):
                out += [Config(SHARED / f"{m}.tflite", mode, kernels, cpu) for m in models]
            if cpu == "cortex-m4":
                out += [Config(p, mode, kernels, cpu) for mode in ("original", "optimized", "head30")
                        for p in REPO_MODELS]
                out += [Config(p, "custom-ops", kernels, cpu) for p in CUSTOM_OP_MODELS]
                if kernels == "cmsis-nn":
                    out += [Config(p, "slowdown50", kernels, cpu) for p in SLOWDOWN_MODELS]
    return out


def selected(configs: Iterable[Config], only: list[str]) -> list[Config]:
    """Configs matching every ``key=v1|v2`` of ``only`` (keys: model, mode, kernels, cpu)."""
    wanted = [(k, set(v.split("|"))) for k, v in (item.split("=", 1) for item in only)]
    return [c for c in configs if all(c.as_filter().get(k) in vals for k, vals in wanted)]


def git_head(path: Path) -> str:
    try:
        return subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def tool_version(tool: str) -> str:
    """First line of ``tool --version`` (instruction counts depend on compiler and emulator)."""
    try:
        out = subprocess.run([tool, "--version"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return (out.strip().splitlines() or ["unknown"])[0]


def measure(cfg: Config, tree: str, build_dir: str | None, meta: dict[str, Any]) -> dict[str, Any]:
    """One record: the device-run result, or the error that stopped it."""
    mode, objective, max_overhead, max_slowdown = HARNESS_MODE[cfg.mode]
    opts = DeviceOptions(model=str(cfg.path), tree=tree, kernels=cfg.kernels, cpu=cfg.cpu, mode=mode,
                         build_dir=build_dir, objective=objective, max_overhead=max_overhead,
                         max_slowdown=max_slowdown)
    base = {"model": cfg.path.name, "mode": cfg.mode, "kernels": cfg.kernels, "cpu": cfg.cpu,
            "flags": FLAGS[cfg.mode] + (["--kernels", "cmsis-nn"] if cfg.kernels == "cmsis-nn" else []), **meta,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    try:
        res = device_run(opts, _optimize_for_firmware).to_dict()
    except FdtError as e:
        return {**base, "ran": False, "error": str(e)}
    res.pop("model", None)
    res["mode"] = cfg.mode
    return {**base, "ran": True, "error": None, **res}


def load(path: Path) -> dict[str, Any]:
    if path.exists():
        return json.loads(path.read_text())
    return {"description": "Device measurements by benchmarks/device_record.py (fdt-tflm device-run)",
            "records": []}


def key_of(rec: dict[str, Any]) -> tuple[str, str, str, str]:
    return (rec["model"], rec["mode"], rec["kernels"], rec["cpu"])


def store(path: Path, rec: dict[str, Any]) -> None:
    """Replace ``rec``'s configuration in the file, under a lock: several recorders (one per
    build directory) may run at once."""
    tag = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    lock_path = Path(tempfile.gettempdir()) / f"fdt_device_record_{tag}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = load(path)
        data["records"] = [r for r in data["records"] if key_of(r) != key_of(rec)] + [rec]
        data["records"].sort(key=lambda r: (r["cpu"], r["kernels"], r["mode"], r["model"]))
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1) + "\n")
        os.replace(tmp, path)


def table(data: dict[str, Any]) -> str:
    """The records as a Markdown table (for the README and reports)."""
    rows = ["| model | mode | kernels | cpu | header | smallest working | arena used | outputs = original | "
            "instructions |", "|---|---|---|---|---:|---:|---:|---|---:|"]
    for r in data["records"]:
        if not r["ran"]:
            rows.append(f"| {r['model']} | {r['mode']} | {r['kernels']} | {r['cpu']} | error: {r['error']} |||||")
            continue
        rows.append(f"| {r['model'].removesuffix('.tflite')} | {r['mode']} | {r['kernels']} | {r['cpu']} | "
                    f"{r['header_arena_bytes']:,} | {r['min_working_arena_bytes']:,} | {r['arena_used_bytes']:,} | "
                    f"{'yes' if r['outputs_equal_original_host'] else 'NO'} | {r['instructions_per_inference']:,} |")
    return "\n".join(rows)


def _overhead(rec: dict[str, Any], base: Optional[dict[str, Any]]) -> str:
    """Measured (predicted) instruction overhead of a rewritten record over its original."""
    if base is None or rec["mode"] == "original":
        return ""
    measured = 100.0 * (rec["instructions_per_inference"] / base["instructions_per_inference"] - 1)
    pred = rec.get("predicted_instructions"), rec.get("predicted_original_instructions")
    predicted = f" ({100.0 * (pred[0] / pred[1] - 1):+.2f} %)" if all(pred) else ""
    return f" {round(measured, 2) + 0.0:+.2f} %{predicted}"


def summary_table(data: dict[str, Any], cpu: str = "cortex-m4") -> str:
    """One row per (model, mode) on ``cpu``: for each kernel set the header, the smallest arena
    that works and the instructions per inference with the overhead measured (predicted)."""
    recs = [r for r in data["records"] if r["cpu"] == cpu and r.get("ran")]
    by = {(r["model"], r["mode"], r["kernels"]): r for r in recs}
    rows = ["| model | variant | reference: header / smallest | instructions, overhead measured (predicted) | "
            "CMSIS-NN: header / smallest | instructions, overhead measured (predicted) |",
            "|---|---|---:|---:|---:|---:|"]
    order = {m: i for i, m in enumerate(("original", "optimized", "head30", "slowdown50", "custom-ops"))}
    for model, mode in sorted({(r["model"], r["mode"]) for r in recs}, key=lambda k: (k[0], order.get(k[1], 9))):
        cells = [model.removesuffix(".tflite"), mode]
        for kernels in KERNELS:
            r = by.get((model, mode, kernels))
            if r is None:
                cells += ["-", "-"]
                continue
            cells.append(f"{r['header_arena_bytes']:,} / {r['min_working_arena_bytes']:,}")
            cells.append(f"{r['instructions_per_inference'] / 1e6:,.2f} M"
                         f"{_overhead(r, by.get((model, 'original', kernels)))}")
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tree", action="append", default=[], metavar="KERNELS=DIR", help="TFLM tree per kernel set")
    ap.add_argument("--tflm-commit", default=None, help="tflite-micro commit the trees were made from")
    ap.add_argument("--tflm-git", default=None, help="or: the tflite-micro checkout (its HEAD is recorded)")
    ap.add_argument("--only", action="append", default=[], metavar="KEY=V1|V2", help="model, mode, kernels, cpu")
    ap.add_argument("--build-dir", default=None)
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--list", action="store_true", help="print the configurations and exit")
    ap.add_argument("--table", action="store_true", help="print the recorded data as a Markdown table and exit")
    ap.add_argument("--summary", metavar="CPU", help="print the README's table for one CPU and exit")
    ap.add_argument("--readme", action="store_true", help="write the Cortex-M4 summary into README.md and exit")
    args = ap.parse_args()
    if args.table:
        print(table(load(Path(args.out))))
        return 0
    if args.summary:
        print(summary_table(load(Path(args.out)), args.summary))
        return 0
    if args.readme:
        readme = REPO / "README.md"
        text, begin, end = readme.read_text(), "<!-- device:begin -->", "<!-- device:end -->"
        table_text = summary_table(load(Path(args.out)), "cortex-m4")
        readme.write_text(text[:text.index(begin)] + f"{begin}\n{table_text}\n" + text[text.index(end):])
        return 0
    configs = selected(plan(), args.only)
    if args.list:
        print("\n".join(" ".join(c.key) for c in configs))
        return 0
    trees = dict(t.split("=", 1) for t in args.tree)
    commit = args.tflm_commit or (git_head(Path(args.tflm_git)) if args.tflm_git else "unknown")
    meta = {"tflm_commit": commit, "fdt_tflm_commit": git_head(REPO),
            "compiler": tool_version("arm-none-eabi-g++"), "qemu": tool_version("qemu-system-arm")}
    out = Path(args.out)
    for i, cfg in enumerate(configs, 1):
        if cfg.kernels not in trees:
            print(f"[{i}/{len(configs)}] {' '.join(cfg.key)}: no --tree for {cfg.kernels}, skipped", flush=True)
            continue
        rec = measure(cfg, trees[cfg.kernels], args.build_dir, meta)
        store(out, rec)
        summary = rec["error"] or (f"header {rec['header_arena_bytes']} min {rec['min_working_arena_bytes']} "
                                   f"used {rec['arena_used_bytes']} equal {rec['outputs_equal_original_host']} "
                                   f"instr {rec['instructions_per_inference']}")
        print(f"[{i}/{len(configs)}] {' '.join(cfg.key)}: {summary}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
