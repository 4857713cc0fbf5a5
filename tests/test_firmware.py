"""Firmware deliverables: arena header vs TFLM's measurement, model array, op resolver,
cross-compilation with arm-none-eabi, templates, fit check and CLI."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from fdt_tflm.errors import FdtError
from fdt_tflm.firmware import cmsis_nn
from fdt_tflm.firmware.emit import ALIGNMENT_MARGIN, ArenaInfo, emit_c
from fdt_tflm.tflm_model import predict_arena, target_for
from fdt_tflm.firmware.resolver import BUILTIN_ADD_METHODS, TFLM_CUSTOM_ADD_METHODS, op_types
from fdt_tflm.firmware.targets import PARTS, fit_report, parse_size
from fdt_tflm.firmware.template import instantiate, template_root
from fdt_tflm.io import read_model, write_model
from fdt_tflm.ir.qnet import QNet
from fdt_tflm.ir.types import BUILTIN_CODES, DTYPE_NUMPY
from fdt_tflm.verify import make_inputs, run, runtime_available

SHARED_MODELS = Path(__file__).resolve().parents[2] / "shared" / "models"
needs_tflm = pytest.mark.skipif(not runtime_available("tflm"), reason="tflite-micro (the TFLM oracle) not installed")


def shared_models() -> list:
    paths = sorted(SHARED_MODELS.glob("*.tflite")) if SHARED_MODELS.is_dir() else []
    if not paths:
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"{SHARED_MODELS} not found (shared models absent)"))]
    return [pytest.param(p, id=p.stem) for p in paths]


def arena_macro(path: Path, prefix: str = "FDT") -> int:
    m = re.search(rf"^#define {prefix}_TENSOR_ARENA_SIZE (\d+)$", path.read_text(), re.M)
    assert m, f"no {prefix}_TENSOR_ARENA_SIZE in {path}"
    return int(m.group(1))


def array_bytes(cc: Path, symbol: str = "fdt_model") -> bytes:
    text = cc.read_text()
    m = re.search(rf"alignas\(16\) const unsigned char {symbol}\[\] = \{{(.*?)\}};", text, re.S)
    assert m, "model array not found"
    return bytes(int(x, 16) for x in re.findall(r"0x([0-9a-f]{2})", m.group(1)))


def resolver_ops(header: Path) -> tuple[int, list[str]]:
    """(N of MicroMutableOpResolver<N>, op names registered), parsed from the header."""
    text = header.read_text()
    n = int(re.search(r"#define \w+_OP_RESOLVER_SIZE (\d+)", text).group(1))
    assert re.search(r"tflite::MicroMutableOpResolver<\w+_OP_RESOLVER_SIZE>", text)
    by_method = {v: k for k, v in BUILTIN_ADD_METHODS.items()}
    by_method.update({v: k for k, v in TFLM_CUSTOM_ADD_METHODS.items()})
    names = []
    for call in re.findall(r"resolver\.(Add\w+\((?:\"[^\"]*\")?)", text):
        if call.startswith("AddCustom("):
            names.append(call[len('AddCustom("'):-1])
        else:
            names.append(by_method[call[:-1]])
    return n, names


def small_model(dtype: str = "INT8"):
    q = QNet(seed=3, dtype=dtype)
    x = q.input([1, 12, 12, 3])
    y = q.conv2d(x, 8, kernel=(3, 3), stride=1)
    y = q.depthwise(y, kernel=(5, 5))
    y = q.pool(y, "AVERAGE")
    y = q.reshape(y, [1, 6 * 6 * 8])
    y = q.fully_connected(y, 4)
    return q.output(q.softmax(y))


# ----------------------------------------------------------------------------------------------
# the arena number
def _reorder_plan(data: bytes) -> bytes:
    from fdt_tflm.memory import passes
    m, _ = passes.reorder(read_model(data))
    m, _ = passes.plan(m)
    return write_model(m)


def smallest_working_arena(data: bytes, total: int) -> int:
    """Independent of the emitter: bisect with the verification harness (one TFLM child per try)."""
    x = make_inputs(read_model(data), 1, seed=1)
    if run(data, x, runtime="tflm", arena_size=total).ok:
        return total
    lo, hi = total, total + 256
    while not run(data, x, runtime="tflm", arena_size=hi).ok:
        lo, hi = hi, hi * 2
        assert hi < 64 * total, "TFLM does not allocate the model at all"
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if run(data, x, runtime="tflm", arena_size=mid).ok else (mid, hi)
    return hi


@needs_tflm
@pytest.mark.parametrize("variant", ["as-is", "reorder+plan"])
@pytest.mark.parametrize("path", shared_models())
def test_arena_size_brackets_tflm_measurement(path: Path, variant: str, tmp_path: Path) -> None:
    """Sized for the host interpreter (``cpu="host"``), the predicted header is TFLM's own:
    head and tail equal its measurement, and the header is its smallest working arena
    rounded up to 16 B (the host run allocates in it; 32 B less fails)."""
    data = path.read_bytes()
    if variant != "as-is":
        data = _reorder_plan(data)
    res = emit_c(data, tmp_path, original_bytes=path.read_bytes() if variant != "as-is" else None, cpu="host")
    size = arena_macro(tmp_path / "fdt_arena.h")
    assert size == res.arena_size == res.target.header
    measured = run(data, make_inputs(read_model(data), 1, seed=1), runtime="tflm")
    assert measured.ok, measured.error
    assert (measured.head, measured.tail) == (res.target.head, res.target.tail)
    # TFLM's reported total (head + tail) is not always enough: AllocateTensors needs temporary
    # head space, which exceeds a small head (MLPerf AD: 648 B); the prediction includes it.
    need = smallest_working_arena(data, measured.total)
    assert measured.total <= need <= size < need + 32, (size, need, measured.total)
    exact = run(data, make_inputs(read_model(data), 1, seed=1), runtime="tflm", arena_size=size)
    assert exact.ok, exact.error
    assert not run(data, make_inputs(read_model(data), 1, seed=1), runtime="tflm", arena_size=size - 32).ok


@needs_tflm
def test_too_small_arena_fails_in_tflm(tmp_path: Path) -> None:
    """The check above can fail: TFLM refuses an arena a little below the measured total."""
    path = SHARED_MODELS / "tflm_micro_speech_int8.tflite"
    if not path.exists():
        pytest.skip(f"{path} not found (shared models absent)")
    data = path.read_bytes()
    res = emit_c(data, tmp_path, cpu="host")
    small = run(data, make_inputs(read_model(data), 1), runtime="tflm", arena_size=res.arena.total - 64)
    assert not small.ok


def test_arena_info_arithmetic() -> None:
    info = ArenaInfo(head=1000, tail=200, planned=900, scratch=100, original_total=2000)
    assert info.total == 1200
    assert info.arena_size() == 1200 + ALIGNMENT_MARGIN
    assert info.arena_size(48) == 1248 + ALIGNMENT_MARGIN


# ----------------------------------------------------------------------------------------------
# the model array and headers
@pytest.mark.parametrize("path", shared_models())
def test_model_array_parses_back_exactly(path: Path, tmp_path: Path) -> None:
    data = path.read_bytes()
    emit_c(data, tmp_path, arena=ArenaInfo(1024, 512, 1024, 0))
    cc = tmp_path / "fdt_model.cc"
    assert array_bytes(cc) == data
    assert re.search(rf"fdt_model_len = {len(data)}u;", cc.read_text())
    assert f"#define FDT_MODEL_SIZE {len(data)}" in (tmp_path / "fdt_model.h").read_text()


def test_emission_is_deterministic_and_prefixed(tmp_path: Path) -> None:
    data = write_model(small_model())
    info = ArenaInfo(4096, 1024, 4000, 96, 9000)
    emit_c(data, tmp_path / "a", prefix="kws", arena=info)
    emit_c(data, tmp_path / "b", prefix="kws", arena=info)
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == ["kws_arena.h", "kws_model.cc", "kws_model.h", "kws_op_resolver.h"]
    for n in names:
        assert (tmp_path / "a" / n).read_bytes() == (tmp_path / "b" / n).read_bytes()
    assert arena_macro(tmp_path / "a" / "kws_arena.h", "KWS") == info.arena_size()
    assert array_bytes(tmp_path / "a" / "kws_model.cc", "kws_model") == data
    for n in ("kws_arena.h", "kws_model.h", "kws_op_resolver.h"):
        guard = n.upper().replace(".", "_") + "_"
        assert f"#ifndef {guard}" in (tmp_path / "a" / n).read_text()


@pytest.mark.parametrize("prefix", ["", "9lives", "my-model", "a b"])
def test_bad_prefix_is_a_clean_error(prefix: str, tmp_path: Path) -> None:
    with pytest.raises(FdtError):
        emit_c(write_model(small_model()), tmp_path, prefix=prefix, arena=ArenaInfo(1, 1, 1, 0))


def test_bad_model_bytes_are_a_clean_error(tmp_path: Path) -> None:
    with pytest.raises(FdtError):
        emit_c(b"not a flatbuffer at all", tmp_path, arena=ArenaInfo(1, 1, 1, 0))


# ----------------------------------------------------------------------------------------------
# op resolver
@pytest.mark.parametrize("path", shared_models())
def test_resolver_lists_exactly_the_models_ops(path: Path, tmp_path: Path) -> None:
    data = path.read_bytes()
    emit_c(data, tmp_path, arena=ArenaInfo(1024, 512, 1024, 0))
    n, names = resolver_ops(tmp_path / "fdt_op_resolver.h")
    expected = {op.type for op in read_model(data).main.operators}
    assert sorted(names) == sorted(expected)
    assert n == len(names) == len(set(names))


def _with_custom_op(name: bytes):
    m = small_model()
    pool = next(op for op in m.main.operators if op.type == "AVERAGE_POOL_2D")
    pool.opcode = m.opcode(32, 1, custom_code=name)
    pool.options = None
    m.operator_codes = [oc for oc in m.operator_codes if any(op.opcode is oc for op in m.main.operators)]
    return m


def test_resolver_registers_custom_ops(tmp_path: Path) -> None:
    m = _with_custom_op(b"FDT_PARTIAL")
    emit_c(write_model(m), tmp_path, arena=ArenaInfo(1024, 512, 1024, 0))
    text = (tmp_path / "fdt_op_resolver.h").read_text()
    n, names = resolver_ops(tmp_path / "fdt_op_resolver.h")
    assert sorted(names) == sorted(op_types(m)) and "FDT_PARTIAL" in names and n == len(names)
    assert '#include "fdt_kernels/fdt_partial.h"' in text
    assert "tflite::Register_FDT_PARTIAL()" in text

    m2 = _with_custom_op(b"MY_OP")
    emit_c(write_model(m2), tmp_path / "b", arena=ArenaInfo(1024, 512, 1024, 0))
    text2 = (tmp_path / "b" / "fdt_op_resolver.h").read_text()
    assert "const TFLMRegistration* Register_MY_OP();" in text2
    assert 'AddCustom("MY_OP"' in text2


def test_resolver_rejects_a_builtin_tflm_lacks(tmp_path: Path) -> None:
    m = small_model()
    soft = next(op for op in m.main.operators if op.type == "SOFTMAX")
    soft.opcode = m.opcode(BUILTIN_CODES["HASHTABLE_LOOKUP"], 1)
    with pytest.raises(FdtError, match="HASHTABLE_LOOKUP"):
        emit_c(write_model(m), tmp_path, arena=ArenaInfo(1, 1, 1, 0))


# ----------------------------------------------------------------------------------------------
# cross-compilation
def _arm_tool(name: str) -> str:
    exe = shutil.which(f"arm-none-eabi-{name}")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail(f"arm-none-eabi-{name} missing in CI (apt-get install gcc-arm-none-eabi "
                        "libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib)")
        pytest.skip(f"arm-none-eabi-{name} not installed (apt-get install gcc-arm-none-eabi)")
    return exe


USE_ARENA = """\
#include <stdint.h>
#include "fdt_arena.h"
#include "fdt_model.h"

alignas(16) static uint8_t tensor_arena[FDT_TENSOR_ARENA_SIZE];

uint8_t* fdt_test_arena(void) { return tensor_arena; }
unsigned int fdt_test_model(void) { return fdt_model_len + fdt_model[4]; }
"""


@pytest.mark.parametrize("cpu", [
    ["-mcpu=cortex-m4", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"],
    ["-mcpu=cortex-m33"],
], ids=["cortex-m4f", "cortex-m33"])
def test_generated_sources_cross_compile(cpu: list[str], tmp_path: Path) -> None:
    gxx, size_tool, nm = _arm_tool("g++"), _arm_tool("size"), _arm_tool("nm")
    path = SHARED_MODELS / "tflm_micro_speech_int8.tflite"
    data = path.read_bytes() if path.exists() else write_model(small_model())
    info = ArenaInfo(5968, 1616, 5968, 0, 7584)
    emit_c(data, tmp_path, arena=info)
    (tmp_path / "use_arena.cc").write_text(USE_ARENA)
    flags = [*cpu, "-mthumb", "-std=c++17", "-Os", "-Wall", "-Wextra", "-Werror", "-c", f"-I{tmp_path}"]
    for src in ("fdt_model.cc", "use_arena.cc"):
        proc = subprocess.run([gxx, *flags, str(tmp_path / src), "-o", str(tmp_path / (src + ".o"))],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    sizes = subprocess.run([size_tool, "-A", str(tmp_path / "use_arena.cc.o")], capture_output=True, text=True).stdout
    bss = int(re.search(r"^\.bss\s+(\d+)", sizes, re.M).group(1))
    assert bss == info.arena_size()
    symbols = subprocess.run([nm, "-S", str(tmp_path / "use_arena.cc.o")], capture_output=True, text=True).stdout
    m = re.search(r"^[0-9a-f]+ ([0-9a-f]+) [bB] \S*tensor_arena", symbols, re.M)
    assert m and int(m.group(1), 16) == info.arena_size()
    symbols = subprocess.run([nm, "-S", str(tmp_path / "fdt_model.cc.o")], capture_output=True, text=True).stdout
    m = re.search(r"^[0-9a-f]+ ([0-9a-f]+) R fdt_model$", symbols, re.M)
    assert m and int(m.group(1), 16) == len(data)
    ro = subprocess.run([size_tool, "-A", str(tmp_path / "fdt_model.cc.o")], capture_output=True, text=True).stdout
    assert int(re.search(r"^\.rodata\s+(\d+)", ro, re.M).group(1)) >= len(data)


def test_template_c_sources_cross_compile(tmp_path: Path) -> None:
    """The template's own start-up and board code build warning-free (no TFLM needed)."""
    gcc = _arm_tool("gcc")
    src = template_root() / "stm32" / "src"
    for extra in ([], ["-DFDT_STDIO_ITM"]):
        for f in ("startup.c", "board_minimal.c"):
            proc = subprocess.run([gcc, "-mcpu=cortex-m7", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-sp-d16",
                                   "-std=c11", "-Wall", "-Wextra", "-Werror", *extra, f"-I{src}", "-c", str(src / f),
                                   "-o", str(tmp_path / (f + ".o"))], capture_output=True, text=True)
            assert proc.returncode == 0, proc.stderr


# ----------------------------------------------------------------------------------------------
# CMSIS-NN scratch estimate
def test_cmsis_nn_scratch_follows_the_buffer_size_rules() -> None:
    m = small_model()
    reqs = {r.op_type: r.size for r in cmsis_nn.scratch_requests(m, "dsp")}
    # conv 3x3x3 -> im2col: 2 * align4(3*3*3) * sizeof(int16)
    assert reqs["CONV_2D"] == 2 * 28 * 2
    # depthwise 5x5 over 8 channels (not the 3x3 fast path): 8*5*5 * sizeof(int16)
    assert reqs["DEPTHWISE_CONV_2D"] == 8 * 5 * 5 * 2
    # average pool: channels * sizeof(int32)
    assert reqs["AVERAGE_POOL_2D"] == 8 * 4
    mve = {r.op_type: r.size for r in cmsis_nn.scratch_requests(m, "mve")}
    assert mve["CONV_2D"] == 4 * 2 * 16  # 4 x ceil(27/16) x 16
    assert mve["DEPTHWISE_CONV_2D"] == 4 * 124 * 5 * 5
    assert mve["FULLY_CONNECTED"] == 4 * 4
    # plain C (Cortex-M0/M3): only the conv's im2col buffer; depthwise, average pool and the
    # flat FULLY_CONNECTED request nothing, and zero-size requests are not listed
    assert [(r.op_type, r.size) for r in cmsis_nn.scratch_requests(m, "none")] == [("CONV_2D", 2 * 28 * 2)]
    assert cmsis_nn.extra_scratch(m, "dsp") > 0
    with pytest.raises(FdtError):
        cmsis_nn.scratch_requests(m, "avx")


def test_cmsis_nn_kernels_grow_the_arena(tmp_path: Path) -> None:
    data = write_model(small_model())
    info = ArenaInfo(4096, 1024, 4096, 0)
    ref = emit_c(data, tmp_path / "ref", arena=info)
    cm = emit_c(data, tmp_path / "cm", arena=info, kernels="cmsis-nn")
    assert cm.arena_size == ref.arena_size + cm.extra_scratch and cm.extra_scratch > 0
    assert "ESTIMATED" in (tmp_path / "cm" / "fdt_arena.h").read_text()
    with pytest.raises(FdtError):
        emit_c(data, tmp_path / "x", arena=info, kernels="fast")


# ----------------------------------------------------------------------------------------------
# fit check
def test_fit_report() -> None:
    rows = fit_report(100 * 1024, 300 * 1024)
    by = {r["part"]: r for r in rows}
    assert set(by) == set(PARTS)
    assert not by["nRF52832"]["fits"] and not by["nRF52832"]["fits_ram"]  # 100 KB arena > 64 KB RAM
    assert by["STM32F746"]["fits"] and by["nRF5340"]["fits"]
    assert by["STM32H743"]["ram"] == 512 * 1024  # the AXI SRAM block, not the 1 MB total
    one = fit_report(60 * 1024, 10, part="stm32f446")
    assert len(one) == 1 and one[0]["part"] == "STM32F446" and one[0]["fits"]
    custom = fit_report(60 * 1024, 10, ram=parse_size("64K"), flash=parse_size("1M"))
    assert custom[0]["part"] == "custom" and custom[0]["ram"] == 65536 and custom[0]["flash"] == 1 << 20
    assert not fit_report(60 * 1024, 10, part="nRF52840", ram=parse_size("32K"))[0]["fits"]
    with pytest.raises(FdtError):
        fit_report(1, 1, part="ESP32")
    with pytest.raises(FdtError):
        parse_size("lots")


# ----------------------------------------------------------------------------------------------
# templates and CLI
@pytest.mark.parametrize("target", ["stm32", "nrf"])
def test_instantiate_writes_a_complete_project(target: str, tmp_path: Path) -> None:
    data = write_model(small_model())
    info = ArenaInfo(4096, 1024, 4096, 0, 8192)
    inst = instantiate(target, tmp_path / "proj", data, arena=info, kernels="cmsis-nn")
    root = tmp_path / "proj"
    gen = root / "generated"
    for f in ("fdt_model.h", "fdt_model.cc", "fdt_arena.h", "fdt_op_resolver.h", "fdt_app_config.h"):
        assert (gen / f).is_file(), f
    assert (root / "common" / "fdt_run.cc").is_file()
    assert array_bytes(gen / "fdt_model.cc") == data
    assert arena_macro(gen / "fdt_arena.h") == inst.emitted.arena_size
    assert "FDT_TENSOR_ARENA_SIZE" in (gen / "fdt_app_config.h").read_text()
    if (template_root() / "fdt_kernels").is_dir():
        assert (root / "fdt_kernels").is_dir()
    if target == "stm32":
        assert (root / "CMakeLists.txt").is_file() and (root / "cmake" / "arm-none-eabi.cmake").is_file()
        assert 'set(FDT_KERNELS "cmsis-nn"' in (gen / "fdt_project.cmake").read_text()
        assert inst.part == "STM32F446"
    else:
        assert "CONFIG_TENSORFLOW_LITE_MICRO=y" in (root / "prj.conf").read_text()
        assert "CONFIG_TENSORFLOW_LITE_MICRO_CMSIS_NN_KERNELS=y" in (root / "prj.conf").read_text()
        assert "nrf52840dk/nrf52840" in inst.build_steps
    assert inst.fit and inst.fit[0]["part"] == inst.part
    # re-instantiating replaces the generated sources
    inst2 = instantiate(target, root, data, arena=ArenaInfo(2048, 1024, 2048, 0))
    assert arena_macro(gen / "fdt_arena.h") == inst2.emitted.arena_size != inst.emitted.arena_size


def test_instantiate_rejects_bad_target_and_part(tmp_path: Path) -> None:
    data = write_model(small_model())
    with pytest.raises(FdtError):
        instantiate("esp32", tmp_path, data, arena=ArenaInfo(1, 1, 1, 0))
    with pytest.raises(FdtError):
        instantiate("nrf", tmp_path, data, arena=ArenaInfo(1, 1, 1, 0), part="STM32F446")


@needs_tflm
def test_cli_firmware_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from fdt_tflm.cli import main
    model = tmp_path / "m.tflite"
    model.write_bytes(write_model(small_model()))
    rc = main(["firmware", str(model), "--target", "nrf", "-o", str(tmp_path / "out"), "--no-optimize",
               "--part", "nRF52840"])
    out = capsys.readouterr().out
    assert rc == 0, out
    size = arena_macro(tmp_path / "out" / "generated" / "fdt_arena.h")
    # sized for the part's core (nRF52840: Cortex-M4F), below what the 64-bit host needs
    assert size == predict_arena(read_model(model.read_bytes()), target_for("cortex-m4")).header
    measured = run(model.read_bytes(), make_inputs(read_model(model.read_bytes()), 1), runtime="tflm")
    assert size < measured.total
    assert f"FDT_TENSOR_ARENA_SIZE = {size:,} B" in out and "nRF52840" in out
    rc = main(["firmware", str(model), "--target", "nrf", "-o", str(tmp_path / "o2"), "--no-optimize",
               "--prefix", "bad-prefix"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "prefix" in err
    (tmp_path / "junk.tflite").write_bytes(b"\x00" * 64)
    rc = main(["firmware", str(tmp_path / "junk.tflite"), "--target", "stm32", "-o", str(tmp_path / "o3"),
               "--no-optimize"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1


def test_firmware_passes_search_options_to_optimize(tmp_path: Path, optimize_calls: dict) -> None:
    from fdt_tflm.cli import main
    model = tmp_path / "m.tflite"
    model.write_bytes(write_model(small_model()))
    rc = main(["firmware", str(model), "--target", "stm32", "-o", str(tmp_path / "out"),
               "--objective", "head", "--max-overhead", "30"])
    assert rc == 2 and optimize_calls["objective"] == "head" and optimize_calls["max_overhead"] == 30.0
    assert not (tmp_path / "out").exists()


def test_float_model_emits(tmp_path: Path) -> None:
    data = write_model(small_model("FLOAT32"))
    res = emit_c(data, tmp_path, arena=ArenaInfo(4096, 1024, 4096, 0), kernels="cmsis-nn")
    assert res.extra_scratch == 0  # CMSIS-NN rules are for int8 only
    assert np.array_equal(np.frombuffer(array_bytes(tmp_path / "fdt_model.cc"), np.uint8),
                          np.frombuffer(data, np.uint8))


# ----------------------------------------------------------------------------------------------
# end to end on an emulated Cortex-M4 (opt-in: needs a TFLM tree, CMake and QEMU)
def _qemu_prereqs() -> Path:
    tree = os.environ.get("FDT_TFLM_TREE")
    if not tree or not (Path(tree) / "tensorflow" / "lite" / "micro" / "micro_interpreter.h").exists():
        pytest.skip("set FDT_TFLM_TREE to a tree from tflite-micro's create_tflm_tree.py "
                    "(TARGET=cortex_m_generic TARGET_ARCH=cortex-m4+fp) to build and run the STM32 template")
    for tool in ("cmake", "qemu-system-arm", "arm-none-eabi-g++"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed")
    return Path(tree)


@pytest.fixture(scope="module")
def stm32_build_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stm32_fw")


@needs_tflm
@pytest.mark.parametrize("name,optimise", [("mlperf_kws_dscnn_int8", False), ("mlperf_vww_mbv1_96_int8", True)])
def test_stm32_firmware_runs_in_qemu(name: str, optimise: bool, stm32_build_dir: Path) -> None:
    """Build the STM32F446 project (QEMU's netduinoplus2 = STM32F405: same flash/RAM map),
    run it with semihosting, and compare its outputs with the host TFLM on the same input."""
    tree = _qemu_prereqs()
    path = SHARED_MODELS / f"{name}.tflite"
    if not path.exists():
        pytest.skip(f"{path} not found (shared models absent)")
    data = _reorder_plan(path.read_bytes()) if optimise else path.read_bytes()
    proj = stm32_build_dir / "proj"
    inst = instantiate("stm32", proj, data, part="STM32F446")
    build = proj / "build"
    if not (build / "CMakeCache.txt").exists():
        subprocess.run(["cmake", "-S", str(proj), "-B", str(build), f"-DTFLM_DIR={tree}",
                        "-DCMAKE_TOOLCHAIN_FILE=cmake/arm-none-eabi.cmake"], check=True, capture_output=True)
    proc = subprocess.run(["cmake", "--build", str(build), "-j2"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    proc = subprocess.run(["qemu-system-arm", "-M", "netduinoplus2", "-nographic", "-monitor", "none", "-serial",
                           "none", "-semihosting-config", "enable=on,target=native", "-kernel",
                           str(build / "fdt_app.elf")], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    used = int(re.search(r"arena_used_bytes (\d+) of (\d+)", proc.stdout).group(1))
    assert used <= inst.emitted.arena_size
    model = read_model(data)
    inputs = []
    for t in model.main.inputs:  # the firmware's fill_input(): byte i = (7 i + 3) mod 256
        pattern = ((np.arange(t.nbytes) * 7 + 3) & 0xFF).astype(np.uint8)
        inputs.append(pattern.view(DTYPE_NUMPY[t.dtype]).reshape(t.shape))
    host = run(data, [inputs], runtime="tflm")
    assert host.ok, host.error
    for i, out in enumerate(host.outputs[0]):
        m = re.search(rf"^output {i} \(\w+, \d+ bytes\):((?: -?\d+)+)", proc.stdout, re.M)
        assert m, proc.stdout
        device = [int(v) for v in m.group(1).split()]
        assert device == out.ravel()[:32].astype(int).tolist()
