"""Memory passes (IR -> IR, input never mutated): reorder operators, write an optimal offline plan.

``reorder`` changes only the operator list (TFLM runs ops in that order), so outputs
stay bit-identical.  ``plan`` writes the ``OfflineMemoryAllocation`` metadata that
TFLM's greedy planner takes as fixed offsets; kernel scratch buffers are planned too,
so the plan keeps a gap at each scratch-requesting op where TFLM drops them at run time.
Both stop on work budgets (``effort``), never on the clock: the same model gives the same
bytes on any machine.  Kernel scratch is the ``target``'s (the firmware's TFLM build).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Optional

from ..effort import DEFAULT_EFFORT, Effort
from ..ir.surgery import drop_offline_plan
from ..ir.graph import Model
from .ilp import plan_offsets
from ..tflm_model.inplace import shareable_pairs
from ..tflm_model.lifetimes import lifetimes, peak_live
from ..tflm_model.offline_plan import check_offline_plan, set_plan
from .scheduler import Schedule, best_order
from ..tflm_model.scratch import scratch_bytes, scratch_intervals
from ..tflm_model.target import HOST, Target
from ..tflm_model.head import predict_head


@dataclass
class PlanReport:
    planned_bytes: int  # extent of the plan, including the gaps reserved for scratch buffers
    peak_live_bytes: int  # lower bound: most bytes (tensors + scratch) alive at one step
    optimal: bool
    gap: float
    solve_seconds: float
    predicted_head: int  # TFLM's head for the written model (plan + run-time scratch placement)
    method: str = ""


def reorder(model: Model, *, effort: Effort = DEFAULT_EFFORT, target: Target = HOST) -> tuple[Model, Schedule]:
    """A copy of ``model`` whose subgraphs run in their peak-minimising order; the schedule of subgraph 0."""
    out = copy.deepcopy(model)
    main: Optional[Schedule] = None
    for k, sg in enumerate(out.subgraphs):
        sched = best_order(sg, scratch=scratch_bytes(sg, target), effort=effort)
        sg.operators = list(sched.order)
        if k == 0:
            main = sched
    if main is None:  # a model without subgraphs: nothing to order
        main = Schedule([], 0, True, "empty", 0.0)
    return out, main


def plan(model: Model, *, solver: str = "cbc", effort: Effort = DEFAULT_EFFORT,
         target: Target = HOST) -> tuple[Model, PlanReport]:
    """A copy of ``model`` with an offline plan for subgraph 0 (replacing any it had) and its report."""
    out = copy.deepcopy(model)
    if not out.subgraphs:
        return out, PlanReport(0, 0, True, 0.0, 0.0, 0, "empty")
    sg = out.main
    tensors = lifetimes(sg)
    scratch = scratch_intervals(sg, target)
    # in-place pairs (a RESHAPE and its input, FDT_PARTIAL accumulators) may share bytes
    res = plan_offsets(tensors + scratch, solver=solver, shareable=shareable_pairs(sg, tensors), effort=effort)
    set_plan(out, {iv.index: off for iv, off in zip(tensors, res.offsets)})
    head = predict_head(out, scratch=scratch).head
    method, planned = res.method, res.arena
    # TFLM's own plan for this order: never ship a plan that does worse than having none
    plain = copy.copy(out)
    drop_offline_plan(plain)
    baseline = predict_head(plain, scratch=scratch)
    if head > baseline.head:
        offs = {iv.index: off for iv, off in zip(baseline.buffers, baseline.offsets) if iv.tensor is not None}
        set_plan(out, offs)
        head = predict_head(out, scratch=scratch).head
        method, planned = "tflm-greedy (scratch placement beat the plan)", head
    check_offline_plan(out)
    return out, PlanReport(planned_bytes=planned, peak_live_bytes=res.lower_bound,
                           optimal=res.optimal and head <= res.arena, gap=res.gap, solve_seconds=res.seconds,
                           predicted_head=head, method=method)



def _op_signature(model: Model) -> list[tuple]:
    return [(op.type, tuple(t.name for t in op.outputs)) for op in model.main.operators]


def reorder_and_plan(model: Model, *, effort: Effort = DEFAULT_EFFORT,
                     target: Target = HOST) -> tuple[Model, Schedule, PlanReport]:
    """Plan both the peak-minimising order and the stored order and keep the smaller head.

    The ILP may stop at its node budget above the bound of the new order, and then a plan
    of the stored order can be smaller: the pipeline must never do worse than either.
    Ties keep the stored order (fewer changes to the model)."""
    reordered, sched = reorder(model, effort=effort, target=target)
    stored_out, stored_rep = plan(model, effort=effort, target=target)
    if _op_signature(reordered) == _op_signature(model):
        return stored_out, sched, stored_rep
    new_out, new_rep = plan(reordered, effort=effort, target=target)
    if new_rep.predicted_head < stored_rep.predicted_head:
        return new_out, sched, new_rep
    kept = Schedule(list(model.main.operators), peak_live(lifetimes(model.main)), False, "stored order kept", 0.0)
    return stored_out, kept, stored_rep
