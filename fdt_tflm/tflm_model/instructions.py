"""Predicted instructions of one TFLM invoke on a Target, per operator.

MACs understate run time: slices, pads and concatenations cost instructions but no MACs,
a kernel run on a small tile pays its per-invoke, per-row and per-pixel costs more often
per MAC, and CMSIS-NN rebuilds a convolution's im2col columns for every channel part.
Each op's cost is a linear model over a few counts of the op (the ``FEATURES``), one table
row per op type or kernel code path (``VARIANTS``), one table per Target: the host
interpreter's (:data:`COSTS`, fitted to callgrind inside ``MicroInterpreter::Invoke`` by
``benchmarks/callgrind.py --fit``) and each device's (:mod:`.device_costs`, fitted to QEMU
icount by ``benchmarks/device_fit.py``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Iterable, Mapping, Optional

from ..ir.graph import Model, Operator
from ..catalog.ops import info

if TYPE_CHECKING:
    from .target import Target

# What a kernel's loops run over (see ``op_counts``).
FEATURES: tuple[str, ...] = ("invoke", "macs", "taps", "vtaps", "outputs", "pixels", "rows", "inputs", "runs", "cols")
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
    cols: float = 0.0  # per im2col element (window ops: output pixels x kernel taps x input channels)

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
    cols: int = 0

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
# Kernels compiled as plain C whatever the kernel set (our FDT_PARTIAL: firmware_template/
# fdt_kernels) -> the reference kernel whose loops they run: priced with that row of the
# same CPU's *reference* table, also where CMSIS-NN runs the builtins (it is 2.6x slower
# than CMSIS-NN's dense kernel on convdense, measured in QEMU).
PLAIN_C: dict[str, str] = {"FDT_PARTIAL": "FULLY_CONNECTED"}


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
    from ..catalog.macs import op_macs  # the MAC formulas ask the op catalog, which re-exports this module
    macs, taps, vtaps, pixels, cols = op_macs(op), 0, 0, 0, 0
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
        cols = pixels * kh * kw * _in_channels(op)
    return OpCounts(invoke=1, macs=macs, taps=taps, vtaps=vtaps, outputs=n_out, pixels=pixels, rows=rows,
                    inputs=inputs, runs=_copy_runs(op), cols=cols)


def _in_channels(op: Operator) -> int:
    """Channels of the op's first input (the depth an im2col column copies per tap)."""
    x = op.inputs[0] if op.inputs else None
    return int(x.shape[-1]) if x is not None and x.shape else 1


def _copy_runs(op: Operator) -> int:
    """Contiguous copies a concatenation makes: the outer size times the number of inputs."""
    if op.key.table_name != "CONCATENATION" or not op.outputs or not op.outputs[0].shape:
        return 0
    shape = op.outputs[0].shape
    axis = int(op.opt("Axis", 0) or 0) % len(shape)
    return _elements(shape[:axis]) * len([t for t in op.inputs if t is not None])


CostTable = Mapping[str, InstructionCost]


@dataclass(frozen=True)
class OpShapes:
    """An op's operand shapes: what the variant rules read, so that a recorded measurement
    (which keeps shapes, not the model) gets the same table row as the op itself."""

    inputs: tuple[tuple[int, ...], ...]  # non-constant inputs
    weights: tuple[tuple[int, ...], ...]  # constant inputs
    output: tuple[int, ...]

    @classmethod
    def of(cls, op: Operator) -> "OpShapes":
        ins = [t for t in op.inputs if t is not None]
        return cls(tuple(tuple(t.shape) for t in ins if not t.is_constant),
                   tuple(tuple(t.shape) for t in ins if t.is_constant),
                   tuple(op.outputs[0].shape) if op.outputs else ())


def _conv_variant(s: OpShapes) -> str:
    """CMSIS-NN's arm_convolve_wrapper_s8 paths: a 1x1 filter at stride 1 (no im2col), a 1x1
    filter at another stride, or the im2col kernel (OHWI weights)."""
    if not s.weights or len(s.weights[0]) != 4 or not s.inputs or len(s.inputs[0]) != 4 or len(s.output) != 4:
        return "kxk"
    _, kh, kw, _ = s.weights[0]
    if (kh, kw) != (1, 1):
        return "kxk"
    return "1x1" if s.inputs[0][1:3] == s.output[1:3] else "1x1s"


def _depthwise_variant(s: OpShapes) -> str:
    """CMSIS-NN's arm_depthwise_conv_wrapper_s8 paths: a channel multiplier above 1 (the plain
    arm_depthwise_conv_s8), the 3x3 kernel, or the optimised generic one (1HWO weights)."""
    if not s.weights or len(s.weights[0]) != 4 or not s.inputs or len(s.inputs[0]) != 4 or len(s.output) != 4:
        return "kxk"
    _, kh, kw, c_out = s.weights[0]
    if c_out != s.inputs[0][3]:
        return "mult"
    return "3x3" if (kh, kw) == (3, 3) else "kxk"


# Kernel code paths per ``OpInfo.cost_variant``: a table row "TYPE/variant" prices them apart.
VARIANTS = {"conv": _conv_variant, "depthwise": _depthwise_variant}


def cost_table(target: Optional["Target"] = None) -> CostTable:
    """The instruction table of ``target``: the host interpreter's (None or the host target:
    callgrind, reference kernels) or a device's (QEMU icount with the device's TFLM, see
    :mod:`.device_costs`).  A CPU without its own measurements takes the measured CPU of its
    CMSIS-NN feature set (:func:`measured_cpu`)."""
    if target is None or target.abi == "host64":
        return {**COSTS, **{op: COSTS[ref] for op, ref in PLAIN_C.items()}}
    from .device_costs import DEVICE_COSTS
    cpu = measured_cpu(target)
    reference = DEVICE_COSTS[(cpu, "reference")]
    return {**DEVICE_COSTS[(cpu, target.kernels)], **{op: reference[ref] for op, ref in PLAIN_C.items()}}


def measured_cpu(target: "Target") -> str:
    """The CPU whose device measurements price ``target`` (itself when measured)."""
    from .device_costs import DEVICE_COSTS, STAND_IN
    if (target.cpu, target.kernels) in DEVICE_COSTS:
        return target.cpu
    return STAND_IN.get(target.features, "cortex-m4")


def table_label(target: Optional["Target"] = None) -> str:
    """Which measurements price ``target``'s instructions, in words."""
    if target is None or target.abi == "host64":
        return "host TFLM (x86-64), reference kernels, callgrind"
    cpu = measured_cpu(target)
    via = "" if cpu == target.cpu else f" (priced as a {cpu})"
    return f"{target.cpu}, {target.kernels} kernels{via}, QEMU icount"


def cost_key(op: Operator, table: CostTable) -> str:
    """The table row of ``op``: its kernel variant's (e.g. ``CONV_2D/1x1``) where the table
    has one, else its type's, a borrowed type's, or ``_FALLBACK``."""
    return row_key(op.key.table_name, info(op).cost_variant, OpShapes.of(op), table)


def row_key(op_type: str, kind: str, shapes: OpShapes, table: CostTable) -> str:
    """:func:`cost_key` from an op's type, catalog variant kind and shapes."""
    rule = VARIANTS.get(kind)
    variant = rule(shapes) if rule is not None else None
    for key in ((f"{op_type}/{variant}" if variant else None), op_type, BORROWED.get(op_type)):
        if key and key in table:
            return key
    return "_FALLBACK"


def row_instructions(table: CostTable, key: str, counts: Mapping[str, float]) -> int:
    """Instructions of one op priced by row ``key`` of ``table`` for its ``counts``."""
    return max(0, round(table[key].predict(dict(counts))))


def invoke_instructions(table: CostTable, ops: Iterable[tuple[str, Mapping[str, float]]]) -> int:
    """One invoke: the interpreter's fixed cost plus every op, given as (row key, counts)."""
    per_invoke = table.get("_INTERPRETER", InstructionCost()).invoke
    return round(per_invoke) + sum(row_instructions(table, key, counts) for key, counts in ops)


def op_instructions(op: Operator, costs: Optional[CostTable] = None, target: Optional["Target"] = None) -> int:
    """Predicted instructions of one invoke of ``op`` on ``target`` (default: the host), or
    with the table ``costs``."""
    table = costs if costs is not None else cost_table(target)
    return row_instructions(table, cost_key(op, table), op_counts(op).as_dict())


def predict_instructions(model: Model, costs: Optional[CostTable] = None, target: Optional["Target"] = None) -> int:
    """Predicted instructions of one ``MicroInterpreter::Invoke`` of ``model`` on ``target``
    (default: the host interpreter): every op of every subgraph, each once (control-flow
    ops that run a subgraph several times are not modelled), plus the interpreter's fixed
    cost."""
    table = costs if costs is not None else cost_table(target)
    return invoke_instructions(table, ((cost_key(op, table), op_counts(op).as_dict())
                                       for sg in model.subgraphs for op in sg.operators))
