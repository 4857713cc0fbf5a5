"""Scratch buffers TFLM's CMSIS-NN kernels request, exactly, per CPU feature set.

A restatement of tflite-micro 90b983c ``kernels/cmsis_nn/*.cc`` (which ``*_get_buffer_size``
each Prepare calls, with which dims and padding) and of CMSIS-NN 4ab83cc's
``*_get_buffer_size`` functions as compiled by GCC (the ``__ARMCC_VERSION`` branches are
Arm Compiler 6 only: ``arm_convolve_1x1_s8_fast`` needs no buffer with GCC, and the MVE
one-input-channel depthwise threshold is 1).  Feature sets: ``dsp`` (ARM_MATH_DSP:
Cortex-M4/M7/M33), ``mve`` (ARM_MATH_MVEI: M55/M85), ``none`` (M0/M3).

Int8 paths only; int16 convolutions, CMSIS-NN's SVDF and transpose conv are not modelled
(listed by :func:`unmodelled_ops`).  Persistent allocations of these kernels are in
:mod:`.kernels`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from tflite.TensorType import TensorType

from ..ir.graph import Operator, Tensor

CH_IN_BLOCK_MVE = 124
DW_ONE_IN_CH_THRESHOLD_GCC = 1  # CONVERT_DW_CONV_WITH_ONE_INPUT_CH_AND_OUTPUT_CH_ABOVE_THRESHOLD


@dataclass(frozen=True)
class ConvDims:
    """What TFLM passes to CMSIS-NN for a conv/depthwise: NHWC input, filter h/w/c, output,
    stride, dilation and TFLM's padding (ComputePaddingHeightWidth)."""

    n: int
    ih: int
    iw: int
    ic: int
    fh: int
    fw: int
    fc: int
    oh: int
    ow: int
    oc: int
    sh: int
    sw: int
    dh: int
    dw: int
    ph: int
    pw: int


def _pad(in_size: int, out_size: int, k: int, stride: int, dil: int) -> int:
    total = (out_size - 1) * stride + (k - 1) * dil + 1 - in_size
    return max(total, 0) // 2


def conv_dims(op: Operator) -> Optional[ConvDims]:
    """The dims of a CONV_2D / DEPTHWISE_CONV_2D (None for malformed ops)."""
    x, w = (op.inputs + [None, None])[:2]
    y = op.outputs[0] if op.outputs else None
    if x is None or w is None or y is None or not (len(x.shape) == len(w.shape) == len(y.shape) == 4):
        return None
    sh, sw = int(op.opt("StrideH", 1)), int(op.opt("StrideW", 1))
    dh, dw = int(op.opt("DilationHFactor", 1)), int(op.opt("DilationWFactor", 1))
    fh, fw = int(w.shape[1]), int(w.shape[2])
    ih, iw, oh, ow = int(x.shape[1]), int(x.shape[2]), int(y.shape[1]), int(y.shape[2])
    return ConvDims(int(x.shape[0]), ih, iw, int(x.shape[3]), fh, fw, int(w.shape[3]), oh, ow, int(y.shape[3]),
                    sh, sw, dh, dw, _pad(ih, oh, fh, sh, dh), _pad(iw, ow, fw, sw, dw))


def _is_1x1(d: ConvDims) -> bool:  # arm_nn_is_convolve_1x1
    return d.pw == 0 and d.ph == 0 and d.fw == 1 and d.fh == 1 and d.dw == 1 and d.dh == 1 and d.ic == d.fc


def _is_1xn(d: ConvDims) -> bool:  # arm_nn_is_convolve_1_x_n
    return d.ih == 1 and d.dw == 1 and d.fh == 1 and (d.sw * d.ic) % 4 == 0 and d.ic == d.fc


def _im2col(d: ConvDims) -> int:  # arm_convolve_s8_get_buffer_size (non-MVE)
    cols = d.fw * d.fh * d.ic
    return 2 * ((cols + 3) // 4 * 4) * 2


def _im2col_mve(d: ConvDims) -> int:  # arm_convolve_s8_get_buffer_size_mve
    return 4 * ((d.ic * d.fw * d.fh + 15) // 16) * 16


def _1xn_mve(d: ConvDims) -> int:  # arm_convolve_1_x_n_s8_get_buffer_size_mve
    total_pad = (d.ow - 1) * d.sw + d.fw - d.iw
    asym = total_pad % 2
    right = max(1, (d.pw + asym + d.sw - 1) // d.sw) if d.pw + asym != 0 else 0
    left = max(1, (d.pw + d.sw - 1) // d.sw) if d.pw != 0 else 0
    if right + max(d.ow - (right + left), 0) + left != d.ow:
        return _im2col_mve(d)
    pad_l = d.pw * d.ic
    pad_r = right * d.ic if asym else pad_l
    n_left = d.fw * d.ic
    return max(n_left + pad_l, n_left - d.ic + pad_r)


def conv_wrapper_s8(d: ConvDims, features: str) -> int:
    """arm_convolve_wrapper_s8_get_buffer_size (GCC)."""
    if _is_1x1(d):
        return 0  # arm_convolve_1x1_s8_fast: 0 with GCC; arm_convolve_1x1_s8: 0
    if _is_1xn(d):
        return _1xn_mve(d) if features == "mve" else _im2col(d)
    return _im2col_mve(d) if features == "mve" else _im2col(d)


def depthwise_wrapper_s8(d: ConvDims, features: str) -> int:
    """arm_depthwise_conv_wrapper_s8_get_buffer_size (GCC); TFLM passes filter c = output depth."""
    if features == "mve" and d.ic == 1 and d.oc > DW_ONE_IN_CH_THRESHOLD_GCC:
        conv = ConvDims(**{**d.__dict__, "fc": 1})  # filter reinterpreted as {c, h, w, n}: c = 1 input channel
        return conv_wrapper_s8(conv, "mve") + d.oc * d.fh * d.fw
    if d.ic == d.oc and d.n == 1 and d.dw == 1 and d.dh == 1:
        if features != "mve" and d.fw == 3 and d.fh == 3 and d.ph <= 1 and d.pw <= 1:
            return 0
        if features == "mve":
            return 4 * CH_IN_BLOCK_MVE * d.fw * d.fh
        if features == "dsp":
            return d.ic * d.fw * d.fh * 2
    return 0


def _int8(t: Optional[Tensor]) -> bool:
    return t is not None and t.dtype == TensorType.INT8


def _conv(op: Operator, features: str) -> list[int]:
    d = conv_dims(op)
    return [conv_wrapper_s8(d, features)] if d is not None and _int8(op.inputs[0]) else []


def _depthwise(op: Operator, features: str) -> list[int]:
    d = conv_dims(op)
    if d is None or not _int8(op.inputs[0]) or not _int8(op.inputs[1]):
        return []
    return [depthwise_wrapper_s8(d, features)]


def _fully_connected(op: Operator, features: str) -> list[int]:
    """Int8: the conv-1x1 path (output rank > 2, accum depth % 4 == 0) requests a fake
    per-channel multiplier/shift buffer for per-tensor weights (its own buffer is 0 with GCC);
    otherwise arm_fully_connected_s8_get_buffer_size: 0 off MVE, the output depth in int32
    on MVE (the firmware template does not define KERNELS_OPTIMIZED_FOR_SPEED, which would
    turn it into persistent kernel sums)."""
    x, w = (op.inputs + [None, None])[:2]
    y = op.outputs[0]
    if not _int8(x) or not _int8(w):
        return []
    accum = int(w.shape[-1])
    if len(y.shape) > 2 and accum % 4 == 0:
        q = w.quantization
        per_channel = q is not None and q.per_channel
        return [] if per_channel else [int(y.shape[-1]) * 4 * 2]
    return [int(y.shape[-1]) * 4] if features == "mve" else []


def _avgpool(op: Operator, features: str) -> list[int]:
    x = op.inputs[0]
    if x is None or len(x.shape) != 4 or x.dtype not in (TensorType.INT8, TensorType.INT16):
        return []
    return [int(x.shape[3]) * 4] if features == "dsp" else []  # arm_avgpool_s{8,16}_get_buffer_size


def _lstm(op: Operator, features: str) -> list[int]:
    """3 buffers of batch x state (cell type) for int8 or int16 activations with an int16
    cell, else 4 (as the reference kernel)."""
    x, hidden, cell = (op.inputs + [None] * 20)[0], (op.inputs + [None] * 20)[18], (op.inputs + [None] * 20)[19]
    if x is None or hidden is None or cell is None:
        return []
    size = hidden.num_elements * (2 if cell.dtype == TensorType.INT16 else 4 if cell.dtype == TensorType.FLOAT32 else 1)
    three = x.dtype in (TensorType.INT8, TensorType.INT16) and cell.dtype == TensorType.INT16
    return [size] * (3 if three else 4)


def _none(op: Operator, features: str) -> list[int]:
    return []


# Op type -> the scratch requests of TFLM's CMSIS-NN kernel, in request order.
SCRATCH_RULES: dict[str, Callable[[Operator, str], list[int]]] = {
    "CONV_2D": _conv,
    "DEPTHWISE_CONV_2D": _depthwise,
    "FULLY_CONNECTED": _fully_connected,
    "AVERAGE_POOL_2D": _avgpool,
    "MAX_POOL_2D": _none,
    "SOFTMAX": _none,
    "ADD": _none,
    "UNIDIRECTIONAL_SEQUENCE_LSTM": _lstm,
}
# CMSIS-NN kernels whose scratch is not restated here (priced as the reference kernel's).
UNMODELLED: frozenset[str] = frozenset({"SVDF", "TRANSPOSE_CONV", "BATCH_MATMUL"})


def cmsis_scratch(op: Operator, features: str) -> Optional[list[int]]:
    """Bytes of each scratch request of ``op``'s CMSIS-NN kernel (None: the reference kernel runs)."""
    rule = SCRATCH_RULES.get(op.key.table_name)
    if rule is None:
        return None
    try:
        return [b for b in rule(op, features) if b > 0]
    except (IndexError, TypeError, ValueError):
        return []


_INT8_ONLY = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"})


def unmodelled_ops(ops: list[Operator]) -> list[str]:
    """CMSIS-NN kernels in ``ops`` whose scratch is not restated here (int16 paths included)."""
    def int16(op: Operator) -> bool:
        return op.key.table_name in _INT8_ONLY and bool(op.inputs) and op.inputs[0] is not None \
            and op.inputs[0].dtype == TensorType.INT16
    return sorted({op.type for op in ops if op.type in UNMODELLED or int16(op)})
