"""Multiply-accumulate counts per operator (the unit for tiling's recomputation overhead).

Which formula counts an op is the catalog's ``OpInfo.macs`` (:class:`fdt_tflm.catalog.ops.MacKind`);
the formulas are here, keyed by that kind, and find their operands by the catalog's roles.
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Callable, Mapping, Optional

import numpy as np

from .ops import MacKind, OpInfo, info, operand
from ..ir.graph import Operator, Subgraph


def op_macs(op: Operator) -> int:
    """MACs of one op; element-wise and data-movement ops count one per output element.
    A malformed op (weights of an unexpected rank, from a corrupt file) counts as zero."""
    try:
        return _op_macs(op)
    except (ValueError, IndexError, TypeError, AttributeError):
        return 0


def _weights(op: Operator, i: OpInfo):
    return operand(op, i.roles.weights[0]) if i.roles.weights else None


def _conv(op: Operator, i: OpInfo, n_out: int) -> Optional[int]:
    w = _weights(op, i)
    if w is None:
        return None
    _, kh, kw, cin = w.shape
    return n_out * kh * kw * cin


def _depthwise(op: Operator, i: OpInfo, n_out: int) -> Optional[int]:
    w = _weights(op, i)
    if w is None:
        return None
    _, kh, kw, _ = w.shape
    return n_out * kh * kw


def _dense(op: Operator, i: OpInfo, n_out: int) -> Optional[int]:
    w = _weights(op, i)
    return None if w is None else n_out * w.shape[-1]


def _batch_matmul(op: Operator, i: OpInfo, n_out: int) -> Optional[int]:
    x = op.inputs[i.roles.ifm[0]]
    return None if x is None else n_out * x.shape[-1]


def _pool(op: Operator, i: OpInfo, n_out: int) -> Optional[int]:
    return n_out * int(op.opt("FilterHeight", 1)) * int(op.opt("FilterWidth", 1))


def _partial_sum(op: Operator, i: OpInfo, n_out: int) -> Optional[int]:
    """One MAC per weight per output pixel (weights: [out channels, ..., input-channel slice])."""
    w, out = _weights(op, i), op.outputs[0]
    if w is None:
        return None
    n_pix = int(np.prod(out.shape[:-1])) if out.shape else 1
    return n_pix * int(np.prod(w.shape))


def _copy(op: Operator, i: OpInfo, n_out: int) -> Optional[int]:
    return 0


# MacKind -> MACs of an op of that kind given its output elements (None: one per output element)
FORMULAS: Mapping[str, Callable[[Operator, OpInfo, int], Optional[int]]] = MappingProxyType({
    MacKind.CONV: _conv,
    MacKind.DEPTHWISE: _depthwise,
    MacKind.DENSE: _dense,
    MacKind.BATCH_MATMUL: _batch_matmul,
    MacKind.POOL: _pool,
    MacKind.PARTIAL_SUM: _partial_sum,
    MacKind.COPY: _copy,
})


def _op_macs(op: Operator) -> int:
    out = op.outputs[0] if op.outputs else None
    if out is None:
        return 0
    n_out = int(np.prod(out.shape)) if out.shape else 1
    i = info(op)
    formula = FORMULAS.get(i.macs)
    n = formula(op, i, n_out) if formula is not None else None
    return n_out if n is None else n


def graph_macs(sg: Subgraph) -> int:
    return sum(op_macs(op) for op in sg.operators)
