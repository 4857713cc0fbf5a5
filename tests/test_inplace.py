"""In-place aliasing in offline plans: only what tflm_model/inplace.py allows, proved before writing."""
from __future__ import annotations

import pytest
from conftest import SHARED_MODELS

from fdt_tflm.io import read_model, write_model
from fdt_tflm.tflm_model.inplace import shareable_pairs
from fdt_tflm.tflm_model.lifetimes import lifetimes
from fdt_tflm.tflm_model.offline_plan import PlanError, check_offline_plan, set_plan
from fdt_tflm.verify import compare_models

MICRO = SHARED_MODELS / "tflm_micro_speech_int8.tflite"


def _spread_plan(model, alias: tuple[str, str] | None):
    """Every arena tensor at its own offset, except ``alias`` = (a, b) placed together."""
    sg = model.main
    ivs = lifetimes(sg)
    offs, at = {}, 0
    names = {iv.tensor.name: iv for iv in ivs}
    for iv in ivs:
        offs[iv.index] = at
        at += iv.size
    if alias:
        offs[names[alias[1]].index] = offs[names[alias[0]].index]
    set_plan(model, offs)
    return model


@pytest.mark.skipif(not MICRO.exists(), reason=f"{MICRO} not found (shared models absent)")
def test_reshape_may_alias_its_input_and_tflm_agrees():
    data = MICRO.read_bytes()
    m = read_model(data)
    reshape = next(op for op in m.main.operators if op.type == "RESHAPE")
    pairs = shareable_pairs(m.main, lifetimes(m.main))
    assert len(pairs) == 1
    m = _spread_plan(m, (reshape.inputs[0].name, reshape.outputs[0].name))
    check_offline_plan(m)  # accepted by the proof
    out = write_model(m)
    cmp = compare_models(read_model(data), data, out)
    assert cmp.tflm.match, "TFLM's RESHAPE must be correct when input and output alias"


@pytest.mark.skipif(not MICRO.exists(), reason=f"{MICRO} not found (shared models absent)")
def test_any_other_alias_is_refused():
    m = read_model(MICRO.read_bytes())
    conv = next(op for op in m.main.operators if op.type == "DEPTHWISE_CONV_2D")
    _spread_plan(m, (conv.inputs[0].name, conv.outputs[0].name))
    with pytest.raises(PlanError, match="overlapping"):
        check_offline_plan(m)


def test_accumulator_alias_needs_the_last_use():
    """FDT_PARTIAL may overwrite its accumulator input only if nothing reads it afterwards."""
    import numpy as np
    from fdt_tflm.ir.builder import GraphBuilder
    g = GraphBuilder()
    x = g.tensor("x", [1, 4], "INT32")
    acc = g.tensor("acc", [1, 4], "INT32")
    out = g.tensor("out", [1, 4], "INT32")
    later = g.tensor("later", [1, 4], "INT32")
    code = g.model.opcode(32, 1, custom_code=b"FDT_PARTIAL")
    from fdt_tflm.ir import Operator
    g.sg.operators.append(Operator(g.model.opcode(0, 1), [x, x], [acc]))  # ADD makes acc
    g.sg.operators.append(Operator(code, [x, g.const("w", np.zeros((4, 4), np.int8)), acc], [out]))
    g.sg.inputs, g.sg.outputs = [x], [out]
    assert len(shareable_pairs(g.sg, lifetimes(g.sg))) == 1
    g.sg.operators.append(Operator(g.model.opcode(0, 1), [acc, out], [later]))  # acc read again
    g.sg.outputs = [later]
    assert shareable_pairs(g.sg, lifetimes(g.sg)) == []
