"""Predicted instructions of one TFLM invoke (host interpreter, reference kernels), per operator.

MACs understate run time: slices, pads and concatenations cost instructions but no MACs,
and a kernel run on a small tile pays its per-invoke, per-row and per-pixel costs more
often per MAC.  Each op type's cost is a linear model over a few counts of the op (the
``FEATURES``); the coefficients are fitted by least squares to instruction counts measured
with callgrind inside ``MicroInterpreter::Invoke`` (``benchmarks/callgrind.py --fit`` prints
the table below; ``tests/data/callgrind_measurements.json`` holds the measurements).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Mapping, Optional

from ..ir.graph import Model, Operator
from .ops import info

# What a kernel's loops run over (see ``op_counts``).
FEATURES: tuple[str, ...] = ("invoke", "macs", "taps", "vtaps", "outputs", "pixels", "rows", "inputs", "runs")
_PADDING_SAME = 0  # tflite Padding enum


@dataclass(frozen=True)
class InstructionCost:
    """Instructions of one invoke of an op type, as coefficients of its counts (``FEATURES``)."""

    invoke: float = 0.0  # fixed cost: dispatch, tensor look-ups, parameter set-up
    macs: float = 0.0  # per multiply-accumulate the kernel runs (taps inside the input only)
    taps: float = 0.0  # per filter tap visited per output element (bounds check, in or out)
    vtaps: float = 0.0  # per filter tap inside the input per output element (channel loop set-up)
    outputs: float = 0.0  # per output element (requantise, clamp, store)
    pixels: float = 0.0  # per output pixel (N*H*W): the x loop of windowed kernels
    rows: float = 0.0  # per output row (all dims but the last): small tiles pay it more often
    inputs: float = 0.0  # per non-constant input element (reductions, copies that read all)
    runs: float = 0.0  # per contiguous copy (concatenation: outer size x inputs)

    def predict(self, counts: dict[str, float]) -> float:
        """Instructions for the op whose counts are ``counts``."""
        return sum(getattr(self, f.name) * counts.get(f.name, 0.0) for f in fields(self))


@dataclass(frozen=True)
class OpCounts:
    """The counts of one op the cost model multiplies (one per ``FEATURES`` name)."""

    invoke: int
    macs: int
    taps: int
    vtaps: int
    outputs: int
    pixels: int
    rows: int
    inputs: int
    runs: int

    def as_dict(self) -> dict[str, float]:
        return {f.name: float(getattr(self, f.name)) for f in fields(self)}


# Fitted by ``python benchmarks/callgrind.py --fit`` (tflite_micro 0.dev20261023182759, x86-64,
# reference kernels); paste its output here (``--fit --write`` does).  ``_INTERPRETER``: Invoke's
# own cost after the last node; ``_FALLBACK``: op types neither measured nor in BORROWED.  An op
# type measured at one size only (the LSTM of micro_speech_lstm) gets that count as a fixed cost.
COSTS: dict[str, InstructionCost] = {
    "ADD": InstructionCost(invoke=593.0, outputs=23.6, inputs=47.2),
    "AVERAGE_POOL_2D": InstructionCost(macs=7.3956, outputs=84.3408),
    "CONCATENATION": InstructionCost(invoke=489.8435, outputs=0.1861, runs=33.998),
    "CONV_2D": InstructionCost(invoke=675.4215, macs=8.0011, taps=11.9266,
                               vtaps=32.9991, outputs=116.0469, pixels=23.6455, rows=12.6474),
    "DEPTHWISE_CONV_2D": InstructionCost(macs=23.8754, taps=10.3851, outputs=149.7028, pixels=12.1916),
    "DEQUANTIZE": InstructionCost(invoke=241.0, outputs=10.0),
    "FULLY_CONNECTED": InstructionCost(invoke=589.0158, macs=9.0001, outputs=72.9988),
    "LOGISTIC": InstructionCost(invoke=286.6411, outputs=403.0849),
    "MAX_POOL_2D": InstructionCost(invoke=343.0, macs=27.5294, outputs=6.8824, pixels=25.0, rows=28.0),
    "MEAN": InstructionCost(invoke=1494.0873, inputs=112.2851),
    "MUL": InstructionCost(invoke=1707.4764, outputs=68.8242),
    "PAD": InstructionCost(outputs=21.2789, rows=15.7208),
    "PADV2": InstructionCost(outputs=17.8202, rows=20.1103),
    "QUANTIZE": InstructionCost(invoke=347.4295, outputs=41.5301),
    "RESHAPE": InstructionCost(invoke=224.7561, outputs=0.0317, rows=0.1026),
    "SLICE": InstructionCost(invoke=615.973, outputs=4.9859, rows=14.3341),
    "SOFTMAX": InstructionCost(outputs=452.6366),
    "STRIDED_SLICE": InstructionCost(invoke=705.8233, rows=46.934),
    "UNIDIRECTIONAL_SEQUENCE_LSTM": InstructionCost(invoke=72603637.0),
    "_INTERPRETER": InstructionCost(invoke=21.0),
    "_FALLBACK": InstructionCost(invoke=418.6365, outputs=13.9101),
}
# Op types without measurements: the measured op whose reference kernel loops are the closest
# match (a mapping, not a fit; anything else gets ``_FALLBACK``, the median coefficients of
# the measured copy and element-wise ops).
BORROWED: dict[str, str] = {
    "SQUEEZE": "RESHAPE", "EXPAND_DIMS": "RESHAPE", "SPLIT": "SLICE", "SPLIT_V": "SLICE", "SUB": "ADD",
    "RELU": "QUANTIZE", "RELU6": "QUANTIZE", "LEAKY_RELU": "QUANTIZE", "TANH": "LOGISTIC",
    "BATCH_MATMUL": "FULLY_CONNECTED",
}


def _axis_valid_taps(n_in: int, n_out: int, k: int, stride: int, dil: int, pad_before: int) -> int:
    """Sum over output positions of the filter taps that fall inside the input along one axis."""
    total = 0
    for o in range(n_out):
        origin = o * stride - pad_before
        total += sum(1 for j in range(k) if 0 <= origin + j * dil < n_in)
    return total


def _window_geometry(op: Operator, axis: int) -> tuple[int, int]:
    """(kernel size, valid taps summed over the output positions) along H (1) or W (2)."""
    inp, out = op.inputs[0], op.outputs[0]
    sfx = "Height" if axis == 1 else "Width"
    k = op.opt("Filter" + sfx)
    if k is None:
        k = op.inputs[1].shape[axis]
    s = "H" if axis == 1 else "W"
    stride = int(op.opt("Stride" + s, 1) or 1)
    dil = int(op.opt(f"Dilation{s}Factor", 1) or 1)
    n_in, n_out = int(inp.shape[axis]), int(out.shape[axis])
    pad = 0
    if op.opt("Padding", _PADDING_SAME) == _PADDING_SAME:
        pad = max((n_out - 1) * stride + (int(k) - 1) * dil + 1 - n_in, 0) // 2
    return int(k), _axis_valid_taps(n_in, n_out, int(k), stride, dil, pad)


def _elements(shape: Optional[list[int]]) -> int:
    return math.prod(int(d) for d in shape) if shape else 1


def op_counts(op: Operator) -> OpCounts:
    """The counts of ``op`` the cost model uses (zero where the op is malformed)."""
    out = op.outputs[0] if op.outputs else None
    n_out = _elements(out.shape) if out is not None else 0
    last = int(out.shape[-1]) if out is not None and out.shape else 1
    rows = n_out // max(last, 1)
    inputs = sum(_elements(t.shape) for t in op.inputs if t is not None and not t.is_constant)
    from ..ir.macs import op_macs  # the MAC formulas ask the op catalog, which re-exports this module
    macs, taps, vtaps, pixels = op_macs(op), 0, 0, 0
    if info(op).spatial.kind == "window" and out is not None and len(out.shape) == 4:
        try:
            (kh, vh), (kw, vw) = _window_geometry(op, 1), _window_geometry(op, 2)
        except (TypeError, ValueError, IndexError, AttributeError):
            kh = kw = vh = vw = 1
        full = int(out.shape[1]) * kh * int(out.shape[2]) * kw
        macs = macs * vh * vw // max(full, 1)
        taps = n_out * kh * kw
        vtaps = int(out.shape[0]) * vh * vw * last
        pixels, rows = rows, int(out.shape[0]) * int(out.shape[1])
    return OpCounts(invoke=1, macs=macs, taps=taps, vtaps=vtaps, outputs=n_out, pixels=pixels, rows=rows,
                    inputs=inputs, runs=_copy_runs(op))


def _copy_runs(op: Operator) -> int:
    """Contiguous copies a concatenation makes: the outer size times the number of inputs."""
    if op.type != "CONCATENATION" or not op.outputs or not op.outputs[0].shape:
        return 0
    shape = op.outputs[0].shape
    axis = int(op.opt("Axis", 0) or 0) % len(shape)
    return _elements(shape[:axis]) * len([t for t in op.inputs if t is not None])


def cost_of(op_type: str, costs: Optional[Mapping[str, InstructionCost]] = None) -> InstructionCost:
    """The fitted cost of ``op_type``, a borrowed one, or the fallback (``costs``: another
    table than COSTS, e.g. a fit on part of the measurements)."""
    table = COSTS if costs is None else costs
    if op_type in table:
        return table[op_type]
    return table.get(BORROWED.get(op_type, ""), table["_FALLBACK"])


def op_instructions(op: Operator, costs: Optional[Mapping[str, InstructionCost]] = None) -> int:
    """Predicted instructions of one invoke of ``op``."""
    return max(0, round(cost_of(op.type, costs).predict(op_counts(op).as_dict())))


def predict_instructions(model: Model, costs: Optional[Mapping[str, InstructionCost]] = None) -> int:
    """Predicted instructions of one ``MicroInterpreter::Invoke`` of ``model``: every op of
    every subgraph, each once (control-flow ops that run a subgraph several times are not
    modelled), plus the interpreter's fixed cost."""
    table = COSTS if costs is None else costs
    per_invoke = table.get("_INTERPRETER", InstructionCost()).invoke
    return round(per_invoke) + sum(op_instructions(op, table) for sg in model.subgraphs for op in sg.operators)
