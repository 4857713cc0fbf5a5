"""Device truth: the recorded measurements (tests/data/device_measurements.json, made by
benchmarks/device_record.py with `fdt-tflm device-run`) and the harness itself.

The CI part needs no TFLM tree: it checks the recorded data for consistency and the parts of
the harness that run on the host (serial parsing, machines, errors).  The opt-in part re-measures
a few configurations when FDT_TFLM_TREE points at a tree and cmake, arm-none-eabi-g++ and
qemu-system-arm are installed, and compares with the record.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import pytest

from fdt_tflm.device import MACHINES, machine_for, parse_serial
from fdt_tflm.device.harness import check_prerequisites
from fdt_tflm.errors import FdtError

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data" / "device_measurements.json"
SHARED = REPO.parent / "shared" / "models"
MODEL_DIRS = (SHARED, REPO / "models")
KEYS = ("model", "mode", "kernels", "cpu", "qemu_machine", "model_sha256", "header_arena_bytes",
        "arena_used_bytes", "allocates_in_header", "fails_at_header_minus_32", "min_working_arena_bytes",
        "outputs_equal_original_host", "instructions_per_inference", "tflm_commit", "date", "flags")


def records() -> list[dict]:
    return json.loads(DATA.read_text())["records"]


def record_id(r: dict) -> str:
    return f"{r['model']}-{r['mode']}-{r['kernels']}-{r['cpu']}"


def model_path(name: str) -> Path:
    for d in MODEL_DIRS:
        if (d / name).exists():
            return d / name
    pytest.skip(f"{name} not found")


# ------------------------------------------------------------------------------------------
# CI: the recorded data
def test_records_cover_the_matrix() -> None:
    recs = records()
    keys = [(r["model"], r["mode"], r["kernels"], r["cpu"]) for r in recs]
    assert len(keys) == len(set(keys)), "one record per configuration"
    m4 = {(m, mode, k) for m, mode, k, cpu in keys if cpu == "cortex-m4"}
    ours = {p.name for p in (REPO / "models").glob("*.tflite") if p.stat().st_size < 1 << 20}  # MobileNetV2: too big
    for kernels in ("reference", "cmsis-nn"):
        shared = {p.name for p in SHARED.glob("*.tflite")} if SHARED.is_dir() else set()
        for mode in ("original", "optimized", "head30"):  # default output and --objective head --max-overhead 30
            assert {m for m, md, k in m4 if k == kernels and md == mode} >= shared | ours, (kernels, mode)
        assert ("convdense.tflite", "custom-ops", kernels) in m4
        assert ("tflm_micro_speech_int8.tflite", "custom-ops", kernels) in m4
        m33 = {m for m, mode, k, cpu in keys if cpu == "cortex-m33" and k == kernels and mode == "optimized"}
        assert len(m33) >= 4, (kernels, m33)


def test_records_use_the_templates_tflm() -> None:
    """Measured with the tflite-micro commit the STM32 template pins (FDT_TFLM_GIT_TAG)."""
    cmake = (REPO / "firmware_template" / "stm32" / "cmake" / "tflm.cmake").read_text()
    pin = re.search(r'FDT_TFLM_GIT_TAG "([0-9a-f]{40})"', cmake).group(1)
    assert {r["tflm_commit"] for r in records()} == {pin}


def _record_problems(rec: dict) -> list[str]:
    """What is wrong with one record (empty: consistent).  Every check is on the device's own
    numbers: the run, the outputs, the bisection against the flags, the SysTick arithmetic."""
    if not rec.get("ran"):
        return [f"did not run: {rec.get('error')}"]
    missing = [k for k in KEYS if k not in rec]
    if missing:
        return [f"missing {missing}"]
    used, need, header = rec["arena_used_bytes"], rec["min_working_arena_bytes"], rec["header_arena_bytes"]
    per_tick = 1e9 / rec["systick_hz"]  # instructions per SysTick tick; the timer read costs a few ticks
    checks = [
        (rec["qemu_machine"] in MACHINES and MACHINES[rec["qemu_machine"]].cpu == rec["cpu"], "machine/cpu"),
        (rec["outputs_equal_original_host"] is True, "outputs differ from the original's on the host"),
        (used <= need <= rec["probe_buffer_bytes"], "used <= smallest <= probe buffer"),
        (0 <= rec["invoke_ticks"] * per_tick - rec["instructions_per_inference"] <= 5 * per_tick, "SysTick"),
        (rec["instructions_per_inference"] > 0, "instructions"),
        # the product's promise: the header allocates and runs; the flags agree with the bisection
        (need <= header, "the header is not enough on the device"),
        (rec["allocates_in_header"] == (need <= header), "allocates flag vs bisection"),
        (rec["fails_at_header_minus_32"] == (need > header - 32), "minus-32 flag vs bisection"),
    ]
    if rec["mode"] == "original":
        data = model_path(rec["model"]).read_bytes()
        checks.append((rec["model_sha256"] == hashlib.sha256(data).hexdigest() == rec["original_sha256"],
                       "an original record's model is not the file"))
    return [why for ok, why in checks if not ok]


def test_every_record_is_consistent() -> None:
    """One validation of the whole data file (each record's problems listed by its id)."""
    problems = {record_id(r): p for r in records() if (p := _record_problems(r))}
    assert problems == {}


def test_the_validation_catches_a_bad_record() -> None:
    """Not vacuous: a header below the device's smallest arena, or outputs that differ, fail."""
    rec = dict(next(r for r in records() if r["mode"] == "optimized"))
    assert _record_problems(rec) == []
    assert _record_problems({**rec, "header_arena_bytes": rec["min_working_arena_bytes"] - 16})
    assert _record_problems({**rec, "outputs_equal_original_host": False})


# ------------------------------------------------------------------------------------------
# CI: the harness's host side
SERIAL = """output 0 (INT8, 4 bytes): -128 12 0 127
fdt: arena_used_bytes 1000 of 1200 (generated arena size)
fdt-probe: buffer 2400
fdt-probe: calibration ticks 1343999 for 8000000 instructions
fdt-probe: invoke ticks 357143 overhead 3
fdt-probe: output 0 hex 800c007f
fdt-probe: full_buffer allocate yes invoke yes arena_used_bytes 1000
fdt-probe: minus_32 size 1168 allocate no invoke no
fdt-probe: min_working_arena_bytes 1184
fdt-probe: end
fdt: done (status 0)
"""


def test_parse_serial() -> None:
    r = parse_serial(SERIAL)
    assert (r.status, r.used_in_header, r.full_used, r.min_working, r.buffer) == (0, 1000, 1000, 1184, 2400)
    assert r.outputs == {0: bytes([0x80, 0x0C, 0x00, 0x7F])} and r.minus32_allocates is False and r.ended
    assert r.systick_hz == 168_000_000 and r.instructions == round((357143 - 3) * 1e9 / 168e6)
    failed = parse_serial("fdt: AllocateTensors failed with an arena of 1200 bytes\n"
                          "fdt-probe: min_working_arena_bytes none\nfdt: done (status 3)\n")
    assert failed.header_alloc_failed and failed.min_working is None and failed.status == 3 and not failed.ended
    with pytest.raises(FdtError):
        parse_serial("fdt-probe: unexpected: works in 99 bytes, below arena_used_bytes\n")


def test_machines() -> None:
    assert machine_for("cortex-m4").qemu == "netduinoplus2"
    assert machine_for("cortex-m33").qemu == "mps2-an505"
    assert machine_for("cortex-m4", "mps2-an386").part == "QEMU_MPS2_AN386"
    with pytest.raises(FdtError):
        machine_for("cortex-m4", "mps2-an505")
    with pytest.raises(FdtError):
        machine_for("cortex-m0")
    m = machine_for("cortex-m4")
    assert m.probe_buffer(4000) == 4000 + 16 * 1024 and m.probe_buffer(10 ** 6) <= m.ram
    parts = (REPO / "firmware_template" / "stm32" / "cmake" / "parts.cmake").read_text()
    for machine in MACHINES.values():
        assert f'"{machine.part}"' in parts


def test_device_run_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from fdt_tflm.cli import main
    rc = main(["device-run", str(REPO / "models" / "kws.tflite"), "--tflm-tree", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert ("not a TFLM tree" in err) or ("needs" in err)


def test_device_run_cli_prints_json_and_exit_code(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture) -> None:
    """The subcommand's options reach the harness; exit 1 when the header's arena fails."""
    from fdt_tflm.cli import main
    from fdt_tflm.device import cli as device_cli
    from fdt_tflm.device.harness import DeviceResult
    seen = {}

    def fake_run(opts, optimize_fn):
        seen["opts"] = opts
        return DeviceResult(
            model="m.tflite", mode=opts.mode, kernels=opts.kernels, cpu=opts.cpu, qemu_machine="mps2-an505",
            model_sha256="a" * 64, original_sha256="b" * 64, header_arena_bytes=1000, arena_used_bytes=990,
            allocates_in_header=False, fails_at_header_minus_32=True, min_working_arena_bytes=1010,
            outputs_equal_original_host=True, instructions_per_inference=150, systick_hz=20_000_000,
            invoke_ticks=3, calibration_ticks=160000, device_status=3, probe_buffer_bytes=2048)

    monkeypatch.setattr(device_cli, "device_run", fake_run)
    rc = main(["device-run", "m.tflite", "--tflm-tree", "T", "--kernels", "cmsis-nn", "--cpu", "cortex-m33",
               "--allow-custom-ops", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 1 and out["min_working_arena_bytes"] == 1010 and out["allocates_in_header"] is False
    o = seen["opts"]
    assert (o.mode, o.kernels, o.cpu, o.tree, o.machine) == ("custom-ops", "cmsis-nn", "cortex-m33", "T", None)
    assert main(["device-run", "m.tflite", "--tflm-tree", "T", "--no-optimize"]) == 1
    assert seen["opts"].mode == "original" and "smallest working arena     1,010 B" in capsys.readouterr().out


def test_tree_must_match_kernels(tmp_path: Path) -> None:
    if any(shutil.which(t) is None for t in ("cmake", "arm-none-eabi-g++", "qemu-system-arm")):
        pytest.skip("tools absent: the tree check comes after the tool check")
    (tmp_path / "tensorflow" / "lite" / "micro" / "kernels").mkdir(parents=True)
    (tmp_path / "tensorflow" / "lite" / "micro" / "micro_interpreter.h").write_text("")
    check_prerequisites(str(tmp_path), "reference")
    with pytest.raises(FdtError, match="OPTIMIZED_KERNEL_DIR"):
        check_prerequisites(str(tmp_path), "cmsis-nn")


# ------------------------------------------------------------------------------------------
# opt-in: re-measure on the emulated device
def _tree_or_skip() -> tuple[str, str]:
    tree = os.environ.get("FDT_TFLM_TREE")
    if not tree or not (Path(tree) / "tensorflow" / "lite" / "micro" / "micro_interpreter.h").exists():
        pytest.skip("set FDT_TFLM_TREE to a tree from create_tflm_tree.py (docs/firmware.md) to run on QEMU")
    for tool in ("cmake", "qemu-system-arm", "arm-none-eabi-g++"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed")
    cmsis = (Path(tree) / "tensorflow" / "lite" / "micro" / "kernels" / "cmsis_nn").is_dir()
    return tree, "cmsis-nn" if cmsis else "reference"


@pytest.mark.parametrize("model,cpu", [("mlperf_ad_toycar_int8.tflite", "cortex-m4"),
                                       ("mlperf_kws_dscnn_int8.tflite", "cortex-m33")])
def test_device_run_matches_record(model: str, cpu: str, capsys: pytest.CaptureFixture) -> None:
    tree, kernels = _tree_or_skip()
    rec = next((r for r in records() if (r["model"], r["mode"], r["kernels"], r["cpu"]) ==
                (model, "original", kernels, cpu)), None)
    if rec is None:
        pytest.skip(f"no record for {model} original {kernels} {cpu}")
    from fdt_tflm.cli import main
    args = ["device-run", str(model_path(model)), "--tflm-tree", tree, "--kernels", kernels, "--cpu", cpu,
            "--no-optimize", "--json"]
    if os.environ.get("FDT_DEVICE_BUILD_DIR"):
        args += ["--build-dir", os.environ["FDT_DEVICE_BUILD_DIR"]]
    rc = main(args)
    out = json.loads(capsys.readouterr().out)
    assert rc == (0 if rec["allocates_in_header"] else 1)
    for key in ("model_sha256", "header_arena_bytes", "arena_used_bytes", "min_working_arena_bytes",
                "allocates_in_header", "fails_at_header_minus_32", "outputs_equal_original_host"):
        assert out[key] == rec[key], key
    assert out["instructions_per_inference"] == pytest.approx(rec["instructions_per_inference"], rel=0.01)
