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


MODELS: dict[str, Callable[[], Model]] = {"kws": kws, "radar": radar, "convdense": convdense}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare with the shipped files instead of writing")
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    args = ap.parse_args()
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
