"""The `OfflineMemoryAllocation` plan TFLM reads (bytes: :mod:`fdt_tflm.io.plan_format`), and
the proof we run before writing it: TFLM trusts the plan blindly, so :func:`check_offline_plan`
proves that no two tensors that are alive at the same time share a byte.
"""
from __future__ import annotations

from typing import Iterable, Optional

from ..ir.graph import Model, Tensor
from ..io.plan_format import METADATA_NAME, ONLINE, PlanError, decode_plan, encode_plan
from .lifetimes import Interval, lifetimes

__all__ = ["METADATA_NAME", "ONLINE", "PlanError", "read_plan", "set_plan", "planned_intervals", "find_overlap",
           "check_offline_plan"]


def read_plan(model: Model) -> Optional[list[int]]:
    buf = model.get_metadata(METADATA_NAME)
    return None if buf is None else decode_plan(buf.data)


def set_plan(model: Model, offsets_by_tensor: dict[int, int]) -> None:
    """Store a plan for subgraph 0 (tensor index -> offset); every other tensor is online."""
    n_total = sum(len(sg.tensors) for sg in model.subgraphs)
    offs = [ONLINE] * n_total
    for i, o in offsets_by_tensor.items():
        offs[i] = int(o)
    model.set_metadata(METADATA_NAME, encode_plan(offs, len(model.subgraphs)))


def planned_intervals(model: Model) -> list[tuple[Interval, int]]:
    """(buffer, offset) for every offline-planned arena tensor of subgraph 0."""
    plan = read_plan(model)
    if plan is None:
        return []
    n_total = sum(len(sg.tensors) for sg in model.subgraphs)
    if len(plan) != n_total:
        raise PlanError(f"{METADATA_NAME} lists {len(plan)} tensors, the model has {n_total}")
    out = []
    for iv in lifetimes(model.main):
        off = plan[iv.index]
        if off != ONLINE:
            if off < 0 or off % 16:
                raise PlanError(f"tensor {iv.tensor.name!r}: offset {off} is not a 16-byte aligned offset")
            out.append((iv, off))
    return out


def find_overlap(items: list[tuple[Interval, int]], shareable: Iterable[tuple[Tensor, Tensor]] = ()
                 ) -> Optional[tuple[Interval, Interval]]:
    """Two buffers alive at the same time whose byte ranges intersect, or None (sweep by offset).

    ``shareable``: tensor pairs allowed to alias, but only at exactly the same offset."""
    share = {frozenset((id(a), id(b))) for a, b in shareable}
    items = sorted(items, key=lambda x: x[1])
    for a in range(len(items)):
        ia, oa = items[a]
        for b in range(a + 1, len(items)):
            ib, ob = items[b]
            if ob >= oa + ia.size:
                break
            if ia.overlaps(ib) and not (oa == ob and ia.tensor is not None
                                        and ib.tensor is not None
                                        and frozenset((id(ia.tensor), id(ib.tensor))) in share):
                return ia, ib
    return None


def check_offline_plan(model: Model) -> None:
    """Raise :class:`PlanError` unless the model's offline plan (if any) is sound: no two live
    tensors share a byte, except the in-place pairs of :mod:`.inplace` at one offset."""
    from .inplace import shareable_pairs
    items = planned_intervals(model)
    ivs = [iv for iv, _ in items]
    pairs = [(ivs[a].tensor, ivs[b].tensor) for a, b in shareable_pairs(model.main, ivs)]
    clash = find_overlap(items, pairs)
    if clash is not None:
        a, b = clash
        raise PlanError(f"refusing to write an overlapping memory plan: tensors {a.tensor.name!r} and "
                        f"{b.tensor.name!r} are alive at the same time and share arena bytes")
