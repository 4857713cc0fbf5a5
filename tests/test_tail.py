"""The persistent-tail model must equal TFLM's measured tail exactly (host build of tflite-micro)."""
from __future__ import annotations


import numpy as np
import pytest

from fdt_tflm.tflm_model.target import HOST
from fdt_tflm.io import read_model, write_model
from fdt_tflm.ir.builder import options
from fdt_tflm.ir.graph import Tensor
from fdt_tflm.ir.qnet import QNet
from fdt_tflm.memory.passes import plan, reorder
from fdt_tflm.tflm_model.tail import predict_tail, predict_total, unknown_ops
from fdt_tflm.verify import make_inputs, run

from conftest import shared_params  # noqa: E402  (../shared/models, skipped with a reason when absent)


def measure(model):
    data = write_model(model)
    r = run(data, make_inputs(model, 1))
    assert r.ok, r.error
    return r


def _like(q: QNet, x: Tensor, shape, kind: str) -> Tensor:
    return q.b.tensor(q._name(kind), list(shape), "INT8", x.quantization.copy())


def tiled_graph(seed: int, parts: int, dtype: str = "INT8"):
    """What tiling produces: SPLIT / SPLIT_V / STRIDED_SLICE / PAD around per-part convs, merged by
    CONCATENATION and ADD, plus the usual dense head."""
    q = QNet(seed, dtype=dtype)
    b = q.b
    f = dtype == "FLOAT32"
    x = q.input([1, 12, 12, 8])
    y = q.conv2d(x, 8 * parts)
    ax = b.const(q._name("axis"), np.array([3], np.int32))
    pieces = [b.tensor(q._name("split"), [1, 12, 12, 8], dtype, None if f else y.quantization.copy())
              for _ in range(parts)]
    b.op("SPLIT", [ax, y], pieces, options("SPLIT", NumSplits=parts))
    outs = []
    for k, p in enumerate(pieces):
        pad = b.const(q._name("pad"), np.array([[0, 0], [1, 1], [1, 1], [0, 0]], np.int32))
        pp = b.tensor(q._name("pad"), [1, 14, 14, 8], dtype, None if f else p.quantization.copy())
        b.op("PAD", [p, pad], [pp], None)
        d = q.depthwise(pp, padding="VALID")
        outs.append(q.conv2d(d, 4, (1, 1), like=outs[0] if outs else None))
    cat = q.concat(outs, axis=-1)
    sizes = b.const(q._name("sizes"), np.array([4, 4 * parts - 4], np.int32))
    ax2 = b.const(q._name("axis"), np.array([3], np.int32))
    s1 = b.tensor(q._name("sv"), [1, 12, 12, 4], dtype, None if f else cat.quantization.copy())
    s2 = b.tensor(q._name("sv"), [1, 12, 12, 4 * parts - 4], dtype, None if f else cat.quantization.copy())
    b.op("SPLIT_V", [cat, sizes, ax2], [s1, s2], options("SPLIT_V", NumSplits=2))
    be = b.const(q._name("begin"), np.array([0, 0, 0, 0], np.int32))
    en = b.const(q._name("end"), np.array([1, 12, 12, 4], np.int32))
    st = b.const(q._name("strides"), np.array([1, 1, 1, 1], np.int32))
    s3 = b.tensor(q._name("ss"), [1, 12, 12, 4], dtype, None if f else s2.quantization.copy())
    b.op("STRIDED_SLICE", [s2, be, en, st], [s3], options(
        "STRIDED_SLICE", BeginMask=0, EndMask=0, EllipsisMask=0, NewAxisMask=0, ShrinkAxisMask=0, Offset=False))
    z = q.add(s1, s3, act="RELU")
    z = q.pool(z, "MAX", 2, 2)
    z = q.mean(z, axes=(1, 2), keep_dims=False)
    return q.output(q.softmax(q.fully_connected(z, 5)))


@pytest.mark.parametrize("path", shared_params())
def test_tail_exact_on_shared_models(path):
    m = read_model(path)
    r = run(path.read_bytes(), make_inputs(m, 1))
    assert r.ok, r.error
    assert unknown_ops(m) == []
    assert predict_tail(m) == r.tail
    assert predict_total(m) == r.total


@pytest.mark.parametrize("seed,parts,dtype", [(0, 2, "INT8"), (1, 4, "INT8"), (2, 7, "INT8"), (3, 3, "FLOAT32")])
def test_tail_exact_on_tiled_graphs(seed, parts, dtype):
    m = tiled_graph(seed, parts, dtype)
    kinds = {op.type for op in m.main.operators}
    assert {"SPLIT", "SPLIT_V", "STRIDED_SLICE", "PAD", "CONCATENATION", "ADD"} <= kinds
    r = measure(m)
    assert unknown_ops(m) == []
    assert predict_tail(m) == r.tail, (predict_tail(m), r.tail)
    assert predict_total(m) == r.total


def test_every_extra_op_is_priced():
    """More parts -> more ops and tensors -> a larger tail, as TFLM measures it."""
    small, big = tiled_graph(5, 2), tiled_graph(5, 6)
    assert predict_tail(big) > predict_tail(small)
    assert predict_tail(big) - predict_tail(small) == measure(big).tail - measure(small).tail


def test_tail_unchanged_by_reorder_and_plan():
    m = tiled_graph(4, 3)
    r, _ = reorder(m)
    p, rep = plan(r)
    res = measure(p)
    assert res.tail == predict_tail(p) == predict_tail(m)
    assert res.head == rep.predicted_head


def test_unknown_op_is_reported_not_fatal():
    """A custom op no table knows (a user's kernel) is reported and priced with an upper bound."""
    q = QNet(0)
    x = q.input([1, 4, 4, 4])
    m = q.output(q.unary(x, "EXP"))
    exp = m.main.operators[0]
    exp.opcode = m.opcode(32, 1, custom_code=b"MyVendorExp")
    exp.options = None
    assert unknown_ops(m) == ["MyVendorExp"]
    assert predict_tail(m) > 0


def _one_op(kind: str, c: int = 8, h: int = 8):
    """A single less common op on an int8 [1, h, h, c] input (builders for the table entries)."""
    from fdt_tflm.ir.builder import quant
    from fdt_tflm.ir.table import Table

    q = QNet(0)
    b = q.b
    x = q.input([1, h, h, c])

    def act(shape, qq=None):
        return b.tensor(q._name("y"), shape, "INT8", qq or x.quantization.copy())

    if kind == "TRANSPOSE_CONV":
        osz = b.const("os", np.array([1, 2 * h, 2 * h, c], np.int32))
        w = b.const("w", np.ones([c, 3, 3, c], np.int8), quant(np.full(c, 0.01, np.float32), 0, 0))
        y = act([1, 2 * h, 2 * h, c], quant(0.2, 0))
        b.op(kind, [osz, w, x, None], [y], Table("TransposeConvOptions", dict(
            Padding=0, StrideW=2, StrideH=2, FusedActivationFunction=0)))
    elif kind in ("REDUCE_MAX", "SUM"):
        ax = b.const("ax", np.array([1, 2], np.int32))
        y = act([1, 1, 1, c])
        b.op(kind, [x, ax], [y], Table("ReducerOptions", dict(KeepDims=True)))
    elif kind == "DEPTH_TO_SPACE":
        y = act([1, 2 * h, 2 * h, c // 4])
        b.op(kind, [x], [y], Table("DepthToSpaceOptions", dict(BlockSize=2)))
    elif kind == "GATHER":
        idx = b.const("idx", np.array([0, 2], np.int32))
        y = act([1, h, h, 2])
        b.op(kind, [x, idx], [y], Table("GatherOptions", dict(Axis=3, BatchDims=0)))
    elif kind == "PRELU":
        al = b.const("al", np.ones([1, 1, c], np.int8), quant(0.01, 0))
        y = act([1, h, h, c])
        b.op(kind, [x, al], [y], None)
    return q.output(y)


@pytest.mark.parametrize("kind,c", [("TRANSPOSE_CONV", 8), ("TRANSPOSE_CONV", 16), ("REDUCE_MAX", 8),
                                    ("SUM", 16), ("DEPTH_TO_SPACE", 8), ("GATHER", 8), ("PRELU", 8)])
def test_tail_and_scratch_exact_on_other_ops(kind, c):
    from fdt_tflm.tflm_model.scratch import scratch_intervals
    from fdt_tflm.tflm_model.head import predict_head

    m = _one_op(kind, c)
    r = measure(m)
    assert unknown_ops(m) == []
    assert predict_tail(m) == r.tail
    assert predict_head(m, scratch=scratch_intervals(m.main, HOST)).head == r.head
