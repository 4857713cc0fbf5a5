"""Whole-graph evaluation with the bit-exact reference kernels."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ..ir.graph import Model, Tensor
from ..ir.types import DTYPE_NUMPY
from .ops import ReferenceUnsupported, kernel


def run_reference_tensors(model: Model, inputs: Sequence[np.ndarray],
                          known: Optional[dict[str, np.ndarray]] = None) -> dict[Tensor, np.ndarray]:
    """Values of every tensor of subgraph 0 for one sample.

    ``known`` maps tensor names to values supplied from outside (e.g. TFLM) for ops the
    reference does not model; such an op is skipped when all its outputs are known."""
    sg = model.main
    known = known or {}
    if len(inputs) != len(sg.inputs):
        raise ReferenceUnsupported(f"model has {len(sg.inputs)} inputs, got {len(inputs)}")
    vals: dict[Tensor, np.ndarray] = {}
    for t, x in zip(sg.inputs, inputs):
        vals[t] = np.asarray(x, DTYPE_NUMPY[t.dtype]).reshape(t.shape)
    for op in sg.operators:
        if all(o.name in known for o in op.outputs):
            for o in op.outputs:
                vals[o] = np.asarray(known[o.name]).reshape(o.shape)
            continue
        k = kernel(op)
        if k is None:
            raise ReferenceUnsupported(f"no reference kernel for {op.type}")
        ins = []
        for t in op.inputs:
            if t is None:
                ins.append(None)
            elif t.is_constant:
                ins.append(t.numpy())
            elif t in vals:
                ins.append(vals[t])
            else:
                raise ReferenceUnsupported(f"{op.type}: input {t.name} has no value (variable or unordered)")
        outs = k(op, ins)
        for t, v in zip(op.outputs, outs):
            vals[t] = np.asarray(v, DTYPE_NUMPY[t.dtype]).reshape(t.shape)
    return vals


def run_reference(model: Model, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Outputs of subgraph 0 for one sample (a list, one array per graph output)."""
    vals = run_reference_tensors(model, inputs)
    return [vals[t] for t in model.main.outputs]
