"""Model facts shared by `inspect`, the report and the checks on input: per-op table, support checks."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .catalog.ops import info
from .errors import FdtError
from .io.reader import check_dataflow
from .ir.graph import Model, Operator, Subgraph
from .catalog.macs import op_macs
from .tflm_model.lifetimes import lifetimes, live_bytes_per_scope, peak_live
from .tflm_model.offline_plan import read_plan
from .tflm_model.scratch import scratch_intervals
from .tflm_model.target import HOST
from .tflm_model.head import ArenaPrediction, predict_head

_FLOAT, _INT8, _UINT8 = 0, 9, 3


@dataclass
class OpRow:
    index: int
    type: str
    output_shape: list[int]
    live_bytes: int
    macs: int


def check_optimizable(model: Model) -> None:
    """Refuse, with a one-line reason, models the optimisation passes cannot handle."""
    if len(model.subgraphs) != 1:
        raise FdtError(f"models with several subgraphs ({len(model.subgraphs)}) are not supported by the "
                       f"optimisation passes (use --passes none to only re-serialise)")
    check_dataflow(model.main)
    for op in model.main.operators:
        if _hybrid_checked(op):
            acts = [t for t in op.inputs if t is not None and not t.is_constant and not t.is_variable]
            consts = [t for t in op.inputs if t is not None and t.is_constant]
            if any(t.dtype == _FLOAT for t in acts) and any(t.dtype in (_INT8, _UINT8) for t in consts):
                raise FdtError(f"hybrid model (float activations with int8 weights in {op.type}): "
                               f"TFLM does not run it; convert with full integer quantisation")


def _hybrid_checked(op: Operator) -> bool:
    """TFLM's builtin kernels with weights refuse float activations with int8/uint8 constant weights
    (a "hybrid" model); the catalog says which ops have weights."""
    known = info(op)
    return known.weighted and not known.custom


def op_table(sg: Subgraph) -> list[OpRow]:
    ivs = lifetimes(sg)
    live = live_bytes_per_scope(ivs, len(sg.operators) + 1)
    return [OpRow(i, op.type, list(op.outputs[0].shape) if op.outputs else [], live[i + 1], op_macs(op))
            for i, op in enumerate(sg.operators)]


def summary(model: Model) -> dict:
    """The facts `inspect --json` prints (and the report reuses)."""
    sg = model.main
    rows = op_table(sg)
    ivs = lifetimes(sg)
    plan = read_plan(model)
    return {
        "subgraphs": len(model.subgraphs),
        "operators": len(sg.operators),
        "tensors": len(sg.tensors),
        "activation_tensors": len(ivs),
        "tflm_default_arena_bytes": _default_head(model),
        "predicted_head_bytes": predicted_head(model).head,
        "scratch_bytes": sum(iv.size for iv in scratch_intervals(sg, HOST)),
        "peak_live_bytes": peak_live(ivs),
        "largest_tensor_bytes": max((iv.size for iv in ivs), default=0),
        "macs": sum(r.macs for r in rows),
        "has_offline_plan": plan is not None,
        "op_types": sorted({op.type for op in sg.operators}),
        "ops": [{"index": r.index, "type": r.type, "output_shape": r.output_shape, "live_bytes": r.live_bytes,
                 "macs": r.macs} for r in rows],
    }


def predicted_head(model: Model) -> ArenaPrediction:
    """TFLM's head for this model as stored: its offline plan (if any), greedy placement for
    the rest, and the kernel scratch buffers TFLM places at run time."""
    return predict_head(model, scratch=scratch_intervals(model.main, HOST))


def _default_head(model: Model) -> int:
    """The head TFLM's own greedy planner would need if the model had no offline plan."""
    import copy
    from .ir.surgery import drop_offline_plan
    m = copy.copy(model)
    drop_offline_plan(m)
    return predicted_head(m).head


def format_table(model: Model, info: Optional[dict] = None) -> str:
    info = info or summary(model)
    lines = [f"{'#':>4}  {'op':<26} {'output shape':<20} {'live B':>9} {'MACs':>12}"]
    for r in info["ops"]:
        lines.append(f"{r['index']:>4}  {r['type']:<26} {str(r['output_shape']):<20} {r['live_bytes']:>9} "
                     f"{r['macs']:>12}")
    lines.append("")
    lines.append(f"operators {info['operators']}, tensors {info['tensors']} ({info['activation_tensors']} in the arena), "
                 f"MACs {info['macs']:,}")
    lines.append(f"TFLM default arena head (greedy planner): {info['tflm_default_arena_bytes']:,} B")
    if info["has_offline_plan"]:
        lines.append(f"arena head with the model's offline plan: {info['predicted_head_bytes']:,} B")
    lines.append(f"peak live (lower bound for this op order): {info['peak_live_bytes']:,} B; "
                 f"largest tensor {info['largest_tensor_bytes']:,} B")
    return "\n".join(lines)
