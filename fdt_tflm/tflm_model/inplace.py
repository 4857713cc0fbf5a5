"""Which tensors may legally occupy the same arena bytes although both are alive.

An offline plan may alias an op's input and output only where the kernel is known to be
correct when they alias.  The catalog (``OpInfo.in_place``, :mod:`fdt_tflm.catalog.ops`) is
the single source of that knowledge; the planner asks it for shareable pairs and the writer's
proof of every plan accepts exactly these pairs, at exactly one offset, and nothing else.
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Mapping, Sequence

from ..catalog.ops import CATALOG, InPlace, info
from ..ir.graph import Subgraph
from .lifetimes import Interval

# Op type -> its in-place pair, as the catalog states it (``OpInfo.in_place``).
IN_PLACE: Mapping[str, InPlace] = MappingProxyType({n: i.in_place for n, i in CATALOG.items() if i.in_place})


def shareable_pairs(sg: Subgraph, intervals: Sequence[Interval], include: frozenset = frozenset(IN_PLACE)
                    ) -> list[tuple[int, int]]:
    """Pairs of interval indices that may sit at exactly the same offset (rules named in ``include``)."""
    where = {id(iv.tensor): k for k, iv in enumerate(intervals) if iv.tensor is not None}
    last_use: dict[int, int] = {}
    for i, op in enumerate(sg.operators):
        for t in op.inputs:
            if t is not None:
                last_use[id(t)] = i
    pairs = []
    for i, op in enumerate(sg.operators):
        known = info(op)
        r = known.in_place
        if r is None or known.name not in include or r.input_index >= len(op.inputs) \
                or r.output_index >= len(op.outputs):
            continue
        src, dst = op.inputs[r.input_index], op.outputs[r.output_index]
        if src is None or (src.nbytes != dst.nbytes if r.same_bytes else dst.nbytes > src.nbytes):
            continue  # a reshape keeps every byte; an accumulator may shrink to int8 in the last part
        if not r.same_bytes and (last_use.get(id(src)) != i or src in sg.outputs):
            continue  # the op overwrites its input: only allowed when nothing reads it later
        a, b = where.get(id(src)), where.get(id(dst))
        if a is not None and b is not None:
            pairs.append((a, b))
    return pairs
