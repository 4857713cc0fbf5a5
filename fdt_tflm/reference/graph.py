"""Whole-graph evaluation with the bit-exact reference kernels."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ..ir.graph import Model, Operator, Tensor
from ..ir.types import DTYPE_NUMPY
from .ops import ReferenceUnsupported, kernel


def run_reference_tensors(model: Model, inputs: Sequence[np.ndarray],
                          known: Optional[dict[str, np.ndarray]] = None) -> dict[Tensor, np.ndarray]:
    """Values of every tensor of subgraph 0 for one sample.

    ``known`` maps tensor names to values supplied from outside (TFLM's run of an original
    model) for ops the reference does not model: such an op's outputs are taken from it only
    if the op is unchanged, i.e. each of its non-constant inputs has a value equal to the
    ``known`` value of the same name.  Ops the reference models are always evaluated."""
    sg = model.main
    known = known or {}
    if len(inputs) != len(sg.inputs):
        raise ReferenceUnsupported(f"model has {len(sg.inputs)} inputs, got {len(inputs)}")
    vals: dict[Tensor, np.ndarray] = {}
    for t, x in zip(sg.inputs, inputs):
        vals[t] = np.asarray(x, DTYPE_NUMPY[t.dtype]).reshape(t.shape)
    for op in sg.operators:
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
        outs = _evaluate(op, ins)
        if outs is None:
            outs = _unchanged(op, vals, known)
        for t, v in zip(op.outputs, outs):
            vals[t] = np.asarray(v, DTYPE_NUMPY[t.dtype]).reshape(t.shape)
    return vals


def _evaluate(op: Operator, ins: list) -> Optional[list[np.ndarray]]:
    """The reference kernel's outputs, or None where the reference does not model the op."""
    k = kernel(op)
    if k is None:
        return None
    try:
        return k(op, ins)
    except ReferenceUnsupported:
        return None


def _unchanged(op: Operator, vals: dict[Tensor, np.ndarray], known: dict[str, np.ndarray]) -> list[np.ndarray]:
    """An unmodelled op's outputs from ``known``, if its inputs are the known ones."""
    same = all(t is None or t.is_constant or (t.name in known and np.array_equal(
        vals[t], np.asarray(known[t.name]).reshape(t.shape))) for t in op.inputs)
    if not same or not all(o.name in known for o in op.outputs):
        raise ReferenceUnsupported(f"{op.type}: no reference kernel and not an unchanged op of the original")
    return [known[o.name] for o in op.outputs]


def run_reference(model: Model, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Outputs of subgraph 0 for one sample (a list, one array per graph output)."""
    vals = run_reference_tensors(model, inputs)
    return [vals[t] for t in model.main.outputs]
