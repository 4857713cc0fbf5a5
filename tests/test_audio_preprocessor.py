"""TFLM's audio preprocessor (CAST and the Signal library ops) and a Signal front end built
here: the arena header predicted from TFLM's sources against Cortex-M4 measurements in QEMU.

Oracles: the device records in tests/data/audio_preprocessor_device.json (``fdt-tflm
device-run`` on the STM32 firmware, netduinoplus2, TFLM 90b983c; the smallest working arena
by rebuilding the firmware with every FDT_TENSOR_ARENA_SIZE around it, see the records'
notes) and hand computations from the kernel sources (signal/micro/kernels/*.cc,
third_party/kissfft).  A record is checked only against the very model it was measured
with (same sha256): the audio preprocessor comes from a tflite-micro checkout
($FDT_TFLM_SRC, default /opt/tflm/src; skipped when absent), the front end is built by
:func:`signal_frontend_model` (skipped with the reason if its bytes changed).  With
$FDT_TFLM_TREE (a tree from create_tflm_tree.py; $FDT_TFLM_KERNELS: reference | cmsis-nn;
$FDT_DEVICE_BUILD_DIR: where device-run keeps its builds) the records are measured again in QEMU.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Optional

import numpy as np
import pytest

from fdt_tflm.firmware.emit import target_header
from fdt_tflm.firmware.resolver import BUILTIN_ADD_METHODS, TFLM_CUSTOM_ADD_METHODS
from fdt_tflm.io import read_model, write_model
from fdt_tflm.ir.builder import GraphBuilder, options
from fdt_tflm.ir.graph import Model
from fdt_tflm.ir.signal import custom_op
from fdt_tflm.tflm_model import predict_arena, target_for
from fdt_tflm.tflm_model import kernels
from fdt_tflm.tflm_model.abi import CORTEX_M, HOST64
from fdt_tflm.tflm_model.target import HOST

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data" / "audio_preprocessor_device.json"
RECORDS: list[dict] = json.loads(DATA.read_text())["records"]
TFLM_SRC = Path(os.environ.get("FDT_TFLM_SRC", "/opt/tflm/src"))
AUDIO_PREPROCESSOR = TFLM_SRC / "tensorflow/lite/micro/examples/micro_speech/models/audio_preprocessor_int8.tflite"
FRONTEND = "signal_frontend.tflite"
# Kernels micro_mutable_op_resolver.h can register that no table models: TFLM_DECODE
# (compressed tensors) and ethos-u (the NPU's kernel is not in the reference tree).
NOT_MODELLED = {"TFLM_DECODE", "ethos-u"}


def signal_frontend_model(frame: int = 240, fft_length: int = 256, channels: int = 24, seed: int = 7) -> Model:
    """The micro_speech audio preprocessor's op sequence at other sizes: int16 [1, frame] ->
    SignalWindow -> RESHAPE -> SignalFftAutoScale -> SignalRfft -> SignalEnergy -> CAST x2 ->
    SignalFilterBank -> SignalFilterBankSquareRoot -> SignalFilterBankSpectralSubtraction ->
    SignalPCAN -> SignalFilterBankLog -> CAST -> MUL, ADD, DIV, MINIMUM, MAXIMUM -> CAST int8.
    Here the FFT's scratch (rfft.cc: fft_length * 2 B) finds no gap in the plan, so the head
    grows by it, and AllocateTensors' temporaries decide the smallest arena."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder()
    b.model.description = b"fdt-tflm audio front end (TFLM Signal ops, as the micro_speech audio preprocessor)"
    audio = b.tensor("audio", [1, frame], "INT16")
    b.sg.inputs = [audio]
    win = b.tensor("window", [1, frame], "INT16")
    custom_op(b, "SignalWindow", [audio, b.const("window_weights", rng.integers(0, 4096, frame).astype(np.int16))],
              [win], {"shift": 12})
    flat = b.tensor("flat", [frame], "INT16")
    b.op("RESHAPE", [win, b.const("flat_shape", np.array([frame], np.int32))], [flat],
         options("RESHAPE", NewShape=np.array([frame], np.int32)))
    scaled, scale_bits = b.tensor("scaled", [frame], "INT16"), b.tensor("scale_bits", [], "INT32")
    custom_op(b, "SignalFftAutoScale", [flat], [scaled, scale_bits], {})
    spec = b.tensor("spectrum", [fft_length + 2], "INT16")
    custom_op(b, "SignalRfft", [scaled], [spec], {"T": 7, "fft_length": fft_length})
    bins = fft_length // 2 + 1
    energy = b.tensor("energy", [bins], "UINT32")
    custom_op(b, "SignalEnergy", [spec], [energy], {"end_index": bins - 8, "start_index": 2})
    e32 = b.tensor("energy_i32", [bins], "INT32")
    b.op("CAST", [energy], [e32])
    eu = b.tensor("energy_u32", [bins], "UINT32")
    b.op("CAST", [e32], [eu])
    width = 4
    starts = (2 + width * np.arange(channels + 1)).astype(np.int16)
    wstarts = (width * np.arange(channels + 1)).astype(np.int16)
    widths = np.full(channels + 1, width, np.int16)
    weights = rng.integers(0, 4096, width * (channels + 1)).astype(np.int16)
    fb = b.tensor("filter_bank", [channels], "UINT64")
    custom_op(b, "SignalFilterBank",
              [eu, b.const("fb_weights", weights), b.const("fb_unweights", (4096 - weights).astype(np.int16)),
               b.const("fb_freq_starts", starts), b.const("fb_weight_starts", wstarts), b.const("fb_widths", widths)],
              [fb], {"num_channels": channels})
    root = b.tensor("filter_bank_sqrt", [channels], "UINT32")
    custom_op(b, "SignalFilterBankSquareRoot", [fb, scale_bits], [root], {})
    sub, noise = b.tensor("spectral_subtraction", [channels], "UINT32"), b.tensor("noise_estimate", [channels], "UINT32")
    custom_op(b, "SignalFilterBankSpectralSubtraction", [root], [sub, noise],
              {"alternate_one_minus_smoothing": 15401, "alternate_smoothing": 983, "clamping": False,
               "min_signal_remaining": 819, "num_channels": channels, "one_minus_smoothing": 15975, "smoothing": 409,
               "smoothing_bits": 10, "spectral_subtraction_bits": 14})
    pcan = b.tensor("pcan", [channels], "UINT32")
    custom_op(b, "SignalPCAN", [sub, noise, b.const("pcan_gain_lut", rng.integers(-64, 32767, 125).astype(np.int16))],
              [pcan], {"snr_shift": 6})
    log = b.tensor("log", [channels], "INT16")
    custom_op(b, "SignalFilterBankLog", [pcan], [log], {"input_correction_bits": 3, "output_scale": 64})
    x = b.tensor("log_i32", [channels], "INT32")
    b.op("CAST", [log], [x])
    for name, value in (("MUL", 10), ("ADD", -4000), ("DIV", 40)):
        y = b.tensor(name.lower(), [channels], "INT32")
        b.op(name, [x, b.const(name.lower() + "_c", np.array(value, np.int32))], [y])
        x = y
    lo = b.tensor("minimum", [channels], "INT32")
    b.op("MINIMUM", [x, b.const("max_value", np.array(127, np.int32))], [lo])
    hi = b.tensor("maximum", [channels], "INT32")
    b.op("MAXIMUM", [lo, b.const("min_value", np.array(-128, np.int32))], [hi])
    out = b.tensor("features", [channels], "INT8")
    b.op("CAST", [hi], [out])
    b.sg.outputs = [out]
    return b.model


def _model_bytes(rec: dict) -> tuple[Optional[bytes], str]:
    """The bytes of the model ``rec`` was measured with, or (None, why not here)."""
    if rec["model"] == FRONTEND:
        data = write_model(signal_frontend_model())
        where = "signal_frontend_model()"
    elif AUDIO_PREPROCESSOR.name == rec["model"] and AUDIO_PREPROCESSOR.is_file():
        data = AUDIO_PREPROCESSOR.read_bytes()
        where = str(AUDIO_PREPROCESSOR)
    else:
        return None, f"{rec['model']} not found (a tflite-micro checkout: set FDT_TFLM_SRC)"
    sha = hashlib.sha256(data).hexdigest()
    if sha != rec["model_sha256"]:
        return None, (f"{where} is not the model measured on the device (sha256 {sha[:12]} != "
                      f"{rec['model_sha256'][:12]}): re-record tests/data/{DATA.name}")
    return data, ""


def _load(rec: dict) -> Model:
    data, why = _model_bytes(rec)
    if data is None:
        pytest.skip(why)
    return read_model(data)


def _rec_id(rec: dict) -> str:
    return f"{rec['model']}-{rec['kernels']}-{rec['cpu']}"


def _record(model: str, kernels_: str = "reference") -> dict:
    return next(r for r in RECORDS if r["model"] == model and r["kernels"] == kernels_)


def test_records_are_device_measurements_of_tflm_90b983c():
    assert {r["model"] for r in RECORDS} == {AUDIO_PREPROCESSOR.name, FRONTEND}
    for r in RECORDS:
        assert r["tflm_commit"].startswith("90b983c") and r["ran"] and r["error"] is None
        assert r["outputs_equal_original_host"] and r["device_status"] == 0
        # the smallest working arena is a measurement: the arena one byte smaller failed
        assert r["min_working_arena_bytes"] - 1 in r["fails_at"]


@pytest.mark.parametrize("rec", RECORDS, ids=_rec_id)
def test_header_is_the_device_arena(rec: dict):
    """To the byte: the predicted smallest working arena is the device's, the header allocates
    on the device and 32 B less does not, and arena_used_bytes is the predicted head + tail."""
    a = predict_arena(_load(rec), target_for(rec["cpu"], rec["kernels"]))
    assert a.unmodelled == ()
    assert a.min_working == rec["min_working_arena_bytes"]
    assert a.header == rec["header_arena_bytes"]
    assert rec["allocates_in_header"] and rec["fails_at_header_minus_32"]
    assert a.head + a.tail == rec["arena_used_bytes"]


def test_the_issue_header_was_short_on_the_device():
    """Before the Signal kernels had table entries the header said 5,744 B and the Cortex-M4
    failed in it (788 B missing); the prediction now is the measured smallest arena."""
    rec = _record(AUDIO_PREPROCESSOR.name)
    before = rec["before"]
    assert before["header_arena_bytes"] in rec["fails_at"] and not before["allocates_in_header"]
    a = predict_arena(_load(rec), target_for("cortex-m4", "reference"))
    assert a.min_working == rec["min_working_arena_bytes"] > before["header_arena_bytes"]


def test_every_kernel_tflm_registers_has_a_table_entry():
    registered = set(BUILTIN_ADD_METHODS) | set(TFLM_CUSTOM_ADD_METHODS)
    assert registered - set(kernels.REFERENCE) == NOT_MODELLED


def test_signal_arrays_follow_the_kernel_sources():
    """kiss_fftr_alloc's lenmem (kiss_fftr.c): 3 pointers + kiss_fft_state (66 ints + one
    complex) + (n/2 - 1) + 3/4 n complex values; the host value is what
    tflm_signal::RfftInt16GetNeededMemory(512) returns on x86-64 (2,848 B)."""
    assert kernels.kissfftr_bytes(512, "int16", HOST64) == 24 + 268 + 4 * 255 + 4 * 384 == 2848
    assert kernels.kissfftr_bytes(512, "int16", CORTEX_M) == 12 + 268 + 4 * 255 + 4 * 384 == 2836
    assert kernels.kissfftr_bytes(256, "float", HOST64) == 2848  # RfftFloatGetNeededMemory(256)
    assert kernels.kissfftr_bytes(257, "int16", HOST64) == 0  # odd: kiss_fftr_alloc refuses
    m = signal_frontend_model()
    by_type = {op.type: op for op in m.main.operators}
    rfft = by_type["SignalRfft"]
    assert kernels.REFERENCE["SignalRfft"].prepare(rfft, CORTEX_M) == [12 + 268 + 4 * 127 + 4 * 192]
    assert kernels.REFERENCE["SignalRfft"].scratch(rfft) == [256 * 2]  # rfft.cc: fft_length * sizeof(int16_t)
    assert kernels.REFERENCE["SignalFilterBank"].prepare(by_type["SignalFilterBank"]) == [8 * 25]
    assert kernels.REFERENCE["SignalFilterBankSpectralSubtraction"].prepare(
        by_type["SignalFilterBankSpectralSubtraction"]) == [4 * 24]


def test_host_tflm_allocates_what_the_replay_predicts():
    """The 64-bit host interpreter (another ABI, same kernels): head and tail to the byte."""
    from fdt_tflm.verify import make_inputs, run, runtime_available
    if not runtime_available("tflm"):
        pytest.skip("needs the TFLM host interpreter")
    m = signal_frontend_model()
    r = run(write_model(m), make_inputs(m, 1))
    assert r.ok, r.error
    a = predict_arena(m, HOST)
    assert (a.head, a.tail) == (r.head, r.tail) == (1552, 5040)


def test_ops_without_an_entry_get_an_upper_bound_header(monkeypatch):
    """Without the Signal and CAST entries the header is at least the device's smallest
    arena, and it says it is an upper bound, not 'fails with less'."""
    rec = _record(FRONTEND)
    m = _load(rec)
    exact = predict_arena(m, target_for("cortex-m4", "reference"))
    assert "fails with less" in target_header(exact).splitlines()[1]
    for name in [n for n in kernels.REFERENCE if n.startswith("Signal") or n == "CAST"]:
        monkeypatch.delitem(kernels.REFERENCE, name)
    bound = predict_arena(m, target_for("cortex-m4", "reference"))
    assert "SignalRfft" in bound.unmodelled and "CAST" in bound.unmodelled
    assert bound.min_working >= rec["min_working_arena_bytes"] and bound.tail >= exact.tail
    text = target_header(bound)
    assert "upper bound" in text.splitlines()[0] and "fails with less" not in text


@pytest.mark.skipif(not os.environ.get("FDT_TFLM_TREE"), reason="opt-in: set FDT_TFLM_TREE to a TFLM tree")
@pytest.mark.parametrize("rec", RECORDS, ids=_rec_id)
def test_device_run_again(rec: dict, tmp_path):
    """Build the firmware with $FDT_TFLM_TREE and run it in QEMU: the same header, and it
    allocates while 32 B less does not (--no-bisect: see the records' notes)."""
    kernels_ = os.environ.get("FDT_TFLM_KERNELS", "reference")
    if rec["kernels"] != kernels_:
        pytest.skip(f"record for {rec['kernels']} kernels; the tree is {kernels_} (FDT_TFLM_KERNELS)")
    data, why = _model_bytes(rec)
    if data is None:
        pytest.skip(why)
    path = tmp_path / rec["model"]
    path.write_bytes(data)
    cmd = [sys.executable, "-m", "fdt_tflm", "device-run", str(path), "--tflm-tree", os.environ["FDT_TFLM_TREE"],
           "--kernels", kernels_, "--cpu", rec["cpu"], "--no-optimize", "--no-bisect", "--json"]
    if os.environ.get("FDT_DEVICE_BUILD_DIR"):  # reuse builds (default: ~/.cache/fdt-tflm/device)
        cmd += ["--build-dir", os.environ["FDT_DEVICE_BUILD_DIR"]]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout)
    for key in ("model_sha256", "header_arena_bytes", "arena_used_bytes", "allocates_in_header",
                "fails_at_header_minus_32", "outputs_equal_original_host"):
        assert got[key] == rec[key], key
