"""How each operator behaves when a chain of operators is split: one table, read by every tiling pass.

Channel splitting (FDT) asks three questions of an op:
  * can it *start* a path, split by output channels (each part reads the whole input and
    a slice of the weights/bias/per-channel quantisation along ``weight_out_axis``)?
  * is it *channel-wise*: does output channel c depend only on input channel c, so that a
    channel slice passes through it unchanged in meaning (constant operands that vary along
    the channel axis are sliced too, listed in ``channel_sliced_inputs``)?
  * can it *end* a path by input channels with partial sums (conv/dense)?
Spatial splitting (FFMT) asks whether an op maps a window of input pixels to an output pixel
(``spatial="window"``: kernel/stride/dilation/padding decide the halo), is an explicit PAD
(``"pad"``: a shifted window of size 1), works per pixel (``"pointwise"``: the tile passes
through), or mixes all positions (``"none"``: a barrier).  ``spatial_border`` says how a
window op's implicit SAME padding can be made explicit at a tile border: ``"zero_point"``
(out-of-image taps contribute nothing, so a PAD with the input zero point is exact),
``"lowest"`` (max: pad with the dtype's lowest value) or ``"refuse"`` (TFLM's average pool
divides by the number of in-image taps; explicit padding would change the result).  A border
tile whose own SAME padding equals what it needs keeps SAME and needs no explicit padding
at all, whatever this field says (``ffmt.AxisGeom.same_matches``).

Keep knowledge here, not in ``if`` chains in the passes.  A missing op means "leave untiled".
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class OpRule:
    op: str
    channel_start: bool = False
    channel_wise: bool = False
    channel_partial_end: bool = False
    weight_out_axis: Optional[int] = None  # axis of input 1 (weights) that indexes output channels
    channel_sliced_inputs: tuple[int, ...] = ()  # constant inputs sliced along the channel axis
    spatial: str = "none"  # "window" | "pad" | "pointwise" | "none"
    spatial_border: str = "zero_point"  # window ops: "zero_point" | "lowest" | "refuse"
    channel_axis_kept: bool = True  # reshapes: only when the last (channel) axis is untouched
    weight_in_axis: Optional[int] = None  # axis of input 1 that indexes input channels (partial-sum end)
    channel_check: str = ""  # named extra condition for channel-wise use (see tiling/paths.py CHECKS)
    channel_multiplier: Optional[str] = None  # option scaling channels (out = in * m), e.g. DepthMultiplier
    max_inputs: Optional[int] = None  # TFLM kernel limit on the number of inputs
    note: str = ""


_RULES = [
    OpRule("CONV_2D", channel_start=True, channel_partial_end=True, weight_out_axis=0, weight_in_axis=3,
           channel_sliced_inputs=(2,), spatial="window",
           note="OHWI weights; per-channel scales sliced with them"),
    OpRule("DEPTHWISE_CONV_2D", channel_start=True, channel_wise=True, weight_out_axis=3,
           channel_multiplier="DepthMultiplier",
           channel_sliced_inputs=(1, 2), spatial="window",
           note="1HWO weights; with depth multiplier m, output channel c reads input channel c // m"),
    OpRule("FULLY_CONNECTED", channel_start=True, channel_partial_end=True, weight_out_axis=0, weight_in_axis=1,
           channel_sliced_inputs=(2,), spatial="none", note="OI weights"),
    OpRule("AVERAGE_POOL_2D", channel_wise=True, spatial="window", spatial_border="refuse"),
    OpRule("MAX_POOL_2D", channel_wise=True, spatial="window", spatial_border="lowest"),
    OpRule("ADD", channel_wise=True, channel_sliced_inputs=(0, 1), channel_check="const_operand", spatial="pointwise",
           note="channel-wise only when the other operand is a constant"),
    OpRule("MUL", channel_wise=True, channel_sliced_inputs=(0, 1), channel_check="const_operand", spatial="pointwise",
           note="channel-wise only when the other operand is a constant"),
    OpRule("SUB", channel_wise=True, channel_sliced_inputs=(0, 1), channel_check="const_operand", spatial="pointwise",
           note="channel-wise only when the other operand is a constant"),
    OpRule("RELU", channel_wise=True, spatial="pointwise"),
    OpRule("RELU6", channel_wise=True, spatial="pointwise"),
    OpRule("RELU_N1_TO_1", channel_wise=True, spatial="pointwise"),
    OpRule("LOGISTIC", channel_wise=True, spatial="pointwise"),
    OpRule("TANH", channel_wise=True, spatial="pointwise"),
    OpRule("HARD_SWISH", channel_wise=True, spatial="pointwise"),
    OpRule("LEAKY_RELU", channel_wise=True, spatial="pointwise"),
    OpRule("PRELU", channel_wise=True, channel_sliced_inputs=(1,), spatial="pointwise"),
    OpRule("PAD", channel_wise=True, channel_check="channel_unpadded", spatial="pad", note="only when the channel axis is not padded"),
    OpRule("PADV2", channel_wise=True, channel_check="channel_unpadded", spatial="pad"),
    OpRule("QUANTIZE", channel_wise=True, spatial="pointwise"),
    OpRule("DEQUANTIZE", channel_wise=True, spatial="pointwise"),
    OpRule("MEAN", channel_wise=True, channel_check="axes_not_last", spatial="none", note="only over non-channel axes"),
    OpRule("RESHAPE", channel_wise=True, channel_check="last_axis_kept", spatial="none", note="only when the last axis is kept"),
    OpRule("SQUEEZE", channel_wise=True, channel_check="last_axis_kept", spatial="none", note="only when the last axis is kept"),
    OpRule("CONCATENATION", spatial="none", max_inputs=10,
           note="ends a channel path along the last axis; TFLM's kernel takes at most 10 inputs (kMaxInputNum)"),
]

RULES: dict[str, OpRule] = {r.op: r for r in _RULES}


def rule(op_type: str) -> Optional[OpRule]:
    """The rule for an op type, or None: unknown ops are left untiled, never a crash."""
    return RULES.get(op_type)
