#!/usr/bin/env python3
"""Record two-arena device measurements (issue #18): FDT_PERSISTENT_ARENA_SIZE and
FDT_NON_PERSISTENT_ARENA_SIZE of the arena header, run on the device's own TFLM.

Each configuration is measured with ``fdt-tflm device-run --two-arenas`` (the STM32 firmware
built with FDT_TWO_ARENAS, run in QEMU) and written to ``tests/data/two_arena_device.json``:
whether the model allocates and runs with both header sizes, fails with 32 B less in either
(the other unchanged), and the smallest working size of each (the other at its header size).
Records are replaced one by one (key: model, mode, kernels, cpu) and the file is rewritten
after each, so an interrupted run keeps what it measured.

    python benchmarks/two_arena_record.py --tree reference=/opt/tflm/reference \\
        --tree cmsis-nn=/opt/tflm/cmsis-nn [--mode original] [--model PATH ...] [--build-dir DIR]
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fdt_tflm.cli import _optimize_for_firmware  # noqa: E402
from fdt_tflm.device import DeviceOptions, device_run  # noqa: E402

OUT = REPO / "tests" / "data" / "two_arena_device.json"
TFLM_COMMIT = "90b983c2b3f1480642e040bbd2ddb37b998f3424"
SHARED = REPO.parent / "shared" / "models"
MODELS = (SHARED / "mlperf_ad_toycar_int8.tflite", SHARED / "mlperf_kws_dscnn_int8.tflite",
          SHARED / "tflm_micro_speech_int8.tflite", REPO / "models" / "radar.tflite")
FIELDS = ("model", "mode", "kernels", "cpu", "qemu_machine", "model_sha256", "original_sha256",
          "header_arena_bytes", "persistent_header_bytes", "non_persistent_header_bytes", "two_arenas_allocate",
          "persistent_fails_minus_32", "non_persistent_fails_minus_32", "min_persistent_bytes",
          "min_non_persistent_bytes", "allocates_in_header", "outputs_equal_original_host")


def key(r: dict) -> tuple:
    return r["model"], r["mode"], r["kernels"], r["cpu"]


def save(rec: dict) -> None:
    data = json.loads(OUT.read_text()) if OUT.exists() else {"records": []}
    data["about"] = ("fdt-tflm device-run --two-arenas (benchmarks/two_arena_record.py): the arena header's "
                     "persistent / non-persistent sizes on the device's TFLM in QEMU")
    data["records"] = sorted([r for r in data["records"] if key(r) != key(rec)] + [rec], key=key)
    OUT.write_text(json.dumps(data, indent=1) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tree", action="append", required=True, metavar="KERNELS=DIR")
    ap.add_argument("--mode", action="append", choices=("original", "optimized"), default=None)
    ap.add_argument("--model", action="append", default=None)
    ap.add_argument("--cpu", default="cortex-m4")
    ap.add_argument("--build-dir", default=None)
    ap.add_argument("--tflm-commit", default=TFLM_COMMIT)
    args = ap.parse_args()
    trees = dict(t.split("=", 1) for t in args.tree)
    failed = 0
    for model in args.model or [str(m) for m in MODELS]:
        for kernels, tree in trees.items():
            for mode in args.mode or ["original"]:
                opts = DeviceOptions(model=model, tree=tree, kernels=kernels, cpu=args.cpu, mode=mode,
                                     build_dir=args.build_dir, two_arenas=True)
                try:
                    res = device_run(opts, _optimize_for_firmware).to_dict()
                except Exception as e:  # noqa: BLE001 - keep measuring the others
                    print(f"{Path(model).name} {kernels} {mode}: {e}", file=sys.stderr)
                    failed += 1
                    continue
                rec = {k: res[k] for k in FIELDS}
                rec.update(tflm_commit=args.tflm_commit, date=datetime.date.today().isoformat())
                save(rec)
                print(json.dumps(rec))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
