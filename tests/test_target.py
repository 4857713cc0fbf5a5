"""The target model (fdt_tflm.tflm_model) against measurements: the device's (recorded in QEMU by
benchmarks/device_record.py, no TFLM tree needed here) and the host interpreter's."""
from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from functools import lru_cache
from pathlib import Path
from typing import Optional

import pytest
from conftest import PROJECT_MODELS, SHARED_MODELS, shared_params

from fdt_tflm.io import read_model
from fdt_tflm.tflm_model.tail import predict_tail
from fdt_tflm.tflm_model import CORTEX_M4, HOST, predict_arena, target_for
from fdt_tflm.tflm_model.abi import ABI_TABLES
from fdt_tflm.tflm_model.instructions import predict_instructions
from fdt_tflm.verify import make_inputs, run

DEVICE_DATA = Path(__file__).resolve().parent / "data" / "device_measurements.json"


# -- the device: recorded QEMU measurements ----------------------------------------------------
def _records() -> list[dict]:
    if not DEVICE_DATA.is_file():
        return []
    return [r for r in json.loads(DEVICE_DATA.read_text()).get("records", [])
            if r.get("min_working_arena_bytes") is not None]


def _record_params() -> list:
    recs = _records()
    if not recs:
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"no device measurements in {DEVICE_DATA}"))]
    return [pytest.param(r, id=f"{r['model']}-{r['mode']}-{r['kernels']}-{r['cpu']}") for r in recs]


def _model_path(name: str) -> Optional[Path]:
    stem = name[:-len(".tflite")] if name.endswith(".tflite") else name
    for folder in (SHARED_MODELS, PROJECT_MODELS):
        if (folder / f"{stem}.tflite").is_file():
            return folder / f"{stem}.tflite"
    return None


@lru_cache(maxsize=None)
def _firmware_model(path: Path, mode: str, cpu: str = "cortex-m4", kernels: str = "reference") -> bytes:
    """The model the firmware of ``mode`` runs, made as ``firmware`` makes it for that target
    (the search prices the target's tail, scratch and instructions)."""
    if mode == "original":
        return path.read_bytes()
    from fdt_tflm.cli import _optimize_for_firmware
    head = mode == "head30"  # benchmarks/device_record.py: --objective head --max-overhead 30
    args = argparse.Namespace(passes=None, max_overhead=30.0 if head else 0.0, no_verify=False,
                              objective="head" if head else "total", allow_custom_ops=mode == "custom-ops",
                              cpu=cpu, kernels=kernels, max_slowdown=50.0 if mode == "slowdown50" else None)
    return _optimize_for_firmware(str(path), args).data


@pytest.mark.parametrize("rec", _record_params())
def test_prediction_equals_the_device(rec: dict) -> None:
    """To the byte: the predicted smallest working arena is the device's, the header lies in
    [min_working, min_working + 31], and TFLM's arena_used_bytes is the predicted head + tail."""
    path = _model_path(rec["model"])
    if path is None:
        pytest.skip(f"{rec['model']} not found (shared models absent)")
    data = _firmware_model(path, rec["mode"], rec["cpu"], rec["kernels"])
    # A changed optimiser output has not been measured on a device: fail rather than skip, so
    # the device evidence cannot silently thin out.
    assert hashlib.sha256(data).hexdigest() == rec["model_sha256"], (
        f"the {rec['mode']} firmware model of {rec['model']} changed since it was measured in QEMU; "
        "re-record with benchmarks/device_record.py (docs/firmware.md)")
    a = predict_arena(read_model(data), target_for(rec["cpu"], rec["kernels"]))
    need = rec["min_working_arena_bytes"]
    assert a.min_working == need, (a, need)
    assert need <= a.header <= need + 31
    if rec.get("arena_used_bytes") is not None:
        assert rec["arena_used_bytes"] == a.total, (a, rec["arena_used_bytes"])


def _overhead_params() -> list:
    """(original record, rewritten record) pairs measured on the same CPU with the same kernels."""
    recs = [r for r in _all_records() if r.get("instructions_per_inference")]
    base = {(r["model"], r["kernels"], r["cpu"]): r for r in recs if r["mode"] == "original"}
    pairs = [(base[(r["model"], r["kernels"], r["cpu"])], r) for r in recs
             if r["mode"] != "original" and (r["model"], r["kernels"], r["cpu"]) in base]
    if not pairs:
        return [pytest.param(None, None, marks=pytest.mark.skip(reason=f"no device records in {DEVICE_DATA}"))]
    return [pytest.param(o, r, id=f"{r['model']}-{r['mode']}-{r['kernels']}-{r['cpu']}") for o, r in pairs]


def _all_records() -> list[dict]:
    return json.loads(DEVICE_DATA.read_text()).get("records", []) if DEVICE_DATA.is_file() else []


MAX_DEFAULT_OVERHEAD_PCT = 2.0  # issue #16: the default output on the device, either kernel set
# the report's predicted overhead vs the device's, percentage points: the default output (the
# issue's bound), the head objective at 30 % (the held-out bound of the instruction model)
MAX_PREDICTION_ERROR_PP = {"optimized": 2.0, "head30": 3.0, "slowdown50": 3.0}


@pytest.mark.parametrize("orig,rec", _overhead_params())
def test_instruction_overhead_on_the_device(orig: dict, rec: dict) -> None:
    """Run time on the device: the default output (``optimized``) costs at most +2 %
    instructions per inference, measured in QEMU with the kernels the firmware ships; the
    report's prediction (recomputed here from the same firmware bytes, whose hash the record
    pins) is within 2 points of the measurement, for every recorded rewrite."""
    path = _model_path(rec["model"])
    if path is None:
        pytest.skip(f"{rec['model']} not found (shared models absent)")
    data = _firmware_model(path, rec["mode"], rec["cpu"], rec["kernels"])
    assert hashlib.sha256(data).hexdigest() == rec["model_sha256"], "re-record with benchmarks/device_record.py"
    t = target_for(rec["cpu"], rec["kernels"])
    measured = 100.0 * (rec["instructions_per_inference"] / orig["instructions_per_inference"] - 1)
    predicted = 100.0 * (predict_instructions(read_model(data), target=t)
                         / predict_instructions(read_model(path.read_bytes()), target=t) - 1)
    if rec["mode"] == "optimized":
        assert measured <= MAX_DEFAULT_OVERHEAD_PCT, (measured, predicted)
    if rec["mode"] in MAX_PREDICTION_ERROR_PP:
        assert abs(predicted - measured) <= MAX_PREDICTION_ERROR_PP[rec["mode"]], (measured, predicted)
    else:  # our plain-C FDT_PARTIAL kernel, priced with the reference dense row: never optimistic
        assert measured <= predicted + MAX_PREDICTION_ERROR_PP["optimized"], (measured, predicted)


def test_issue_measurements_on_the_m4() -> None:
    """The smallest arenas TFLM (90b983c) needed on a Cortex-M4 in QEMU, measured before the
    target model existed (issue 10): the prediction reproduces each to the byte."""
    cases = [("mlperf_ad_toycar_int8", "reference", 2_700), ("mlperf_kws_dscnn_int8", "reference", 22_772),
             ("tflm_micro_speech_int8", "reference", 6_800), ("tflm_micro_speech_lstm_int8", "cmsis-nn", 21_672)]
    for name, kernels, need in cases:
        path = SHARED_MODELS / f"{name}.tflite"
        if not path.is_file():
            pytest.skip(f"{path} not found (shared models absent)")
        assert predict_arena(read_model(path), target_for("cortex-m4", kernels)).min_working == need, name


# -- the host interpreter --------------------------------------------------------------------
def _host_min(data: bytes, lo: int, hi: int) -> int:
    """Smallest arena in (lo, hi] the host interpreter allocates in (a child process: far too
    small arenas may crash it)."""
    code = ("import sys\nfrom tflite_micro.python.tflite_micro import runtime as t\n"
            "d = sys.stdin.buffer.read()\nlo, hi = int(sys.argv[1]), int(sys.argv[2])\n"
            "def ok(n):\n    try:\n        t.Interpreter.from_bytes(d, arena_size=n); return True\n"
            "    except RuntimeError:\n        return False\n"
            "assert ok(hi) and not ok(lo)\nwhile hi - lo > 1:\n    m = (lo + hi) // 2\n"
            "    lo, hi = (lo, m) if ok(m) else (m, hi)\nprint(hi)\n")
    p = subprocess.run([sys.executable, "-c", code, str(lo), str(hi)], input=data, capture_output=True, timeout=600)
    assert p.returncode == 0, p.stderr.decode()[-500:]
    return int(p.stdout.split()[-1])


def _host_params() -> list:
    return shared_params() + [pytest.param(PROJECT_MODELS / n, id=n) for n in ("radar.tflite", "convdense.tflite")]


@pytest.mark.parametrize("path", _host_params())
def test_host_target_equals_the_host_interpreter(path: Path) -> None:
    """HOST: head and tail are the interpreter's measurement; the smallest working arena is its
    bisection's (up to 15 B: the host allocates the arena with new[], whose start we do not
    control; micro_speech_lstm needs 8 B more than predicted there)."""
    data = path.read_bytes()
    a = predict_arena(read_model(data), HOST)
    r = run(data, make_inputs(read_model(data), 1))
    assert r.ok, r.error
    assert (a.head, a.tail) == (r.head, r.tail)
    need = _host_min(data, a.min_working - 64, a.min_working + 4096)
    assert 0 <= need - a.min_working < 16, (need, a.min_working)
    assert a.header >= need


# -- the tables ------------------------------------------------------------------------------
def test_cortex_m_structs_are_the_32_bit_ones() -> None:
    host, m = ABI_TABLES["host64"], ABI_TABLES["cortex-m"]
    assert (host.pointer, m.pointer) == (8, 4)
    for name in ("TfLiteEvalTensor", "NodeAndRegistration", "TfLiteTensor", "TfLiteAffineQuantization"):
        assert m[name].size * 2 == host[name].size, name
    assert m["TfLiteAddParams"].size == 2  # AAPCS short enums


@pytest.mark.parametrize("path", shared_params())
def test_cortex_m_tail_is_smaller(path: Path) -> None:
    m = read_model(path)
    assert predict_tail(m, CORTEX_M4) < predict_tail(m)


def test_unknown_cpu_is_refused() -> None:
    from fdt_tflm.errors import FdtError
    with pytest.raises(FdtError):
        target_for("cortex-a53")
    with pytest.raises(FdtError):
        target_for("cortex-m4", "fast")


@pytest.mark.parametrize("path", shared_params())
def test_two_arenas_hold_the_sections(path: Path) -> None:
    """Separate arenas: the persistent one holds the tail (+ the two allocator objects instead of
    one), the non-persistent one the head and AllocateTensors' temporaries."""
    a = predict_arena(read_model(path), CORTEX_M4)
    assert a.persistent_arena % 16 == 0 and a.tail <= a.persistent_arena <= a.tail + 32
    assert a.head <= a.non_persistent_arena <= a.head + a.temp_need + a.tail


def test_the_report_predicts_for_the_cpu_and_kernels_asked(tmp_path):
    """``optimize --cpu cortex-m33 --kernels cmsis-nn``: the report's target is that build, and
    its smallest working arena and header are what QEMU measured for the same model bytes on a
    Cortex-M33 with CMSIS-NN (device data), for the input and the output."""
    rec = {(r["model"], r["mode"]): r for r in _records()
           if r["cpu"] == "cortex-m33" and r["kernels"] == "cmsis-nn" and r["model"].startswith("mlperf_ad_toycar")}
    path = _model_path("mlperf_ad_toycar_int8.tflite")
    if path is None or len(rec) != 2:
        pytest.skip("toycar or its Cortex-M33 CMSIS-NN device records absent")
    out, rep = tmp_path / "t.tflite", tmp_path / "t.json"
    from fdt_tflm.cli import main
    assert main(["optimize", str(path), "-o", str(out), "--json", str(rep), "--cpu", "cortex-m33",
                 "--kernels", "cmsis-nn"]) == 0
    opt, orig = rec[("mlperf_ad_toycar_int8.tflite", "optimized")], rec[("mlperf_ad_toycar_int8.tflite", "original")]
    assert hashlib.sha256(out.read_bytes()).hexdigest() == opt["model_sha256"], "re-record the device data"
    t = json.loads(rep.read_text())["target"]
    assert (t["cpu"], t["kernels"]) == ("cortex-m33", "cmsis-nn")
    assert t["min_working_bytes"] == opt["min_working_arena_bytes"]
    assert t["arena_size"] == opt["header_arena_bytes"] and t["original_arena_size"] == orig["header_arena_bytes"]
