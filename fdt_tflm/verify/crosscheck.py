"""Pin the reference against TFLM: every intermediate tensor, op by op and for the whole graph.

TFLM's Python interpreter exposes only graph outputs, so a copy of the model lists every
activation as an extra output (this changes lifetimes, not arithmetic).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from ..io import read_model, write_model
from ..ir.graph import Model
from ..ir.surgery import drop_offline_plan
from ..reference.graph import run_reference_tensors
from ..reference.ops import kernel


def expose_all(model_bytes: bytes) -> tuple[bytes, list[str]]:
    """A copy of the model whose outputs are its outputs followed by every other activation."""
    m = read_model(model_bytes)
    sg = m.main
    extra = [t for t in sg.tensors if t.is_activation and t not in sg.outputs and t not in sg.inputs
             and any(t in op.outputs for op in sg.operators)]
    sg.outputs = list(sg.outputs) + extra
    drop_offline_plan(m)
    m.signature_defs = []
    return write_model(m), [t.name for t in sg.outputs]


def tflm_tensors(model_bytes: bytes, inputs: Sequence[Sequence[np.ndarray]]) -> list[dict[str, np.ndarray]]:
    """TFLM's value of every output and intermediate activation, by tensor name, per sample."""
    from . import run
    data, names = expose_all(model_bytes)
    res = run(data, [list(s) for s in inputs], "tflm")
    if not res.ok:
        raise RuntimeError(res.error)
    return [dict(zip(names, sample)) for sample in res.outputs]


@dataclass
class CrossCheck:
    ops_checked: int = 0
    ops_skipped: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    whole_graph: Optional[bool] = None  # None: the graph has ops the reference lacks

    @property
    def ok(self) -> bool:
        return not self.mismatches and self.whole_graph is not False


def crosscheck(model_bytes: bytes, n_samples: int = 3, seed: int = 0) -> CrossCheck:
    """Compare every op the reference models with TFLM (fed TFLM's own inputs), and the whole graph."""
    from . import make_inputs
    model: Model = read_model(model_bytes)
    inputs = make_inputs(model, n_samples, seed)
    ref = tflm_tensors(model_bytes, inputs)
    out = CrossCheck()
    sg = model.main
    for s, sample in enumerate(inputs):
        given = {t: np.asarray(x).reshape(t.shape) for t, x in zip(sg.inputs, sample)}
        for op in sg.operators:
            k = kernel(op)
            if k is None:
                if s == 0:
                    out.ops_skipped.append(op.type)
                continue
            ins = [None if t is None else (t.numpy() if t.is_constant else given.get(t, ref[s].get(t.name)))
                   for t in op.inputs]
            got = k(op, ins)
            if s == 0:
                out.ops_checked += 1
            for t, v in zip(op.outputs, got):
                want = ref[s][t.name]
                if not np.array_equal(np.asarray(v).reshape(want.shape), want):
                    d = int(np.max(np.abs(np.asarray(v, np.int64).reshape(want.shape) - want.astype(np.int64))))
                    out.mismatches.append(f"sample {s} {op.type} -> {t.name}: max diff {d}")
        if out.ops_skipped:
            continue
        vals = run_reference_tensors(model, sample)
        ok = all(np.array_equal(vals[t], ref[s][t.name]) for t in sg.outputs)
        out.whole_graph = ok if out.whole_graph is None else (out.whole_graph and ok)
    return out
