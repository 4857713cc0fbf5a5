"""TFLM's integer requantisation arithmetic, vectorised in NumPy (int64 lanes, int32 semantics).

Why a separate module: every int8 kernel (and the FDT_PARTIAL op) must round exactly like
TFLM's ``QuantizeMultiplier`` / ``MultiplyByQuantizedMultiplier`` (double rounding: a
saturating rounding doubling high multiply, then a rounding right shift), or outputs
differ by one in rare lanes.  The helpers follow the C semantics (truncating division,
arithmetic shifts) on int64 arrays so intermediate products never overflow.
"""
from __future__ import annotations

import math

import numpy as np

INT32_MIN = -(2 ** 31)
INT32_MAX = 2 ** 31 - 1


def quantize_multiplier(m: float) -> tuple[int, int]:
    """(int32 multiplier, shift) for a real multiplier, as TFLM's QuantizeMultiplier."""
    if m == 0.0:
        return 0, 0
    q, shift = math.frexp(m)
    q_fixed = int(_round_half_away(q * (1 << 31)))
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        shift, q_fixed = 0, 0
    return q_fixed, shift


def _round_half_away(x: float) -> float:
    return math.floor(x + 0.5) if x >= 0 else -math.floor(-x + 0.5)


def round_half_away(x: np.ndarray) -> np.ndarray:
    """std::round on arrays (NumPy's rint rounds half to even)."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def _wrap32(x: np.ndarray) -> np.ndarray:
    return ((x + 2 ** 31) % 2 ** 32) - 2 ** 31


def srdhm(a, b) -> np.ndarray:
    """SaturatingRoundingDoublingHighMul on int32 values held in int64 arrays."""
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    v = ab + nudge
    q = np.where(v >= 0, v >> 31, -((-v) >> 31))  # C division truncates toward zero
    return np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, q)


def rounding_divide_by_pot(x, exponent) -> np.ndarray:
    x = np.asarray(x, np.int64)
    e = np.asarray(exponent, np.int64)
    mask = (np.int64(1) << e) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> e) + (remainder > threshold)


def multiply_by_quantized_multiplier(x, multiplier, shift) -> np.ndarray:
    """TFLM's MultiplyByQuantizedMultiplier (default, double-rounding build)."""
    shift = np.asarray(shift, np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    xs = _wrap32(np.asarray(x, np.int64) << left)
    return rounding_divide_by_pot(srdhm(xs, multiplier), right)


def multiply_by_quantized_multiplier_smaller_than_one_exp(x, multiplier, shift) -> np.ndarray:
    return rounding_divide_by_pot(srdhm(x, multiplier), -np.asarray(shift, np.int64))


def quantize_value(f: float, scale: float, zero_point: int) -> int:
    """zero_point + round(f / scale), the float32 arithmetic of TFLM's activation range."""
    return int(zero_point) + int(_round_half_away(float(np.float32(f) / np.float32(scale))))


ACT_NONE, ACT_RELU, ACT_RELU_N1_TO_1, ACT_RELU6 = 0, 1, 2, 3


def activation_range(act: int, scale: float, zero_point: int, qmin: int = -128, qmax: int = 127) -> tuple[int, int]:
    """CalculateActivationRangeQuantized for a fused activation code."""
    if act == ACT_RELU:
        return max(qmin, quantize_value(0.0, scale, zero_point)), qmax
    if act == ACT_RELU6:
        return (max(qmin, quantize_value(0.0, scale, zero_point)),
                min(qmax, quantize_value(6.0, scale, zero_point)))
    if act == ACT_RELU_N1_TO_1:
        return (max(qmin, quantize_value(-1.0, scale, zero_point)),
                min(qmax, quantize_value(1.0, scale, zero_point)))
    if act == ACT_NONE:
        return qmin, qmax
    raise ValueError(f"fused activation {act} is not supported in int8")
