"""Bit-exact NumPy models of TFLM's int8 reference kernels (and of the FDT_PARTIAL custom op).

Why: a model that uses the bundled FDT_PARTIAL kernel cannot run in the pip TFLM
interpreter, so its outputs are computed here; the stock kernels are modelled too so a
whole graph can be evaluated, and each one is pinned against TFLM by the tests.

Every kernel is a function ``(op, inputs) -> list[np.ndarray]`` registered in
:data:`KERNELS` by op type; quantisation parameters are derived from the tensors exactly
as TFLM's ``Prepare`` derives them.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np

from ..errors import FdtError
from ..ir.graph import Operator, Tensor
from .fixedpoint import (activation_range, multiply_by_quantized_multiplier,
                         multiply_by_quantized_multiplier_smaller_than_one_exp, quantize_multiplier)

Arrays = list[Optional[np.ndarray]]


class ReferenceUnsupported(FdtError):
    """The reference has no bit-exact model of this op (or of this variant of it)."""


# ---------------------------------------------------------------------------------------------
# shared helpers
def _scale(t: Tensor) -> float:
    q = t.quantization
    if q is None or q.scale is None or q.scale.size == 0:
        raise ReferenceUnsupported(f"tensor {t.name} is not quantised")
    return float(q.scale[0])


def _zp(t: Tensor) -> int:
    q = t.quantization
    return 0 if q is None or q.zero_point is None or q.zero_point.size == 0 else int(q.zero_point[0])


def _require_int8(op: Operator, *ts: Optional[Tensor]) -> None:
    for t in ts:
        if t is not None and t.dtype_name != "INT8":
            raise ReferenceUnsupported(f"{op.type}: only int8 is modelled (got {t.dtype_name})")


def conv_padding(in_size: int, k: int, stride: int, dilation: int, out_size: int) -> int:
    """Leading padding as TFLM's ComputePaddingWithOffset (0 for VALID by construction)."""
    eff = (k - 1) * dilation + 1
    total = max((out_size - 1) * stride + eff - in_size, 0)
    return total // 2


def per_channel_multipliers(in_scale: float, filter_scales: np.ndarray, out_scale: float,
                            n: int) -> tuple[np.ndarray, np.ndarray]:
    """Conv/depthwise requantisation as PopulateConvolutionQuantizationParams (double math)."""
    fs = np.asarray(filter_scales, np.float32)
    mult = np.zeros(n, np.int64)
    shift = np.zeros(n, np.int64)
    for i in range(n):
        f = float(fs[i if fs.size > 1 else 0])
        mult[i], shift[i] = quantize_multiplier(float(in_scale) * f / float(out_scale))
    return mult, shift


def fc_multipliers(in_scale: float, filter_scales: np.ndarray, out_scale: float,
                   n: int) -> tuple[np.ndarray, np.ndarray]:
    """FULLY_CONNECTED: per tensor, input*filter scale multiplied in float first (GetQuantizedConvolutionMultipler)."""
    fs = np.asarray(filter_scales, np.float32)
    if fs.size > 1:
        return per_channel_multipliers(in_scale, fs, out_scale, n)
    prod = float(np.float32(in_scale) * np.float32(fs[0]))
    m, s = quantize_multiplier(prod / float(out_scale))
    return np.full(n, m, np.int64), np.full(n, s, np.int64)


def requantize(acc: np.ndarray, mult: np.ndarray, shift: np.ndarray, out_zp: int,
               act_min: int, act_max: int) -> np.ndarray:
    """int32 accumulator (channels last) -> int8, with per-channel multiplier and shift."""
    y = multiply_by_quantized_multiplier(acc, mult, shift) + out_zp
    return np.clip(y, act_min, act_max).astype(np.int8)


def conv_accumulate(x: np.ndarray, w: np.ndarray, input_offset: int, stride: tuple[int, int],
                    dilation: tuple[int, int], pad: tuple[int, int], out_hw: tuple[int, int]) -> np.ndarray:
    """sum_{ky,kx,c} w[o,ky,kx,c] * (x + input_offset), out-of-image taps skipped; NHWC/OHWI -> int64 NHWO."""
    n, h, wd, c = x.shape
    o, kh, kw, wc = w.shape
    if wc != c:
        raise ReferenceUnsupported(f"conv: filter depth {wc} != input depth {c}")
    oh, ow = out_hw
    sh, sw = stride
    dh, dw = dilation
    pt, pl = pad
    need_h = (oh - 1) * sh + (kh - 1) * dh + 1
    need_w = (ow - 1) * sw + (kw - 1) * dw + 1
    xp = np.zeros((n, max(need_h, pt + h), max(need_w, pl + wd), c), np.int64)
    xp[:, pt:pt + h, pl:pl + wd, :] = x.astype(np.int64) + input_offset  # padded taps contribute 0
    acc = np.zeros((n, oh, ow, o), np.int64)
    wl = w.astype(np.int64)
    for ky in range(kh):
        for kx in range(kw):
            patch = xp[:, ky * dh: ky * dh + (oh - 1) * sh + 1: sh, kx * dw: kx * dw + (ow - 1) * sw + 1: sw, :]
            acc += patch @ wl[:, ky, kx, :].T
    return acc


def _wrap32(x: np.ndarray) -> np.ndarray:
    return ((x + 2 ** 31) % 2 ** 32) - 2 ** 31


# ---------------------------------------------------------------------------------------------
# stock kernels
def _conv2d(op: Operator, ins: Arrays) -> Arrays:
    x_t, w_t = op.inputs[0], op.inputs[1]
    y_t = op.outputs[0]
    _require_int8(op, x_t, w_t, y_t)
    x, w = ins[0], ins[1]
    oh, ow = y_t.shape[1], y_t.shape[2]
    kh, kw = w.shape[1], w.shape[2]
    sh, sw = int(op.opt("StrideH", 1)), int(op.opt("StrideW", 1))
    dh, dw = int(op.opt("DilationHFactor", 1)), int(op.opt("DilationWFactor", 1))
    pad = (conv_padding(x.shape[1], kh, sh, dh, oh), conv_padding(x.shape[2], kw, sw, dw, ow))
    groups = x.shape[3] // w.shape[3]
    if groups != 1:
        raise ReferenceUnsupported("grouped CONV_2D is not modelled")
    acc = conv_accumulate(x, w, -_zp(x_t), (sh, sw), (dh, dw), pad, (oh, ow))
    mult, shift = per_channel_multipliers(_scale(x_t), w_t.quantization.scale, _scale(y_t), w.shape[0])
    return [_requantize_output(op, acc, ins, mult, shift)]


def _requantize_output(op: Operator, acc: np.ndarray, ins: Arrays, mult, shift) -> np.ndarray:
    """The shared end of conv, depthwise and dense: add the bias (input 2, if present), wrap to
    int32, requantise per channel and clamp to the fused activation's range."""
    y_t = op.outputs[0]
    if len(op.inputs) > 2 and op.inputs[2] is not None:
        acc = acc + ins[2].astype(np.int64)
    lo, hi = activation_range(int(op.opt("FusedActivationFunction", 0)), _scale(y_t), _zp(y_t))
    return requantize(_wrap32(acc), mult, shift, _zp(y_t), lo, hi)


def _depthwise(op: Operator, ins: Arrays) -> Arrays:
    x_t, w_t = op.inputs[0], op.inputs[1]
    y_t = op.outputs[0]
    _require_int8(op, x_t, w_t, y_t)
    x, w = ins[0], ins[1]
    n, h, wd, c = x.shape
    _, kh, kw, oc = w.shape
    oh, ow = y_t.shape[1], y_t.shape[2]
    m = oc // c
    sh, sw = int(op.opt("StrideH", 1)), int(op.opt("StrideW", 1))
    dh, dw = int(op.opt("DilationHFactor", 1)), int(op.opt("DilationWFactor", 1))
    pt, pl = conv_padding(h, kh, sh, dh, oh), conv_padding(wd, kw, sw, dw, ow)
    need_h = (oh - 1) * sh + (kh - 1) * dh + 1
    need_w = (ow - 1) * sw + (kw - 1) * dw + 1
    xp = np.zeros((n, max(need_h, pt + h), max(need_w, pl + wd), c), np.int64)
    xp[:, pt:pt + h, pl:pl + wd, :] = x.astype(np.int64) - _zp(x_t)
    xp = np.repeat(xp, m, axis=3)  # output channel k reads input channel k // m
    acc = np.zeros((n, oh, ow, oc), np.int64)
    wl = w.astype(np.int64)
    for ky in range(kh):
        for kx in range(kw):
            patch = xp[:, ky * dh: ky * dh + (oh - 1) * sh + 1: sh, kx * dw: kx * dw + (ow - 1) * sw + 1: sw, :]
            acc += patch * wl[0, ky, kx, :]
    mult, shift = per_channel_multipliers(_scale(x_t), w_t.quantization.scale, _scale(y_t), oc)
    return [_requantize_output(op, acc, ins, mult, shift)]


def _fully_connected(op: Operator, ins: Arrays) -> Arrays:
    x_t, w_t = op.inputs[0], op.inputs[1]
    y_t = op.outputs[0]
    _require_int8(op, x_t, w_t, y_t)
    w = ins[1].astype(np.int64)
    units, depth = w.shape
    x = ins[0].reshape(-1, depth).astype(np.int64) - _zp(x_t)
    acc = x @ (w - _zp(w_t)).T
    mult, shift = fc_multipliers(_scale(x_t), w_t.quantization.scale, _scale(y_t), units)
    return [_requantize_output(op, acc, ins, mult, shift).reshape(y_t.shape)]


def _pool(op: Operator, ins: Arrays, kind: str) -> Arrays:
    x_t, y_t = op.inputs[0], op.outputs[0]
    _require_int8(op, x_t, y_t)
    x = ins[0].astype(np.int64)
    n, h, w, c = x.shape
    oh, ow = y_t.shape[1], y_t.shape[2]
    fh, fw = int(op.opt("FilterHeight", 1)), int(op.opt("FilterWidth", 1))
    sh, sw = int(op.opt("StrideH", 1)), int(op.opt("StrideW", 1))
    pt, pl = conv_padding(h, fh, sh, 1, oh), conv_padding(w, fw, sw, 1, ow)
    H, W = max((oh - 1) * sh + fh, pt + h), max((ow - 1) * sw + fw, pl + w)
    fill = 0 if kind == "avg" else -(1 << 40)
    xp = np.full((n, H, W, c), fill, np.int64)
    xp[:, pt:pt + h, pl:pl + w, :] = x
    valid = np.zeros((H, W), np.int64)
    valid[pt:pt + h, pl:pl + w] = 1
    acc = np.zeros((n, oh, ow, c), np.int64) if kind == "avg" else np.full((n, oh, ow, c), fill, np.int64)
    count = np.zeros((oh, ow), np.int64)
    for ky in range(fh):
        for kx in range(fw):
            patch = xp[:, ky: ky + (oh - 1) * sh + 1: sh, kx: kx + (ow - 1) * sw + 1: sw, :]
            if kind == "avg":
                acc += patch
                count += valid[ky: ky + (oh - 1) * sh + 1: sh, kx: kx + (ow - 1) * sw + 1: sw]
            else:
                acc = np.maximum(acc, patch)
    if kind == "avg":
        cnt = count[None, :, :, None]
        half = cnt // 2
        num = np.where(acc > 0, acc + half, acc - half)
        acc = np.sign(num) * (np.abs(num) // cnt)  # C division truncates toward zero
    lo, hi = activation_range(int(op.opt("FusedActivationFunction", 0)), _scale(y_t), _zp(y_t))
    return [np.clip(acc, lo, hi).astype(np.int8)]


def _add(op: Operator, ins: Arrays) -> Arrays:
    a_t, b_t = op.inputs[0], op.inputs[1]
    y_t = op.outputs[0]
    _require_int8(op, a_t, b_t, y_t)
    left_shift = 20
    sa, sb, so = _scale(a_t), _scale(b_t), _scale(y_t)
    twice_max = 2 * float(max(np.float32(sa), np.float32(sb)))
    m1, s1 = quantize_multiplier(sa / twice_max)
    m2, s2 = quantize_multiplier(sb / twice_max)
    mo, s_o = quantize_multiplier(twice_max / ((1 << left_shift) * so))
    a = (ins[0].astype(np.int64) - _zp(a_t)) * (1 << left_shift)
    b = (ins[1].astype(np.int64) - _zp(b_t)) * (1 << left_shift)
    a = multiply_by_quantized_multiplier_smaller_than_one_exp(a, m1, s1)
    b = multiply_by_quantized_multiplier_smaller_than_one_exp(b, m2, s2)
    raw = multiply_by_quantized_multiplier_smaller_than_one_exp(a + b, mo, s_o) + _zp(y_t)
    lo, hi = activation_range(int(op.opt("FusedActivationFunction", 0)), so, _zp(y_t))
    return [np.clip(raw, lo, hi).astype(np.int8).reshape(y_t.shape)]


def _copy_quant_check(op: Operator) -> None:
    y = op.outputs[0]
    for t in op.inputs[:1]:
        if t is not None and t.dtype_name == "INT8" and y.quantization is not None and \
                not y.quantization.same_as(t.quantization):
            raise ReferenceUnsupported(f"{op.type} with requantisation is not modelled")


def _reshape(op: Operator, ins: Arrays) -> Arrays:
    return [np.ascontiguousarray(ins[0]).reshape(op.outputs[0].shape)]


def _concat(op: Operator, ins: Arrays) -> Arrays:
    y = op.outputs[0]
    for t in op.inputs:
        if t is not None and t.dtype_name == "INT8" and not y.quantization.same_as(t.quantization):
            raise ReferenceUnsupported("CONCATENATION with requantisation is not modelled")
    axis = int(op.opt("Axis", 0)) % len(y.shape)
    return [np.concatenate([a for a in ins if a is not None], axis=axis)]


def _pad(op: Operator, ins: Arrays) -> Arrays:
    _copy_quant_check(op)
    pads = ins[1].reshape(-1, 2)
    y = op.outputs[0]
    value = ins[2].reshape(-1)[0] if len(ins) > 2 and ins[2] is not None else \
        (_zp(y) if y.dtype_name in ("INT8", "INT16") else 0)
    return [np.pad(ins[0], [(int(a), int(b)) for a, b in pads], constant_values=value)]


def _split(op: Operator, ins: Arrays) -> Arrays:
    axis = int(ins[0].reshape(-1)[0]) % ins[1].ndim
    return list(np.split(ins[1], len(op.outputs), axis=axis))


def _split_v(op: Operator, ins: Arrays) -> Arrays:
    x = ins[0]
    axis = int(ins[2].reshape(-1)[0]) % x.ndim
    sizes = [int(s) for s in ins[1].reshape(-1)]
    if -1 in sizes:
        sizes[sizes.index(-1)] = x.shape[axis] - (sum(sizes) + 1)
    return list(np.split(x, np.cumsum(sizes)[:-1], axis=axis))


def _strided_slice(op: Operator, ins: Arrays) -> Arrays:
    _copy_quant_check(op)
    x = ins[0]
    begin, end, strides = (ins[i].reshape(-1).astype(int) for i in (1, 2, 3))
    bm, em = int(op.opt("BeginMask", 0)), int(op.opt("EndMask", 0))
    sm = int(op.opt("ShrinkAxisMask", 0))
    if int(op.opt("EllipsisMask", 0)) or int(op.opt("NewAxisMask", 0)) or op.opt("Offset", False):
        raise ReferenceUnsupported("STRIDED_SLICE with ellipsis/new-axis/offset masks is not modelled")
    sl = []
    for d in range(x.ndim):
        if d >= len(begin):
            sl.append(slice(None))
            continue
        s = int(strides[d])
        b = None if bm >> d & 1 else int(begin[d])
        e = None if em >> d & 1 else int(end[d])
        if sm >> d & 1:
            b = b if b is not None else 0
            sl.append(b)
            continue
        sl.append(slice(b, e, s))
    return [np.ascontiguousarray(x[tuple(sl)]).reshape(op.outputs[0].shape)]


def _relu_like(op: Operator, ins: Arrays) -> Arrays:
    x_t, y_t = op.inputs[0], op.outputs[0]
    _require_int8(op, x_t, y_t)
    if not y_t.quantization.same_as(x_t.quantization):
        raise ReferenceUnsupported(f"{op.type} with requantisation is not modelled")
    act = {"RELU": 1, "RELU6": 3, "RELU_N1_TO_1": 2}[op.type]
    lo, hi = activation_range(act, _scale(y_t), _zp(y_t))
    return [np.clip(ins[0], lo, hi).astype(np.int8)]


def _softmax(op: Operator, ins: Arrays) -> Arrays:
    from .softmax import softmax_int8
    x_t, y_t = op.inputs[0], op.outputs[0]
    _require_int8(op, x_t, y_t)
    if _zp(y_t) != -128 or abs(_scale(y_t) - 1 / 256) > 1e-9:
        raise ReferenceUnsupported("SOFTMAX: int8 output must have scale 1/256, zero point -128")
    return [softmax_int8(ins[0], _scale(x_t), float(op.opt("Beta", 1.0)))]


KERNELS: dict[str, Callable[[Operator, Arrays], Arrays]] = {
    "CONV_2D": _conv2d,
    "DEPTHWISE_CONV_2D": _depthwise,
    "FULLY_CONNECTED": _fully_connected,
    "AVERAGE_POOL_2D": lambda op, ins: _pool(op, ins, "avg"),
    "MAX_POOL_2D": lambda op, ins: _pool(op, ins, "max"),
    "ADD": _add,
    "RESHAPE": _reshape,
    "SQUEEZE": _reshape,
    "CONCATENATION": _concat,
    "PAD": _pad,
    "PADV2": _pad,
    "SPLIT": _split,
    "SPLIT_V": _split_v,
    "STRIDED_SLICE": _strided_slice,
    "RELU": _relu_like,
    "RELU6": _relu_like,
    "RELU_N1_TO_1": _relu_like,
    "SOFTMAX": _softmax,
}


def kernel(op: Operator) -> Optional[Callable[[Operator, Arrays], Arrays]]:
    """The reference kernel of ``op`` (custom ops by custom code), or None."""
    if op.opcode.custom_code is not None:
        from .partial_op import FDT_PARTIAL_CODE, fdt_partial_kernel
        return fdt_partial_kernel if op.opcode.custom_code == FDT_PARTIAL_CODE else None
    return KERNELS.get(op.key.table_name)


def supports(ops: Sequence[Operator]) -> bool:
    return all(kernel(op) is not None for op in ops)
