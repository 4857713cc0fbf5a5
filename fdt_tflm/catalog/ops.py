"""What the passes know about each operator type: one typed table, asked instead of naming ops.

In the spirit of Vela's ``Op``/``OperatorInfo`` (ethos-u-vela): an :class:`OpInfo` per op type
holds its operand roles (which inputs are the feature map, the weights, the bias), how it
splits along channels (FDT) and along space (FFMT), which MAC formula counts its work, whether
its output may share its input's bytes (in-place), which rule sizes its kernel scratch, and
links to the per-target kernel tables (persistent tail) and the instruction-cost catalog.

Passes call :func:`info` with an op or a type name; an unknown type gets a conservative entry
(untileable, one MAC per output element, never in place, scratch unknown).  The ops the
rewrites *create* are named by their role in :data:`CREATED`, so no pass spells them.

Channel splitting asks three questions of an op:
  * can it *start* a path, split by output channels (each part reads the whole input and a
    slice of the weights/bias/per-channel quantisation along ``weight_out_axis``)?
  * is it *channel-wise*: does output channel c depend only on input channel c (constant
    operands that vary along the channel axis are sliced too, ``sliced_inputs``)?
  * can it *end* a path by input channels with partial sums (conv/dense)?
Spatial splitting asks whether an op maps a window of input pixels to an output pixel
(``"window"``: kernel/stride/dilation/padding decide the halo), is an explicit PAD (``"pad"``),
works per pixel (``"pointwise"``) or mixes all positions (``"none"``: a barrier).  ``border``
says how a window op's implicit SAME padding can be made explicit at a tile border:
``"zero_point"`` (a PAD with the input zero point is exact), ``"lowest"`` (max: pad with the
dtype's lowest value) or ``"refuse"`` (TFLM's average pool divides by the in-image taps).  A
border tile whose own SAME padding equals what it needs keeps SAME and needs no explicit
padding at all, whatever this field says (``tiling.ffmt.AxisGeom.same_matches``).
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import TYPE_CHECKING, Mapping, Optional, Union

if TYPE_CHECKING:  # the catalog imports nothing at run time but the IR's types: every layer may ask it
    from ..ir.graph import Operator, Tensor


class MacKind:
    """How :func:`fdt_tflm.catalog.macs.op_macs` counts an op's multiply-accumulates."""

    CONV = "conv"  # per output element: kh * kw * input channels of the weights
    DEPTHWISE = "depthwise"  # per output element: kh * kw
    DENSE = "dense"  # per output element: the weights' last (input) dimension
    BATCH_MATMUL = "batch_matmul"  # per output element: the first operand's last dimension
    POOL = "pool"  # per output element: FilterHeight * FilterWidth
    PARTIAL_SUM = "partial_sum"  # FDT_PARTIAL: every weight once per output pixel
    COPY = "copy"  # pure data movement: 0
    ELEMENTWISE = "elementwise"  # one per output element (also per-element data movement, PAD, ...)


class ScratchKind:
    """Which rule of :mod:`fdt_tflm.tflm_model.reference_scratch` sizes an op's reference-kernel scratch."""

    NONE = "none"  # the kernel requests no scratch buffer
    LSTM = "lstm"
    REDUCE = "reduce"  # MEAN / SUM: int32 accumulators, then dims and axes
    REDUCE_MIN_MAX = "reduce_min_max"
    TRANSPOSE_CONV = "transpose_conv"
    SVDF = "svdf"
    ADD_N = "add_n"
    MIRROR_PAD = "mirror_pad"
    INT4_FILTER = "int4_filter"  # an unpacked copy of INT4 weights


@dataclass(frozen=True)
class Roles:
    """Input/output positions by role (TFLite schema order); ``variadic``: every input is a feature map."""

    ifm: tuple[int, ...] = (0,)
    weights: tuple[int, ...] = ()
    bias: tuple[int, ...] = ()
    ofm: tuple[int, ...] = (0,)
    state: tuple[int, ...] = ()  # carried values: recurrent state variables, partial-sum accumulators
    shape: Optional[int] = None  # the constant input holding the output shape (RESHAPE's new shape)
    variadic: bool = False

    def ifm_indices(self, op: "Operator") -> tuple[int, ...]:
        return tuple(range(len(op.inputs))) if self.variadic else self.ifm


@dataclass(frozen=True)
class ChannelSplit:
    """How an op takes part in a channel (FDT) split; see the module docstring."""

    start: bool = False
    wise: bool = False
    partial_end: bool = False
    weight_out_axis: Optional[int] = None  # axis of the weights that indexes output channels
    weight_in_axis: Optional[int] = None  # axis of the weights that indexes input channels (partial end)
    sliced_inputs: tuple[int, ...] = ()  # constant inputs sliced along the channel axis
    axis_kept: bool = True  # reshapes: only when the last (channel) axis is untouched
    check: str = ""  # named extra condition for channel-wise use (tiling/paths.py CHECKS)
    multiplier: Optional[str] = None  # option scaling channels (out = in * m), e.g. DepthMultiplier
    max_inputs: Optional[int] = None  # TFLM kernel limit on the number of inputs


@dataclass(frozen=True)
class SpatialSplit:
    """How an op takes part in a spatial (FFMT) split: kind and, for windows, the border rule."""

    kind: str = "none"  # "window" | "pad" | "pointwise" | "none"
    border: str = "zero_point"  # "zero_point" | "lowest" | "refuse"


@dataclass(frozen=True)
class InPlace:
    """An input/output pair whose kernel stays correct when both sit at the same offset."""

    input_index: int
    output_index: int
    same_bytes: bool  # input and output hold identical bytes (a pure reshape)
    note: str


@dataclass(frozen=True)
class OpInfo:
    """Everything the passes know about one op type."""

    name: str
    roles: Roles = Roles()
    tileable: bool = False  # False: the tiling passes leave it whole (its split fields are unused)
    channel: ChannelSplit = ChannelSplit()
    spatial: SpatialSplit = SpatialSplit()
    macs: str = MacKind.ELEMENTWISE
    layout_only: bool = False  # the output holds the input's bytes (reshape-like)
    in_place: Optional[InPlace] = None
    scratch: Optional[str] = None  # a ScratchKind, or None: unknown (TFLM must be asked)
    custom: bool = False  # a custom op (matched on its custom code, never on a builtin name)
    shape_option: Optional[str] = None  # the builtin option repeating ``roles.shape`` (RESHAPE: NewShape)
    int8_version: int = 1  # OperatorCode version the rewrites give an int8 copy of this op they create
    # ... and an int16 copy (FDT's channel slices and joins; TFLite's op_version.cc gives int16
    # CONCATENATION version 3; STRIDED_SLICE keeps the 3 the rewrite always wrote, a version
    # every LiteRT/TFLM resolver registers)
    int16_version: int = 1
    # which kernel code path the instruction tables tell apart ("conv", "depthwise": see
    # tflm_model.instructions.VARIANTS; "": one row per op type)
    cost_variant: str = ""
    note: str = ""

    @property
    def weighted(self) -> bool:
        """Has constant weights (float activations with int weights make a hybrid model)."""
        return bool(self.roles.weights)


class RewriteKind(str, Enum):
    """The rewrites the tiling search applies (its candidates' and the report's path ``kind``)."""

    FDT = "FDT"  # channel split: concatenated, or a float partial-sum end of stock ADDs
    FFMT = "FFMT"  # spatial tiles with recomputed halos
    PARTIAL = "FDT_PARTIAL"  # channel split ending in our int8 partial-sum kernel (--allow-custom-ops)


@dataclass(frozen=True)
class RewriteOps:
    """The op types the rewrites create, by what they are for."""

    region_copy: str = "SLICE"  # copies a tile's input region out of a full feature map
    channel_slice: str = "STRIDED_SLICE"  # takes a channel range of a feature map
    join: str = "CONCATENATION"  # joins parts along an axis
    zero_pad: str = "PAD"  # explicit padding with the zero point
    value_pad: str = "PADV2"  # explicit padding with a given value (the dtype's lowest, for max)
    sum: str = "ADD"  # adds partial results
    partial: str = "FDT_PARTIAL"  # our custom partial-sum kernel (firmware_template/fdt_kernels)

    def border_pad(self, border: str) -> str:
        """The PAD op that makes a window's SAME padding explicit under ``border``."""
        return self.zero_pad if border == "zero_point" else self.value_pad


CREATED = RewriteOps()
FDT_PARTIAL = CREATED.partial
FDT_PARTIAL_CODE = FDT_PARTIAL.encode()

_CONV_ROLES = Roles(weights=(1,), bias=(2,))
_BINARY = Roles(ifm=(0, 1))
_LSTM_ROLES = Roles(weights=(*range(1, 12), 16), bias=(*range(12, 16), 17), state=(18, 19))
_BIDI_LSTM_ROLES = Roles(weights=(*range(1, 12), 16, *range(18, 29), 33, *range(40, 48)),
                         bias=(*range(12, 16), 17, *range(29, 33), 34), state=(35, 36, 37, 38))
_RNN_ROLES = Roles(weights=(1, 2), bias=(3,), state=(4,))
_POINTWISE = SpatialSplit("pointwise")
_WISE = ChannelSplit(wise=True)
_CONST_OPERAND = ChannelSplit(wise=True, sliced_inputs=(0, 1), check="const_operand")
_LAST_AXIS_KEPT = ChannelSplit(wise=True, check="last_axis_kept")
_CHANNEL_UNPADDED = ChannelSplit(wise=True, check="channel_unpadded")
_NO_SCRATCH = ScratchKind.NONE

_ENTRIES: tuple[OpInfo, ...] = (
    OpInfo("CONV_2D", _CONV_ROLES, True,
           ChannelSplit(start=True, partial_end=True, weight_out_axis=0, weight_in_axis=3, sliced_inputs=(2,)),
           SpatialSplit("window"), MacKind.CONV, scratch=ScratchKind.INT4_FILTER, cost_variant="conv",
           note="OHWI weights; per-channel scales sliced with them"),
    OpInfo("DEPTHWISE_CONV_2D", _CONV_ROLES, True,
           ChannelSplit(start=True, wise=True, weight_out_axis=3, multiplier="DepthMultiplier", sliced_inputs=(1, 2)),
           SpatialSplit("window"), MacKind.DEPTHWISE, scratch=ScratchKind.INT4_FILTER, cost_variant="depthwise",
           note="1HWO weights; with depth multiplier m, output channel c reads input channel c // m"),
    OpInfo("FULLY_CONNECTED", _CONV_ROLES, True,
           ChannelSplit(start=True, partial_end=True, weight_out_axis=0, weight_in_axis=1, sliced_inputs=(2,)),
           SpatialSplit("none"), MacKind.DENSE, scratch=ScratchKind.INT4_FILTER, note="OI weights"),
    OpInfo("AVERAGE_POOL_2D", tileable=True, channel=_WISE, spatial=SpatialSplit("window", "refuse"),
           macs=MacKind.POOL, scratch=_NO_SCRATCH),
    OpInfo("MAX_POOL_2D", tileable=True, channel=_WISE, spatial=SpatialSplit("window", "lowest"),
           macs=MacKind.POOL, scratch=_NO_SCRATCH),
    *(OpInfo(n, _BINARY, True, _CONST_OPERAND, _POINTWISE, scratch=_NO_SCRATCH,
             note="channel-wise only when the other operand is a constant") for n in ("ADD", "MUL", "SUB")),
    *(OpInfo(n, tileable=True, channel=_WISE, spatial=_POINTWISE, scratch=_NO_SCRATCH)
      for n in ("RELU", "RELU6", "LOGISTIC", "TANH", "HARD_SWISH", "LEAKY_RELU")),
    OpInfo("RELU_N1_TO_1", tileable=True, channel=_WISE, spatial=_POINTWISE),  # no TFLM kernel: scratch unknown
    OpInfo("PRELU", tileable=True, channel=ChannelSplit(wise=True, sliced_inputs=(1,)), spatial=_POINTWISE,
           scratch=_NO_SCRATCH),
    OpInfo("PAD", tileable=True, channel=_CHANNEL_UNPADDED, spatial=SpatialSplit("pad"), scratch=_NO_SCRATCH,
           int8_version=2, note="only when the channel axis is not padded"),
    OpInfo("PADV2", tileable=True, channel=_CHANNEL_UNPADDED, spatial=SpatialSplit("pad"), scratch=_NO_SCRATCH,
           int8_version=2),
    *(OpInfo(n, tileable=True, channel=_WISE, spatial=_POINTWISE, scratch=_NO_SCRATCH)
      for n in ("QUANTIZE", "DEQUANTIZE")),
    OpInfo("MEAN", tileable=True, channel=ChannelSplit(wise=True, check="axes_not_last"), scratch=ScratchKind.REDUCE,
           note="only over non-channel axes"),
    # TFLM's reshape kernel copies only when input and output pointers differ.
    OpInfo("RESHAPE", Roles(shape=1), True, _LAST_AXIS_KEPT, macs=MacKind.COPY, layout_only=True,
           in_place=InPlace(0, 0, True, "reshape.cc: memcpy skipped when input data == output data"),
           scratch=_NO_SCRATCH, shape_option="NewShape", note="only when the last axis is kept"),
    OpInfo("SQUEEZE", tileable=True, channel=_LAST_AXIS_KEPT, macs=MacKind.COPY, layout_only=True,
           scratch=_NO_SCRATCH, note="only when the last axis is kept"),
    OpInfo("CONCATENATION", Roles(variadic=True), True, ChannelSplit(max_inputs=10), macs=MacKind.COPY,
           scratch=_NO_SCRATCH, int8_version=2, int16_version=3,
           note="ends a channel path along the last axis; TFLM's kernel takes at most 10 inputs (kMaxInputNum)"),
    OpInfo("SLICE", macs=MacKind.COPY, scratch=_NO_SCRATCH, int8_version=2),
    OpInfo("STRIDED_SLICE", macs=MacKind.COPY, scratch=_NO_SCRATCH, int8_version=2, int16_version=3),
    OpInfo("SPLIT", Roles(ifm=(1,), ofm=()), macs=MacKind.COPY, scratch=_NO_SCRATCH, note="inputs: axis, input"),
    OpInfo("SPLIT_V", Roles(ofm=()), macs=MacKind.COPY, scratch=_NO_SCRATCH),
    OpInfo("EXPAND_DIMS", layout_only=True, scratch=_NO_SCRATCH),
    OpInfo("BATCH_MATMUL", Roles(weights=(1,)), macs=MacKind.BATCH_MATMUL, scratch=_NO_SCRATCH,
           note="the second operand holds the weights when it is constant"),
    OpInfo("TRANSPOSE_CONV", Roles(ifm=(2,), weights=(1,), bias=(3,)), scratch=ScratchKind.TRANSPOSE_CONV,
           note="inputs: output shape, weights, input, bias"),
    OpInfo("UNIDIRECTIONAL_SEQUENCE_LSTM", _LSTM_ROLES, scratch=ScratchKind.LSTM),
    OpInfo("LSTM", _LSTM_ROLES),
    OpInfo("BIDIRECTIONAL_SEQUENCE_LSTM", _BIDI_LSTM_ROLES),
    OpInfo("SVDF", Roles(weights=(1, 2), bias=(3,), state=(4,)), scratch=ScratchKind.SVDF),
    OpInfo("RNN", _RNN_ROLES),
    OpInfo("UNIDIRECTIONAL_SEQUENCE_RNN", _RNN_ROLES),
    OpInfo("EMBEDDING_LOOKUP", Roles(weights=(1,)), scratch=_NO_SCRATCH, note="inputs: ids, table"),
    OpInfo("SUM", scratch=ScratchKind.REDUCE),
    *(OpInfo(n, scratch=ScratchKind.REDUCE_MIN_MAX) for n in ("REDUCE_MAX", "REDUCE_MIN")),
    OpInfo("ADD_N", Roles(variadic=True), scratch=ScratchKind.ADD_N),
    OpInfo("MIRROR_PAD", scratch=ScratchKind.MIRROR_PAD),
    # Our partial-sum kernel reads every accumulator element before it writes it (and in the
    # last part writes int8 element i at byte i <= 4i, where it read int32 element i).
    OpInfo(FDT_PARTIAL, Roles(weights=(1,), bias=(3,), state=(2,)), macs=MacKind.PARTIAL_SUM,
           in_place=InPlace(2, 0, False, "fdt_partial_core.c: acc_out[i] = acc_in[i] + partial[i]"),
           scratch=_NO_SCRATCH, custom=True, note="inputs: x slice, weights slice, accumulator, bias"),
    # Builtins whose reference kernels (tflite-micro 90b983c) request no scratch and that the
    # passes know nothing else about.
    *(OpInfo(n, scratch=_NO_SCRATCH) for n in (
        "ABS", "ARG_MAX", "ARG_MIN", "ASSIGN_VARIABLE", "BATCH_TO_SPACE_ND", "BROADCAST_ARGS", "BROADCAST_TO",
        "CALL_ONCE", "CAST", "CEIL", "COS", "CUMSUM", "DEPTH_TO_SPACE", "DIV", "DYNAMIC_UPDATE_SLICE", "ELU",
        "EXP", "FILL", "FLOOR", "FLOOR_DIV", "FLOOR_MOD", "GATHER", "GATHER_ND", "IF", "L2_NORMALIZATION",
        "L2_POOL_2D", "LOG", "LOG_SOFTMAX", "LOGICAL_AND", "LOGICAL_NOT", "LOGICAL_OR", "MAXIMUM", "MINIMUM",
        "NEG", "PACK", "READ_VARIABLE", "REDUCE_ALL", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR",
        "REVERSE_V2", "ROUND", "RSQRT", "SELECT_V2", "SHAPE", "SIN", "SOFTMAX", "SPACE_TO_BATCH_ND",
        "SPACE_TO_DEPTH", "SQRT", "SQUARE", "SQUARED_DIFFERENCE", "TRANSPOSE", "UNPACK", "VAR_HANDLE", "WHILE",
        "ZEROS_LIKE")),
    *(OpInfo(n, _BINARY, scratch=_NO_SCRATCH)
      for n in ("EQUAL", "NOT_EQUAL", "GREATER", "GREATER_EQUAL", "LESS", "LESS_EQUAL")),
)

CATALOG: Mapping[str, OpInfo] = MappingProxyType({e.name: e for e in _ENTRIES})


def info(op_or_type: Union[str, "Operator"]) -> OpInfo:
    """The entry for an op (by its identity, ``Operator.key``: a custom op by its custom code,
    never a builtin's entry) or a catalog name; unknown ops get a conservative one: untileable,
    one MAC per output element, never in place, scratch unknown."""
    name, custom = (op_or_type, None) if isinstance(op_or_type, str) else op_or_type.key
    found = CATALOG.get(name)
    if found is None or (custom is not None and found.custom != custom):
        return OpInfo(name, custom=bool(custom))
    return found


def operand(op: "Operator", index: Optional[int]) -> Optional["Tensor"]:
    """Input ``index`` of ``op`` (None when absent, omitted or out of range)."""
    return op.inputs[index] if index is not None and 0 <= index < len(op.inputs) else None


def weights(op: "Operator") -> Optional["Tensor"]:
    """The (first) weights operand of ``op``, or None."""
    w = info(op).roles.weights
    return operand(op, w[0]) if w else None
