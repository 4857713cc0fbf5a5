"""Fused depthwise tiling: every rewrite must be bit-exact in the TFLM host interpreter."""
from __future__ import annotations


import numpy as np
import pytest

from fdt_tflm.errors import FdtError
from fdt_tflm.io import read_model, write_model
from fdt_tflm.ir.builder import options, quant
from fdt_tflm.ir.graph import Model
from fdt_tflm.catalog.macs import graph_macs
from fdt_tflm.ir.qnet import QNet
from fdt_tflm.tflm_model.lifetimes import lifetimes, peak_live
from fdt_tflm.tiling.fdt import apply_fdt
from fdt_tflm.tiling.paths import analyze_path, candidate_paths, even_ranges, maximal_chain
from fdt_tflm.verify import compare_models, make_inputs, outputs_match, run, runtime_available


def assert_exact(model: Model, path: list[int], parts: int, end: str = "concat", litert: bool = False) -> Model:
    """Split, check the outputs in TFLM (bit-exact for ints, tolerance for floats) and the MACs."""
    tiled = apply_fdt(model, path, parts, end)
    data = write_model(tiled)
    cmp = compare_models(model, write_model(model), data, n_samples=3, litert=litert)
    assert cmp.tflm.ran_a, cmp.tflm.note
    assert cmp.tflm.ran_b, cmp.tflm.note
    assert cmp.ok, (cmp.tflm.note, cmp.tflm.max_abs_diff)
    if end == "concat":
        assert graph_macs(tiled.main) == graph_macs(model.main)
    # the graph's interface is untouched
    re = read_model(data)
    assert [t.name for t in re.main.inputs] == [t.name for t in model.main.inputs]
    assert [t.name for t in re.main.outputs] == [t.name for t in model.main.outputs]
    names = [t.name for t in re.main.tensors]
    assert len(names) == len(set(names))
    return tiled


def types(model: Model) -> list[str]:
    return [op.type for op in model.main.operators]


# -- start / middle / end on small graphs ----------------------------------------------------
def test_even_ranges_uneven():
    assert even_ranges(10, 3) == [(0, 4), (4, 7), (7, 10)]
    assert even_ranges(8, 8)[-1] == (7, 8)


@pytest.mark.parametrize("padding,stride,dilation,parts", [
    ("SAME", 2, 1, 3),    # 10 channels, 3 parts: uneven
    ("VALID", 1, 2, 4),   # dilation, VALID
    ("SAME", 1, 1, 10),   # one channel per part
])
def test_conv_depthwise_concat(padding, stride, dilation, parts):
    q = QNet(seed=2)
    x = q.input([1, 13, 11, 3])
    a = q.conv2d(x, 10, kernel=(3, 3), stride=stride, padding=padding, dilation=dilation)
    b = q.depthwise(a, stride=stride, padding=padding, dilation=dilation, act="RELU6")
    c = q.conv2d(b, 6, kernel=(1, 1))
    m = q.output(c)
    t = assert_exact(m, [0, 1], parts)
    assert types(t).count("CONV_2D") == parts + 1 and types(t).count("CONCATENATION") == 1
    # the full conv output never exists; with stride 2 the peak of the part-by-part order drops
    assert a.name not in {x.name for x in t.main.tensors}
    if stride == 2:
        assert peak_live(lifetimes(t.main)) < peak_live(lifetimes(m.main))


def test_per_tensor_weights_stay_per_tensor():
    q = QNet(seed=3)
    x = q.input([1, 16])
    y = q.fully_connected(x, 11, act="RELU")
    z = q.unary(y, "RELU6")
    m = q.output(q.fully_connected(z, 3))
    t = assert_exact(m, [0, 1], 3)
    fcs = [op for op in t.main.operators if op.type == "FULLY_CONNECTED"]
    assert all(op.inputs[1].quantization.scale.size == 1 for op in fcs)


def test_per_channel_scales_sliced():
    q = QNet(seed=4)
    x = q.input([1, 6, 6, 2])
    m = q.output(q.depthwise(q.conv2d(x, 7), act="NONE"))
    t = assert_exact(m, [0, 1], 2)
    convs = [op for op in t.main.operators if op.type == "CONV_2D"]
    assert [op.inputs[1].quantization.scale.size for op in convs] == [4, 3]
    assert [op.inputs[2].shape for op in convs] == [[4], [3]]


def test_depth_multiplier_in_the_middle():
    q = QNet(seed=5)
    x = q.input([1, 9, 9, 2])
    a = q.conv2d(x, 5)
    b = q.depthwise(a, depth_multiplier=3)             # 15 channels, channel c reads c // 3
    m = q.output(q.conv2d(q.pool(b, "MAX"), 4))
    assert_exact(m, [0, 1, 2], 2)


def test_depthwise_start_slices_its_input():
    q = QNet(seed=6)
    x = q.input([1, 8, 8, 5])
    b = q.depthwise(x, depth_multiplier=2, stride=2)   # starts the path: input sliced
    m = q.output(q.conv2d(q.depthwise(b), 3))
    t = assert_exact(m, [0, 1], 3)
    assert types(t).count("STRIDED_SLICE") == 3


def test_one_channel_depthwise_splits_by_output():
    q = QNet(seed=7)
    x = q.input([1, 12, 12, 1])
    a = q.depthwise(x, depth_multiplier=8, stride=2)  # person_detect's first layer
    m = q.output(q.conv2d(q.depthwise(a), 4))
    t = assert_exact(m, [0, 1], 3)
    assert "STRIDED_SLICE" not in types(t)
    starts = [op for op in t.main.operators if op.inputs[0] is t.main.inputs[0]]
    assert [op.opt("DepthMultiplier") for op in starts] == [3, 3, 2]


def test_start_inside_a_chain():
    """The producer (a residual ADD of two activations) cannot be split: slice its output."""
    q = QNet(seed=8)
    x = q.input([1, 8, 8, 6])
    s = q.add(q.conv2d(x, 6), x)
    b = q.pool(q.depthwise(s, stride=2), "AVERAGE")
    m = q.output(q.conv2d(b, 4))
    t = assert_exact(m, [2, 3], 4)
    assert types(t).count("STRIDED_SLICE") == 4


def test_residual_add_next_to_a_path():
    q = QNet(seed=9)
    x = q.input([1, 10, 10, 8])
    a = q.conv2d(x, 8)
    b = q.depthwise(a)
    r = q.add(b, x)   # the path [0, 1] ends before the two-activation ADD
    m = q.output(q.conv2d(r, 4))
    sg = m.main
    assert maximal_chain(sg, 1) == [0, 1]
    with pytest.raises(FdtError):
        analyze_path(sg, [0, 1, 2], "concat", 2)
    assert_exact(m, [0, 1], 3)


def _unary_chain(op: str, out_q=None, seed: int = 10, **fields) -> Model:
    q = QNet(seed=seed)
    x = q.input([1, 7, 7, 3])
    a = q.conv2d(x, 9, act="NONE")
    y = q.b.tensor(f"{op.lower()}_out", a.shape, "INT8", out_q if out_q is not None else a.quantization.copy())
    q.b.op(op, [a], [y], options(op, **fields) if fields else None)
    return q.output(q.conv2d(y, 2, kernel=(1, 1)))


@pytest.mark.parametrize("op,out_q,fields", [
    ("RELU", None, {}),
    ("RELU6", None, {}),
    ("LOGISTIC", quant(1 / 256, -128), {}),
    ("TANH", quant(1 / 128, 0), {}),
    ("HARD_SWISH", quant(0.05, -20), {}),
    ("LEAKY_RELU", None, {"Alpha": 0.2}),
    ("QUANTIZE", quant(0.07, 3), {}),
])
def test_channel_wise_unary_ops(op, out_q, fields):
    assert_exact(_unary_chain(op, out_q, **fields), [0, 1], 3)


def _binary_chain(op: str, const_shape, seed: int = 11) -> Model:
    q = QNet(seed=seed)
    x = q.input([1, 6, 6, 3])
    a = q.conv2d(x, 7, act="NONE")
    rng = np.random.default_rng(seed)
    c = q.b.const(f"{op.lower()}_c", rng.integers(-100, 100, size=const_shape).astype(np.int8), quant(0.02, 4))
    y = q.b.tensor(f"{op.lower()}_out", a.shape, "INT8", quant(float(a.quantization.scale[0]) * 2, -3))
    q.b.op(op, [c, a] if op == "ADD" else [a, c], [y], options(op, FusedActivationFunction=0))
    return q.output(q.conv2d(y, 2, kernel=(1, 1)))


@pytest.mark.parametrize("op,const_shape", [
    ("ADD", [7]), ("ADD", [1, 1, 1, 1]), ("MUL", [1, 1, 7]), ("SUB", [7]), ("SUB", [1, 6, 6, 7]),
])
def test_binary_ops_with_constants(op, const_shape):
    m = _binary_chain(op, const_shape)
    t = assert_exact(m, [0, 1], 3)
    if const_shape[-1] == 7:  # varies along channels: sliced per part
        sliced = [op_.inputs for op_ in t.main.operators if op_.type == op]
        assert sorted(next(i for i in ins if i.is_constant).shape[-1] for ins in sliced) == [2, 2, 3]


def test_prelu_pad_mean_reshape_squeeze():
    q = QNet(seed=12)
    x = q.input([1, 8, 8, 3])
    a = q.conv2d(x, 10, act="NONE")
    alpha = q.b.const("alpha", np.full([1, 1, 10], 40, np.int8), quant(0.005, 0))
    p = q.b.tensor("prelu", a.shape, "INT8", a.quantization.copy())
    q.b.op("PRELU", [a, alpha], [p])
    pads = q.b.const("pads", np.array([[0, 0], [1, 2], [2, 1], [0, 0]], np.int32))
    d = q.b.tensor("pad", [1, 11, 11, 10], "INT8", p.quantization.copy())
    q.b.op("PAD", [p, pads], [d])
    e = q.depthwise(d, padding="VALID", stride=2)
    r = q.reshape(e, [1, 25, 10])                          # keeps the channel axis
    mn = q.mean(r, axes=(1,), keep_dims=True)              # [1, 1, 10]
    sq = q.b.tensor("squeeze", [1, 10], "INT8", mn.quantization.copy())
    q.b.op("SQUEEZE", [mn], [sq], options("SQUEEZE", SqueezeDims=np.array([1], np.int32)))
    m = q.output(q.fully_connected(sq, 4))
    t = assert_exact(m, [0, 1, 2, 3, 4, 5, 6], 3)
    assert types(t).count("CONCATENATION") == 1 and types(t).count("MEAN") == 3


def test_dequantize_in_the_path():
    q = QNet(seed=13)
    x = q.input([1, 5, 5, 2])
    a = q.conv2d(x, 6)
    f = q.b.tensor("deq", a.shape, "FLOAT32")
    q.b.op("DEQUANTIZE", [a], [f])
    m = q.output(f)
    assert_exact(m, [0, 1], 4)


# -- float partial-sum end -------------------------------------------------------------------
def test_float_partial_sum_conv_end():
    q = QNet(seed=14, dtype="FLOAT32")
    x = q.input([1, 10, 10, 3])
    a = q.conv2d(x, 12)
    b = q.depthwise(a, stride=2)
    m = q.output(q.conv2d(b, 5, act="RELU"))
    t = assert_exact(m, [0, 1, 2], 3, end="partial")
    assert "CONCATENATION" not in types(t) and types(t).count("ADD") == 2
    convs = [op for op in t.main.operators if op.type == "CONV_2D"]
    zero_bias = [op for op in convs if not op.inputs[2].numpy().any()]
    assert len(convs) == 6 and len(zero_bias) == 2  # the bias is added once
    assert [op.opt("FusedActivationFunction") for op in t.main.operators if op.type == "ADD"] == [0, 1]


def test_float_partial_sum_dense_end():
    q = QNet(seed=15, dtype="FLOAT32")
    x = q.input([1, 20])
    a = q.fully_connected(x, 9, act="RELU")
    b = q.unary(a, "TANH")
    m = q.output(q.fully_connected(b, 4))
    t = assert_exact(m, [0, 1, 2], 2, end="partial")
    assert types(t).count("ADD") == 1


def test_int8_partial_sum_refused():
    q = QNet(seed=16)
    x = q.input([1, 6, 6, 2])
    m = q.output(q.conv2d(q.depthwise(q.conv2d(x, 4)), 3))
    with pytest.raises(FdtError, match="partial"):
        apply_fdt(m, [0, 1, 2], 2, "partial")
    assert all(end == "concat" for _, end in candidate_paths(m.main, 1))


# -- bad paths, purity, determinism ----------------------------------------------------------
def test_bad_paths_raise_fdt_error():
    q = QNet(seed=17)
    x = q.input([1, 6, 6, 2])
    a = q.conv2d(x, 4)
    s = q.softmax(q.reshape(q.depthwise(a), [1, 144]))
    m = q.output(s)
    for path, parts in (([0, 2], 2), ([0, 1], 5), ([3], 2), ([], 2), ([0, 9], 2), ([0, 1], 1)):
        with pytest.raises(FdtError):
            apply_fdt(m, path, parts)
    assert maximal_chain(m.main, 3) == []  # SOFTMAX has no rule: never part of a path


def test_concat_input_limit():
    """TFLM's CONCATENATION kernel takes at most 10 inputs: more parts are refused up front."""
    q = QNet(seed=20)
    x = q.input([1, 6, 6, 2])
    m = q.output(q.conv2d(q.depthwise(q.conv2d(x, 16), stride=2), 3))
    assert_exact(m, [0, 1], 10)
    with pytest.raises(FdtError, match="at most 10"):
        apply_fdt(m, [0, 1], 11)


def test_pure_and_deterministic():
    q = QNet(seed=18)
    x = q.input([1, 9, 9, 3])
    m = q.output(q.conv2d(q.depthwise(q.conv2d(x, 7)), 2))
    before = write_model(m)
    a, b = write_model(apply_fdt(m, [0, 1], 3)), write_model(apply_fdt(m, [0, 1], 3))
    assert a == b
    assert write_model(m) == before


def test_relu_n1_to_1_in_litert():
    """TFLM has no RELU_N1_TO_1 kernel (it refuses the original too), so LiteRT is the oracle here;
    a float path with a SAME max pool."""
    q = QNet(seed=19, dtype="FLOAT32")
    x = q.input([1, 9, 9, 2])
    a = q.conv2d(x, 7, act="NONE")
    r = q.unary(a, "RELU_N1_TO_1")
    p = q.pool(r, "MAX", size=3, stride=2, padding="SAME")
    m = q.output(q.conv2d(p, 3))
    t = apply_fdt(m, [0, 1, 2], 3)
    if not runtime_available("litert"):
        pytest.skip("LiteRT not installed")
    inputs = make_inputs(m, 2, 0)
    ra, rb = run(write_model(m), inputs, "litert"), run(write_model(t), inputs, "litert")
    assert ra.ok and rb.ok, (ra.error, rb.error)
    assert outputs_match(ra.outputs, rb.outputs)[0]


# -- real models: the longest path through the largest activation, split unevenly -----------
from conftest import shared_params  # noqa: E402


@pytest.mark.parametrize("path", shared_params())
def test_real_model_paths_are_exact(path):
    m = read_model(path)
    sg = m.main
    by_size = sorted(range(len(sg.operators)), key=lambda i: (-sg.operators[i].outputs[0].nbytes, i))
    for seed in by_size:
        cands = [(ops, end) for ops, end in candidate_paths(sg, seed) if end == "concat"]
        if cands:
            ops, _ = max(cands, key=lambda c: (len(c[0]), c[0]))
            channels = analyze_path(sg, ops, "concat", 2).channels
            assert_exact(m, list(ops), min(channels, 3 if channels % 3 else 5))
            return
    pytest.skip(f"{path.stem}: no channel path (no splittable op chain)")


def test_partial_end_found_from_the_end_op():
    q = QNet(seed=21, dtype="FLOAT32")
    x = q.input([1, 8, 8, 3])
    m = q.output(q.conv2d(q.depthwise(q.conv2d(x, 6)), 2))
    found = candidate_paths(m.main, 2)
    assert ((0, 1, 2), "partial") in found and ((1, 2), "partial") in found
