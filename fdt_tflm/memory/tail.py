"""TFLM's persistent arena tail, replayed allocation by allocation.

The tail grows downwards from the end of the arena; each persistent allocation
moves the tail pointer down by its size and then aligns it down to the allocation's
alignment, so the total depends on the sequence.  We replay TFLM's sequence
(micro_allocator.cc, micro_interpreter.cc, the reference kernels' Init/Prepare):

1. fixed allocator objects (a constant, calibrated), then per subgraph
   ``SubgraphAllocations`` (16 B), one ``TfLiteEvalTensor`` per tensor (24 B) and one
   ``NodeAndRegistration`` per op (64 B), 8-byte aligned;
2. each op's builtin parameter struct (``TfLite*Params``, natural alignment), parsed
   for all ops first;
3. each kernel's op data and per-channel arrays (``AllocatePersistentBuffer``,
   16-byte aligned) from Init and Prepare;
4. scratch buffer handles (8 B each), variable tensors (16-byte aligned);
5. the interpreter's input/output pointer arrays and one persistent ``TfLiteTensor``
   (64 B) per graph input/output, with its quantisation struct (24 B) and zero-point
   array (4 + 4 n B).

Struct sizes are those of the 64-bit host build of the ``tflite-micro`` Python
package (the oracle the tests measure against); a 32-bit MCU build has smaller
pointers, so treat the numbers as the host's.  Ops missing from the kernel table are
priced at ``UNKNOWN_OP_DATA`` and reported by :func:`unknown_ops`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from ..ir.graph import Model, Operator, Tensor
from .scratch import scratch_requests

PERSISTENT_ALIGN = 16  # MicroArenaBufferAlignment()
# Allocator objects made before any model data (planner, allocators, builtin-data allocator):
# calibrated so that every shared model and the generated graphs in tests/test_tail.py match.
FIXED_PREFIX = 472
SUBGRAPH_ALLOCATIONS = 16
EVAL_TENSOR = 24
NODE_AND_REGISTRATION = 64
SCRATCH_HANDLE = 8
PERSISTENT_TFLITE_TENSOR = 64
AFFINE_QUANTIZATION = 24
POINTER = 8
UNKNOWN_OP_DATA = 64


@dataclass(frozen=True)
class Params:
    """``sizeof``/``alignof`` of an op's builtin parameter struct (flatbuffer_conversions.cc)."""

    size: int
    align: int = 4


# Builtin parameter structs (core/c/builtin_op_data.h); ops absent here parse to no struct.
BUILTIN_PARAMS: dict[str, Params] = {
    "CONV_2D": Params(28), "DEPTHWISE_CONV_2D": Params(28), "FULLY_CONNECTED": Params(32),
    "AVERAGE_POOL_2D": Params(40), "MAX_POOL_2D": Params(40), "L2_POOL_2D": Params(40),
    "SOFTMAX": Params(4), "CONCATENATION": Params(8), "ADD": Params(8), "SUB": Params(8),
    "MUL": Params(4), "DIV": Params(4), "RESHAPE": Params(36), "SQUEEZE": Params(36),
    "STRIDED_SLICE": Params(24), "SPLIT": Params(4), "SPLIT_V": Params(4),
    "MEAN": Params(1, 1), "SUM": Params(1, 1), "REDUCE_MAX": Params(1, 1), "REDUCE_MIN": Params(1, 1),
    "REDUCE_PROD": Params(1, 1), "LEAKY_RELU": Params(4), "TRANSPOSE_CONV": Params(20),
    "UNIDIRECTIONAL_SEQUENCE_LSTM": Params(16), "SVDF": Params(12), "PACK": Params(8), "UNPACK": Params(8),
    "GATHER": Params(8), "ARG_MAX": Params(4), "ARG_MIN": Params(4), "CAST": Params(8),
    "MIRROR_PAD": Params(4), "RESIZE_BILINEAR": Params(2, 1), "RESIZE_NEAREST_NEIGHBOR": Params(2, 1),
    "DEPTH_TO_SPACE": Params(4), "SPACE_TO_DEPTH": Params(4), "BATCH_MATMUL": Params(3, 1),
    "L2_NORMALIZATION": Params(4), "SHAPE": Params(4), "CUMSUM": Params(2, 1), "GELU": Params(1, 1),
}


def _out_channels(op: Operator, axis: int) -> int:
    w = op.inputs[1] if len(op.inputs) > 1 else None
    return 0 if w is None or not w.shape else int(w.shape[axis])


def _per_channel_arrays(channels: int) -> list[int]:
    return [4 * channels, 4 * channels]  # output multipliers and shifts (int32 each)


def _fc(op: Operator) -> list[int]:
    w = op.inputs[1] if len(op.inputs) > 1 else None
    if w is not None and w.quantization is not None and w.quantization.per_channel:
        return [72] + _per_channel_arrays(int(w.quantization.scale.size))
    return [72]


# Bytes each reference kernel allocates persistently (Init op data, then Prepare arrays),
# measured on the host build: sizeof(OpData...) values.
KERNEL_DATA: dict[str, Callable[[Operator], list[int]]] = {
    "CONV_2D": lambda op: [80] + _per_channel_arrays(_out_channels(op, 0)),
    "DEPTHWISE_CONV_2D": lambda op: [80] + _per_channel_arrays(_out_channels(op, 3)),
    "FULLY_CONNECTED": _fc,
    "AVERAGE_POOL_2D": lambda op: [32], "MAX_POOL_2D": lambda op: [32],
    "SOFTMAX": lambda op: [80],
    "RESHAPE": lambda op: [], "SQUEEZE": lambda op: [], "EXPAND_DIMS": lambda op: [],
    "SPLIT": lambda op: [], "SPLIT_V": lambda op: [],
    "ADD": lambda op: [60], "CONCATENATION": lambda op: [80], "STRIDED_SLICE": lambda op: [84],
    "PAD": lambda op: [56], "PADV2": lambda op: [56], "MEAN": lambda op: [44], "SUM": lambda op: [44],
    "RELU": lambda op: [28], "RELU6": lambda op: [8], "TANH": lambda op: [16], "HARD_SWISH": lambda op: [20],
    "QUANTIZE": lambda op: [32], "DEQUANTIZE": lambda op: [32],
    "MUL": lambda op: [36], "SUB": lambda op: [52], "MAXIMUM": lambda op: [], "MINIMUM": lambda op: [],
    "LOGISTIC": lambda op: [16], "LEAKY_RELU": lambda op: [24], "SLICE": lambda op: [], "TRANSPOSE": lambda op: [],
    "UNIDIRECTIONAL_SEQUENCE_LSTM": lambda op: [688],
    "TRANSPOSE_CONV": lambda op: [88] + _per_channel_arrays(_out_channels(op, 0)),
    "ABS": lambda op: [28], "RSQRT": lambda op: [28], "PRELU": lambda op: [28], "SQRT": lambda op: [],
    "NEG": lambda op: [], "FLOOR": lambda op: [], "RESIZE_NEAREST_NEIGHBOR": lambda op: [],
    "ARG_MAX": lambda op: [], "ARG_MIN": lambda op: [], "REDUCE_MAX": lambda op: [44], "REDUCE_MIN": lambda op: [44],
    "DEPTH_TO_SPACE": lambda op: [20], "SPACE_TO_DEPTH": lambda op: [20], "GATHER": lambda op: [20],
    "PACK": lambda op: [], "UNPACK": lambda op: [], "L2_NORMALIZATION": lambda op: [4],
}


def _align_up(n: int, a: int) -> int:
    return (n + a - 1) // a * a


class _Tail:
    """The tail pointer, as bytes used from the arena end (the end itself is 16-aligned)."""

    def __init__(self, start: int):
        self.used = start

    def alloc(self, size: int, align: int) -> None:
        self.used = _align_up(self.used + size, align)


def kernel_allocations(op: Operator) -> list[int]:
    """Persistent bytes ``op``'s reference kernel allocates (each 16-byte aligned)."""
    rule = KERNEL_DATA.get(op.type)
    if rule is None:
        return [UNKNOWN_OP_DATA]
    return [b for b in rule(op) if b >= 0]


def unknown_ops(model: Model) -> list[str]:
    """Op types whose kernel data is not in the table (priced with a guess)."""
    return sorted({op.type for sg in model.subgraphs for op in sg.operators if op.type not in KERNEL_DATA})


def _persistent_tensor(tail: _Tail, t: Tensor) -> None:
    tail.alloc(PERSISTENT_TFLITE_TENSOR, 8)
    q = t.quantization
    if q is not None and q.scale is not None and q.scale.size > 0 and q.zero_point is not None \
            and q.zero_point.size > 0:
        tail.alloc(AFFINE_QUANTIZATION, 8)
        tail.alloc(4 + 4 * int(q.scale.size), 4)


def predict_tail(model: Model) -> int:
    """Bytes TFLM's persistent tail will use for ``model`` (host build of the runtime)."""
    tail = _Tail(FIXED_PREFIX)
    tail.alloc(SUBGRAPH_ALLOCATIONS * len(model.subgraphs), 8)
    for sg in model.subgraphs:
        tail.alloc(EVAL_TENSOR * len(sg.tensors), 8)
    for sg in model.subgraphs:
        tail.alloc(NODE_AND_REGISTRATION * len(sg.operators), 8)
    for sg in model.subgraphs:
        for op in sg.operators:
            p = BUILTIN_PARAMS.get(op.type)
            if p is not None:
                tail.alloc(p.size, p.align)
    n_scratch = 0
    for sg in model.subgraphs:
        for op in sg.operators:
            for b in kernel_allocations(op):
                tail.alloc(b, PERSISTENT_ALIGN)
            n_scratch += len(scratch_requests(op))
    tail.alloc(SCRATCH_HANDLE * n_scratch, 8)
    for sg in model.subgraphs:
        for t in sg.tensors:
            if t.is_variable:
                tail.alloc(t.nbytes, PERSISTENT_ALIGN)
    main = model.main if model.subgraphs else None
    if main is not None:
        for group in (main.inputs, main.outputs):
            tail.alloc(POINTER * len(group), PERSISTENT_ALIGN)
            for t in group:
                _persistent_tensor(tail, t)
    return tail.used


def predict_total(model: Model, head: Optional[int] = None) -> int:
    """Head + tail; ``head`` defaults to :func:`fdt_tflm.memory.tflm_model.predict_head` with scratch."""
    if head is None:
        from .scratch import scratch_intervals
        from .tflm_model import predict_head
        head = predict_head(model, scratch=scratch_intervals(model.main)).head
    return head + predict_tail(model)
