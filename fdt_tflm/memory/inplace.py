"""Which tensors may legally occupy the same arena bytes although both are alive.

An offline plan may alias an op's input and output only where the kernel is known to be
correct when they alias.  The table is the single source of that knowledge; the planner
asks it for shareable pairs and the writer's proof of every plan accepts exactly these
pairs, at exactly one offset, and nothing else.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..ir.graph import Operator, Subgraph
from .lifetimes import Interval

FDT_PARTIAL_CODE = b"FDT_PARTIAL"


@dataclass(frozen=True)
class InPlace:
    input_index: int
    output_index: int
    same_bytes: bool  # input and output hold identical bytes (a pure reshape)
    note: str


IN_PLACE: dict[str, InPlace] = {
    # TFLM's reshape kernel copies only when input and output pointers differ.
    "RESHAPE": InPlace(0, 0, True, "reshape.cc: memcpy skipped when input data == output data"),
    # Our partial-sum kernel reads every accumulator element before it writes it (and in the
    # last part writes int8 element i at byte i <= 4i, where it read int32 element i).
    "FDT_PARTIAL": InPlace(2, 0, False, "fdt_partial_core.c: acc_out[i] = acc_in[i] + partial[i]"),
}


def _rule(op: Operator):
    if op.opcode.custom_code == FDT_PARTIAL_CODE:
        return IN_PLACE["FDT_PARTIAL"]
    return IN_PLACE.get(op.type) if op.opcode.custom_code is None else None


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
        r = _rule(op)
        if r is None or r.input_index >= len(op.inputs) or r.output_index >= len(op.outputs):
            continue
        name = "FDT_PARTIAL" if op.opcode.custom_code == FDT_PARTIAL_CODE else op.type
        if name not in include:
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
