#!/usr/bin/env python3
"""Record instructions per operator on emulated Cortex-M devices: the data a device
instruction cost model is fitted to.

Two sources, each run with ``fdt-tflm device-run --profile-ops --no-bisect`` (the STM32
firmware with the device's TFLM, in QEMU with ``-icount shift=0``; one more Invoke with a
TFLM profiler gives SysTick ticks per operator, see ``firmware_template/common/fdt_probe.inc``):

- sweep models built here with ``QNet`` (int8, seeded, so their bytes and sha256 are stable):
  each holds ONE op type over many shapes (graph inputs feed independent ops, every op's
  output is a graph output), including convolutions split by output channels into k parts
  as the FDT rewrite makes them; every model's activations stay under ~100 KB (netduinoplus2);
- the real models (../shared/models and models/{kws,radar,convdense}.tflite), original
  (``--no-optimize``) and optimized (default options).

One record per (model, mode, cpu, kernels) in ``tests/data/device_op_measurements.json``;
each op's ``counts`` are ``fdt_tflm.catalog.instructions.op_counts`` of the firmware model's
op (subgraph 0's order is the device's).  The file is rewritten after every record under a
lock (recorders for different kernels may run side by side); a record already present with
the same model sha256 (for optimized runs: the same original sha256), mode, cpu and kernels
is skipped, so an interrupted run resumes.

    python benchmarks/device_ops.py --tree reference=/opt/tflm/reference --tree cmsis-nn=/opt/tflm/cmsis-nn \\
        --cpu cortex-m4 --kernels cmsis-nn --build-dir /opt/fdt-build-ops [--only-sweeps | --only-models]
    python benchmarks/device_ops.py --check      # sum of ops vs the whole Invoke, per (cpu, kernels)
"""
from __future__ import annotations

import argparse
import datetime
import fcntl
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

try:  # the cost model's module moved (catalog -> tflm_model)
    from fdt_tflm.tflm_model.instructions import op_counts  # noqa: E402
except ImportError:
    from fdt_tflm.catalog.instructions import op_counts  # noqa: E402
from fdt_tflm.cli import _optimize_for_firmware  # noqa: E402
from fdt_tflm.device import DeviceOptions, device_run  # noqa: E402
from fdt_tflm.errors import FdtError  # noqa: E402
from fdt_tflm.io import read_model, write_model  # noqa: E402
from fdt_tflm.ir.builder import options, quant  # noqa: E402
from fdt_tflm.ir.graph import Model, Operator, Tensor  # noqa: E402
from fdt_tflm.ir.qnet import PAD, QNet, conv_out  # noqa: E402

SHARED = REPO.parent / "shared" / "models"
OUT = REPO / "tests" / "data" / "device_op_measurements.json"
TFLM_COMMIT = "90b983c2b3f1480642e040bbd2ddb37b998f3424"
REPO_MODELS = ("kws", "radar", "convdense")  # mobilenet_v2_224 does not fit the boards
M33_MODELS = ("mlperf_ad_toycar_int8", "mlperf_kws_dscnn_int8", "mlperf_vww_mbv1_96_int8",
              "tflm_micro_speech_lstm_int8", "kws", "radar")
ACTIVATION_BUDGET = 104 * 1024  # bytes of all activations of a sweep model (an arena bound)
OPTION_KEYS = ("Padding", "StrideH", "StrideW", "DilationHFactor", "DilationWFactor", "DepthMultiplier",
               "FilterHeight", "FilterWidth", "FusedActivationFunction", "Axis", "KeepDims", "Beta")

# ------------------------------------------------------------------------------------------
# sweep models
Op = Callable[[QNet, Tensor], Any]  # appends op(s) on one input; returns the output tensor(s)


def parts(c: int, k: int) -> list[int]:
    """Output channels of the k parts of a c-channel op (sizes differ by at most one)."""
    return [c // k + (1 if i < c % k else 0) for i in range(k)]


def conv(c_out: int, kernel: int | tuple[int, int] = 1, stride: int = 1, padding: str = "SAME",
         splits: Sequence[int] = ()) -> Op:
    """A CONV_2D with c_out channels, and for each k in splits the same conv as k convs of
    about c_out / k channels each (FDT's output-channel split: each part redoes im2col)."""
    kk = (kernel, kernel) if isinstance(kernel, int) else kernel

    def f(n: QNet, x: Tensor) -> list[Tensor]:
        ys = [n.conv2d(x, c_out, kk, stride=stride, padding=padding)]
        for k in splits:
            ys += [n.conv2d(x, c, kk, stride=stride, padding=padding) for c in parts(c_out, k)]
        return ys
    return f


def dw(kernel: int = 3, stride: int = 1, padding: str = "SAME", times: int = 1, multiplier: int = 1) -> Op:
    """``times`` DEPTHWISE_CONV_2D on the input (a channel split's parts all see C/k channels)."""
    def f(n: QNet, x: Tensor) -> list[Tensor]:
        return [n.depthwise(x, (kernel, kernel), stride=stride, padding=padding, depth_multiplier=multiplier)
                for _ in range(times)]
    return f


def dw_split(c: int, hw: tuple[int, int], ks: Sequence[int], **kw: Any) -> list[tuple[list[int], list[Op]]]:
    """Groups for the channel-split parts of a depthwise conv on [1, h, w, c]: for each k an
    input of ceil(c / k) channels with k depthwise convs (the parts of FDT's split)."""
    return [([1, *hw, -(-c // k)], [dw(times=k, **kw)]) for k in ks]


def fc(units: int) -> Op:
    return lambda n, x: n.fully_connected(x, units)


def pool(kind: str, size: int | tuple[int, int], stride: int, padding: str = "VALID") -> Op:
    """AVERAGE_POOL_2D / MAX_POOL_2D; a (h, w) size makes a non-square window (QNet's are square)."""
    if isinstance(size, int):
        return lambda n, x: n.pool(x, kind, size=size, stride=stride, padding=padding)
    fh, fw = size

    def f(n: QNet, x: Tensor) -> Tensor:
        b, h, w, c = x.shape
        oh, ow = conv_out(h, fh, stride, 1, padding), conv_out(w, fw, stride, 1, padding)
        y = n._new_act(kind.lower() + "pool", [b, oh, ow, c], 0, like=x)
        n.b.op(f"{kind}_POOL_2D", [x], [y], options(
            f"{kind}_POOL_2D", Padding=PAD[padding], StrideW=stride, StrideH=stride, FilterWidth=fw,
            FilterHeight=fh, FusedActivationFunction=0), version=2)
        return y
    return f


def pad(pads: tuple[tuple[int, int], tuple[int, int]]) -> Op:
    return lambda n, x: n.pad(x, pads)


def reshape(shape: list[int]) -> Op:
    return lambda n, x: n.reshape(x, shape)


def softmax() -> Op:
    return lambda n, x: n.softmax(x)


def mean(axes: tuple[int, ...] = (1, 2), keep_dims: bool = True, requantize: bool = False) -> Op:
    def f(n: QNet, x: Tensor) -> Tensor:
        y = n.mean(x, axes, keep_dims)
        if requantize:  # another output scale: TFLM's general int8 path
            y.quantization = quant(float(x.quantization.scale[0]) * 0.37, 5)
        return y
    return f


def slice_(begin: list[int], size: list[int]) -> Op:
    """SLICE of a spatial region (as the FFMT rewrite copies tiles)."""
    def f(n: QNet, x: Tensor) -> Tensor:
        b = n.b.const(n._name("begin"), np.array(begin, np.int32))
        s = n.b.const(n._name("size"), np.array(size, np.int32))
        y = n._new_act("slice", size, 0, like=x)
        n.b.op("SLICE", [x, b, s], [y], options("SLICE"), version=2)
        return y
    return f


def strided_slice(begin: list[int], end: list[int], strides: Optional[list[int]] = None) -> Op:
    """STRIDED_SLICE (FDT takes channel ranges with it: begin [0, 0, 0, lo], end [..., hi])."""
    def f(n: QNet, x: Tensor) -> Tensor:
        st = strides or [1] * len(begin)
        shape = [-(-(e - b) // s) for b, e, s in zip(begin, end, st)]
        y = n._new_act("strided_slice", shape, 0, like=x)
        consts = [n.b.const(n._name(nm), np.array(v, np.int32)) for nm, v in (("begin", begin), ("end", end),
                                                                               ("strides", st))]
        n.b.op("STRIDED_SLICE", [x, *consts], [y], options("STRIDED_SLICE"), version=2)
        return y
    return f


def fanout(name: str, seed: int, groups: Sequence[tuple[list[int], Sequence[Op]]]) -> Model:
    """One graph input per group, each feeding its ops; every op's output is a graph output."""
    n = QNet(seed=seed, description=f"fdt-tflm device op sweep: {name}")
    outs: list[Tensor] = []
    for g, (shape, ops) in enumerate(groups):
        x = n.input(shape, scale=0.05, zp=int(n.rng.integers(-20, 21)), name=f"in{g}")
        for op in ops:
            y = op(n, x)
            outs += y if isinstance(y, list) else [y]
    return n.output(*outs)


def multi_input(name: str, seed: int, groups: Sequence[tuple[list[list[int]], str]], same_q: bool) -> Model:
    """Ops of several graph inputs each (ADD: 2, CONCATENATION: 2-8 along the channel axis)."""
    n = QNet(seed=seed, description=f"fdt-tflm device op sweep: {name}")
    outs: list[Tensor] = []
    for g, (shapes, kind) in enumerate(groups):
        zp = int(n.rng.integers(-20, 21))
        xs = [n.input(s, scale=0.05 if same_q else 0.03 + 0.02 * i, zp=zp if same_q else zp + 3 * i,
                      name=f"in{g}_{i}") for i, s in enumerate(shapes)]
        outs.append(n.add(xs[0], xs[1]) if kind == "ADD" else n.concat(xs, axis=-1))
    return n.output(*outs)


def sweeps() -> dict[str, Callable[[], Model]]:
    """The sweep models by name (file ``<name>.tflite``)."""
    S: dict[str, Callable[[], Model]] = {}

    def add(name: str, seed: int, groups: Sequence[tuple[list[int], Sequence[Op]]]) -> None:
        S[name] = lambda: fanout(name, seed, groups)

    # CONV_2D 1x1, stride 1 (CMSIS-NN's 1x1 fast path) and 2
    add("conv1x1_s1_a", 101, [([1, 16, 16, 16], [conv(c) for c in (4, 8, 16, 32, 64, 96)])])
    add("conv1x1_s1_b", 102, [([1, 8, 8, 64], [conv(4), conv(16), conv(32), conv(64, splits=(2, 3, 4, 8)),
                                                conv(96, splits=(2, 3, 4, 8))]),
                              ([1, 24, 24, 3], [conv(8), conv(16)])])
    add("conv1x1_s1_c", 103, [([1, 32, 32, 8], [conv(16, splits=(2,)), conv(24)]),
                              ([1, 12, 12, 24], [conv(24), conv(48, splits=(2, 4))]),
                              ([1, 6, 6, 1], [conv(4)])])
    add("conv1x1_s2", 104, [([1, 16, 16, 32], [conv(8, stride=2), conv(32, stride=2),
                                               conv(64, stride=2, splits=(2, 4, 8)), conv(96, stride=2)]),
                            ([1, 32, 32, 8], [conv(16, stride=2), conv(32, stride=2, splits=(2, 4))]),
                            ([1, 9, 9, 16], [conv(32, stride=2, padding="VALID")])])
    # CONV_2D 3x3 / 5x5 (im2col), stride 1 and 2, SAME and VALID
    add("conv3x3_s1_same_a", 111, [([1, 48, 48, 1], [conv(4, 3), conv(8, 3)]),
                                   ([1, 24, 24, 3], [conv(8, 3), conv(16, 3, splits=(2, 4))]),
                                   ([1, 4, 4, 64], [conv(16, 3), conv(96, 3, splits=(2, 3, 4, 8))])])
    add("conv3x3_s1_same_b", 112, [([1, 12, 12, 16], [conv(16, 3), conv(32, 3), conv(64, 3, splits=(2, 3, 4, 8))]),
                                   ([1, 8, 8, 32], [conv(64, 3), conv(32, 3, splits=(2, 4, 8))]),
                                   ([1, 6, 6, 48], [conv(48, 3, splits=(3,))])])
    add("conv3x3_s1_valid", 113, [([1, 32, 32, 4], [conv(8, 3, padding="VALID"),
                                                    conv(16, 3, padding="VALID", splits=(2, 4))]),
                                  ([1, 10, 10, 32], [conv(32, 3, padding="VALID"),
                                                     conv(64, 3, padding="VALID", splits=(2, 4, 8))]),
                                  ([1, 5, 5, 64], [conv(96, 3, padding="VALID", splits=(2, 3, 4, 8))]),
                                  ([1, 1, 64, 16], [conv(16, (1, 5), padding="VALID")])])
    add("conv3x3_s2_same", 114, [([1, 48, 48, 3], [conv(8, 3, 2), conv(16, 3, 2, splits=(2, 4))]),
                                 ([1, 16, 16, 32], [conv(32, 3, 2), conv(64, 3, 2, splits=(2, 4, 8))]),
                                 ([1, 8, 8, 64], [conv(96, 3, 2, splits=(2, 3, 4, 8))])])
    add("conv3x3_s2_valid", 115, [([1, 33, 33, 8], [conv(16, 3, 2, "VALID"), conv(32, 3, 2, "VALID", splits=(2, 4))]),
                                  ([1, 13, 13, 24], [conv(48, 3, 2, "VALID", splits=(2, 3, 4, 8))]),
                                  ([1, 7, 7, 1], [conv(4, 3, 2, "VALID")])])
    add("conv5x5_s1_same", 116, [([1, 24, 24, 1], [conv(8, 5), conv(16, 5)]),
                                 ([1, 12, 12, 16], [conv(16, 5), conv(32, 5, splits=(2, 4, 8))]),
                                 ([1, 8, 8, 32], [conv(64, 5, splits=(2, 4, 8))])])
    add("conv5x5_s1_valid", 117, [([1, 20, 20, 8], [conv(8, 5, padding="VALID"),
                                                    conv(24, 5, padding="VALID", splits=(2, 3, 4, 8))]),
                                  ([1, 9, 9, 32], [conv(32, 5, padding="VALID"),
                                                   conv(64, 5, padding="VALID", splits=(2, 4))])])
    add("conv5x5_s2", 118, [([1, 32, 32, 4], [conv(16, 5, 2, splits=(2, 4))]),
                            ([1, 16, 16, 16], [conv(32, 5, 2, "VALID"), conv(64, 5, 2, "VALID", splits=(2, 4, 8))]),
                            ([1, 24, 24, 2], [conv(8, 5, 2)])])
    # DEPTHWISE_CONV_2D 3x3 / 5x5, stride 1 / 2, with the parts of a channel split
    add("dwconv3x3_s1_a", 121, [([1, 24, 24, 16], [dw()]), *dw_split(16, (24, 24), (2, 4)),
                                ([1, 48, 48, 4], [dw()]), ([1, 8, 8, 128], [dw(), dw(padding="VALID")])])
    add("dwconv3x3_s1_b", 122, [([1, 12, 12, 64], [dw(), dw(padding="VALID")]),
                                *dw_split(64, (12, 12), (2, 3, 4, 8)), ([1, 6, 6, 128], [dw()]),
                                ([1, 16, 16, 8], [dw(multiplier=2)])])
    add("dwconv3x3_s2", 123, [([1, 24, 24, 32], [dw(stride=2), dw(stride=2, padding="VALID")]),
                              *dw_split(32, (24, 24), (2, 4), stride=2), ([1, 40, 40, 8], [dw(stride=2)]),
                              ([1, 12, 12, 96], [dw(stride=2)]), *dw_split(96, (12, 12), (3, 8), stride=2)])
    add("dwconv_mult", 125, [([1, 96, 96, 1], [dw(stride=2, multiplier=8)]), ([1, 48, 48, 1], [dw(multiplier=8)]),
                             ([1, 24, 24, 2], [dw(multiplier=4), dw(stride=2, multiplier=4, padding="VALID")]),
                             ([1, 32, 32, 4], [dw(5, multiplier=2)]), ([1, 40, 40, 1], [dw(stride=2, multiplier=16)])])
    add("dwconv5x5", 124, [([1, 16, 16, 32], [dw(5), dw(5, padding="VALID")]), *dw_split(32, (16, 16), (2, 4), kernel=5),
                           ([1, 32, 32, 16], [dw(5, 2)]), ([1, 8, 8, 128], [dw(5)]),
                           ([1, 12, 12, 4], [dw(5, 2, "VALID")])])
    # FULLY_CONNECTED
    add("fully_connected", 131, [([1, 16], [fc(4), fc(32), fc(128)]), ([1, 64], [fc(10), fc(64), fc(128)]),
                                 ([1, 256], [fc(12), fc(64), fc(128)]), ([1, 1024], [fc(16), fc(64)]),
                                 ([1, 2048], [fc(32)]), ([4, 64], [fc(32)]), ([10, 128], [fc(64)])])
    # pooling
    for kind, seed in (("AVERAGE", 141), ("MAX", 142)):
        add(f"{kind.lower()}_pool", seed, [
            ([1, 32, 32, 16], [pool(kind, 2, 2), pool(kind, 3, 2, "SAME"), pool(kind, 3, 1, "SAME")]),
            ([1, 25, 5, 64], [pool(kind, (25, 5), 1), pool(kind, 5, 5)]),
            ([1, 6, 6, 128], [pool(kind, 6, 6), pool(kind, 3, 3)]),
            ([1, 12, 12, 32], [pool(kind, 2, 2), pool(kind, 12, 12), pool(kind, 3, 1)]),
            ([1, 48, 48, 4], [pool(kind, 2, 2)]), ([1, 16, 16, 1], [pool(kind, 4, 4)])])
    # ADD, CONCATENATION: several graph inputs per op
    S["add"] = lambda: multi_input("add", 151, [
        ([[1, 16, 16, 16]] * 2, "ADD"), ([[1, 8, 8, 64]] * 2, "ADD"), ([[1, 32, 32, 8]] * 2, "ADD"),
        ([[1, 4, 4, 96]] * 2, "ADD"), ([[1, 40, 40, 4]] * 2, "ADD"), ([[1, 1, 1, 256]] * 2, "ADD"),
        ([[1, 24, 24, 12]] * 2, "ADD")], same_q=False)
    S["concatenation"] = lambda: multi_input("concatenation", 152, [
        ([[1, 16, 16, 8]] * 2, "CONCAT"), ([[1, 8, 8, 16]] * 4, "CONCAT"), ([[1, 8, 8, 8]] * 8, "CONCAT"),
        ([[1, 12, 12, 12]] * 3, "CONCAT"), ([[1, 32, 32, 4]] * 2, "CONCAT"), ([[1, 4, 4, 32]] * 8, "CONCAT"),
        ([[1, 16, 16, 6]] * 4, "CONCAT"), ([[1, 1, 1, 16]] * 4, "CONCAT"),
        ([[1, 10, 10, 8], [1, 10, 10, 24], [1, 10, 10, 32]], "CONCAT"), ([[1, 6, 6, 48]] * 2, "CONCAT")],
        same_q=True)
    # SLICE (spatial tiles), STRIDED_SLICE (channel ranges), PAD, RESHAPE, SOFTMAX, MEAN
    add("slice", 161, [([1, 32, 32, 8], [slice_([0, 0, 0, 0], [1, 16, 16, 8]), slice_([0, 15, 0, 0], [1, 17, 32, 8]),
                                         slice_([0, 5, 7, 0], [1, 10, 10, 8]), slice_([0, 0, 0, 0], [1, 32, 17, 8])]),
                       ([1, 12, 12, 64], [slice_([0, 0, 0, 0], [1, 7, 12, 64]), slice_([0, 6, 6, 0], [1, 6, 6, 64])]),
                       ([1, 48, 48, 3], [slice_([0, 22, 0, 0], [1, 26, 48, 3]), slice_([0, 0, 0, 0], [1, 48, 25, 3])])])
    add("strided_slice", 162, [
        ([1, 16, 16, 64], [strided_slice([0, 0, 0, lo], [1, 16, 16, hi]) for lo, hi in
                           ((0, 32), (32, 64), (0, 16), (48, 64), (0, 8), (21, 43))]),
        ([1, 8, 8, 96], [strided_slice([0, 0, 0, 0], [1, 8, 8, hi]) for hi in (48, 24, 12)]),
        ([1, 32, 32, 8], [strided_slice([0, 0, 0, 0], [1, 32, 32, 4]), strided_slice([0, 0, 0, 4], [1, 32, 32, 8]),
                          strided_slice([0, 0, 0, 0], [1, 16, 32, 8]), strided_slice([0, 0, 0, 0], [1, 32, 32, 8],
                                                                                     [1, 2, 2, 1])])])
    add("pad", 163, [([1, 32, 32, 8], [pad(((0, 1), (0, 1))), pad(((1, 1), (1, 1)))]),
                     ([1, 12, 12, 64], [pad(((1, 1), (1, 1))), pad(((2, 2), (2, 2)))]),
                     ([1, 48, 48, 3], [pad(((1, 1), (1, 1)))]), ([1, 7, 7, 96], [pad(((1, 1), (1, 1)))])])
    add("reshape", 164, [([1, 5, 1, 64], [reshape([1, 320])]), ([1, 16, 16, 16], [reshape([1, 4096])]),
                         ([1, 1, 1, 128], [reshape([1, 128])]), ([1, 8, 8, 32], [reshape([1, 64, 32])]),
                         ([1, 24, 24, 16], [reshape([1, 9216])]), ([1, 12], [reshape([1, 1, 1, 12])])])
    add("softmax", 165, [([1, s], [softmax()]) for s in (2, 10, 12, 100, 1000)] +
        [([4, 10], [softmax()]), ([10, 32], [softmax()]), ([1, 8, 8, 16], [softmax()])])
    add("mean", 166, [([1, 8, 8, 64], [mean(), mean(requantize=True)]), ([1, 12, 12, 32], [mean()]),
                      ([1, 4, 4, 128], [mean(keep_dims=False)]), ([1, 25, 5, 64], [mean(), mean(requantize=True)]),
                      ([1, 48, 48, 4], [mean()]), ([1, 6, 6, 96], [mean(keep_dims=False, requantize=True)])])
    return S


def activation_bytes(m: Model) -> int:
    return sum(t.nbytes for t in m.main.tensors if t.is_activation)


def write_sweeps(out_dir: Path, names: Optional[set[str]] = None) -> list[Path]:
    """Write the sweep models (deterministic bytes); refuses one over the activation budget."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, make in sweeps().items():
        if names and name not in names:
            continue
        m = make()
        if activation_bytes(m) > ACTIVATION_BUDGET:
            raise SystemExit(f"sweep {name}: {activation_bytes(m)} B of activations, over {ACTIVATION_BUDGET}")
        p = out_dir / f"{name}.tflite"
        data = write_model(m)
        if not p.exists() or p.read_bytes() != data:
            p.write_bytes(data)
        paths.append(p)
    return paths


# ------------------------------------------------------------------------------------------
# records
def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def op_record(i: int, op: Operator, instructions: Optional[int]) -> dict[str, Any]:
    ins = [t for t in op.inputs if t is not None]
    out = op.outputs[0] if op.outputs else None
    try:
        counts: Optional[dict[str, float]] = op_counts(op).as_dict()
    except Exception as e:  # noqa: BLE001 - a count the catalog cannot make is recorded as missing
        counts, _ = None, e
    opts = {k: op.opt(k) for k in OPTION_KEYS if op.opt(k) is not None}
    return {"index": i, "type": op.type, "inputs": [list(t.shape) for t in ins if not t.is_constant],
            "weights": [list(t.shape) for t in ins if t.is_constant],
            "output": None if out is None else list(out.shape),
            "dtype": None if out is None else out.dtype_name, "options": {k: _plain(v) for k, v in opts.items()},
            "counts": counts, "instructions": instructions}


def _plain(v: Any) -> Any:
    if isinstance(v, (np.generic,)):
        return v.item()
    if isinstance(v, (bytes, bytearray)):
        return v.decode(errors="replace")
    return v


def measure(path: Path, source: str, mode: str, kernels: str, cpu: str, tree: str, build_dir: Optional[str],
            timeout: float) -> dict[str, Any]:
    """One device-run with the op profile; the record (FdtError when it fails)."""
    opts = DeviceOptions(model=str(path), tree=tree, kernels=kernels, cpu=cpu, mode=mode, build_dir=build_dir,
                         timeout=timeout, profile_ops=True, bisect=False)
    res = device_run(opts, _optimize_for_firmware)
    work = _firmware_model(res, path, opts)
    ops = work.main.operators
    measured = res.op_instructions or []
    if len(measured) != len(ops):
        raise FdtError(f"{len(measured)} op measurements for {len(ops)} operators")
    hz = res.systick_hz or 0
    empty = (res.op_overhead_ticks or 0) / max(res.op_overhead_pairs or 1, 1)
    return {
        "cpu": cpu, "kernels": kernels, "qemu_machine": res.qemu_machine, "model": path.name, "source": source,
        "mode": mode, "model_sha256": res.model_sha256, "original_sha256": res.original_sha256,
        "instructions_per_inference": res.instructions_per_inference,
        "outputs_equal_original_host": res.outputs_equal_original_host,
        "allocates_in_header": res.allocates_in_header, "header_arena_bytes": res.header_arena_bytes,
        "arena_used_bytes": res.arena_used_bytes, "systick_hz": res.systick_hz,
        "op_overhead_instructions": round(empty * 1e9 / hz) if hz else None,
        "op_invoke_instructions": round(res.op_invoke_ticks * 1e9 / hz) if hz and res.op_invoke_ticks else None,
        "notes": res.notes, "timings": res.timings,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "ops": [op_record(i, op, measured[i]) for i, op in enumerate(ops)]}


_FIRMWARE_MODELS: dict[str, Model] = {}


def _firmware_model(res: Any, path: Path, opts: DeviceOptions) -> Model:
    """The model in the firmware: the file itself (original) or the optimiser's output, read
    back from the instantiated project (its sha256 is checked)."""
    data = path.read_bytes()
    if sha256(data) != res.model_sha256:
        data = _project_model_bytes(opts)
    if sha256(data) != res.model_sha256:
        raise FdtError(f"cannot find the firmware's model bytes for {path.name}")
    return read_model(data)


def _project_model_bytes(opts: DeviceOptions) -> bytes:
    """The model array of the instantiated project (generated/*model*.cc, a C byte array)."""
    import re
    from fdt_tflm.device.harness import check_prerequisites, work_dir
    from fdt_tflm.device.machines import machine_for
    work = work_dir(opts, check_prerequisites(opts.tree, opts.kernels), machine_for(opts.cpu, opts.machine))
    for f in [work / "proj" / "generated" / "fdt_model.cc"]:
        text = f.read_text()
        if "0x" not in text:
            continue
        body = text[text.index("{", text.index("[")):]
        vals = re.findall(r"0x([0-9a-fA-F]{2})", body[:body.index("}")])
        if len(vals) > 64:
            return bytes(int(v, 16) for v in vals)
    raise FdtError("no model array in the generated project")


def empty_file() -> dict[str, Any]:
    return {"description": "Instructions per operator measured in QEMU (-icount shift=0, SysTick around TFLM's "
                           "profiler events; benchmarks/device_ops.py, fdt-tflm device-run --profile-ops "
                           "--no-bisect): sweep models with one op type over many shapes, and the real models "
                           "original and optimized. 'instructions' of an op excludes an empty profiler pair "
                           "(op_overhead_instructions); instructions_per_inference is an Invoke without profiler.",
            "tflm_commit": TFLM_COMMIT, "records": []}


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else empty_file()


def _lock_path(path: Path) -> Path:
    tag = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"fdt_device_ops_{tag}.lock"


def store(path: Path, rec: dict[str, Any]) -> None:
    """Add ``rec`` (replacing its configuration) and rewrite the file, under a lock."""
    with open(_lock_path(path), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = load(path)
        key = rec_key(rec)
        data["records"] = [r for r in data["records"] if rec_key(r) != key] + [rec]
        data["records"].sort(key=lambda r: (r["cpu"], r["kernels"], r["source"], r["model"], r["mode"]))
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1) + "\n")
        os.replace(tmp, path)


def rec_key(r: dict[str, Any]) -> tuple[str, str, str, str]:
    return (r["model"], r["mode"], r["cpu"], r["kernels"])


def done(path: Path, file_sha: str, mode: str, cpu: str, kernels: str) -> bool:
    """A record of this configuration exists: the same model sha256 (original mode) or the
    same original sha256 (optimized: the firmware's model is known only after optimising)."""
    for r in load(path)["records"]:
        if (r["cpu"], r["kernels"], r["mode"]) != (cpu, kernels, mode):
            continue
        if (r["model_sha256"] if mode == "original" else r.get("original_sha256")) == file_sha:
            return True
    return False


# ------------------------------------------------------------------------------------------
# the check: sum of the ops against the whole Invoke
def check(path: Path) -> str:
    """Per (cpu, kernels): the per-op dispatch residual (Invoke - sum of ops) / n_ops, as
    the median and range over records, and its fit total = sum + a + b * n_ops."""
    groups: dict[tuple[str, str], list[tuple[str, int, int, int]]] = {}
    for r in load(path)["records"]:
        ops = r["ops"]
        if not ops or r["instructions_per_inference"] is None:
            continue
        s = sum(o["instructions"] for o in ops)
        groups.setdefault((r["cpu"], r["kernels"]), []).append(
            (f"{r['model']}/{r['mode']}", len(ops), r["instructions_per_inference"], s))
    lines = ["| cpu | kernels | records | ops | residual/op median | min | max | fit a + b*n: a | b | "
             "max abs dev of fit |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for (cpu, kernels), rows in sorted(groups.items()):
        per = np.array([(tot - s) / n for _, n, tot, s in rows])
        n_ops = np.array([n for _, n, _, _ in rows], float)
        resid = np.array([tot - s for _, _, tot, s in rows], float)
        a, b = (np.linalg.lstsq(np.stack([np.ones_like(n_ops), n_ops], 1), resid, rcond=None)[0]
                if len(rows) > 1 else (0.0, float(per[0])))
        dev = np.abs(resid - (a + b * n_ops)).max()
        lines.append(f"| {cpu} | {kernels} | {len(rows)} | {int(n_ops.sum())} | {np.median(per):.1f} | "
                     f"{per.min():.1f} | {per.max():.1f} | {a:.0f} | {b:.1f} | {dev:.0f} |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tree", action="append", default=[], metavar="KERNELS=DIR", help="TFLM tree per kernel set")
    ap.add_argument("--cpu", action="append", choices=("cortex-m4", "cortex-m33"), default=None,
                    help="(repeatable) default: cortex-m4")
    ap.add_argument("--kernels", action="append", choices=("reference", "cmsis-nn"), default=None,
                    help="(repeatable) default: every kernel set given a --tree")
    grp = ap.add_mutually_exclusive_group()
    grp.add_argument("--only-sweeps", action="store_true")
    grp.add_argument("--only-models", action="store_true")
    ap.add_argument("--sweep", action="append", default=[], metavar="NAME", help="only these sweep models")
    ap.add_argument("--model", action="append", default=[], metavar="NAME",
                    help="only these real models (stem); default: all, on cortex-m33 " + ", ".join(M33_MODELS))
    ap.add_argument("--mode", action="append", choices=("original", "optimized"), default=None)
    ap.add_argument("--build-dir", default=None)
    ap.add_argument("--sweep-dir", default=None, help="where the sweep models are written (default: a temp dir)")
    ap.add_argument("--timeout", type=float, default=1800.0)
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--list", action="store_true", help="print the sweep models' ops and activation bytes")
    ap.add_argument("--check", action="store_true", help="print the dispatch residual table and exit")
    args = ap.parse_args()
    out = Path(args.out)
    if args.check:
        print(check(out))
        return 0
    if args.list:
        for name, make in sweeps().items():
            m = make()
            types = sorted({op.type for op in m.main.operators})
            print(f"{name}: {len(m.main.operators)} ops {','.join(types)}, {activation_bytes(m)} B activations")
        return 0
    trees = dict(t.split("=", 1) for t in args.tree)
    cpus = args.cpu or ["cortex-m4"]
    kernel_sets = args.kernels or [k for k in ("reference", "cmsis-nn") if k in trees]
    modes = args.mode or ["original", "optimized"]
    sweep_dir = Path(args.sweep_dir or (Path(tempfile.gettempdir()) / "fdt_device_op_sweeps"))
    sweep_paths = [] if args.only_models else write_sweeps(sweep_dir, set(args.sweep) or None)
    jobs: list[tuple[Path, str, str, str, str]] = []
    for cpu in cpus:
        for kernels in kernel_sets:
            jobs += [(p, "sweep", "original", kernels, cpu) for p in sweep_paths]
            if args.only_sweeps:
                continue
            names = args.model or ([*sorted(p.stem for p in SHARED.glob("*.tflite")), *REPO_MODELS]
                                   if cpu == "cortex-m4" else list(M33_MODELS))
            for name in names:
                p = SHARED / f"{name}.tflite"
                p = p if p.exists() else REPO / "models" / f"{name}.tflite"
                jobs += [(p, "model", mode, kernels, cpu) for mode in modes]
    for i, (p, source, mode, kernels, cpu) in enumerate(jobs, 1):
        tag = f"[{i}/{len(jobs)}] {cpu} {kernels} {p.name} {mode}"
        if kernels not in trees:
            print(f"{tag}: no --tree for {kernels}, skipped", flush=True)
            continue
        if done(out, sha256(p.read_bytes()), mode, cpu, kernels):
            print(f"{tag}: recorded already", flush=True)
            continue
        try:
            rec = measure(p, source, mode, kernels, cpu, trees[kernels], args.build_dir, args.timeout)
        except Exception as e:  # noqa: BLE001 - one failed run (or a bug it hits) must not stop the rest
            print(f"{tag}: FAILED {type(e).__name__}: {e}", flush=True)
            continue
        store(out, rec)
        s = sum(o["instructions"] for o in rec["ops"])
        print(f"{tag}: {len(rec['ops'])} ops, invoke {rec['instructions_per_inference']:,}, sum of ops {s:,}, "
              f"equal {rec['outputs_equal_original_host']}, {rec['timings']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
