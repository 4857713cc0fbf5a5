"""How each operator behaves when a chain of operators is split: the tiling passes' view of the catalog.

The knowledge lives in :mod:`.ops` (``OpInfo.channel`` / ``OpInfo.spatial``, the questions each
answers are described there); this module keeps the flat :class:`OpRule` records the tiling
passes read, one per op the catalog marks ``tileable``, keyed by the op's identity
(:class:`fdt_tflm.ir.graph.OpKey`): a custom op is never taken for a builtin of the same
name.  A missing op means "leave untiled".
"""
from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping, Optional, Union

from ..ir.graph import OpKey, Operator
from .ops import CATALOG, OpInfo


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


def _rule_of(i: OpInfo) -> OpRule:
    c = i.channel
    return OpRule(i.name, c.start, c.wise, c.partial_end, c.weight_out_axis, c.sliced_inputs, i.spatial.kind,
                  i.spatial.border, c.axis_kept, c.weight_in_axis, c.check, c.multiplier, c.max_inputs, i.note)


RULES: Mapping[OpKey, OpRule] = MappingProxyType(
    {OpKey(n, i.custom): _rule_of(i) for n, i in CATALOG.items() if i.tileable})


def rule(op: Union[Operator, OpKey]) -> Optional[OpRule]:
    """The rule for an op, or None: unknown ops (and custom ops named like a builtin) are left
    untiled, never a crash."""
    return RULES.get(op.key if isinstance(op, Operator) else op)
