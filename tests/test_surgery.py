"""IR graph surgery (fdt_tflm.ir.surgery): forks share and never disturb their parent; a region
replacement keeps the graph's interface, prunes only what became dead, and drops a stale plan."""
from __future__ import annotations

from pathlib import Path

import pytest

from fdt_tflm.io import read_model, write_model
from fdt_tflm.ir.graph import Tensor
from fdt_tflm.ir.surgery import fork, replace_region
from fdt_tflm.tflm_model.offline_plan import METADATA_NAME
from fdt_tflm.memory.passes import plan
from fdt_tflm.tiling.fdt import apply_fdt
from fdt_tflm.tiling.ffmt import apply_ffmt
from fdt_tflm.verify import compare_models

KWS = Path(__file__).resolve().parents[1] / "models" / "kws.tflite"


def test_a_rewrite_leaves_its_parent_byte_identical():
    """FDT and FFMT work on forks: the parent's bytes are unchanged afterwards, while the
    child shares the untouched weights (same objects, not copies)."""
    data = KWS.read_bytes()
    m = read_model(data)
    children = [apply_fdt(m, [0, 1], 2), apply_ffmt(m, [0, 1], (2, 1))]
    assert write_model(m) == write_model(read_model(data))
    for child in children:
        shared = {id(t) for t in m.main.tensors if t.is_constant} & {id(t) for t in child.main.tensors}
        assert shared, "untouched weights are shared, not copied"
        cmp = compare_models(m, data, write_model(child), n_samples=2, litert=False)
        assert cmp.ok and cmp.tflm.match


def test_replace_region_prunes_only_what_the_region_left_dead():
    """An unused tensor the input already had stays (lossless); the old region's intermediate goes."""
    m = read_model(KWS.read_bytes())
    orphan = Tensor("unused_before", [4], m.main.tensors[0].dtype)
    m.main.tensors.append(orphan)
    f = fork(m)
    conv, dw = f.main.operators[0], f.main.operators[1]
    middle = conv.outputs[0]
    # a region of one op that computes dw from conv's input is not exact, but surgery does not care:
    # replace conv+dw by dw alone reading conv's input (shapes aside), and check the bookkeeping
    new_dw = type(dw)(dw.opcode, [conv.inputs[0], *dw.inputs[1:]], list(dw.outputs), dw.options)
    replace_region(f, [conv, dw], [new_dw])
    ids = {id(t) for t in f.main.tensors}
    assert id(orphan) in ids and id(middle) not in ids
    assert f.main.operators[0] is new_dw and len(f.main.operators) == len(m.main.operators) - 1
    assert [id(t) for t in f.main.inputs] == [id(t) for t in m.main.inputs]
    assert len(m.main.operators) == len(read_model(KWS.read_bytes()).main.operators) and middle in m.main.tensors


def test_a_replaced_region_drops_the_stale_offline_plan():
    """A planned model tiled again: the plan listed the old tensors, so it must go (else the
    writer refuses it: the plan no longer matches the tensor count), and TFLM runs the result."""
    data = KWS.read_bytes()
    planned, _ = plan(read_model(data))
    assert planned.get_metadata(METADATA_NAME) is not None
    tiled = apply_ffmt(planned, [0], (2, 1))
    assert tiled.get_metadata(METADATA_NAME) is None
    assert planned.get_metadata(METADATA_NAME) is not None  # the parent keeps its own plan
    cmp = compare_models(read_model(data), data, write_model(tiled), n_samples=2, litert=False)
    assert cmp.ok and cmp.tflm.match


def test_validate_refuses_what_a_rewrite_must_never_leave():
    """Subgraph.validate (run at the end of every region replacement and, for the structure, by
    the writer): a tensor outside the subgraph, a read before the write, two writers."""
    import copy
    from fdt_tflm.errors import FdtError
    from fdt_tflm.io import read_model, write_model
    from conftest import PROJECT_MODELS
    m = read_model((PROJECT_MODELS / "radar.tflite").read_bytes())
    m.main.validate()
    stray = copy.deepcopy(m)
    stray.main.tensors.remove(stray.main.operators[3].outputs[0])
    with pytest.raises(FdtError, match="not in the subgraph"):
        stray.main.validate(dataflow=False)
    with pytest.raises(FdtError, match="not in the subgraph"):
        write_model(stray)
    swapped = copy.deepcopy(m)
    ops = swapped.main.operators
    ops[0], ops[3] = ops[3], ops[0]  # the depthwise now runs before the conv that feeds it
    with pytest.raises(FdtError, match="before operator"):
        swapped.main.validate()
    twice = copy.deepcopy(m)
    twice.main.operators[1].outputs = [twice.main.operators[0].outputs[0]]
    with pytest.raises(FdtError, match="written by operators"):
        twice.main.validate()
