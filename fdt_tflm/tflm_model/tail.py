"""TFLM's persistent arena tail, replayed allocation by allocation, for a target.

The tail grows downwards from the end of the arena; each persistent allocation moves the
tail pointer down by its size and aligns it down to the allocation's alignment, so the
total depends on the sequence.  :mod:`fdt_tflm.tflm_model.replay` replays TFLM's sequence
(allocator objects, eval tensors and nodes, builtin params, kernel op data and arrays,
scratch handles, variables, the interpreter's input/output tensors) with the target's
struct layouts (:mod:`fdt_tflm.tflm_model.abi`, measured from TFLM's sources with the
target's compiler) and kernels (:mod:`fdt_tflm.tflm_model.kernels`).

The default target is the 64-bit host interpreter, the oracle every measured number comes
from (tests/test_tail.py pins it against TFLM); a Cortex-M's tail is about half of it.
Ops missing from the kernel tables are charged an upper bound (:func:`.kernels.unknown_bound`) and reported by
:func:`unknown_ops`.
"""
from __future__ import annotations

from typing import Optional

from ..ir.graph import Model, Operator
from .abi import ABI_TABLES
from .kernels import PARAMS_STRUCT, REFERENCE
from .replay import ARENA_ALIGN, UNBOUNDED, charged_kernel, op_data_bytes, replay
from .scratch import scratch_requests
from .target import HOST, Target


def _up(n: int, a: int) -> int:
    return -(-n // a) * a


def op_tail_bytes(op: Operator, target: Target) -> int:
    """Persistent arena bytes TFLM allocates for ``op`` itself on ``target``: its builtin params
    struct, its kernel's op data and Prepare's arrays (each rounded up to its alignment; the
    replay places them among the model's other allocations)."""
    abi = ABI_TABLES[target.abi]
    params = PARAMS_STRUCT.get(op.key.table_name)
    total = _up(abi[params].size, abi[params].align) if params is not None else 0
    k = charged_kernel(op, target, abi)  # the table's, else the replay's upper bound
    return total + _up(op_data_bytes(abi, k), ARENA_ALIGN) + sum(_up(b, ARENA_ALIGN) for b in k.prepare(op) if b > 0)


def op_tail(op: Operator, target: Target) -> int:
    """Everything one op adds to the tail on ``target``: its node, :func:`op_tail_bytes` and one
    handle per scratch request (the per-op part of the replay; the cost view prices changes
    with it)."""
    abi = ABI_TABLES[target.abi]
    return abi["NodeAndRegistration"].size + op_tail_bytes(op, target) + \
        abi["ScratchBufferHandle"].size * len(scratch_requests(op, target))

def unknown_ops(model: Model) -> list[str]:
    """Op types whose kernel data is not in the table (priced with a guess)."""
    return sorted({op.type for sg in model.subgraphs for op in sg.operators if op.key.table_name not in REFERENCE})


def predict_tail(model: Model, target: Target = HOST) -> int:
    """Bytes TFLM's persistent tail will use for ``model`` on ``target`` (default: the host build)."""
    return replay(model, target, UNBOUNDED, 0, lambda op: scratch_requests(op, target), with_temps=False).tail


def predict_total(model: Model, head: Optional[int] = None, target: Target = HOST) -> int:
    """Head + tail; ``head`` defaults to :func:`fdt_tflm.tflm_model.head.predict_head` with the
    target's scratch."""
    if head is None:
        from .scratch import scratch_intervals
        from .head import predict_head
        head = predict_head(model, scratch=scratch_intervals(model.main, target)).head
    return head + predict_tail(model, target)
