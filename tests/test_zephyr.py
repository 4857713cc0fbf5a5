"""The nRF / Zephyr template on Zephyr (issue #18 item 1): ``tests/data/zephyr_device.json``,
made by ``benchmarks/zephyr_record.py`` with ``fdt-tflm device-run --zephyr``.

CI (no Zephyr workspace): every QEMU run record (board mps2/an521/cpu0) allocated and ran in
the header's FDT_TENSOR_ARENA_SIZE, failed with 32 B less, the smallest working arena is within
32 B below the header and equals predict_arena's for the board's CPU (Cortex-M33 without DSP)
to the byte, and its outputs equal the original model's in the host TFLM; each
record's firmware model is made again here (the optimiser for ``optimized``) and must have the
recorded sha256 and header, so a stale record fails; every shared model has its four
nrf52840dk builds (original / optimized x reference / CMSIS-NN) and each fits the nRF52840
(256 KB RAM, 1 MB flash).  Opt-in (FDT_ZEPHYR_WORKSPACE, a workspace as in docs/firmware.md):
one model is built and run in QEMU again and compared with its record.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
from functools import lru_cache
from pathlib import Path
from typing import Optional

import pytest

from fdt_tflm.device import zephyr
from fdt_tflm.errors import FdtError
from fdt_tflm.io import read_model
from fdt_tflm.tflm_model import predict_arena, target_for

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data" / "zephyr_device.json"
MODEL_DIRS = (REPO.parent / "shared" / "models", REPO / "models")
SLACK = 32
KB = 1024


def data() -> dict:
    return json.loads(DATA.read_text())


def runs() -> list[dict]:
    return data()["runs"]


def builds() -> list[dict]:
    return data()["nrf_builds"]


def rid(r: dict) -> str:
    return f"{r['model']}-{r['mode']}-{r['kernels']}-{r['board']}"


@lru_cache(maxsize=None)
def firmware_model(name: str, mode: str, cpu: str, kernels: str) -> Optional[bytes]:
    """The firmware's model as ``firmware --target nrf`` makes it for the record's target."""
    for d in MODEL_DIRS:
        p = d / name
        if p.is_file():
            if mode == "original":
                return p.read_bytes()
            from fdt_tflm.cli import _optimize_for_firmware
            args = argparse.Namespace(passes=None, max_overhead=0.0, no_verify=False, objective="total",
                                      allow_custom_ops=False, cpu=cpu, kernels=kernels, max_slowdown=None)
            return _optimize_for_firmware(str(p), args).data
    return None


def check_run(r: dict) -> None:
    h = r["header_arena_bytes"]
    assert r["board"] == zephyr.QEMU_BOARD and r["qemu_machine"] == "mps2-an521"
    assert r["cpu"] == zephyr.BOARDS[zephyr.QEMU_BOARD]["cpu"] == "cortex-m33+nodsp"
    assert r["allocates_in_header"] is True, "the header's arena must allocate and run"
    assert r["fails_at_header_minus_32"] is True, "32 B less than the header must fail"
    assert r["min_working_arena_bytes"] is not None and h - SLACK < r["min_working_arena_bytes"] <= h
    assert r["outputs_equal_original_host"] is True


def check_build(b: dict) -> None:
    assert b["board"] == "nrf52840dk/nrf52840" and b["part"] == "nRF52840"
    assert (b["ram_bytes"], b["flash_bytes"]) == (256 * KB, 1024 * KB)
    assert 0 < b["ram_used_bytes"] <= b["ram_bytes"] and 0 < b["flash_used_bytes"] <= b["flash_bytes"]
    assert b["fits"] is True
    # the arena (static, in .bss) is part of the RAM the link counted
    assert b["ram_used_bytes"] > b["header_arena_bytes"]


def test_records_cover_the_issue() -> None:
    d = data()
    env = d["environment"]
    assert env["zephyr"]["zephyr_version"].startswith("4.") and env["gcc"].startswith("arm-none-eabi-gcc")
    for m in ("tflite-micro", "cmsis-nn", "cmsis_6", "hal_nordic"):
        assert len(env["zephyr"][m]) == 40, m
    models = {r["model"] for r in d["runs"]}
    assert len(models) >= 4
    assert {(r["mode"], r["kernels"]) for r in d["runs"]} >= {("original", "reference"), ("optimized", "reference")}
    assert d["nrf_builds"], "no nrf52840dk build recorded"


def test_every_shared_model_is_built_for_the_nrf52840() -> None:
    """Issue #18: ``firmware --target nrf`` builds for nrf52840dk/nrf52840 with both kernel sets
    for each shared model that fits; each model here has all four builds (original / optimized
    x reference / CMSIS-NN) recorded."""
    shared = sorted(p.name for p in MODEL_DIRS[0].glob("*.tflite"))
    if not shared:
        pytest.skip("shared models absent")
    have = {(b["model"], b["mode"], b["kernels"]) for b in builds()}
    missing = [(m, mode, k) for m in shared for mode in ("original", "optimized") for k in ("reference", "cmsis-nn")
               if (m, mode, k) not in have]
    assert not missing, f"no nrf52840dk build recorded for {missing}"


@pytest.mark.parametrize("r", runs(), ids=rid)
def test_run_record(r: dict) -> None:
    check_run(r)


@pytest.mark.parametrize("b", builds(), ids=rid)
def test_nrf_build_fits(b: dict) -> None:
    check_build(b)


def test_the_checks_catch_bad_records() -> None:
    good = runs()[0]
    check_run(good)
    h = good["header_arena_bytes"]
    for field, value in (("min_working_arena_bytes", h + 16), ("min_working_arena_bytes", h - 48),
                         ("fails_at_header_minus_32", False), ("allocates_in_header", False),
                         ("outputs_equal_original_host", None)):
        with pytest.raises(AssertionError):
            check_run({**good, field: value})
    b = builds()[0]
    check_build(b)
    for field, value in (("ram_used_bytes", 256 * KB + 1), ("flash_used_bytes", 2 * 1024 * KB), ("fits", False)):
        with pytest.raises(AssertionError):
            check_build({**b, field: value})


@pytest.mark.parametrize("r", runs() + builds(), ids=rid)
def test_record_is_this_code_s_firmware(r: dict) -> None:
    """The model the record measured is the one ``firmware`` makes now (stale records fail),
    and its header is the one predicted for the board's CPU and kernels; on QEMU, to the byte:
    the predicted smallest working arena and head + tail are what Zephyr's TFLM measured."""
    cpu = zephyr.BOARDS[r["board"]]["cpu"]
    data_ = firmware_model(r["model"], r["mode"], cpu, r["kernels"])
    if data_ is None:
        pytest.skip(f"{r['model']} not here (shared models absent)")
    assert hashlib.sha256(data_).hexdigest() == r["model_sha256"], (
        f"the {r['mode']} firmware model of {r['model']} changed since it was recorded; "
        "re-record with benchmarks/zephyr_record.py (docs/firmware.md)")
    a = predict_arena(read_model(data_), target_for(cpu, r["kernels"]))
    assert a.header == r["header_arena_bytes"]
    if "min_working_arena_bytes" in r:
        assert (a.min_working, a.total) == (r["min_working_arena_bytes"], r["arena_used_bytes"]), a


def test_memory_report_parsing() -> None:
    text = ("Memory region         Used Size  Region Size  %age Used\n"
            "           FLASH:      301236 B         1 MB     28.73%\n"
            "             RAM:       44128 B       256 KB     16.83%\n"
            "        IDT_LIST:          0 GB        32 KB      0.00%\n")
    assert zephyr.memory_report(text) == {"FLASH": (301236, 1024 * KB), "RAM": (44128, 256 * KB)}
    with pytest.raises(FdtError):
        zephyr.memory_report("no report")


def test_workspace_errors_are_one_line(tmp_path) -> None:
    if shutil.which("dtc") is None or shutil.which("ninja") is None:
        pytest.skip("dtc / ninja absent: the tool check answers first")
    with pytest.raises(FdtError, match="not a Zephyr workspace"):
        zephyr.find_workspace(str(tmp_path), zephyr.QEMU_BOARD)
    with pytest.raises(FdtError, match="unknown board"):
        zephyr.find_workspace(str(tmp_path), "nosuch/board")


def test_cli_needs_one_backend(tmp_path, capsys) -> None:
    from fdt_tflm.cli import main
    model = str(REPO / "models" / "radar.tflite")
    assert main(["device-run", model, "--no-optimize"]) == 2
    assert main(["device-run", model, "--no-optimize", "--zephyr", str(tmp_path), "--tflm-tree", str(tmp_path)]) == 2
    assert main(["device-run", model, "--no-optimize", "--zephyr", str(tmp_path), "--two-arenas"]) == 2
    err = capsys.readouterr().err
    assert "exactly one of --tflm-tree" in err


def test_plain_project_has_no_probe(tmp_path) -> None:
    """What a firmware engineer gets: the nRF project builds without probe defines, and the
    template passes FDT_APP_DEFINES only to the application."""
    cm = (REPO / "firmware_template" / "nrf" / "CMakeLists.txt").read_text()
    assert 'set(FDT_APP_DEFINES "" CACHE STRING' in cm
    assert "target_compile_definitions(app PRIVATE ${FDT_APP_DEFINES})" in cm
    # Zephyr 4.1's cmsis-nn module leaves out what TFLM's CMSIS-NN int8 LSTM calls; the template adds it
    assert "LSTMFunctions/arm_lstm_unidirectional_s8.c FullyConnectedFunctions/arm_vector_sum_s8_s64.c" in cm
    assert "FDT_SYSTICK_COUNT" not in (REPO / "fdt_tflm" / "device" / "zephyr.py").read_text().split("never FDT_SYSTICK_COUNT")[1]


@pytest.mark.skipif(not os.environ.get("FDT_ZEPHYR_WORKSPACE"),
                    reason="set FDT_ZEPHYR_WORKSPACE to a Zephyr workspace (docs/firmware.md, 'Offline Zephyr workspace')")
def test_zephyr_run_matches_record() -> None:
    rec = next((r for r in runs() if r["model"] == "mlperf_ad_toycar_int8.tflite" and r["mode"] == "original"
                and r["kernels"] == "reference"), None)
    path = REPO.parent / "shared" / "models" / "mlperf_ad_toycar_int8.tflite"
    if rec is None or not path.is_file():
        pytest.skip("no record or model file for mlperf_ad_toycar_int8 here")
    opts = zephyr.ZephyrOptions(model=str(path), workspace=os.environ["FDT_ZEPHYR_WORKSPACE"], mode="original",
                                build_dir=os.environ.get("FDT_DEVICE_BUILD_DIR"))
    res = zephyr.zephyr_run(opts).to_dict()
    for k in ("model_sha256", "header_arena_bytes", "allocates_in_header", "fails_at_header_minus_32",
              "min_working_arena_bytes", "outputs_equal_original_host"):
        assert res[k] == rec[k], k
