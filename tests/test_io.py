"""Reader/writer: lossless round trips on small built models and on the real models, checked in TFLM."""
from __future__ import annotations

import importlib

import numpy as np
import pytest
from conftest import PROJECT_MODELS, measured_heads, shared_params

from fdt_tflm.errors import FdtError
from fdt_tflm.io import read_model, write_model
from fdt_tflm.io.fbgeneric import read_table
from fdt_tflm.ir import Buffer, Operator, SignatureDef, Subgraph, Table
from fdt_tflm.ir.builder import GraphBuilder
from fdt_tflm.ir.qnet import QNet
from fdt_tflm.verify import compare_models, make_inputs, run, runtime_available


def schema_defaults(type_name: str) -> dict:
    """What a reader sees in an empty table of this type: the schema's default values."""
    import flatbuffers
    mod = importlib.import_module(f"tflite.{type_name}")
    b = flatbuffers.Builder(64)
    mod.Start(b)
    b.Finish(mod.End(b))
    obj = getattr(mod, type_name).GetRootAs(bytes(b.Output()), 0)
    return read_table(obj, type_name).fields


def describe(model) -> dict:
    """Everything the schema says about a model, with buffers by content (indices are the writer's)
    and option fields that hold the schema default left out (absent and default are the same)."""
    def arr(a):
        return None if a is None else (str(a.dtype), a.tolist())

    def tab(t):
        if t is None:
            return None
        dflt = schema_defaults(t.type_name)
        return (t.type_name, {k: tab(v) if isinstance(v, Table) else arr(v) if isinstance(v, np.ndarray)
                              else [tab(x) if isinstance(x, Table) else x for x in v] if isinstance(v, list) else v
                              for k, v in t.fields.items()
                              if isinstance(v, (Table, np.ndarray, list)) or dflt.get(k, object()) != v})

    sgs = []
    for sg in model.subgraphs:
        idx = {id(t): i for i, t in enumerate(sg.tensors)}
        ti = lambda t: -1 if t is None else idx[id(t)]  # noqa: E731
        sgs.append({
            "name": sg.name,
            "tensors": [(t.name, t.shape, t.dtype, t.buffer.data, t.is_variable, t.shape_signature, t.has_rank,
                         None if t.quantization is None else (arr(t.quantization.scale), arr(t.quantization.zero_point),
                                                              arr(t.quantization.min), arr(t.quantization.max),
                                                              t.quantization.axis, tab(t.quantization.details)),
                         tab(t.sparsity)) for t in sg.tensors],
            "ops": [(op.opcode.builtin_code, op.opcode.custom_code, op.opcode.version, [ti(t) for t in op.inputs],
                     [ti(t) for t in op.outputs], tab(op.options), tab(op.options2), op.custom_options,
                     op.custom_options_format, arr(op.mutating_variable_inputs), [ti(t) for t in op.intermediates])
                    for op in sg.operators],
            "inputs": [ti(t) for t in sg.inputs], "outputs": [ti(t) for t in sg.outputs]})
    return {"version": model.version, "description": model.description, "subgraphs": sgs,
            "metadata": [(n, b.data) for n, b in model.metadata],
            "signatures": signatures(model)}


def signatures(model) -> list:
    """Signature defs with their tensors as indices in their subgraph (comparable across reads)."""
    def ix(s, pairs):
        return [(n, model.subgraphs[s.subgraph_index].index_of(t)) for n, t in pairs]
    return [(s.key, s.subgraph_index, ix(s, s.inputs), ix(s, s.outputs)) for s in model.signature_defs]


def roundtrip(model):
    data = write_model(model)
    again = read_model(data)
    assert describe(again) == describe(model)
    assert write_model(again) == data, "writing is not deterministic / not a fixed point"
    return data, again


def small_cnn(dtype="INT8"):
    n = QNet(seed=7, dtype=dtype)
    x = n.input([1, 12, 12, 3])
    a = n.conv2d(x, 8, (3, 3), stride=2, padding="SAME")
    b = n.depthwise(a, (3, 3), depth_multiplier=2, dilation=2)
    c = n.conv2d(b, 8, (1, 1), act="RELU6")
    d = n.add(a, c)
    e = n.pool(d, "MAX", size=2, stride=2)
    f = n.mean(e, (1, 2), keep_dims=True)
    g = n.reshape(f, [1, 8])
    h = n.fully_connected(g, 4)
    return n.output(n.softmax(h))


def test_small_int8_model_roundtrip_runs_bit_exact_in_tflm():
    m = small_cnn()
    data, again = roundtrip(m)
    res = run(data, make_inputs(again, 3))
    assert res.ok, res.error
    from fdt_tflm.analysis import predicted_head
    assert res.head == predicted_head(again).head, "TFLM's head must be what the planner model predicts"
    assert any(not np.array_equal(a[0], b[0]) for a, b in zip(res.outputs, res.outputs[1:])), \
        "outputs should depend on the input (a degenerate model would hide mistakes)"


def test_per_channel_quantisation_survives():
    m = small_cnn()
    convw = [t for t in m.main.tensors if t.is_constant and t.quantization is not None and t.quantization.per_channel]
    assert convw, "the test model should have per-channel weights"
    _, again = roundtrip(m)
    w2 = [t for t in again.main.tensors if t.name == convw[0].name][0]
    assert np.array_equal(w2.quantization.scale, convw[0].quantization.scale)
    assert w2.quantization.axis == convw[0].quantization.axis


def test_every_builtin_option_type_roundtrips_generically():
    """All union members of BuiltinOptions, with a non-default value in every scalar field."""
    enum = importlib.import_module("tflite.BuiltinOptions").BuiltinOptions
    names = sorted(k for k, v in vars(enum).items() if not k.startswith("_") and v != 0)
    g = GraphBuilder()
    x = g.tensor("x", [1, 4], "FLOAT32")
    g.sg.inputs.append(x)
    g.sg.outputs.append(x)
    from fdt_tflm.io.fbgeneric import _empty_vector, _module, _reader_fields
    for name in names:
        cls = getattr(_module(name), name)
        fields = {}
        for fname, kind in _reader_fields(name):
            if kind == "vector-num":
                fields[fname] = np.array([1, 2, 3], dtype=_empty_vector(cls(), fname).dtype)
            elif kind == "string":
                fields[fname] = b"abc"
            elif kind == "scalar":
                fields[fname] = 1  # valid for every int, bool, enum and float field
        op = g.op("ADD", [x, x], [x])
        op.options = Table(name, fields)
    data = write_model(g.model)
    again = read_model(data)
    for a, b in zip(g.model.main.operators, again.main.operators):
        assert a.options.type_name == b.options.type_name
        for key, val in a.options.fields.items():
            got = b.options.fields.get(key)
            if isinstance(val, np.ndarray):
                assert got is not None and list(got) == list(val), (a.options.type_name, key)
            else:
                assert got == val, (a.options.type_name, key, got)


def test_several_subgraphs_custom_ops_metadata_signatures_roundtrip():
    m = small_cnn("FLOAT32")
    # a second subgraph with a custom op carrying flexbuffer-like custom options
    g2 = Subgraph(name=b"second")
    gb = GraphBuilder(m, g2)
    m.subgraphs.append(g2)
    a = gb.tensor("a", [2, 3], "FLOAT32")
    b = gb.tensor("b", [2, 3], "FLOAT32")
    code = m.opcode(32, 1, custom_code=b"MyCustomOp")
    g2.operators.append(Operator(code, [a], [b], custom_options=bytes(range(17)), custom_options_format=0))
    g2.inputs, g2.outputs = [a], [b]
    m.metadata.append((b"min_runtime_version", Buffer(b"1.5.0\x00")))
    m.metadata.append((b"empty_entry", Buffer(b"")))
    m.signature_defs.append(SignatureDef(b"serving_default", 0, [(b"x", m.main.tensors[0])],
                                         [(b"y", m.main.tensors[-1])]))
    data, again = roundtrip(m)
    assert len(again.subgraphs) == 2
    assert again.subgraphs[1].operators[0].opcode.custom_code == b"MyCustomOp"
    assert again.subgraphs[1].operators[0].custom_options == bytes(range(17))
    assert again.get_metadata("min_runtime_version").data == b"1.5.0\x00"
    assert again.signature_defs[0].key == b"serving_default"


def test_tensor_data_is_16_byte_aligned():
    m = small_cnn()
    data = write_model(m)
    from tflite.Model import Model as FbModel
    fb = FbModel.GetRootAs(data, 0)
    for i in range(fb.BuffersLength()):
        b = fb.Buffers(i)
        if b.DataLength():
            start = b._tab.Vector(b._tab.Offset(4))
            assert start % 16 == 0, f"buffer {i} data at {start}"


# Shared models LiteRT will not load, and why (TFLM runs them): person detection's weights
# carry quantized_dimension 3 on per-tensor quantisation, which LiteRT's checks reject.
LITERT_REFUSES = {"tflm_person_detect_int8": "quantized_dimension must be in range"}


@pytest.mark.parametrize("path", shared_params())
def test_real_model_roundtrip_is_bit_exact_in_tflm_and_litert(path):
    original = path.read_bytes()
    model = read_model(original)
    data, again = roundtrip(model)
    cmp = compare_models(model, original, data, n_samples=5, seed=1)
    assert cmp.tflm.match, cmp.tflm.note
    assert cmp.tflm.a.head == cmp.tflm.b.head and cmp.tflm.a.tail == cmp.tflm.b.tail
    expected = measured_heads().get(path.stem)
    if expected:
        assert cmp.tflm.a.head == expected[0], "SOURCES.md disagrees with TFLM on the original"
    # LiteRT (a test extra) must have run both models and agree, except where it refuses the
    # original itself, for the reason listed
    assert runtime_available("litert"), "ai-edge-litert is not installed (pip install -e '.[test]')"
    assert cmp.litert is not None
    if path.stem in LITERT_REFUSES:
        assert not cmp.litert.ran_a and LITERT_REFUSES[path.stem] in cmp.litert.note, cmp.litert.note
    else:
        assert cmp.litert.ran_a and cmp.litert.ran_b, cmp.litert.note
        assert cmp.litert.match, cmp.litert.note
    # metadata and signature defs preserved
    assert [(n, b.data) for n, b in again.metadata] == [(n, b.data) for n, b in model.metadata]
    assert signatures(again) == signatures(model)


@pytest.mark.parametrize("name", ["kws", "radar", "convdense"])
def test_project_models_run_in_tflm_and_rebuild_identically(name):
    import subprocess
    import sys
    path = PROJECT_MODELS / f"{name}.tflite"
    res = run(path.read_bytes(), make_inputs(read_model(path.read_bytes()), 2))
    assert res.ok, res.error
    out = subprocess.run([sys.executable, str(PROJECT_MODELS / "build_models.py"), "--check"], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("data,msg", [
    (b"", "not a TFLite flatbuffer"),
    (bytes(3000), "not a TFLite flatbuffer"),
    (b"\x10\x00\x00\x00TFL3" + bytes(8), "truncated or corrupt"),
])
def test_reader_rejects_bad_bytes_with_fdt_error(data, msg):
    with pytest.raises(FdtError, match=msg):
        read_model(data)


def test_reader_rejects_every_truncation_of_a_real_model_cleanly():
    data = (PROJECT_MODELS / "kws.tflite").read_bytes()
    for cut in range(16, len(data), 997):
        try:
            m = read_model(data[:cut])
        except FdtError:
            continue
        # whatever parsed must not silently claim to be the whole model
        assert sum(len(t.buffer.data) for t in m.main.tensors) < sum(
            len(t.buffer.data) for t in read_model(data).main.tensors), cut


def test_corrupted_models_fail_cleanly():
    """Random byte flips: either an FdtError or a model we can analyse and write, never a crash."""
    import random
    from fdt_tflm.analysis import summary
    data = (PROJECT_MODELS / "kws.tflite").read_bytes()
    rng = random.Random(1)
    parsed = 0
    for _ in range(400):
        d = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            d[rng.randrange(8, min(len(d), 4000))] = rng.randrange(256)
        try:
            m = read_model(bytes(d))
        except FdtError:
            continue
        parsed += 1
        summary(m)
        write_model(m)
    assert parsed > 0, "some flips hit data only; those models must still be handled"
