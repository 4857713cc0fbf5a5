"""The op catalog against its oracles: hand-counted MACs on models TFLM runs, the operands of
the real models, and TFLM's measured persistent tail."""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

from fdt_tflm.catalog.ops import (CATALOG, CREATED, FDT_PARTIAL_CODE, MacKind, RewriteOps, ScratchKind, info,
                                  operand, weights)
from fdt_tflm.io import read_model, write_model
from fdt_tflm.tflm_model.tail import op_tail_bytes
from fdt_tflm.ir.builder import options
from fdt_tflm.ir.graph import Model, Operator, OperatorCode
from fdt_tflm.catalog.macs import FORMULAS, op_macs
from fdt_tflm.ir.qnet import QNet
from fdt_tflm.tflm_model.reference_scratch import SCRATCH_KINDS
from fdt_tflm.tflm_model import HOST
from fdt_tflm.catalog.rules import rule
from fdt_tflm.ir.graph import OpKey
from fdt_tflm.verify import make_inputs, run, runtime_available

from conftest import PROJECT_MODELS, shared_model_paths

needs_tflm = pytest.mark.skipif(not runtime_available("tflm"), reason="tflite-micro is not installed")


def _real_models() -> list[Model]:
    paths = shared_model_paths() + sorted(PROJECT_MODELS.glob("*.tflite"))
    if not paths:
        pytest.skip("no real models found")
    return [read_model(p.read_bytes()) for p in paths]


def _mac_net() -> Model:
    """[1,8,8,4] -> conv 3x3 x8 -> depthwise 3x3 (multiplier 2) -> max/avg pool 2x2 -> add ->
    reshape -> dense x10, and a side branch of two 1x1 convs joined by a concatenation."""
    q = QNet(seed=7)
    x = q.input([1, 8, 8, 4])
    c = q.conv2d(x, 8, (3, 3))
    d = q.depthwise(c, (3, 3), depth_multiplier=2)
    mp, ap = q.pool(d, "MAX", 2, 2), q.pool(d, "AVERAGE", 2, 2)
    s = q.add(mp, ap)
    f = q.fully_connected(q.reshape(s, [1, 256]), 10)
    a = q.conv2d(x, 3, (1, 1))
    b = q.conv2d(x, 5, (1, 1), like=a)
    return q.output(f, q.concat([a, b]))


# hand counts: outputs x MACs per output
HAND_MACS = {
    "CONV_2D": [8 * 8 * 8 * (3 * 3 * 4), 8 * 8 * 3 * 4, 8 * 8 * 5 * 4],
    "DEPTHWISE_CONV_2D": [8 * 8 * 16 * (3 * 3)],
    "MAX_POOL_2D": [4 * 4 * 16 * (2 * 2)],
    "AVERAGE_POOL_2D": [4 * 4 * 16 * (2 * 2)],
    "ADD": [4 * 4 * 16],
    "RESHAPE": [0],
    "FULLY_CONNECTED": [10 * 256],
    "CONCATENATION": [0],
}


@needs_tflm
def test_mac_formulas_match_hand_counts_on_a_model_tflm_runs():
    m = _mac_net()
    res = run(write_model(m), make_inputs(m, 1))
    assert res.ok, res.error
    got: dict[str, list[int]] = {}
    for op in m.main.operators:
        got.setdefault(op.type, []).append(op_macs(op))
    assert got == HAND_MACS


def test_every_mac_kind_but_elementwise_has_a_formula_and_unknown_ops_count_one_per_output():
    kinds = {v for k, v in vars(MacKind).items() if not k.startswith("_")}
    assert kinds - set(FORMULAS) == {MacKind.ELEMENTWISE}
    assert {i.macs for i in CATALOG.values()} <= kinds
    q = QNet(0)
    x = q.input([1, 3, 5, 2])
    m = q.output(q.unary(x, "SQUARE"), q.unary(x, "TILE"))  # TILE: a builtin the catalog lacks
    assert "TILE" not in CATALOG
    assert [op_macs(op) for op in m.main.operators] == [30, 30]


def test_every_op_type_of_the_real_models_has_an_entry():
    for m in _real_models():
        for op in m.main.operators:
            assert op.type in CATALOG, op.type
            assert info(op).name == op.type


def test_roles_point_at_the_right_operands_on_the_real_models():
    seen = set()
    for m in _real_models():
        for op in m.main.operators:
            r = info(op).roles
            for i in r.ifm_indices(op):
                assert op.inputs[i] is not None and op.inputs[i].is_activation, (op, i)
            for i in r.weights + r.bias:
                t = op.inputs[i] if i < len(op.inputs) else None
                assert t is None or t.is_constant, (op, i)
            for i in r.state:
                assert op.inputs[i].is_variable, (op, i)
            assert all(i < len(op.outputs) for i in r.ofm)
            if r.shape is not None and operand(op, r.shape) is not None:  # the new shape (-1: inferred)
                new = operand(op, r.shape).numpy().tolist()
                assert [d if d >= 0 else o for d, o in zip(new, op.outputs[0].shape)] == op.outputs[0].shape
                seen.add("shape role")
            seen.add(op.type)
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "UNIDIRECTIONAL_SEQUENCE_LSTM", "ADD",
            "CONCATENATION", "shape role"} <= seen


def test_channel_axes_index_the_channels_of_the_real_models():
    """weight_out_axis indexes output channels, weight_in_axis input channels, sliced bias per channel."""
    checked = 0
    for m in _real_models():
        for op in m.main.operators:
            c = info(op).channel
            w = weights(op)
            if not (info(op).tileable and c.start) or w is None:
                continue
            x, y = op.inputs[info(op).roles.ifm[0]], op.outputs[0]
            assert w.shape[c.weight_out_axis] == y.shape[-1]
            mult = int(op.opt(c.multiplier, 1)) if c.multiplier else 1
            if c.weight_in_axis is not None:  # dense layers flatten all but the batch axis
                assert w.shape[c.weight_in_axis] in (x.shape[-1], x.num_elements // x.shape[0])
            else:  # depthwise: output channel c reads input channel c // m
                assert w.shape[c.weight_out_axis] == x.shape[-1] * mult
            for i in c.sliced_inputs:
                if op.inputs[i] is not None:
                    assert op.inputs[i].shape[-1] == y.shape[-1]
            checked += 1
    assert checked > 20


def test_unknown_types_and_custom_codes_get_the_conservative_entry():
    u = info("NOT_AN_OP")
    assert (u.tileable, u.macs, u.in_place, u.scratch, u.weighted) == (False, MacKind.ELEMENTWISE, None, None, False)
    assert rule(OpKey("NOT_AN_OP")) is None and rule(OpKey("CONV_2D", custom=True)) is None
    custom_named_conv = Operator(OperatorCode(32, b"CONV_2D"), [], [])
    assert info(custom_named_conv).custom and not info(custom_named_conv).tileable
    partial = Operator(OperatorCode(32, FDT_PARTIAL_CODE), [], [])
    assert info(partial) is CATALOG["FDT_PARTIAL"] and info(partial).in_place.input_index == 2


def test_created_ops_are_in_the_catalog():
    from fdt_tflm.reference.partial_op import FDT_PARTIAL_CODE as kernel_code

    assert FDT_PARTIAL_CODE == kernel_code
    for f in fields(RewriteOps):
        assert getattr(CREATED, f.name) in CATALOG
    assert [CREATED.border_pad(b) for b in ("zero_point", "lowest")] == ["PAD", "PADV2"]
    assert {info(CREATED.region_copy).macs, info(CREATED.channel_slice).macs, info(CREATED.join).macs} == \
        {MacKind.COPY}


def test_scratch_kinds_all_have_a_rule():
    kinds = {v for k, v in vars(ScratchKind).items() if not k.startswith("_")}
    assert kinds - set(SCRATCH_KINDS) == {ScratchKind.NONE}
    assert {i.scratch for i in CATALOG.values()} - {None} <= kinds


def _conv_pair(channels: int) -> Model:
    """Input [1,8,8,4] -> conv 3x3 x``channels`` -> conv 1x1 x4: only the first conv's
    per-channel arrays change with ``channels``."""
    q = QNet(seed=3)
    x = q.input([1, 8, 8, 4])
    return q.output(q.conv2d(q.conv2d(x, channels, (3, 3)), 4, (1, 1)))


def test_tail_bytes_of_a_conv_by_hand():
    conv = _conv_pair(24).main.operators[0]
    # TfLiteConvParams: 7 ints (28 B); OpDataConv on the 64-bit host: 80 B; two int32 arrays of 24
    assert op_tail_bytes(conv, HOST) == 28 + 80 + 2 * 96


@needs_tflm
def test_tail_bytes_difference_is_what_tflm_measures():
    measured = {}
    for c in (8, 24):
        m = _conv_pair(c)
        res = run(write_model(m), make_inputs(m, 1))
        assert res.ok, res.error
        measured[c] = (res.tail, sum(op_tail_bytes(op, HOST) for op in m.main.operators))
    assert measured[24][0] - measured[8][0] == measured[24][1] - measured[8][1] == 2 * (96 - 32)


TILING = Path(__file__).resolve().parents[1] / "fdt_tflm" / "tiling"


def _op_type_literals(source: str) -> list[tuple[int, str]]:
    """(line, text) of every string/bytes constant, docstrings excluded, that is a catalog op type."""
    import ast

    tree = ast.parse(source)
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant) and isinstance(node.body[0].value.value, str)}
    hits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)) and id(node) not in docstrings:
            text = node.value.decode(errors="replace") if isinstance(node.value, bytes) else node.value
            if text in CATALOG:
                hits.append((node.lineno, text))
    return sorted(hits)


def test_the_op_type_scan_finds_literals_but_not_docstrings():
    src = '"""Splits CONV_2D."""\ndef f(op):\n    """ADD."""\n    return op.type == "CONV_2D" or op.code == b"FDT_PARTIAL" or "CONV_2D x"\n'
    assert _op_type_literals(src) == [(4, "CONV_2D"), (4, "FDT_PARTIAL")]


# The modules that ARE tables mapping TFLM's op names (knowledge as data), and the builders
# that create ops by name; everything else asks the catalog.
NAME_TABLES = frozenset({
    "catalog/ops.py", "firmware/resolver.py", "ir/builder.py", "ir/qnet.py", "ir/signal.py", "reference/ops.py",
    "tflm_model/cmsis_scratch.py", "tflm_model/instructions.py", "tflm_model/kernels.py",
    "tflm_model/device_costs.py", "tflm_model/reference_scratch.py", "tflm_model/abi.py"})


def test_no_module_outside_the_tables_names_an_op_type():
    """Issues #11 / #19: passes, models of TFLM, verification and the pipeline ask the catalog
    (``info``, ``CREATED``, ``rule``); only the tables that map TFLM names spell an op type."""
    package = TILING.parent
    files = sorted(package.rglob("*.py"))
    assert len(files) >= 60
    found = {str(f.relative_to(package)): hits for f in files
             if str(f.relative_to(package)) not in NAME_TABLES and (hits := _op_type_literals(f.read_text()))}
    assert found == {}


def test_copy_versions_of_the_ops_fdt_creates():
    """TFLite's op_version.cc: CONCATENATION is version 2 on int8 and 3 on int16, STRIDED_SLICE 2
    on int8; float copies are version 1."""
    from fdt_tflm.ir.types import DTYPE_CODES
    from fdt_tflm.tiling.fdt import copy_version

    int8, int16, f32 = (DTYPE_CODES[n] for n in ("INT8", "INT16", "FLOAT32"))
    assert [copy_version(CREATED.join, d) for d in (int8, int16, f32)] == [2, 3, 1]
    assert [copy_version(CREATED.channel_slice, d) for d in (int8, f32)] == [2, 1]


def _radar_stem_with_custom_conv():
    """radar's first branch (3x3 CONV_2D -> DEPTHWISE_CONV_2D -> ...), which FDT splits, with
    the CONV_2D's code replaced by a CUSTOM code spelled ``CONV_2D``."""
    from fdt_tflm.io import read_model
    m = read_model((TILING.parents[1] / "models" / "radar.tflite").read_bytes())
    conv = next(op for op in m.main.operators if op.type == "CONV_2D")
    conv.opcode = m.opcode(32, 1, custom_code=b"CONV_2D")
    conv.options, conv.custom_options = None, b""
    return m, conv


def test_a_custom_op_named_like_a_builtin_is_never_tiled(tmp_path):
    """Issue #19: op identity is typed.  A custom op whose custom code is "CONV_2D" gets no
    rule, no conv catalog entry, no kernel row and no reference kernel, and optimize with
    --no-verify (nothing else stands between a wrong guess and a wrong model) leaves it whole:
    the written model keeps it with its original operands, and no path runs through it."""
    from fdt_tflm.cli import main
    from fdt_tflm.io import read_model, write_model
    from fdt_tflm.ir.graph import OpKey
    from fdt_tflm.reference.ops import kernel
    m, conv = _radar_stem_with_custom_conv()
    assert conv.key == OpKey("CONV_2D", custom=True) and conv.key.table_name == "CUSTOM:CONV_2D"
    assert rule(conv) is None and not info(conv).tileable and kernel(conv) is None
    assert rule(OpKey("CONV_2D")) is not None  # the builtin keeps its rule
    src, out = tmp_path / "in.tflite", tmp_path / "out.tflite"
    src.write_bytes(write_model(m))
    ins = [t.name for t in conv.inputs if t is not None]
    assert main(["optimize", str(src), "-o", str(out), "--no-verify", "--allow-custom-ops"]) == 0
    back = read_model(out.read_bytes())
    customs = [op for op in back.main.operators if op.key == OpKey("CONV_2D", custom=True)]
    assert len(customs) == 1 and [t.name for t in customs[0].inputs if t is not None] == ins
    assert customs[0].outputs[0].shape == conv.outputs[0].shape  # whole, not an output-channel slice
