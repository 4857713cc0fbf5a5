"""Two arenas on the device (issue #18): the arena header's FDT_PERSISTENT_ARENA_SIZE and
FDT_NON_PERSISTENT_ARENA_SIZE against `fdt-tflm device-run --two-arenas` measurements
(tests/data/two_arena_device.json, made by benchmarks/two_arena_record.py).

CI (no TFLM tree): every record is consistent (the firmware ran with both header sizes, failed
with 32 B less in either, and each size is enough and within 32 B of the smallest that works),
and for every record whose model file is here with the recorded sha256, predict_arena gives
the recorded header sizes.  Opt-in (FDT_TFLM_TREE, plus cmake, arm-none-eabi-g++ and
qemu-system-arm): one model is measured again and compared with its record.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Optional

import pytest

from fdt_tflm.device import parse_serial
from fdt_tflm.io import read_model
from fdt_tflm.tflm_model import predict_arena, target_for

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data" / "two_arena_device.json"
MODEL_DIRS = (REPO.parent / "shared" / "models", REPO / "models")
TFLM_COMMIT = "90b983c2b3f1480642e040bbd2ddb37b998f3424"
SLACK = 32


def records() -> list[dict]:
    return json.loads(DATA.read_text())["records"]


def record_id(r: dict) -> str:
    return f"{r['model']}-{r['mode']}-{r['kernels']}-{r['cpu']}"


def model_bytes(r: dict) -> Optional[bytes]:
    """The record's firmware model: the file (original mode) or the optimiser's output made as
    ``firmware`` makes it for the record's target, if its sha256 is the recorded one."""
    for d in MODEL_DIRS:
        p = d / r["model"]
        if not p.is_file():
            continue
        data = p.read_bytes()
        if r["mode"] != "original":
            from fdt_tflm.cli import _optimize_for_firmware
            args = argparse.Namespace(passes=None, max_overhead=0.0, no_verify=False, objective="total",
                                      allow_custom_ops=False, cpu=r["cpu"], kernels=r["kernels"])
            data = _optimize_for_firmware(str(p), args).data
        if hashlib.sha256(data).hexdigest() == r["model_sha256"]:
            return data
    return None


def check(r: dict) -> None:
    p, q = r["persistent_header_bytes"], r["non_persistent_header_bytes"]
    assert r["tflm_commit"] == TFLM_COMMIT
    assert r["two_arenas_allocate"] is True, "the header's two sizes must allocate and run"
    assert r["persistent_fails_minus_32"] is True
    assert r["non_persistent_fails_minus_32"] is True
    # each size must be enough and within 32 B of the smallest that works
    assert r["min_persistent_bytes"] is not None and p - SLACK < r["min_persistent_bytes"] <= p
    assert r["min_non_persistent_bytes"] is not None and q - SLACK < r["min_non_persistent_bytes"] <= q
    assert r["allocates_in_header"] is True and r["outputs_equal_original_host"] is True


def test_records_cover_reference_and_cmsis_nn() -> None:
    rs = records()
    by_kernels: dict[str, set] = {}
    for r in rs:
        by_kernels.setdefault(r["kernels"], set()).add(r["model"])
    assert set(by_kernels) == {"reference", "cmsis-nn"}
    assert all(len(models) >= 4 for models in by_kernels.values())


@pytest.mark.parametrize("r", records(), ids=record_id)
def test_record_is_consistent(r: dict) -> None:
    check(r)


def test_the_check_catches_a_bad_record() -> None:
    good = records()[0]
    check(good)
    for field, value in (("min_persistent_bytes", good["persistent_header_bytes"] + 16),
                         ("min_non_persistent_bytes", good["non_persistent_header_bytes"] - 48),
                         ("persistent_fails_minus_32", False), ("two_arenas_allocate", False)):
        with pytest.raises(AssertionError):
            check({**good, field: value})


@pytest.mark.parametrize("r", records(), ids=record_id)
def test_prediction_equals_recorded_header(r: dict) -> None:
    data = model_bytes(r)
    if data is None:
        pytest.skip(f"{r['model']} with sha256 {r['model_sha256'][:12]} is not here")
    a = predict_arena(read_model(data), target_for(r["cpu"], r["kernels"]))
    assert (a.persistent_arena, a.non_persistent_arena) == (
        r["persistent_header_bytes"], r["non_persistent_header_bytes"])


def test_parse_two_arena_lines() -> None:
    text = "\n".join([
        "fdt: arena_used_bytes 2600 of 2864 (two arenas: persistent 1520, non-persistent 1344)",
        "fdt-probe: buffer 19088",
        "fdt-probe: two_arenas header persistent 1520 non_persistent 1344 allocate yes invoke yes",
        "fdt-probe: two_arenas persistent_minus_32 size 1488 allocate no invoke no",
        "fdt-probe: two_arenas non_persistent_minus_32 size 1312 allocate yes invoke no",
        "fdt-probe: two_arenas min_persistent_bytes 1505",
        "fdt-probe: two_arenas min_non_persistent_bytes none",
        "fdt-probe: end", "fdt: done (status 0)"])
    s = parse_serial(text)
    assert (s.two_persistent, s.two_non_persistent, s.two_works) == (1520, 1344, True)
    assert s.two_persistent_minus32_works is False and s.two_non_persistent_minus32_works is False
    assert (s.two_min_persistent, s.two_min_non_persistent) == (1505, 0)
    assert s.used_in_header == 2600
    plain = parse_serial("fdt-probe: end\nfdt: done (status 0)\n")
    assert plain.two_works is None and plain.two_min_persistent is None


def test_option_off_keeps_the_build_and_defines() -> None:
    from fdt_tflm.device.harness import DeviceOptions
    off = DeviceOptions(model="m.tflite", tree="t")
    assert off.extra_defines() == ()
    assert DeviceOptions(model="m.tflite", tree="t", two_arenas=True).extra_defines() == ("FDT_TWO_ARENAS",)


def test_probe_buffers_fit() -> None:
    from fdt_tflm.device.harness import two_arena_buffers
    assert two_arena_buffers(1520, 1344, 10**6) == (2 * 1520 + 1024, 2 * 1344 + 1024)
    p, q = two_arena_buffers(4336, 79872, 90000)
    assert p >= 4336 and q >= 79872 and p + q <= 90000 and p % 16 == q % 16 == 0


@pytest.fixture
def tree() -> str:
    t = os.environ.get("FDT_TFLM_TREE")
    if not t:
        pytest.skip("set FDT_TFLM_TREE to a tree from create_tflm_tree.py (docs/firmware.md) to run on QEMU")
    if any(shutil.which(x) is None for x in ("cmake", "arm-none-eabi-g++", "qemu-system-arm")):
        pytest.skip("cmake, arm-none-eabi-g++ and qemu-system-arm are needed")
    return t


def test_device_two_arenas_matches_record(tree: str) -> None:
    from fdt_tflm.device import DeviceOptions, device_run
    kernels = "cmsis-nn" if (Path(tree) / "tensorflow/lite/micro/kernels/cmsis_nn").is_dir() else "reference"
    rec = next((r for r in records() if r["model"] == "mlperf_ad_toycar_int8.tflite" and r["mode"] == "original"
                and r["kernels"] == kernels and r["cpu"] == "cortex-m4"), None)
    if rec is None or model_bytes(rec) is None:
        pytest.skip("no record or model file for mlperf_ad_toycar_int8 here")
    path = next(d / rec["model"] for d in MODEL_DIRS if (d / rec["model"]).is_file())
    res = device_run(DeviceOptions(model=str(path), tree=tree, kernels=kernels, mode="original",
                                   build_dir=os.environ.get("FDT_DEVICE_BUILD_DIR"), two_arenas=True)).to_dict()
    for k in ("model_sha256", "persistent_header_bytes", "non_persistent_header_bytes", "two_arenas_allocate",
              "persistent_fails_minus_32", "non_persistent_fails_minus_32", "min_persistent_bytes",
              "min_non_persistent_bytes"):
        assert res[k] == rec[k], k
