"""Run models in the TFLM host interpreter (our oracle) and in LiteRT (a second opinion).

Each run happens in a child process: a bad model or a too-small arena can abort
the runtime, and TFLM's allocation report is printed by C code on stdout.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..ir.graph import Model
from ..ir.types import DTYPE_NUMPY

DEFAULT_ARENA = 16 * 1024 * 1024
_ALLOC_RE = re.compile(r"Arena allocation (head|tail|total) (\d+) bytes")


@dataclass
class RunResult:
    """Outputs of one model on a batch of inputs, plus TFLM's measured arena."""

    ok: bool
    outputs: list[list[np.ndarray]] = field(default_factory=list)  # [sample][output]
    head: Optional[int] = None
    tail: Optional[int] = None
    total: Optional[int] = None
    error: str = ""


def make_inputs(model: Model, n_samples: int = 5, seed: int = 0) -> list[list[np.ndarray]]:
    """Seeded random inputs for every graph input: full range for integers, N(0,1) for floats."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_samples):
        sample = []
        for t in model.main.inputs:
            dt = np.dtype(DTYPE_NUMPY.get(t.dtype, np.int8))
            shape = tuple(t.shape)
            if dt.kind == "f":
                x = rng.standard_normal(shape).astype(dt)
            elif dt.kind == "b":
                x = rng.integers(0, 2, size=shape).astype(dt)
            else:
                info = np.iinfo(dt)
                lo, hi = max(info.min, -(2 ** 15)), min(info.max, 2 ** 15 - 1)
                x = rng.integers(lo, hi, size=shape, endpoint=True).astype(dt)
            sample.append(x)
        out.append(sample)
    return out


def run(model_bytes: bytes, inputs: list[list[np.ndarray]], runtime: str = "tflm",
        arena_size: int = DEFAULT_ARENA, timeout: float = 300.0) -> RunResult:
    """Run ``model_bytes`` on ``inputs`` in a child process of ``runtime`` ('tflm' or 'litert')."""
    with tempfile.TemporaryDirectory(prefix="fdt_tflm_") as tmp:
        mpath = os.path.join(tmp, "model.tflite")
        ipath = os.path.join(tmp, "inputs.npz")
        opath = os.path.join(tmp, "outputs.npz")
        with open(mpath, "wb") as f:
            f.write(model_bytes)
        arrays = {f"in_{s}_{i}": x for s, sample in enumerate(inputs) for i, x in enumerate(sample)}
        np.savez(ipath, n_samples=np.array(len(inputs)), **arrays)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in [_package_root(), env.get("PYTHONPATH", "")] if p)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        try:
            proc = subprocess.run([sys.executable, "-m", "fdt_tflm.verify._child", runtime, mpath, ipath, opath,
                                   str(arena_size)], capture_output=True, text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            return RunResult(False, error=f"{runtime} timed out after {timeout:.0f} s")
        if proc.returncode != 0 or not os.path.exists(opath):
            msg = (proc.stderr.strip().splitlines() or proc.stdout.strip().splitlines() or ["no output"])[-1]
            return RunResult(False, error=f"{runtime} failed (exit {proc.returncode}): {msg}")
        res = RunResult(True)
        with np.load(opath) as z:
            n_out = len({k.split("_")[2] for k in z.files})
            res.outputs = [[z[f"out_{s}_{o}"] for o in range(n_out)] for s in range(len(inputs))]
        for kind, num in _ALLOC_RE.findall(proc.stdout + proc.stderr):
            setattr(res, kind, int(num))
        return res


def _package_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def runtime_available(runtime: str) -> bool:
    """Whether the oracle package is installed (the verify extras)."""
    mod = "tflite_micro" if runtime == "tflm" else "ai_edge_litert"
    import importlib.util
    return importlib.util.find_spec(mod) is not None
