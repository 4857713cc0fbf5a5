"""What each TFLM kernel allocates in the arena, per kernel set (tflite-micro 90b983c).

Three tables, read off the kernels' sources (``tensorflow/lite/micro/kernels/*.cc`` and
``kernels/cmsis_nn/*.cc``); struct sizes come from the ABI table (:mod:`.abi`):

- ``PARAMS_STRUCT``: the builtin parameter struct ``flatbuffer_conversions.cc`` parses for
  an op (persistent, natural alignment); ops absent parse to none.
- ``REFERENCE`` / ``CMSIS_NN``: a :class:`Kernel` per op: the op data struct its ``Init``
  allocates, the persistent arrays its ``Prepare`` allocates (16-byte aligned each), and
  the temporary ``TfLiteTensor``s its ``Prepare`` holds at once.  CMSIS-NN ops missing
  from ``CMSIS_NN`` run the reference kernel (TFLM's cmsis_nn build falls back to it).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from tflite.TensorType import TensorType

from ..ir.graph import Operator, Tensor

PARAMS_STRUCT: dict[str, str] = {
    "CONV_2D": "TfLiteConvParams", "DEPTHWISE_CONV_2D": "TfLiteDepthwiseConvParams",
    "FULLY_CONNECTED": "TfLiteFullyConnectedParams", "AVERAGE_POOL_2D": "TfLitePoolParams",
    "MAX_POOL_2D": "TfLitePoolParams", "L2_POOL_2D": "TfLitePoolParams", "SOFTMAX": "TfLiteSoftmaxParams",
    "CONCATENATION": "TfLiteConcatenationParams", "ADD": "TfLiteAddParams", "SUB": "TfLiteSubParams",
    "MUL": "TfLiteMulParams", "DIV": "TfLiteDivParams", "RESHAPE": "TfLiteReshapeParams",
    "SQUEEZE": "TfLiteSqueezeParams", "STRIDED_SLICE": "TfLiteStridedSliceParams", "SPLIT": "TfLiteSplitParams",
    "SPLIT_V": "TfLiteSplitVParams", "MEAN": "TfLiteReducerParams", "SUM": "TfLiteReducerParams",
    "REDUCE_MAX": "TfLiteReducerParams", "REDUCE_MIN": "TfLiteReducerParams", "REDUCE_PROD": "TfLiteReducerParams",
    "LEAKY_RELU": "TfLiteLeakyReluParams", "TRANSPOSE_CONV": "TfLiteTransposeConvParams",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "TfLiteUnidirectionalSequenceLSTMParams", "SVDF": "TfLiteSVDFParams",
    "PACK": "TfLitePackParams", "UNPACK": "TfLiteUnpackParams", "GATHER": "TfLiteGatherParams",
    "ARG_MAX": "TfLiteArgMaxParams", "ARG_MIN": "TfLiteArgMinParams", "CAST": "TfLiteCastParams",
    "MIRROR_PAD": "TfLiteMirrorPaddingParams", "RESIZE_BILINEAR": "TfLiteResizeBilinearParams",
    "RESIZE_NEAREST_NEIGHBOR": "TfLiteResizeNearestNeighborParams", "DEPTH_TO_SPACE": "TfLiteDepthToSpaceParams",
    "SPACE_TO_DEPTH": "TfLiteSpaceToDepthParams", "BATCH_MATMUL": "TfLiteBatchMatMulParams",
    "L2_NORMALIZATION": "TfLiteL2NormParams", "SHAPE": "TfLiteShapeParams", "CUMSUM": "TfLiteCumsumParams",
    "GELU": "TfLiteGeluParams",
}

# Temp tensors: "iN"/"oN" = the op's input/output N (skipped when absent), "*" = every input
# then every output, "P" = where Prepare's persistent arrays are allocated.  Persistent
# allocations first is the strict order (temps then meet the lower tail), used by default.
ALL_TEMPS: tuple[str, ...] = ("P", "*")
# conv_common.cc / depthwise_conv_common.cc: Prepare holds output, input, filter, allocates
# the per-channel arrays, then CalculateOpData* takes input, filter, bias, output again.
CONV_TEMPS: tuple[str, ...] = ("o0", "i0", "i1", "P", "i0", "i1", "i2", "o0")
CMSIS_CONV_TEMPS: tuple[str, ...] = ("i0", "i1", "o0", "P", "i0", "i1", "i2", "o0")
UNKNOWN_OP_DATA = 64  # priced for ops missing from the table (reported by unknown_ops)


def _w(op: Operator, i: int = 1) -> Optional[Tensor]:
    return op.inputs[i] if len(op.inputs) > i else None


def _dim(op: Operator, axis: int) -> int:
    w = _w(op)
    return 0 if w is None or not w.shape else int(w.shape[axis])


def _per_channel(channels: int) -> list[int]:
    return [4 * channels, 4 * channels]  # int32 output multipliers and shifts


def _quantized(op: Operator) -> bool:
    x = _w(op, 0)
    return x is not None and x.dtype in (TensorType.INT8, TensorType.INT16)


def _conv_arrays(op: Operator) -> list[int]:
    return _per_channel(_dim(op, 0)) if _quantized(op) else []


def _dw_arrays(op: Operator) -> list[int]:
    return _per_channel(_dim(op, 3)) if _quantized(op) else []


def _ref_conv_arrays(op: Operator) -> list[int]:
    return _per_channel(_dim(op, 0))  # conv_common.cc allocates them for every type


def _ref_dw_arrays(op: Operator) -> list[int]:
    return _per_channel(_dim(op, 3))


def _fc_arrays(op: Operator) -> list[int]:
    w = _w(op)
    if w is not None and w.quantization is not None and w.quantization.per_channel:
        return _per_channel(int(w.quantization.scale.size))
    return []


def _writable_dims(op: Operator) -> list[int]:
    """CreateWritableTensorDimsWithCopy: a TfLiteIntArray copy of the output's dims."""
    return [4 + 4 * len(op.outputs[0].shape)] if op.outputs and op.outputs[0] is not None else []


def _cmsis_lstm_sums(op: Operator) -> list[int]:
    """CMSIS_NN_PortOpData: eight kernel-sum vectors of the hidden size, int32 for int8
    activations and int64 for int16 ones (both with an int16 cell)."""
    x, hidden, cell = _w(op, 0), _w(op, 18), _w(op, 19)
    if x is None or hidden is None or cell is None or cell.dtype != TensorType.INT16:
        return []
    width = {TensorType.INT8: 4, TensorType.INT16: 8}.get(x.dtype)
    return [] if width is None else [width * int(hidden.shape[-1])] * 8


def _nothing(op: Operator) -> list[int]:
    return []


@dataclass(frozen=True)
class Kernel:
    """One kernel's arena use: Init's op data struct (None: Init allocates nothing),
    Prepare's persistent arrays (bytes each) and Prepare's temp tensors (see ALL_TEMPS)."""

    op_data: Optional[str] = None
    prepare: Callable[[Operator], list[int]] = _nothing
    temps: tuple[str, ...] = ALL_TEMPS


REFERENCE: dict[str, Kernel] = {
    "CONV_2D": Kernel("OpDataConv", _ref_conv_arrays, CONV_TEMPS),
    "DEPTHWISE_CONV_2D": Kernel("OpDataConv", _ref_dw_arrays, CONV_TEMPS),
    "FULLY_CONNECTED": Kernel("OpDataFullyConnected", _fc_arrays),
    "AVERAGE_POOL_2D": Kernel("OpDataPooling"), "MAX_POOL_2D": Kernel("OpDataPooling"),
    "SOFTMAX": Kernel("SoftmaxParams"),
    "RESHAPE": Kernel(), "SQUEEZE": Kernel(), "EXPAND_DIMS": Kernel(), "SPLIT": Kernel(), "SPLIT_V": Kernel(),
    "ADD": Kernel("OpDataAdd"), "CONCATENATION": Kernel("concatenation.cc:OpData"),
    "STRIDED_SLICE": Kernel("StridedSliceParams"), "PAD": Kernel("pad.h:OpData"), "PADV2": Kernel("pad.h:OpData"),
    "MEAN": Kernel("OpDataReduce"), "SUM": Kernel("OpDataReduce"), "REDUCE_MAX": Kernel("OpDataReduce"),
    "REDUCE_MIN": Kernel("OpDataReduce"), "RELU": Kernel("ReluOpData"), "RELU6": Kernel("Relu6OpData"),
    "TANH": Kernel("tanh.cc:OpData"), "HARD_SWISH": Kernel("HardSwishParams"),
    "QUANTIZE": Kernel("OpDataQuantizeReference"), "DEQUANTIZE": Kernel("DequantizeOpData"),
    "MUL": Kernel("OpDataMul"), "SUB": Kernel("OpDataSub"), "MAXIMUM": Kernel(), "MINIMUM": Kernel(),
    "LOGISTIC": Kernel("OpDataLogistic"), "LEAKY_RELU": Kernel("LeakyReluOpData"), "SLICE": Kernel(),
    "TRANSPOSE": Kernel(), "UNIDIRECTIONAL_SEQUENCE_LSTM": Kernel("OpDataLSTM"),
    "TRANSPOSE_CONV": Kernel("transpose_conv.cc:OpData", _ref_conv_arrays),
    "ABS": Kernel("OpDataAbsRsqrt"), "RSQRT": Kernel("OpDataAbsRsqrt"), "PRELU": Kernel("PreluParams"),
    "SQRT": Kernel(), "NEG": Kernel(), "FLOOR": Kernel(), "RESIZE_NEAREST_NEIGHBOR": Kernel(),
    "ARG_MAX": Kernel(), "ARG_MIN": Kernel(), "PACK": Kernel(), "UNPACK": Kernel(),
    "DEPTH_TO_SPACE": Kernel(None, _writable_dims), "SPACE_TO_DEPTH": Kernel(None, _writable_dims),
    "GATHER": Kernel(None, _writable_dims), "L2_NORMALIZATION": Kernel("L2NormalizationParams"),
    "DIV": Kernel("OpDataDiv"), "MIRROR_PAD": Kernel("OpDataMirrorPad"), "SVDF": Kernel("OpDataSvdf"),
    # our custom kernel (firmware_template/fdt_kernels/fdt_partial.cc), the same in both kernel sets
    "FDT_PARTIAL": Kernel("fdt_partial_core.h:FdtPartialParams", _nothing, ("i0", "o0")),
}

# TFLM's kernels/cmsis_nn/*.cc (USE cmsis-nn); everything else falls back to REFERENCE.
CMSIS_NN: dict[str, Kernel] = {
    "CONV_2D": Kernel("cmsis_nn/conv.cc:OpData", _conv_arrays, CMSIS_CONV_TEMPS),
    "DEPTHWISE_CONV_2D": Kernel("cmsis_nn/depthwise_conv.cc:OpData", _dw_arrays, CMSIS_CONV_TEMPS),
    "FULLY_CONNECTED": Kernel("cmsis_nn/fully_connected.cc:OpData", _fc_arrays),
    "AVERAGE_POOL_2D": Kernel("cmsis_nn/pooling.cc:OpData"), "MAX_POOL_2D": Kernel("cmsis_nn/pooling.cc:OpData"),
    "SOFTMAX": Kernel("cmsis_nn/softmax.cc:CMSISNNSoftmaxParams"), "ADD": Kernel("cmsis_nn/add.cc:OpData"),
    "SVDF": Kernel("cmsis_nn/svdf.cc:CmsisNnOpDataSvdf"),
    "TRANSPOSE_CONV": Kernel("cmsis_nn/transpose_conv.cc:OpData", _conv_arrays),
    "UNIDIRECTIONAL_SEQUENCE_LSTM": Kernel("cmsis_nn/unidirectional_sequence_lstm.cc:OpData", _cmsis_lstm_sums),
}

KERNEL_TABLES: dict[str, tuple[dict[str, Kernel], ...]] = {
    "reference": (REFERENCE,),
    "cmsis-nn": (CMSIS_NN, REFERENCE),
}


def kernel_for(op_type: str, kernels: str) -> Optional[Kernel]:
    """The kernel ``kernels`` runs for ``op_type`` (None: not in the tables)."""
    for table in KERNEL_TABLES[kernels]:
        if op_type in table:
            return table[op_type]
    return None
