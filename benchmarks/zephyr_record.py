#!/usr/bin/env python3
"""Record the nRF / Zephyr template on Zephyr (issue #18 item 1) in ``tests/data/zephyr_device.json``.

- ``runs``: ``fdt-tflm device-run --zephyr WS`` (board mps2/an521/cpu0, Cortex-M33, QEMU
  mps2-an521, the arena probe): per model, mode (original / optimized) and kernel set, the
  header's FDT_TENSOR_ARENA_SIZE, whether the model allocates and runs in it, fails with 32 B
  less, the smallest working arena, and whether every output byte equals the original model's
  in the host TFLM;
- ``nrf_builds``: ``device-run --zephyr WS --board nrf52840dk/nrf52840 --build-only``: the
  plain application's RAM and flash (the link's memory report) against the nRF52840.

``environment`` holds the Zephyr version and commit, each module's commit and the GCC.
Records are replaced one by one (key: model, mode, kernels, board) and the file is rewritten
after each, so an interrupted run keeps what it measured.

    python benchmarks/zephyr_record.py --workspace /opt/zephyrproject [--build-dir DIR] \\
        [--kernels reference] [--mode original] [--model PATH ...] [--only runs|nrf]
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
from fdt_tflm.device import zephyr  # noqa: E402

OUT = REPO / "tests" / "data" / "zephyr_device.json"
SHARED = REPO.parent / "shared" / "models"
MODELS = (SHARED / "mlperf_ad_toycar_int8.tflite", SHARED / "mlperf_kws_dscnn_int8.tflite",
          SHARED / "tflm_micro_speech_int8.tflite", REPO / "models" / "radar.tflite",
          SHARED / "tflm_person_detect_int8.tflite", SHARED / "mlperf_ic_resnet8_int8.tflite",
          SHARED / "mlperf_vww_mbv1_96_int8.tflite", SHARED / "tflm_micro_speech_lstm_int8.tflite")
NRF_BOARD = "nrf52840dk/nrf52840"
RUN_FIELDS = ("model", "mode", "kernels", "cpu", "qemu_machine", "model_sha256", "original_sha256",
              "header_arena_bytes", "allocates_in_header", "fails_at_header_minus_32", "min_working_arena_bytes",
              "arena_used_bytes", "outputs_equal_original_host", "probe_buffer_bytes")
BUILD_FIELDS = ("model", "mode", "kernels", "board", "part", "model_sha256", "header_arena_bytes", "ram_used_bytes",
                "flash_used_bytes", "ram_bytes", "flash_bytes", "fits")


def key(r: dict) -> tuple:
    return r["model"], r["mode"], r["kernels"], r["board"]


def save(section: str, rec: dict, env: dict) -> None:
    data = json.loads(OUT.read_text()) if OUT.exists() else {}
    data["about"] = ("benchmarks/zephyr_record.py: firmware_template/nrf built with Zephyr; runs: QEMU mps2-an521 "
                     "(board mps2/an521/cpu0) with the arena probe; nrf_builds: nrf52840dk/nrf52840 link memory report")
    data["environment"] = env
    recs = [r for r in data.get(section, []) if key(r) != key(rec)] + [rec]
    data[section] = sorted(recs, key=key)
    data.setdefault("runs", [])
    data.setdefault("nrf_builds", [])
    OUT.write_text(json.dumps(data, indent=1) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workspace", required=True)
    ap.add_argument("--build-dir", default=None)
    ap.add_argument("--kernels", action="append", choices=("reference", "cmsis-nn"), default=None)
    ap.add_argument("--mode", action="append", choices=("original", "optimized"), default=None)
    ap.add_argument("--model", action="append", default=None)
    ap.add_argument("--only", choices=("runs", "nrf"), default=None)
    args = ap.parse_args()
    ws = zephyr.find_workspace(args.workspace, NRF_BOARD)
    env = {"zephyr": ws.revisions(), "gcc": zephyr.gcc_version(), "qemu_board": zephyr.QEMU_BOARD,
           "nrf_board": NRF_BOARD}
    failed = 0
    for kernels in args.kernels or ["reference", "cmsis-nn"]:
        for model in args.model or [str(m) for m in MODELS]:
            for mode in args.mode or ["original", "optimized"]:
                for section in ("runs", "nrf_builds"):
                    if args.only and section != {"runs": "runs", "nrf": "nrf_builds"}[args.only]:
                        continue
                    board = zephyr.QEMU_BOARD if section == "runs" else NRF_BOARD
                    opts = zephyr.ZephyrOptions(model=model, workspace=args.workspace, board=board, kernels=kernels,
                                                mode=mode, build_dir=args.build_dir)
                    try:
                        if section == "runs":
                            res = zephyr.zephyr_run(opts, _optimize_for_firmware).to_dict()
                            rec = {k: res[k] for k in RUN_FIELDS}
                            rec["board"] = board
                        else:
                            rec = {k: v for k, v in zephyr.zephyr_build_only(opts, _optimize_for_firmware).to_dict()
                                   .items() if k in BUILD_FIELDS}
                    except Exception as e:  # noqa: BLE001 - keep measuring the others
                        print(f"{Path(model).name} {kernels} {mode} {board}: {e}", file=sys.stderr)
                        failed += 1
                        continue
                    rec["date"] = datetime.date.today().isoformat()
                    save(section, rec, env)
                    print(json.dumps(rec), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
