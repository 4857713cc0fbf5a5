"""TFLM's int8 SOFTMAX (reference_ops::Softmax with gemmlowp fixed point), vectorised.

Why here and not a float softmax: the shared models end in an int8 SOFTMAX, and the
whole-graph reference must reproduce TFLM bit for bit.  Fixed-point values are raw int32
numbers held in int64 arrays; "Fk" below means a gemmlowp FixedPoint with k integer bits.
"""
from __future__ import annotations

import numpy as np

from .fixedpoint import INT32_MAX, INT32_MIN, quantize_multiplier, rounding_divide_by_pot, srdhm

SCALED_DIFF_INTEGER_BITS = 5
ACCUMULATION_INTEGER_BITS = 12


def _sat_shift_left(x: np.ndarray, e: int) -> np.ndarray:
    """SaturatingRoundingMultiplyByPOT with a positive exponent."""
    thr = (1 << (31 - e)) - 1
    return np.where(x > thr, INT32_MAX, np.where(x < -thr, INT32_MIN, x << e))


def _exp_quarter_interval(a: np.ndarray) -> np.ndarray:
    """exp(a) for a in [-1/4, 0), F0 -> F0."""
    constant_term = 1895147668
    one_third = 715827883
    x = a + (1 << 28)
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    x4_over_4 = rounding_divide_by_pot(x4, 2)
    poly = rounding_divide_by_pot(srdhm(x4_over_4 + x3, one_third) + x2, 1)
    return constant_term + srdhm(constant_term, x + poly)


_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
           (2, 39332535), (3, 720401), (4, 242))


def exp_on_negative_values(a: np.ndarray) -> np.ndarray:
    """gemmlowp exp_on_negative_values: F5 input (<= 0) -> F0 output."""
    frac = 31 - SCALED_DIFF_INTEGER_BITS
    quarter = 1 << (frac - 2)
    a_mod = (a & (quarter - 1)) - quarter
    result = _exp_quarter_interval(_sat_shift_left(a_mod, SCALED_DIFF_INTEGER_BITS))
    remainder = a_mod - a
    for exponent, mult in _BARREL:
        shift = frac + exponent
        if 0 <= shift < 32:
            result = np.where((remainder & (1 << shift)) != 0, srdhm(result, mult), result)
    return np.where(a == 0, INT32_MAX, result)


def _one_over_one_plus_x(a: np.ndarray) -> np.ndarray:
    """1 / (1 + a) for a in [0, 1): F0 -> F0 (Newton-Raphson, three steps)."""
    s = a + INT32_MAX
    half_den = np.where(s >= 0, (s + 1) // 2, -((-(s - 1)) // 2))  # RoundingHalfSum, C division
    x = 1515870810 + srdhm(half_den, -1010580540)  # F2: 48/17 - 32/17 * d
    for _ in range(3):
        one_minus = (1 << 29) - srdhm(half_den, x)
        x = x + _sat_shift_left(srdhm(x, one_minus), 2)
    return _sat_shift_left(x, 1)


def _clz32(x: np.ndarray) -> np.ndarray:
    out = np.full(x.shape, 32, np.int64)
    nz = x > 0
    out[nz] = 31 - np.floor(np.log2(x[nz].astype(np.float64))).astype(np.int64)
    # guard against float rounding near powers of two
    fix = nz & ((x << out) >= (1 << 32))
    out[fix] -= 1
    fix = nz & ((x << (out + 1)) < (1 << 32)) & (out < 31)
    out[fix] += 1
    return out


def softmax_int8(x: np.ndarray, input_scale: float, beta: float) -> np.ndarray:
    """int8 softmax over the last axis into int8 with scale 1/256, zero point -128."""
    real = min(float(beta) * float(input_scale) * (1 << (31 - SCALED_DIFF_INTEGER_BITS)), (1 << 31) - 1.0)
    mult, left_shift = quantize_multiplier(real)
    radius = ((1 << SCALED_DIFF_INTEGER_BITS) - 1) * (1 << (31 - SCALED_DIFF_INTEGER_BITS)) / (1 << left_shift)
    diff_min = -int(np.floor(radius))
    xi = x.astype(np.int64)
    diff = xi - xi.max(axis=-1, keepdims=True)
    use = diff >= diff_min
    scaled = srdhm(diff << left_shift, mult)
    e = exp_on_negative_values(scaled)
    e_acc = rounding_divide_by_pot(e, ACCUMULATION_INTEGER_BITS)
    sum_exps = np.where(use, e_acc, 0).sum(axis=-1, keepdims=True)
    sum_exps = ((sum_exps + 2 ** 31) % 2 ** 32) - 2 ** 31
    headroom = _clz32(sum_exps)
    bits_over_unit = ACCUMULATION_INTEGER_BITS - headroom
    shifted = ((sum_exps << headroom) - (1 << 31))
    shifted = ((shifted + 2 ** 31) % 2 ** 32) - 2 ** 31
    scale = _one_over_one_plus_x(shifted)
    unsat = rounding_divide_by_pot(srdhm(scale, e), bits_over_unit + 31 - 8)
    y = np.clip(unsat - 128, -128, 127)
    return np.where(use, y, -128).astype(np.int8)
