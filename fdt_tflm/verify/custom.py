"""Verification of models TFLM's host build cannot run (our FDT_PARTIAL custom op).

The original runs in the TFLM host interpreter with every intermediate tensor exposed; the
rewritten model, serialised and read back (what the firmware sees), runs in the bit-exact
NumPy reference (:mod:`fdt_tflm.reference.graph`, itself pinned to TFLM op by op).  An op
the reference does not model is accepted only where it is unchanged: its inputs equal the
original's values of the same names, and then TFLM's outputs are reused.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..ir.graph import Model


@dataclass
class CustomVerification:
    """Outcome of :func:`verify_custom`: ``ok`` only if every output matched bit for bit."""

    ok: bool
    samples: int
    outputs_compared: int = 0
    tensors_matched: int = 0  # intermediate tensors equal to the original's (same name)
    ops_from_tflm: list[str] = field(default_factory=list)  # unmodelled ops whose results were taken from TFLM
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"ok": self.ok, "samples": self.samples, "outputs_compared": self.outputs_compared,
                "tensors_matched": self.tensors_matched, "ops_from_tflm": self.ops_from_tflm,
                "errors": self.errors, "needs_custom_kernel": True}


def verify_custom(original_bytes: bytes, new_model: Model, n_samples: int = 5,
                  seed: int = 0) -> tuple[bool, CustomVerification]:
    """Prove that ``new_model`` computes the original's TFLM outputs bit for bit."""
    from ..io import read_model, write_model
    from .crosscheck import tflm_tensors
    from ..reference.graph import run_reference_tensors
    from ..reference.ops import ReferenceUnsupported, kernel
    from .runner import make_inputs

    original, new = read_model(original_bytes), read_model(write_model(new_model))
    inputs = make_inputs(original, n_samples, seed)
    res = CustomVerification(False, n_samples)
    try:
        originals = tflm_tensors(original_bytes, inputs)
    except RuntimeError as e:
        res.errors.append(f"TFLM could not run the original: {e}")
        return False, res
    outputs = [t.name for t in original.main.outputs]
    if [t.name for t in new.main.outputs] != outputs:
        res.errors.append("the rewritten model's outputs differ from the original's")
        return False, res
    res.ops_from_tflm = [op.type for op in new.main.operators if kernel(op) is None]
    for s, (sample, ref) in enumerate(zip(inputs, originals)):
        try:
            vals = run_reference_tensors(new, sample, known=ref)
        except ReferenceUnsupported as e:
            res.errors.append(str(e))
            return False, res
        for t, v in vals.items():
            if t.name not in ref or t in new.main.inputs:
                continue
            want = ref[t.name].reshape(t.shape)
            equal = v.shape == want.shape and v.dtype == want.dtype and np.array_equal(v, want)
            if t.name in outputs:
                res.outputs_compared += 1
                if not equal:
                    diff = int(np.max(np.abs(v.astype(np.int64) - want.astype(np.int64)))) if v.shape == want.shape \
                        else "shape"
                    res.errors.append(f"sample {s}: output {t.name!r} differs (max diff {diff})")
            elif equal:
                res.tensors_matched += 1
            else:
                res.errors.append(f"sample {s}: tensor {t.name!r} differs from the original's")
    res.ok = not res.errors
    return res.ok, res
