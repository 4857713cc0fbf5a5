"""Helpers to create tensors and operators in the IR (used by passes, model scripts and tests)."""
from __future__ import annotations

from typing import Iterable, Optional, Sequence

import numpy as np

from .graph import Buffer, Model, Operator, Quantization, Subgraph, Tensor
from .table import Table
from .types import BUILTIN_CODES, DTYPE_CODES, NUMPY_DTYPE

# Which option table each builtin op we create carries (schema: BuiltinOptions union member).
OPTIONS_TYPE: dict[str, str] = {
    "CONV_2D": "Conv2DOptions", "DEPTHWISE_CONV_2D": "DepthwiseConv2DOptions",
    "FULLY_CONNECTED": "FullyConnectedOptions", "AVERAGE_POOL_2D": "Pool2DOptions",
    "MAX_POOL_2D": "Pool2DOptions", "RESHAPE": "ReshapeOptions", "SOFTMAX": "SoftmaxOptions",
    "CONCATENATION": "ConcatenationOptions", "ADD": "AddOptions", "MUL": "MulOptions", "SUB": "SubOptions",
    "STRIDED_SLICE": "StridedSliceOptions", "SLICE": "SliceOptions", "SPLIT": "SplitOptions",
    "SPLIT_V": "SplitVOptions", "PAD": "PadOptions", "PADV2": "PadV2Options", "QUANTIZE": "QuantizeOptions",
    "DEQUANTIZE": "DequantizeOptions", "MEAN": "ReducerOptions", "SQUEEZE": "SqueezeOptions",
    "LEAKY_RELU": "LeakyReluOptions", "HARD_SWISH": "HardSwishOptions", "TRANSPOSE": "TransposeOptions",
    "BATCH_MATMUL": "BatchMatMulOptions",
}


def options(op_name: str, **fields) -> Optional[Table]:
    """The option table of ``op_name`` with the given schema fields (e.g. ``StrideW=1``)."""
    t = OPTIONS_TYPE.get(op_name)
    if t is None:
        if fields:
            raise ValueError(f"no option table known for {op_name}")
        return None
    return Table(t, dict(fields))


def quant(scale, zero_point=0, axis: int = 0) -> Quantization:
    s = np.atleast_1d(np.asarray(scale, dtype=np.float32))
    z = np.atleast_1d(np.asarray(zero_point, dtype=np.int64))
    if z.size == 1 and s.size > 1:
        z = np.repeat(z, s.size)
    return Quantization(scale=s, zero_point=z, axis=axis)


class UniqueNames:
    """Hands out tensor names not yet used in one subgraph (``base``, ``base_1``, ...)."""

    def __init__(self, sg: Subgraph):
        self.used = {t.name for t in sg.tensors}

    def __call__(self, base: str) -> str:
        name, k = base, 1
        while name in self.used:
            name = f"{base}_{k}"
            k += 1
        self.used.add(name)
        return name


class GraphBuilder:
    """Append tensors and operators to one subgraph of a model."""

    def __init__(self, model: Optional[Model] = None, subgraph: Optional[Subgraph] = None):
        self.model = model if model is not None else Model(version=3)
        if subgraph is None:
            if not self.model.subgraphs:
                self.model.subgraphs.append(Subgraph(name=b"main"))
            subgraph = self.model.subgraphs[0]
        self.sg = subgraph
        self.unique = UniqueNames(subgraph)

    def tensor(self, name: str, shape: Sequence[int], dtype: str | int = "INT8",
               q: Optional[Quantization] = None) -> Tensor:
        code = DTYPE_CODES[dtype] if isinstance(dtype, str) else dtype
        t = Tensor(self.unique(name), [int(x) for x in shape], code, Buffer(), q)
        self.sg.tensors.append(t)
        return t

    def const(self, name: str, array: np.ndarray, q: Optional[Quantization] = None,
              dtype: str | int | None = None) -> Tensor:
        arr = np.ascontiguousarray(array)
        code = (DTYPE_CODES[dtype] if isinstance(dtype, str) else dtype) if dtype is not None \
            else NUMPY_DTYPE[arr.dtype.type]
        t = Tensor(self.unique(name), list(arr.shape), code, Buffer(arr.astype(arr.dtype.newbyteorder("<")).tobytes()), q)
        self.sg.tensors.append(t)
        return t

    def op(self, name: str, inputs: Iterable[Optional[Tensor]], outputs: Iterable[Tensor],
           opts: Optional[Table] = None, version: int = 1, index: Optional[int] = None) -> Operator:
        code = self.model.opcode(BUILTIN_CODES[name], version)
        o = Operator(code, list(inputs), list(outputs), opts if opts is not None else options(name))
        if index is None:
            self.sg.operators.append(o)
        else:
            self.sg.operators.insert(index, o)
        return o
