"""Graph surgery owned by the IR: fork a model cheaply, replace a region of operators, prune
what became dead (in the spirit of onnx-graphsurgeon's ``Graph.cleanup()``).

Every rewrite (FDT, FFMT, partial sums) is the same three steps: :func:`fork` the model,
build the new region's tensors and operators, then :func:`replace_region`, which splices the
new operators in, registers their tensors and prunes the tensors only the old region used.
Graph inputs and outputs keep their tensor objects, signature defs refer to tensors (not
indices) and so stay valid, and an offline memory plan (indexed by tensor position, now
stale) is dropped.

Why a fork and not a deep copy: the tiling search scores hundreds of candidates per model,
and a deep copy of the whole model (weights included) was most of its time.  A fork copies
the lists only and shares every tensor, operator and buffer with its parent; so a rewrite
must never mutate a shared object, only create new ones and replace.  The rewrites here
hold to that (``Model.opcode`` adds a new code instead of raising a shared one's version).
"""
from __future__ import annotations

import copy
from dataclasses import replace
from typing import Iterable, Literal, Sequence

from .graph import Model, Operator, Tensor

# Metadata entry of TFLM's offline plan (its format: fdt_tflm.tflm_model.offline_plan)
OFFLINE_PLAN_METADATA = b"OfflineMemoryAllocation"


def fork(model: Model) -> Model:
    """A model with its own lists (subgraphs' tensors, operators, inputs and outputs; operator
    codes; metadata; signature defs) sharing every tensor, operator and buffer with ``model``."""
    subgraphs = [replace(sg, tensors=list(sg.tensors), operators=list(sg.operators), inputs=list(sg.inputs),
                         outputs=list(sg.outputs)) for sg in model.subgraphs]
    sigs = [replace(sd, inputs=list(sd.inputs), outputs=list(sd.outputs)) for sd in model.signature_defs]
    return replace(model, subgraphs=subgraphs, metadata=list(model.metadata), signature_defs=sigs,
                   operator_codes=list(model.operator_codes))


def detach(model: Model) -> Model:
    """A deep copy: what a search hands on once it has chosen (forks share with the input)."""
    return copy.deepcopy(model)


def replace_region(model: Model, old: Sequence[Operator], new: Sequence[Operator],
                   new_tensors: Iterable[Tensor] = (), at: Literal["first", "last"] = "last",
                   subgraph: int = 0) -> None:
    """Replace the operators ``old`` of one subgraph with ``new``, in place on ``model`` (a fork).

    ``new`` goes where the first (``at="first"``) or the last old op stood; the last is always
    valid (every input of the region exists by then, and only the region's final outputs
    are read after it), the first when the region reads nothing produced in between.
    ``new_tensors`` not yet in the subgraph are appended; tensors only the old region used
    are pruned (:func:`prune`); an offline plan is dropped."""
    sg = model.subgraphs[subgraph]
    gone = {id(op) for op in old}
    if len(gone) != len(old) or not gone:
        raise ValueError("replace_region: the old region must name distinct operators")
    positions = [i for i, op in enumerate(sg.operators) if id(op) in gone]
    if len(positions) != len(gone):
        raise ValueError("replace_region: an old operator is not in the subgraph")
    anchor = positions[0] if at == "first" else positions[-1]
    kept = [op for op in sg.operators if id(op) not in gone]
    insert_at = anchor - sum(1 for i in positions if i < anchor)
    sg.operators = kept[:insert_at] + list(new) + kept[insert_at:]
    have = {id(t) for t in sg.tensors}
    for t in new_tensors:
        if id(t) not in have:
            have.add(id(t))
            sg.tensors.append(t)
    drop_offline_plan(model)  # tensor positions changed, whatever is pruned
    prune(model, [t for op in old for t in [*op.inputs, *op.outputs, *op.intermediates] if t is not None],
          subgraph)
    sg.validate()


def used_tensors(model: Model, subgraph: int = 0) -> set[int]:
    """ids of the tensors of one subgraph that something references: an operator, the
    subgraph's inputs/outputs, or a signature def."""
    sg = model.subgraphs[subgraph]
    used = {id(t) for t in sg.inputs} | {id(t) for t in sg.outputs}
    for op in sg.operators:
        used.update(id(t) for t in [*op.inputs, *op.outputs, *op.intermediates] if t is not None)
    for sd in model.signature_defs:
        if sd.subgraph_index == subgraph:
            used.update(id(t) for t in sd.tensors())
    return used


def prune(model: Model, candidates: Iterable[Tensor], subgraph: int = 0) -> int:
    """Drop the ``candidates`` nothing references any more (each would cost TFLM an eval-tensor
    struct); tensors that were unused before a rewrite are not candidates and stay, so a
    model round-trips unchanged.  Drops a stale offline plan when anything was removed.
    Returns how many tensors were dropped."""
    sg = model.subgraphs[subgraph]
    used = used_tensors(model, subgraph)
    dead = {id(t) for t in candidates} - used
    if not dead:
        return 0
    before = len(sg.tensors)
    sg.tensors = [t for t in sg.tensors if id(t) not in dead]
    drop_offline_plan(model)
    return before - len(sg.tensors)


def drop_offline_plan(model: Model) -> None:
    """An offline plan lists offsets by tensor position: any surgery makes it stale."""
    model.metadata = [(n, b) for n, b in model.metadata if n != OFFLINE_PLAN_METADATA]

