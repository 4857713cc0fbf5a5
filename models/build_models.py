#!/usr/bin/env python3
"""Build the example models shipped in models/ through fdt-tflm's own writer.

Weights are seeded random with valid int8 quantisation: the networks have the shapes of
real TinyML models (and so the same memory behaviour), not trained accuracy.

    python models/build_models.py            # (re)write every model next to this script
    python models/build_models.py --check    # fail if a shipped model differs from a rebuild
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fdt_tflm.io import write_model  # noqa: E402
from fdt_tflm.ir.graph import Model  # noqa: E402
from fdt_tflm.ir.qnet import QNet  # noqa: E402


def kws() -> Model:
    """DS-CNN keyword spotting, the MLPerf Tiny KWS topology: 49x10 MFCC -> 12 classes."""
    n = QNet(seed=1, description="fdt-tflm example: DS-CNN keyword spotting (MLPerf Tiny KWS topology)")
    x = n.input([1, 49, 10, 1], scale=0.5, zp=83)
    y = n.conv2d(x, 64, (10, 4), stride=2, padding="SAME")
    for _ in range(4):
        y = n.depthwise(y, (3, 3))
        y = n.conv2d(y, 64, (1, 1))
    y = n.pool(y, "AVERAGE", size=5, stride=5)          # [1, 5, 1, 64]
    y = n.reshape(y, [1, 5 * 64])
    y = n.fully_connected(y, 12)
    return n.output(n.softmax(y))


def radar() -> Model:
    """Radar gesture CNN: the range-Doppler map feeds three parallel conv branches merged late.

    TFLM runs the ops in file order (branch by branch) and keeps every branch's big
    intermediate alive; running each branch to its small pooled output first needs far less.
    """
    n = QNet(seed=2, description="fdt-tflm example: three-branch radar gesture CNN")
    x = n.input([1, 32, 32, 2], scale=0.05, zp=0)
    stems = [n.conv2d(x, 24, (3, 3)) for _ in range(3)]     # each 24 KB, all created first
    outs: list = []
    for s in stems:
        y = n.depthwise(s, (3, 3), stride=2)
        y = n.conv2d(y, 16, (1, 1), like=outs[0] if outs else None)  # concat inputs share quantisation
        y = n.pool(y, "AVERAGE", size=16, stride=16)        # [1, 1, 1, 16]
        outs.append(n.reshape(y, [1, 16]))
    y = n.concat(outs, axis=-1)
    y = n.fully_connected(y, 32, act="RELU")
    y = n.fully_connected(y, 8)
    return n.output(n.softmax(y))


def convdense() -> Model:
    """conv -> flatten -> dense: the 9 KB conv output exists only to feed the dense layer.

    Stock ops cannot shrink it (the dense layer needs every channel); FDT with exact int8
    partial sums (``--allow-custom-ops``) computes it a few channels at a time."""
    n = QNet(seed=3, description="fdt-tflm example: conv -> flatten -> dense")
    x = n.input([1, 24, 24, 1], scale=0.05, zp=0)
    y = n.conv2d(x, 16, (3, 3), stride=1)                   # [1, 24, 24, 16] = 9216 B
    y = n.reshape(y, [1, 24 * 24 * 16])
    y = n.fully_connected(y, 32)
    return n.output(n.softmax(y))


# (expansion t, output channels c, repeats n, first stride s) of MobileNetV2's inverted-residual stages
MBV2_STAGES: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def _inverted_residual(n: QNet, x, t: int, c: int, stride: int):
    """One block as Keras' ``_inverted_res_block`` converts: 1x1 expand + ReLU6 (not when t == 1),
    ZeroPadding2D(correct_pad) + VALID 3x3 depthwise for stride 2 (SAME for stride 1) + ReLU6,
    linear 1x1 projection, ADD with the block input when the shape is kept."""
    y = n.conv2d(x, x.shape[3] * t, (1, 1), act="RELU6") if t != 1 else x
    if stride == 2:  # correct_pad, 3x3 kernel: (size % 2, 1) per axis, ((0, 1), (0, 1)) for even sizes
        pads = [(s % 2, 1) for s in y.shape[1:3]]
        y = n.depthwise(n.pad(y, pads), (3, 3), stride=2, padding="VALID", act="RELU6")
    else:
        y = n.depthwise(y, (3, 3), act="RELU6")
    y = n.conv2d(y, c, (1, 1), act="NONE")
    return n.add(x, y) if stride == 1 and x.shape[3] == c else y


def mobilenet_v2_224() -> Model:
    """MobileNetV2 1.0 at 224x224, Keras' ``applications.MobileNetV2`` topology as the TFLite
    converter emits it in int8 (BatchNorm folded into conv biases, ReLU6 fused, explicit PADs
    before the stride-2 depthwise convs, GlobalAveragePooling2D as MEAN over H, W)."""
    n = QNet(seed=4, converter_like=True,
             description="fdt-tflm example: MobileNetV2 1.0 224x224 (Keras applications topology)")
    x = n.input([1, 224, 224, 3], scale=2 / 255, zp=-1)  # Keras' preprocessing: [-1, 1]
    y = n.conv2d(x, 32, (3, 3), stride=2, padding="SAME", act="RELU6")
    for t, c, reps, s in MBV2_STAGES:
        for i in range(reps):
            y = _inverted_residual(n, y, t, c, s if i == 0 else 1)
    y = n.conv2d(y, 1280, (1, 1), act="RELU6")
    y = n.mean(y, (1, 2), keep_dims=False)              # [1, 1280]
    y = n.fully_connected(y, 1000)
    return n.output(n.softmax(y))


def _inverted_residual_pt(n: QNet, x, t: int, c: int, stride: int):
    """One block as a PyTorch -> ONNX -> TFLite export tends to give it: SAME padding (no
    explicit PAD), ReLU6 as separate ops, and the residual ADD with the block's output first."""
    y = n.unary(n.conv2d(x, x.shape[3] * t, (1, 1), act="NONE"), "RELU6") if t != 1 else x
    y = n.unary(n.depthwise(y, (3, 3), stride=stride, act="NONE"), "RELU6")
    y = n.conv2d(y, c, (1, 1), act="NONE")
    return n.add(y, x) if stride == 1 and x.shape[3] == c else y


def mobilenet_v2_224_pytorch() -> Model:
    """MobileNetV2 1.0 at 224x224 in another exporter's form (see ``_inverted_residual_pt``),
    its classifier an AVERAGE_POOL_2D + RESHAPE.  Built on demand (tests, benchmark), not shipped."""
    n = QNet(seed=5, converter_like=True, description="fdt-tflm test model: MobileNetV2 1.0 224x224 (PyTorch-style export)")
    x = n.input([1, 224, 224, 3], scale=2 / 255, zp=-1)
    y = n.unary(n.conv2d(x, 32, (3, 3), stride=2, padding="SAME", act="NONE"), "RELU6")
    for t, c, reps, s in MBV2_STAGES:
        for i in range(reps):
            y = _inverted_residual_pt(n, y, t, c, s if i == 0 else 1)
    y = n.unary(n.conv2d(y, 1280, (1, 1), act="NONE"), "RELU6")
    y = n.reshape(n.pool(y, "AVERAGE", size=7, stride=7), [1, 1280])
    return n.output(n.fully_connected(y, 1000))


# MobileNetV1's depthwise-separable blocks: (output channels at width 1.0, depthwise stride)
MBV1_BLOCKS: tuple[tuple[int, int], ...] = (
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1), (512, 1), (512, 1), (512, 1),
    (1024, 2), (1024, 1))


def mobilenet_v1_025_128_float() -> Model:
    """MobileNetV1 0.25 at 128x128 in float32 (the classic TFLite hosted model's topology).
    Built on demand (tests, benchmark), not shipped."""
    n = QNet(seed=6, dtype="FLOAT32", description="fdt-tflm test model: MobileNetV1 0.25 128x128 float32")
    y = n.conv2d(n.input([1, 128, 128, 3]), 8, (3, 3), stride=2, act="RELU6")
    for ch, s in MBV1_BLOCKS:
        y = n.depthwise(y, (3, 3), stride=s, act="RELU6")
        y = n.conv2d(y, ch // 4, (1, 1), act="RELU6")
    y = n.reshape(n.pool(y, "AVERAGE", size=4, stride=4), [1, 256])
    return n.output(n.softmax(n.fully_connected(y, 1000)))


MODELS: dict[str, Callable[[], Model]] = {"kws": kws, "radar": radar, "convdense": convdense,
                                          "mobilenet_v2_224": mobilenet_v2_224}
# Other exporters' forms and dtypes, built when needed (python models/build_models.py --extra DIR)
EXTRA_MODELS: dict[str, Callable[[], Model]] = {"mobilenet_v2_224_pytorch": mobilenet_v2_224_pytorch,
                                                "mobilenet_v1_025_128_float": mobilenet_v1_025_128_float}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare with the shipped files instead of writing")
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--extra", metavar="DIR", help="write the models built on demand (EXTRA_MODELS) to DIR")
    args = ap.parse_args()
    if args.extra:
        for name, build in EXTRA_MODELS.items():
            path = os.path.join(args.extra, f"{name}.tflite")
            with open(path, "wb") as f:
                f.write(write_model(build()))
            print(f"wrote {path}")
        return 0
    bad = 0
    for name, build in MODELS.items():
        data = write_model(build())
        path = os.path.join(args.out, f"{name}.tflite")
        if args.check:
            same = os.path.exists(path) and open(path, "rb").read() == data
            print(f"{name}: {'ok' if same else 'DIFFERS'}")
            bad += not same
        else:
            with open(path, "wb") as f:
                f.write(data)
            print(f"wrote {path} ({len(data)} B)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
