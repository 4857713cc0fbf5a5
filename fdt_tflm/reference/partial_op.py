"""The FDT_PARTIAL custom operator: parameters, custom-options encoding and its bit-exact reference.

One FDT_PARTIAL op handles one input-channel slice of a CONV_2D or FULLY_CONNECTED:

    inputs : 0 x      int8 activation slice (NHWC for conv; any shape, flattened per row, for dense)
             1 w      int8 weights of the slice (OHWI for conv; [O, K_slice] for dense)
             2 acc    int32 accumulator from the previous part (absent, index -1, in the first part)
             3 bias   int32 bias (only in the last part; may be absent)
    output : 0        int32 accumulator (not last) or int8 result (last part)

acc_out = acc_in + sum(w * (x + input_offset)); in the last part the bias is added and the
sum is requantised per channel with the original op's multiplier/shift, offset by the
output zero point and clamped to the fused activation range.  The layout of the custom
options is documented in docs/fdt_partial.md and mirrored by fdt_partial_core.c.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..catalog.ops import FDT_PARTIAL_CODE  # noqa: F401  (the custom code, defined once: the catalog)
from ..errors import FdtError
from ..ir.graph import Operator
from .ops import conv_accumulate, requantize

MAGIC = 0x50544446  # "FDTP" little-endian
VERSION = 1
KIND_CONV, KIND_FC = 0, 1
FLAG_FIRST, FLAG_LAST = 1, 2
_HEADER = struct.Struct("<IBBBB13i")  # magic, version, kind, flags, reserved, 13 int32 fields


@dataclass
class PartialParams:
    """Everything the kernel needs beyond tensor shapes (see docs/fdt_partial.md)."""

    kind: int
    first: bool
    last: bool
    input_offset: int
    output_offset: int = 0
    act_min: int = -128
    act_max: int = 127
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    pad: tuple[int, int] = (0, 0)  # top, left
    multiplier: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    shift: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))

    def encode(self) -> bytes:
        n = int(self.multiplier.size) if self.last else 0
        if self.last and self.shift.size != n:
            raise ValueError("multiplier and shift must have the same length")
        head = _HEADER.pack(MAGIC, VERSION, self.kind, (FLAG_FIRST if self.first else 0) | (FLAG_LAST if self.last else 0), 0,
                            self.input_offset, self.output_offset, self.act_min, self.act_max,
                            self.stride[0], self.stride[1], self.dilation[0], self.dilation[1],
                            self.pad[0], self.pad[1], n, 0, 0)
        if n == 0:
            return head
        return head + np.asarray(self.multiplier, "<i4").tobytes() + np.asarray(self.shift, "<i4").tobytes()

    @classmethod
    def decode(cls, data: bytes) -> "PartialParams":
        if data is None or len(data) < _HEADER.size:
            raise FdtError("FDT_PARTIAL: custom options are missing or too short")
        f = _HEADER.unpack_from(data)
        magic, version, kind, flags = f[:4]
        if magic != MAGIC or version != VERSION or kind not in (KIND_CONV, KIND_FC):
            raise FdtError(f"FDT_PARTIAL: bad custom options (magic {magic:#x}, version {version}, kind {kind})")
        io, oo, amin, amax, sh, sw, dh, dw, pt, pl, n = f[5:16]
        if len(data) != _HEADER.size + 8 * n:
            raise FdtError(f"FDT_PARTIAL: custom options hold {len(data)} B, expected {_HEADER.size + 8 * n}")
        mult = np.frombuffer(data, "<i4", n, _HEADER.size).astype(np.int32)
        shift = np.frombuffer(data, "<i4", n, _HEADER.size + 4 * n).astype(np.int32)
        return cls(kind, bool(flags & FLAG_FIRST), bool(flags & FLAG_LAST), io, oo, amin, amax,
                   (sh, sw), (dh, dw), (pt, pl), mult, shift)


def partial_accumulate(p: PartialParams, x: np.ndarray, w: np.ndarray, out_shape: list[int]) -> np.ndarray:
    """The int32 contribution of one slice (before acc_in and bias), shaped like the output."""
    if p.kind == KIND_CONV:
        acc = conv_accumulate(x, w, p.input_offset, p.stride, p.dilation, p.pad, (out_shape[1], out_shape[2]))
    else:
        units, k = w.shape
        rows = int(np.prod(out_shape[:-1])) if len(out_shape) > 1 else 1
        acc = (x.reshape(rows, k).astype(np.int64) + p.input_offset) @ w.astype(np.int64).T
    return acc.reshape(out_shape)


def fdt_partial_eval(p: PartialParams, x: np.ndarray, w: np.ndarray, acc_in: Optional[np.ndarray],
                     bias: Optional[np.ndarray], out_shape: list[int]) -> np.ndarray:
    """One FDT_PARTIAL step: int32 accumulator out, or int8 result in the last part."""
    acc = partial_accumulate(p, x, w, out_shape)
    if acc_in is not None:
        acc = acc + acc_in.astype(np.int64).reshape(out_shape)
    acc = ((acc + 2 ** 31) % 2 ** 32) - 2 ** 31  # int32 accumulator, as in C
    if not p.last:
        return acc.astype(np.int32)
    if bias is not None:
        acc = ((acc + bias.astype(np.int64) + 2 ** 31) % 2 ** 32) - 2 ** 31
    return requantize(acc, p.multiplier.astype(np.int64), p.shift.astype(np.int64),
                      p.output_offset, p.act_min, p.act_max)


def fdt_partial_kernel(op: Operator, ins: list) -> list:
    p = PartialParams.decode(op.custom_options)
    ins = list(ins) + [None] * (4 - len(ins))
    return [fdt_partial_eval(p, ins[0], ins[1], ins[2], ins[3], op.outputs[0].shape)]
