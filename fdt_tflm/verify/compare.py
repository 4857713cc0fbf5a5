"""Compare two models in TFLM (and LiteRT): bit-exact for integer outputs, a tolerance for floats.

Float tolerance: an output matches if ``max|a-b| <= FLOAT_RTOL * max(1, max|a|)``.  Float
partial sums change the order of additions, so bit-identity cannot be expected there.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .runner import RunResult, make_inputs, run, runtime_available

FLOAT_RTOL = 1e-4


@dataclass
class RuntimeComparison:
    runtime: str
    ran_a: bool
    ran_b: bool
    match: Optional[bool]
    max_abs_diff: float = 0.0
    a: Optional[RunResult] = None
    b: Optional[RunResult] = None
    note: str = ""

    def to_dict(self) -> dict:
        d = {"runtime": self.runtime, "ran_original": self.ran_a, "ran_optimized": self.ran_b,
             "match": self.match, "max_abs_diff": self.max_abs_diff, "note": self.note}
        for tag, r in (("original", self.a), ("optimized", self.b)):
            if r is not None and r.head is not None:
                d[f"{tag}_arena"] = {"head": r.head, "tail": r.tail, "total": r.total}
        return d


@dataclass
class Comparison:
    tflm: RuntimeComparison
    litert: Optional[RuntimeComparison] = None
    n_samples: int = 0
    details: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """TFLM ran both and agrees; LiteRT, where it ran the original, agrees too."""
        if not self.tflm.match:
            return False
        if self.litert is not None and self.litert.ran_a and self.litert.match is False:
            return False
        return True

    def to_dict(self) -> dict:
        return {"ok": self.ok, "samples": self.n_samples, "tflm": self.tflm.to_dict(),
                "litert": None if self.litert is None else self.litert.to_dict()}


def outputs_match(a: list[list[np.ndarray]], b: list[list[np.ndarray]]) -> tuple[bool, float]:
    worst = 0.0
    ok = len(a) == len(b)
    for sa, sb in zip(a, b):
        if len(sa) != len(sb):
            return False, float("inf")
        for x, y in zip(sa, sb):
            if x.shape != y.shape or x.dtype != y.dtype:
                return False, float("inf")
            if x.dtype.kind == "f":
                d = float(np.max(np.abs(x.astype(np.float64) - y.astype(np.float64)))) if x.size else 0.0
                worst = max(worst, d)
                ok &= d <= FLOAT_RTOL * max(1.0, float(np.max(np.abs(x))) if x.size else 1.0)
            else:
                d = float(np.max(np.abs(x.astype(np.int64) - y.astype(np.int64)))) if x.size else 0.0
                worst = max(worst, d)
                ok &= d == 0
    return bool(ok), worst


def compare_runtime(runtime: str, a: bytes, b: bytes, inputs, ref: Optional[RunResult] = None) -> RuntimeComparison:
    ra = ref if ref is not None else run(a, inputs, runtime)
    rb = run(b, inputs, runtime)
    if not ra.ok:
        return RuntimeComparison(runtime, False, rb.ok, None, a=ra, b=rb, note=ra.error)
    if not rb.ok:
        return RuntimeComparison(runtime, True, False, False, a=ra, b=rb, note=rb.error)
    match, diff = outputs_match(ra.outputs, rb.outputs)
    return RuntimeComparison(runtime, True, True, match, diff, ra, rb)


def compare_models(model, a: bytes, b: bytes, n_samples: int = 5, seed: int = 0,
                   litert: bool = True, tflm_ref: Optional[RunResult] = None) -> Comparison:
    """Run both models on the same seeded inputs.  ``model`` is the IR of ``a`` (for input shapes)."""
    inputs = make_inputs(model, n_samples, seed)
    t = compare_runtime("tflm", a, b, inputs, tflm_ref)
    lr = None
    if litert and runtime_available("litert"):
        lr = compare_runtime("litert", a, b, inputs)
    return Comparison(t, lr, n_samples)
