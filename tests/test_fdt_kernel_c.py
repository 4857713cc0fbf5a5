"""The C core of FDT_PARTIAL (firmware_template/fdt_kernels) against the NumPy reference.

The NumPy reference is itself pinned to TFLM (tests/test_reference.py); here the C code is
compiled with the system gcc and driven through ctypes on random cases: conv (stride,
SAME/VALID padding, dilation, odd channel counts, batches) and dense, first/middle/last
parts, per-channel multipliers and shifts, zero points and activation ranges.
"""
from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from fdt_tflm.reference.fixedpoint import multiply_by_quantized_multiplier
from fdt_tflm.reference.ops import conv_padding
from fdt_tflm.reference.partial_op import KIND_CONV, KIND_FC, PartialParams, fdt_partial_eval

KERNEL_DIR = Path(__file__).resolve().parents[1] / "firmware_template" / "fdt_kernels"
N_CASES = 10_000  # per op kind


class Params(ctypes.Structure):
    _fields_ = [(n, ctypes.c_int32) for n in (
        "kind", "first", "last", "input_offset", "output_offset", "act_min", "act_max", "stride_h", "stride_w",
        "dilation_h", "dilation_w", "pad_top", "pad_left", "n_channels")] + [
        ("multiplier", ctypes.c_void_p), ("shift", ctypes.c_void_p)]


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed: the C core cannot be compiled on this host")
    so = tmp_path_factory.mktemp("fdtc") / "libfdt_partial.so"
    subprocess.run([gcc, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC",
                    str(KERNEL_DIR / "fdt_partial_core.c"), "-o", str(so)], check=True)
    dll = ctypes.CDLL(str(so))
    p8, p32, i = ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int
    dll.fdt_partial_parse.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(Params)]
    dll.fdt_partial_conv.argtypes = [ctypes.POINTER(Params), p8, i, i, i, i, p8, i, i, i, p32, p32, i, i, p32, p8]
    dll.fdt_partial_fc.argtypes = [ctypes.POINTER(Params), p8, i, i, p8, i, p32, p32, p32, p8]
    dll.fdt_multiply_by_quantized_multiplier.argtypes = [ctypes.c_int32] * 3
    dll.fdt_multiply_by_quantized_multiplier.restype = ctypes.c_int32
    return dll


def _ptr(a):
    return None if a is None else a.ctypes.data_as(ctypes.c_void_p)


def _random_params(rng, kind: int, n_out: int) -> PartialParams:
    first, last = bool(rng.integers(2)), bool(rng.integers(2))
    zp = int(rng.integers(-128, 128))
    lo = int(rng.integers(-128, 0)) if rng.random() < 0.5 else -128
    hi = int(rng.integers(0, 128)) if rng.random() < 0.5 else 127
    return PartialParams(kind, first, last, input_offset=int(rng.integers(-127, 129)), output_offset=zp,
                         act_min=lo, act_max=hi,
                         multiplier=rng.integers(1 << 30, (1 << 31) - 1, n_out).astype(np.int32),
                         shift=rng.integers(-14, 3, n_out).astype(np.int32))


def _run_c(lib, p: PartialParams, call):
    blob = p.encode()
    cp = Params()
    assert lib.fdt_partial_parse(blob, len(blob), ctypes.byref(cp)) == 0
    return call(cp)


def test_parse_rejects_bad_options(lib):
    cp = Params()
    good = PartialParams(KIND_FC, True, True, 5, multiplier=np.array([1 << 30], np.int32),
                         shift=np.array([0], np.int32)).encode()
    assert lib.fdt_partial_parse(good, len(good), ctypes.byref(cp)) == 0
    assert (cp.kind, cp.first, cp.last, cp.input_offset, cp.n_channels) == (KIND_FC, 1, 1, 5, 1)
    assert lib.fdt_partial_parse(good[:-1], len(good) - 1, ctypes.byref(cp)) < 0
    assert lib.fdt_partial_parse(b"XXXX" + good[4:], len(good), ctypes.byref(cp)) < 0
    assert PartialParams.decode(good).multiplier.tolist() == [1 << 30]


def test_multiply_by_quantized_multiplier_matches(lib):
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.integers(-2 ** 31, 2 ** 31, 5000), rng.integers(-2 ** 16, 2 ** 16, 5000),
                        [-(2 ** 31), 2 ** 31 - 1, 0, -1, 1]])
    m = rng.integers(1 << 30, 2 ** 31, x.size)
    s = rng.integers(-31, 8, x.size)
    s[np.abs(x) > 2 ** 20] = np.minimum(s[np.abs(x) > 2 ** 20], 0)
    want = multiply_by_quantized_multiplier(x, m, s)
    f = lib.fdt_multiply_by_quantized_multiplier
    got = np.array([f(int(a), int(b), int(c)) for a, b, c in zip(x, m, s)])
    assert np.array_equal(got, want)


def test_conv_core_matches_reference(lib):
    rng = np.random.default_rng(2)
    elements = 0
    for case in range(N_CASES):
        b = int(rng.integers(1, 3))
        h, w = int(rng.integers(1, 8)), int(rng.integers(1, 8))
        cin, cout = int(rng.integers(1, 6)), int(rng.integers(1, 6))
        kh, kw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        sh, sw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        dh, dw = int(rng.integers(1, 3)), int(rng.integers(1, 3))
        same = bool(rng.integers(2))
        if same:
            oh, ow = -(-h // sh), -(-w // sw)
        else:
            oh, ow = (h - (kh - 1) * dh - 1) // sh + 1, (w - (kw - 1) * dw - 1) // sw + 1
            if oh < 1 or ow < 1:
                continue
        p = _random_params(rng, KIND_CONV, cout)
        p.stride, p.dilation = (sh, sw), (dh, dw)
        p.pad = (conv_padding(h, kh, sh, dh, oh), conv_padding(w, kw, sw, dw, ow))
        x = rng.integers(-128, 128, (b, h, w, cin)).astype(np.int8)
        wt = rng.integers(-127, 128, (cout, kh, kw, cin)).astype(np.int8)
        acc_in = None if p.first else rng.integers(-2 ** 20, 2 ** 20, (b, oh, ow, cout)).astype(np.int32)
        bias = rng.integers(-2 ** 16, 2 ** 16, cout).astype(np.int32) if p.last and rng.random() < 0.8 else None
        want = fdt_partial_eval(p, x, wt, acc_in, bias, [b, oh, ow, cout])
        acc_out = None if p.last else np.zeros((b, oh, ow, cout), np.int32)
        out = np.zeros((b, oh, ow, cout), np.int8) if p.last else None
        rc = _run_c(lib, p, lambda cp: lib.fdt_partial_conv(
            ctypes.byref(cp), _ptr(x), b, h, w, cin, _ptr(wt), cout, kh, kw, _ptr(acc_in), _ptr(bias),
            oh, ow, _ptr(acc_out), _ptr(out)))
        assert rc == 0
        got = out if p.last else acc_out
        assert np.array_equal(got, want), f"case {case}: {p}"
        elements += got.size
    assert elements > 10 * N_CASES


def test_fc_core_matches_reference(lib):
    rng = np.random.default_rng(3)
    for case in range(N_CASES):
        rows, depth, units = int(rng.integers(1, 4)), int(rng.integers(1, 40)), int(rng.integers(1, 12))
        p = _random_params(rng, KIND_FC, units)
        x = rng.integers(-128, 128, (rows, depth)).astype(np.int8)
        wt = rng.integers(-127, 128, (units, depth)).astype(np.int8)
        acc_in = None if p.first else rng.integers(-2 ** 20, 2 ** 20, (rows, units)).astype(np.int32)
        bias = rng.integers(-2 ** 16, 2 ** 16, units).astype(np.int32) if p.last and rng.random() < 0.8 else None
        want = fdt_partial_eval(p, x, wt, acc_in, bias, [rows, units])
        acc_out = None if p.last else np.zeros((rows, units), np.int32)
        out = np.zeros((rows, units), np.int8) if p.last else None
        assert _run_c(lib, p, lambda cp: lib.fdt_partial_fc(
            ctypes.byref(cp), _ptr(x), rows, depth, _ptr(wt), units, _ptr(acc_in), _ptr(bias),
            _ptr(acc_out), _ptr(out))) == 0
        assert np.array_equal(out if p.last else acc_out, want), f"case {case}: {p}"


def test_in_place_accumulation(lib):
    """acc_out (and the int8 output) may alias acc_in: the kernel reads each element first."""
    rng = np.random.default_rng(4)
    for kind in (KIND_CONV, KIND_FC):
        for last in (False, True):
            p = _random_params(rng, kind, 7)
            p.first, p.last = False, last
            shape = [1, 4, 5, 7] if kind == KIND_CONV else [3, 7]
            x = rng.integers(-128, 128, [1, 4, 5, 3] if kind == KIND_CONV else [3, 9]).astype(np.int8)
            wt = rng.integers(-127, 128, [7, 1, 1, 3] if kind == KIND_CONV else [7, 9]).astype(np.int8)
            acc = rng.integers(-2 ** 20, 2 ** 20, shape).astype(np.int32)
            want = fdt_partial_eval(p, x, wt, acc, None, shape)
            buf = acc.copy()
            out_view = buf.reshape(-1).view(np.int8)[: buf.size] if last else None
            acc_out = None if last else buf
            if kind == KIND_CONV:
                rc = _run_c(lib, p, lambda cp: lib.fdt_partial_conv(
                    ctypes.byref(cp), _ptr(x), 1, 4, 5, 3, _ptr(wt), 7, 1, 1, _ptr(buf), None, 4, 5,
                    _ptr(acc_out), _ptr(out_view)))
            else:
                rc = _run_c(lib, p, lambda cp: lib.fdt_partial_fc(
                    ctypes.byref(cp), _ptr(x), 3, 9, _ptr(wt), 7, _ptr(buf), None, _ptr(acc_out), _ptr(out_view)))
            assert rc == 0
            got = out_view.reshape(shape) if last else buf
            assert np.array_equal(got, want)


# ---------------------------------------------------------------------------------------------
# End to end in real TFLM: needs a host interpreter built with the kernel
# (firmware_template/fdt_kernels/host_check/build.sh); FDT_TFLM_HOST_RUNNER points to it.
def _host_runner() -> Path:
    import os
    p = os.environ.get("FDT_TFLM_HOST_RUNNER")
    if not p or not Path(p).is_file():
        pytest.skip("set FDT_TFLM_HOST_RUNNER to a tflm_runner built by fdt_kernels/host_check/build.sh "
                    "(needs a tflite-micro checkout)")
    return Path(p)


def _run_host(runner: Path, model: bytes, inputs, tmp_path: Path):
    import re
    (tmp_path / "m.tflite").write_bytes(model)
    (tmp_path / "i.bin").write_bytes(b"".join(s[0].tobytes() for s in inputs))
    p = subprocess.run([str(runner), str(tmp_path / "m.tflite"), str(tmp_path / "i.bin"), str(tmp_path / "o.bin")],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr + p.stdout
    head = int(re.search(r"Arena allocation head (\d+) bytes", p.stdout + p.stderr).group(1))
    return np.frombuffer((tmp_path / "o.bin").read_bytes(), np.int8), head


def test_rewritten_model_runs_exactly_in_tflm_with_the_kernel(tmp_path):
    """micro_speech x8 in TFLM with FDT_PARTIAL registered: outputs equal the original's and the
    measured head equals the planned one (offline plan with in-place accumulators)."""
    from fdt_tflm.io import read_model
    from fdt_tflm.io import write_model
    from fdt_tflm.memory.passes import plan
    from fdt_tflm.tiling.partial import apply_partial
    from fdt_tflm.verify import make_inputs

    runner = _host_runner()
    model_path = Path(__file__).resolve().parents[2] / "shared" / "models" / "tflm_micro_speech_int8.tflite"
    if not model_path.is_file():
        pytest.skip(f"shared model not found: {model_path}")
    data = model_path.read_bytes()
    m = read_model(data)
    inputs = make_inputs(m, 5, 0)
    want, head0 = _run_host(runner, data, inputs, tmp_path)
    assert head0 == 5968
    planned, rep = plan(apply_partial(m, [1, 2], 8))
    got, head = _run_host(runner, write_model(planned), inputs, tmp_path)
    assert np.array_equal(got, want)
    assert head == rep.planned_bytes <= 3000
