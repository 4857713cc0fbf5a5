"""TFLM Signal library ops (custom ops the TFLM Python interpreter registers) for test models.

Their options are flexbuffer maps; the kernels read the values in key order
(tflite-micro signal/micro/kernels/*.cc).  ``SignalRfft`` requests a scratch buffer of
``fft_length * sizeof(T)`` bytes in Prepare (rfft.cc), which no table of ours lists:
:func:`spectrum_model` is the test model for learning kernel scratch from TFLM.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from flatbuffers import flexbuffers

from .builder import GraphBuilder
from .graph import Model, Operator, Tensor
from .types import BUILTIN_CODES, DTYPE_CODES

CUSTOM = BUILTIN_CODES["CUSTOM"]


def custom_op(b: GraphBuilder, name: str, inputs: Sequence[Optional[Tensor]], outputs: Sequence[Tensor],
              opts: dict) -> Operator:
    """Append custom op ``name`` whose options are the flexbuffer map ``opts``."""
    code = b.model.opcode(CUSTOM, 1, custom_code=name.encode())
    op = Operator(code, list(inputs), list(outputs), custom_options=bytes(flexbuffers.Dumps(opts)))
    b.sg.operators.append(op)
    return op


def rfft_scratch_bytes(fft_length: int, dtype: str = "INT16") -> int:
    """What SignalRfft's Prepare requests: ``fft_length * sizeof(T)`` (one request)."""
    return fft_length * np.dtype(dtype.lower()).itemsize


def window(b: GraphBuilder, x: Tensor, shift: int = 12, seed: int = 0) -> Tensor:
    """SignalWindow: int16 input times int16 weights of the last axis, shifted right by ``shift``."""
    w = np.random.default_rng(seed).integers(0, 1 << shift, size=x.shape[-1]).astype(np.int16)
    out = b.tensor("window", x.shape, "INT16")
    custom_op(b, "SignalWindow", [x, b.const("window_weights", w)], [out], {"shift": shift})
    return out


def rfft(b: GraphBuilder, x: Tensor, fft_length: int) -> Tensor:
    """SignalRfft of the last axis: fft_length/2 + 1 complex int16 values, interleaved."""
    out = b.tensor("rfft", [*x.shape[:-1], fft_length + 2], "INT16")
    custom_op(b, "SignalRfft", [x], [out], {"T": DTYPE_CODES["INT16"], "fft_length": fft_length})
    return out


def energy(b: GraphBuilder, x: Tensor, start: int, end: int) -> Tensor:
    """SignalEnergy of a 1-D interleaved complex spectrum: |X_k|^2 for k in [start, end)."""
    out = b.tensor("energy", [x.shape[-1] // 2], "UINT32")
    custom_op(b, "SignalEnergy", [x], [out], {"end_index": end, "start_index": start})
    return out


def spectrum_model(n: int = 512, features: int = 512, seed: int = 0) -> Model:
    """A small audio front end with a second input, stored in a memory-poor order.

    ``audio`` int16[n] -> SignalWindow -> SignalRfft (scratch ``2 n`` bytes) -> SignalEnergy
    -> CAST int32 (output 1); ``features`` int32[features] -> MAXIMUM 0 -> CAST int16
    (output 2), stored after the front end so ``features`` is alive during the FFT.  The
    best order runs the feature branch first; its tight plan (n = features = 512) leaves
    no gap for the FFT's scratch unless the planner knows it, and then TFLM's head grows
    past the input's."""
    b = GraphBuilder()
    b.model.description = b"fdt-tflm signal test model"
    audio = b.tensor("audio", [n], "INT16")
    feats = b.tensor("features", [features], "INT32")
    b.sg.inputs = [audio, feats]
    spectrum = energy(b, rfft(b, window(b, audio, seed=seed), n), 0, n // 2 + 1)
    power = b.tensor("power", spectrum.shape, "INT32")
    b.op("CAST", [spectrum], [power])
    relu = b.tensor("features_relu", [features], "INT32")
    b.op("MAXIMUM", [feats, b.const("zero", np.zeros([1], np.int32))], [relu])
    small = b.tensor("features_int16", [features], "INT16")
    b.op("CAST", [relu], [small])
    b.sg.outputs = [power, small]
    return b.model
