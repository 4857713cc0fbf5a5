"""What each TFLM kernel allocates in the arena, per kernel set (tflite-micro 90b983c).

Three tables, read off the kernels' sources (``tensorflow/lite/micro/kernels/*.cc`` and
``kernels/cmsis_nn/*.cc``); struct sizes come from the ABI table (:mod:`.abi`):

- ``PARAMS_STRUCT``: the builtin parameter struct ``flatbuffer_conversions.cc`` parses for
  an op (persistent, natural alignment); ops absent parse to none.
- ``REFERENCE`` / ``CMSIS_NN``: a :class:`Kernel` per op: the op data struct its ``Init``
  allocates, the persistent arrays its ``Init`` and ``Prepare`` allocate (16-byte aligned
  each), and the temporary ``TfLiteTensor``s its ``Prepare`` holds at once.  CMSIS-NN ops
  missing from ``CMSIS_NN`` run the reference kernel (TFLM's cmsis_nn build falls back to it).

``REFERENCE`` covers every kernel TFLM's ``MicroMutableOpResolver`` can register
(``python/tflite_micro/python_ops_resolver.cc`` registers them all): the builtins, TFLM's
own custom ops and the Signal library (``signal/micro/kernels``; custom ops, keyed by
their custom code, e.g. ``SignalRfft``), except ``TFLM_DECODE`` (compression) and
``ethos-u`` (NPU).  An op without an entry is priced by :func:`unknown_bound`: as much as
the most any kernel in the tables allocates (op data, arrays per tensor element, every
tensor twice as a temporary), so that a header with unknown ops is an upper bound.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Optional, Union

from flatbuffers import flexbuffers
from tflite.TensorType import TensorType

from ..ir.graph import Operator, Tensor
from .abi import ABI_TABLES, HOST64, Abi

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
    "GELU": "TfLiteGeluParams", "REDUCE_ALL": "TfLiteReducerParams", "IF": "TfLiteIfParams",
    "WHILE": "TfLiteWhileParams", "CALL_ONCE": "TfLiteCallOnceParams", "VAR_HANDLE": "TfLiteVarHandleParams",
}

# Temp tensors: "iN"/"oN" = the op's input/output N (skipped when absent), "*" = every input
# then every output, "P" = where Prepare's persistent arrays are allocated.  Persistent
# allocations first is the strict order (temps then meet the lower tail), used by default.
ALL_TEMPS: tuple[str, ...] = ("P", "*")
# conv_common.cc / depthwise_conv_common.cc: Prepare holds output, input, filter, allocates
# the per-channel arrays, then CalculateOpData* takes input, filter, bias, output again.
CONV_TEMPS: tuple[str, ...] = ("o0", "i0", "i1", "P", "i0", "i1", "i2", "o0")
CMSIS_CONV_TEMPS: tuple[str, ...] = ("i0", "i1", "o0", "P", "i0", "i1", "i2", "o0")


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


def _conv_arrays(op: Operator, abi: Abi = HOST64) -> list[int]:
    return _per_channel(_dim(op, 0)) if _quantized(op) else []


def _dw_arrays(op: Operator, abi: Abi = HOST64) -> list[int]:
    return _per_channel(_dim(op, 3)) if _quantized(op) else []


def _ref_conv_arrays(op: Operator, abi: Abi = HOST64) -> list[int]:
    return _per_channel(_dim(op, 0))  # conv_common.cc allocates them for every type


def _ref_dw_arrays(op: Operator, abi: Abi = HOST64) -> list[int]:
    return _per_channel(_dim(op, 3))


def _fc_arrays(op: Operator, abi: Abi = HOST64) -> list[int]:
    w = _w(op)
    if w is not None and w.quantization is not None and w.quantization.per_channel:
        return _per_channel(int(w.quantization.scale.size))
    return []


def _writable_dims(op: Operator, abi: Abi = HOST64) -> list[int]:
    """CreateWritableTensorDimsWithCopy: a TfLiteIntArray copy of the output's dims."""
    return [4 + 4 * len(op.outputs[0].shape)] if op.outputs and op.outputs[0] is not None else []


def _cmsis_lstm_sums(op: Operator, abi: Abi = HOST64) -> list[int]:
    """CMSIS_NN_PortOpData: eight kernel-sum vectors of the hidden size, int32 for int8
    activations and int64 for int16 ones (both with an int16 cell)."""
    x, hidden, cell = _w(op, 0), _w(op, 18), _w(op, 19)
    if x is None or hidden is None or cell is None or cell.dtype != TensorType.INT16:
        return []
    width = {TensorType.INT8: 4, TensorType.INT16: 8}.get(x.dtype)
    return [] if width is None else [width * int(hidden.shape[-1])] * 8


def _nothing(op: Operator, abi: Abi = HOST64) -> list[int]:
    return []


# ---- arrays of the remaining builtin kernels (tensorflow/lite/micro/kernels) ----

def _bytes(t: Optional[Tensor]) -> int:
    return 0 if t is None else int(t.nbytes)


def _rank(t: Optional[Tensor]) -> int:
    return 0 if t is None or t.shape is None else len(t.shape)


def _out(op: Operator, i: int = 0) -> Optional[Tensor]:
    return op.outputs[i] if len(op.outputs) > i else None


def _int8_out_struct(struct: str) -> Callable[[Operator, Abi], list[int]]:
    """Prepare allocates ``struct`` when the output (add_n.cc, cumsum.cc) is int8."""
    def arrays(op: Operator, abi: Abi = HOST64) -> list[int]:
        o = _out(op)
        return [abi[struct].size] if o is not None and o.dtype == TensorType.INT8 else []
    return arrays


def _log_softmax_arrays(op: Operator, abi: Abi = HOST64) -> list[int]:
    """log_softmax.cc CalculateOpData: LogSoftmaxOpData for an int8 input."""
    x = _w(op, 0)
    return [abi["log_softmax.cc:LogSoftmaxOpData"].size] if x is not None and x.dtype == TensorType.INT8 else []


def _embedding_arrays(op: Operator, abi: Abi = HOST64) -> list[int]:
    """embedding_lookup.cc Prepare: the output's dims copy, then OpData (CalculateOpData)."""
    return _writable_dims(op) + [abi["embedding_lookup.cc:OpData"].size]


def _transposed(t: Tensor, abi: Abi) -> list[int]:
    """batch_matmul.cc AllocInitTransposeTensorFromTfLiteTensor: an eval tensor, its dims, its data."""
    return [abi["TfLiteEvalTensor"].size, 4 + 4 * _rank(t), _bytes(t)]


def _batch_matmul_arrays(op: Operator, abi: Abi = HOST64) -> list[int]:
    """batch_matmul.cc InitializeTemporaries (quantisation data for int8/int16, transposed
    copies of lhs when adj_x and of rhs unless adj_y), then ReshapeOutputTensor's dims copy."""
    lhs, rhs = _w(op, 0), _w(op, 1)
    out: list[int] = []
    if lhs is not None and lhs.dtype in (TensorType.INT8, TensorType.INT16):
        out.append(abi["batch_matmul.h:QuantizationOpDataBatchMatmul"].size)
    if lhs is not None and op.opt("AdjX", False):
        out += _transposed(lhs, abi)
    if rhs is not None and not op.opt("AdjY", False):
        out += _transposed(rhs, abi)
    return out + _writable_dims(op)


def _assign_variable_arrays(op: Operator, abi: Abi = HOST64) -> list[int]:
    """assign_variable.cc Prepare -> MicroResourceVariables::Allocate: the variable's buffer
    (value bytes).  An upper bound: only the first assignment of a resource allocates it."""
    return [_bytes(_w(op, 1))]


def _reduce_min_max_temps(op: Operator) -> tuple[str, ...]:
    """reduce_common.cc PrepareMinMaxHelper: PrepareSimple (input, axis, output for int8),
    then input, output, axis again; none is released before the op's end."""
    x = _w(op, 0)
    simple = ("i0", "i1", "o0") if x is not None and x.dtype == TensorType.INT8 else ("i0", "i1")
    return simple + ("i0", "o0", "i1")


def _reduce_mean_sum_temps(op: Operator) -> tuple[str, ...]:
    """reduce_common.cc PrepareMeanOrSumHelper: input, output, axis, then PrepareSimple."""
    x = _w(op, 0)
    simple = ("i0", "i1", "o0") if x is not None and x.dtype == TensorType.INT8 else ("i0", "i1")
    return ("i0", "o0", "i1") + simple


# ---- the Signal library (signal/micro/kernels; custom ops with flexbuffer options) ----

@lru_cache(maxsize=1024)
def _flex(data: bytes) -> dict:
    try:
        root = flexbuffers.Loads(data)
    except Exception:  # not a flexbuffer map: the kernel would read zeros
        return {}
    return root if isinstance(root, dict) else {}


def custom_options(op: Operator) -> dict:
    """The op's flexbuffer custom options as a dict (the Signal kernels read them by key
    order with FlexbufferWrapper::ElementAs*, i.e. by key)."""
    return _flex(bytes(op.custom_options)) if op.custom_options else {}


def _opt_int(op: Operator, key: str) -> int:
    v = custom_options(op).get(key, 0)
    try:
        return int(v)
    except (TypeError, ValueError):
        return 0


# flexbuffer "T" (a tflite TensorType) -> kissfft flavour (signal/src/kiss_fft_wrappers)
_FFT_KIND = {TensorType.INT16: "int16", TensorType.INT32: "int32", TensorType.FLOAT32: "float"}
_SAMPLE_BYTES = {TensorType.INT16: 2, TensorType.INT32: 4, TensorType.FLOAT32: 4}


def _fft_type(op: Operator) -> int:
    return _opt_int(op, "T")  # m["T"].AsInt32(): absent reads 0 = FLOAT32


def kissfftr_bytes(fft_length: int, kind: str, abi: Abi) -> int:
    """kiss_fftr_alloc's ``lenmem`` (third_party/kissfft/tools/kiss_fftr.c): the real-FFT state,
    the complex FFT state of half the length with its twiddles, and 3/2 * half complex
    values (tmpbuf + super twiddles).  Odd lengths: kiss_fftr_alloc leaves it 0."""
    if fft_length <= 0 or fft_length % 2:
        return 0
    half = fft_length // 2
    cpx = abi[f"kiss_fft_cpx<{kind}>"].size
    return (abi["kiss_fftr_state"].size + abi[f"kiss_fft_state<{kind}>"].size + cpx * (half - 1)
            + cpx * (half * 3 // 2))


def _rfft_arrays(op: Operator, abi: Abi = HOST64) -> list[int]:
    """rfft.cc RfftInit: after the params, the kissfft state (Rfft*GetNeededMemory)."""
    kind = _FFT_KIND.get(_fft_type(op))
    return [] if kind is None else [kissfftr_bytes(_opt_int(op, "fft_length"), kind, abi)]


def _irfft_arrays(op: Operator, abi: Abi = HOST64) -> list[int]:
    """irfft.cc IrfftInit: the state of Irfft*GetNeededMemory (float: an IrfftFloatState first)."""
    t = _fft_type(op)
    kind = _FFT_KIND.get(t)
    if kind is None:
        return []
    state = kissfftr_bytes(_opt_int(op, "fft_length"), kind, abi)
    return [state + (abi["irfft_float.cc:IrfftFloatState"].size if t == TensorType.FLOAT32 else 0)]


def _filter_bank_arrays(op: Operator, abi: Abi = HOST64) -> list[int]:
    """filter_bank.cc FilterBankInit: work_area of (num_channels + 1) uint64."""
    return [8 * (_opt_int(op, "num_channels") + 1)]


def _spectral_subtraction_arrays(op: Operator, abi: Abi = HOST64) -> list[int]:
    """filter_bank_spectral_subtraction.cc Init: noise_estimate of num_channels uint32."""
    return [4 * _opt_int(op, "num_channels")]


def _circular_buffer_bytes(capacity: int, abi: Abi) -> int:
    """signal/src/circular_buffer.cc CircularBufferGetNeededMemory."""
    return abi["tflm_signal::CircularBuffer"].size + 2 * 2 * capacity


def _outer(t: Optional[Tensor], inner: int) -> int:
    return 0 if t is None or inner <= 0 else t.num_elements // inner


def _state_buffers(op: Operator, capacity: int, abi: Abi) -> list[int]:
    """delay.cc / framer.cc Prepare: per outer dimension a state pointer and a circular-buffer
    pointer, then a circular buffer of ``capacity`` int16 each."""
    x = _w(op, 0)
    inner = int(x.shape[-1]) if x is not None and x.shape else 0
    outer = _outer(x, inner)
    return [outer * abi.pointer, outer * abi.pointer] + [_circular_buffer_bytes(capacity, abi)] * outer


def _delay_arrays(op: Operator, abi: Abi = HOST64) -> list[int]:
    x = _w(op, 0)
    frame = int(x.shape[-1]) if x is not None and x.shape else 0
    return _state_buffers(op, frame + _opt_int(op, "delay_length"), abi)


def _framer_arrays(op: Operator, abi: Abi = HOST64) -> list[int]:
    size, step = _opt_int(op, "frame_size"), _opt_int(op, "frame_step")
    capacity = (size + step - 1) // step * step if step > 0 else size
    return _state_buffers(op, capacity, abi)


def _overlap_add_arrays(op: Operator, abi: Abi = HOST64) -> list[int]:
    """overlap_add.cc Prepare: outer_dims pointers, then a frame of T per outer dimension."""
    x = _w(op, 0)
    if x is None or _rank(x) < 2:
        return []
    frame, frames = int(x.shape[-1]), int(x.shape[-2])
    outer = _outer(x, frame * frames)
    return [outer * abi.pointer] + [frame * _SAMPLE_BYTES.get(_fft_type(op), 4)] * outer


def _stacker_arrays(op: Operator, abi: Abi = HOST64) -> list[int]:
    """stacker.cc StackerInit: a circular buffer of num_channels * (left + right + 1)."""
    size = _opt_int(op, "num_channels") * (_opt_int(op, "stacker_left_context")
                                            + _opt_int(op, "stacker_right_context") + 1)
    return [_circular_buffer_bytes(size, abi)]


def _rfft_scratch(op: Operator) -> list[int]:
    """rfft.cc RfftPrepare: RequestScratchBufferInArena(fft_length * sizeof(T)) (one request)."""
    t = _fft_type(op)
    return [_opt_int(op, "fft_length") * _SAMPLE_BYTES[t]] if t in _SAMPLE_BYTES else []


def _detection_postprocess_scratch(op: Operator) -> list[int]:
    """detection_postprocess.cc Prepare: eleven requests (boxes from input 0, classes from the
    options, scores from input 1)."""
    boxes_t, scores_t = _w(op, 0), _w(op, 1)
    if boxes_t is None or scores_t is None or _rank(boxes_t) < 2 or _rank(scores_t) < 3:
        return []
    boxes = int(boxes_t.shape[1])
    max_det, classes = _opt_int(op, "max_detections"), _opt_int(op, "num_classes")
    scores = int(scores_t.shape[1]) * int(scores_t.shape[2]) * 4
    return [boxes, boxes * 4 * 4, scores, boxes * 4, boxes * 4, max_det * boxes * 4, max_det * boxes * 4,
            boxes * 4, max_det * boxes * 4, max(classes, max_det) * boxes * 4, min(boxes, max_det) * boxes * 4]


Temps = Union[tuple[str, ...], Callable[[Operator], tuple[str, ...]]]


@dataclass(frozen=True)
class Kernel:
    """One kernel's arena use: Init's op data struct (None: Init allocates nothing), the
    persistent arrays ``prepare(op, abi)`` (bytes each; the first ``init_arrays`` of them
    Init allocates right after the op data, the rest Prepare) and Prepare's temp tensors
    (see ALL_TEMPS; or a function of the op giving them).  ``prepare(op)`` without an ABI
    gives the host64 sizes, the larger ones (pointers are 8 B there)."""

    op_data: Optional[str] = None
    prepare: Callable[..., list[int]] = _nothing
    temps: Temps = ALL_TEMPS
    init_arrays: int = 0
    # RequestScratchBufferInArena of a kernel the op catalog does not know (custom ops):
    # bytes of each request, read off the source; the header's prediction uses it when TFLM
    # was not probed for the op (learned scratch wins; see arena.header_scratch).
    scratch: Optional[Callable[[Operator], list[int]]] = None

    def temps_of(self, op: Operator) -> tuple[str, ...]:
        return self.temps(op) if callable(self.temps) else self.temps

REFERENCE: dict[str, Kernel] = {
    "CONV_2D": Kernel("OpDataConv", _ref_conv_arrays, CONV_TEMPS),
    "DEPTHWISE_CONV_2D": Kernel("OpDataConv", _ref_dw_arrays, CONV_TEMPS),
    "FULLY_CONNECTED": Kernel("OpDataFullyConnected", _fc_arrays),
    "AVERAGE_POOL_2D": Kernel("OpDataPooling"), "MAX_POOL_2D": Kernel("OpDataPooling"),
    "SOFTMAX": Kernel("SoftmaxParams"),
    "RESHAPE": Kernel(), "SQUEEZE": Kernel(), "EXPAND_DIMS": Kernel(), "SPLIT": Kernel(), "SPLIT_V": Kernel(),
    "ADD": Kernel("OpDataAdd"), "CONCATENATION": Kernel("concatenation.cc:OpData"),
    "STRIDED_SLICE": Kernel("StridedSliceParams"), "PAD": Kernel("pad.h:OpData"), "PADV2": Kernel("pad.h:OpData"),
    "MEAN": Kernel("OpDataReduce", temps=_reduce_mean_sum_temps),
    "SUM": Kernel("OpDataReduce", temps=_reduce_mean_sum_temps),
    "REDUCE_MAX": Kernel("OpDataReduce", temps=_reduce_min_max_temps),
    "REDUCE_MIN": Kernel("OpDataReduce", temps=_reduce_min_max_temps), "RELU": Kernel("ReluOpData"), "RELU6": Kernel("Relu6OpData"),
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
    # The rest of MicroMutableOpResolver's builtins (kernels/<name>.cc; temps in Prepare's order).
    "ADD_N": Kernel(None, _int8_out_struct("add_n.cc:OpData"), ("*", "P")),
    "ASSIGN_VARIABLE": Kernel("assign_variable.cc:OpData", _assign_variable_arrays, ("i1", "P")),
    "BATCH_MATMUL": Kernel("batch_matmul.h:OpDataBatchMatmul", _batch_matmul_arrays, ("i0", "i1", "o0", "P")),
    "BATCH_TO_SPACE_ND": Kernel(temps=("i0", "o0")), "SPACE_TO_BATCH_ND": Kernel("SpaceToBatchParams", temps=("i0", "o0")),
    "BROADCAST_ARGS": Kernel(), "BROADCAST_TO": Kernel(), "CALL_ONCE": Kernel("call_once.cc:OpData", temps=()),
    "CAST": Kernel(), "CEIL": Kernel(), "COS": Kernel(), "SIN": Kernel(), "LOG": Kernel(), "SQUARE": Kernel(),
    "LOGICAL_NOT": Kernel(), "EXP": Kernel(), "ROUND": Kernel(), "ZEROS_LIKE": Kernel(), "FILL": Kernel(),
    "FLOOR_DIV": Kernel(), "FLOOR_MOD": Kernel(), "GATHER_ND": Kernel(), "DYNAMIC_UPDATE_SLICE": Kernel(),
    "RESIZE_BILINEAR": Kernel(), "REVERSE_V2": Kernel(),
    "CUMSUM": Kernel(None, _int8_out_struct("cumsum.cc:OpData"), ("i0", "i1", "o0", "P")),
    "ELU": Kernel("elu.cc:OpData"),
    "EMBEDDING_LOOKUP": Kernel(None, _embedding_arrays, ("i0", "i1", "o0", "P")),
    **{n: Kernel("comparisons.cc:OpData", temps=("i0", "i1"))
       for n in ("EQUAL", "NOT_EQUAL", "GREATER", "GREATER_EQUAL", "LESS", "LESS_EQUAL")},
    "IF": Kernel("if.cc:OpData", temps=("i0",)), "WHILE": Kernel("while.cc:OpData", temps=()),
    "L2_POOL_2D": Kernel(temps=("o0", "i0")),
    "LOGICAL_AND": Kernel(temps=()), "LOGICAL_OR": Kernel(temps=()),  # logical.cc: no Prepare
    "LOG_SOFTMAX": Kernel(None, _log_softmax_arrays, ("i0", "o0", "P")),
    "READ_VARIABLE": Kernel(temps=("i0",)), "VAR_HANDLE": Kernel("var_handle.cc:OpData", temps=()),
    "REDUCE_ALL": Kernel("OpDataReduce", temps=("i0", "o0", "i1", "i0", "i1")),
    "SELECT_V2": Kernel("select.cc:OpData"), "SHAPE": Kernel(temps=()),
    "SQUARED_DIFFERENCE": Kernel("squared_difference.cc:OpData"),
    # TFLM's own custom ops (micro_mutable_op_resolver.h AddCircularBuffer / AddDetectionPostprocess)
    "CIRCULAR_BUFFER": Kernel("OpDataCircularBuffer", temps=("i0", "o0")),
    "TFLite_Detection_PostProcess": Kernel("detection_postprocess.cc:OpData", temps=("i0", "i1", "i2"),
                                           scratch=_detection_postprocess_scratch),
    # The Signal library (signal/micro/kernels/<name>.cc), custom ops keyed by custom code.
    "SignalWindow": Kernel("window.cc:TFLMSignalWindowParams"),
    "SignalFftAutoScale": Kernel(),  # fft_auto_scale_kernel.cc: no Init
    "SignalRfft": Kernel("rfft.cc:TfLiteAudioFrontendRfftParams<T>", _rfft_arrays, init_arrays=1,
                         scratch=_rfft_scratch),
    "SignalIrfft": Kernel("irfft.cc:TfLiteAudioFrontendIrfftParams", _irfft_arrays, init_arrays=1),
    "SignalEnergy": Kernel("energy.cc:TFLMSignalEnergyParams"),
    "SignalFilterBank": Kernel("filter_bank.cc:TFLMSignalFilterBankParams", _filter_bank_arrays, init_arrays=1),
    "SignalFilterBankSquareRoot": Kernel(),  # filter_bank_square_root.cc: no Init
    "SignalFilterBankSpectralSubtraction": Kernel(
        "filter_bank_spectral_subtraction.cc:TFLMSignalSpectralSubtractionParams", _spectral_subtraction_arrays,
        init_arrays=1),
    "SignalPCAN": Kernel("pcan.cc:TfLitePcanParams"),
    "SignalFilterBankLog": Kernel("filter_bank_log.cc:TFLMSignalLogParams"),
    "SignalDelay": Kernel("delay.cc:TFLMSignalFrontendDelayParams", _delay_arrays, ("*", "P")),
    "SignalFramer": Kernel("framer.cc:TFLMSignalFramerParams", _framer_arrays, ("*", "P")),
    "SignalOverlapAdd": Kernel("overlap_add.cc:TFLMSignalOverlapAddParams<T>", _overlap_add_arrays, ("*", "P")),
    "SignalStacker": Kernel("stacker.cc:TFLMSignalStackerParams", _stacker_arrays, init_arrays=1),
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


# ---- ops without a table entry: an upper bound over the kernels in the tables ----

def _max_op_data(abi: Abi) -> int:
    return max(abi[k.op_data].size for t in (REFERENCE, CMSIS_NN) for k in t.values()
               if k.op_data and k.op_data in abi.structs)  # host64 has no CMSIS-NN structs


# The most op data any kernel in the tables allocates, on any ABI (OpDataLSTM & co.): what
# the search prices an op without an entry at (fdt_tflm.catalog / tiling use it).
UNKNOWN_OP_DATA = max(_max_op_data(abi) for abi in ABI_TABLES.values())
# Persistent bytes per element of the op's tensors that bound every table kernel's arrays
# (the largest: rfft's kissfft state, ~2.8 B per int16 input element; batch_matmul's
# transposed float copies, 4 B; delay/framer circular buffers, 4 B per frame element).
UNKNOWN_BYTES_PER_ELEMENT = 8
UNKNOWN_BYTES_PER_TENSOR = 64  # eval tensor + dims copies (batch_matmul: 24 + 4 + 4 * rank)
UNKNOWN_TEMPS: tuple[str, ...] = ("P", "*", "*")  # every tensor twice (conv's Prepare takes 7 of 4)
# Scratch per element of the op's tensors (one request; rfft: 2 B per input element, the
# reference reduce / transpose conv accumulators: 4 or 8 B per output element).
UNKNOWN_SCRATCH_PER_ELEMENT = 8


def _elements(op: Operator) -> list[Tensor]:
    return [t for t in [*op.inputs, *op.outputs] if t is not None]


def _unknown_arrays(op: Operator, abi: Abi = HOST64) -> list[int]:
    return [sum(UNKNOWN_BYTES_PER_ELEMENT * t.num_elements + UNKNOWN_BYTES_PER_TENSOR for t in _elements(op))]


def unknown_scratch(op: Operator) -> list[int]:
    """The scratch bound of an op without a table entry that TFLM was not probed for."""
    return [UNKNOWN_SCRATCH_PER_ELEMENT * sum(t.num_elements for t in _elements(op))]


@dataclass(frozen=True)
class UnknownKernel(Kernel):
    """The bound an op without a table entry is priced at on one ABI (see :func:`unknown_bound`)."""

    op_data_bytes: int = 0


def unknown_bound(abi: Abi) -> UnknownKernel:
    """What the replay charges an op whose kernel is in no table: the largest op data of
    any kernel in the tables on ``abi``, one persistent array of
    ``UNKNOWN_BYTES_PER_ELEMENT`` per element (+ ``UNKNOWN_BYTES_PER_TENSOR`` per tensor) of
    its inputs and outputs, and every tensor twice as a temporary.  An upper bound for any
    kernel that allocates no more than the kernels TFLM ships; the header says it is one."""
    return UnknownKernel(None, _unknown_arrays, UNKNOWN_TEMPS, 0, _max_op_data(abi))
