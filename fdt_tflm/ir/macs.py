"""Multiply-accumulate counts per operator (the unit for tiling's recomputation overhead)."""
from __future__ import annotations

import numpy as np

from .graph import Operator, Subgraph


def op_macs(op: Operator) -> int:
    """MACs of one op; element-wise and data-movement ops count one per output element.
    A malformed op (weights of an unexpected rank, from a corrupt file) counts as zero."""
    try:
        return _op_macs(op)
    except (ValueError, IndexError, TypeError, AttributeError):
        return 0


def _op_macs(op: Operator) -> int:
    t = op.type
    out = op.outputs[0] if op.outputs else None
    if op.opcode.custom_code == b"FDT_PARTIAL" and out is not None and len(op.inputs) > 1 and op.inputs[1] is not None:
        w = op.inputs[1].shape  # [out channels, ..., input-channel slice]: one MAC per weight per output pixel
        n_pix = int(np.prod(out.shape[:-1])) if out.shape else 1
        return n_pix * int(np.prod(w))
    if out is None:
        return 0
    n_out = int(np.prod(out.shape)) if out.shape else 1
    if t == "CONV_2D" and len(op.inputs) > 1 and op.inputs[1] is not None:
        _, kh, kw, cin = op.inputs[1].shape
        return n_out * kh * kw * cin
    if t == "DEPTHWISE_CONV_2D" and len(op.inputs) > 1 and op.inputs[1] is not None:
        _, kh, kw, _ = op.inputs[1].shape
        return n_out * kh * kw
    if t in ("FULLY_CONNECTED",) and len(op.inputs) > 1 and op.inputs[1] is not None:
        return n_out * op.inputs[1].shape[-1]
    if t == "BATCH_MATMUL" and op.inputs[0] is not None:
        return n_out * op.inputs[0].shape[-1]
    if t in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        return n_out * int(op.opt("FilterHeight", 1)) * int(op.opt("FilterWidth", 1))
    if t in ("CONCATENATION", "RESHAPE", "SQUEEZE", "STRIDED_SLICE", "SLICE", "SPLIT", "SPLIT_V"):
        return 0
    return n_out


def graph_macs(sg: Subgraph) -> int:
    return sum(op_macs(op) for op in sg.operators)
