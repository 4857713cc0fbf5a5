"""The NumPy reference kernels against the TFLM host interpreter, bit for bit.

Every op is fed TFLM's own input values and must reproduce TFLM's output tensor exactly;
models that use only modelled ops must also match end to end.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fdt_tflm.io import read_model, write_model
from fdt_tflm.ir.qnet import QNet
from fdt_tflm.reference import KERNELS, ReferenceUnsupported, run_reference
from fdt_tflm.verify.crosscheck import crosscheck
from fdt_tflm.reference.fixedpoint import quantize_multiplier
from fdt_tflm.reference.ops import per_channel_multipliers, requantize
from fdt_tflm.reference.partial_op import KIND_CONV, PartialParams, fdt_partial_eval
from fdt_tflm.verify import make_inputs, run, runtime_available

MODELS = Path(__file__).resolve().parents[2] / "shared" / "models"
needs_tflm = pytest.mark.skipif(not runtime_available("tflm"), reason="tflite-micro is not installed")


def _shared_models() -> list[Path]:
    if not MODELS.is_dir():
        pytest.skip(f"shared models not found at {MODELS}")
    paths = sorted(MODELS.glob("*.tflite"))
    if not paths:
        pytest.skip(f"no .tflite files in {MODELS}")
    return paths


@needs_tflm
def test_shared_models_match_tflm_bit_for_bit():
    fully_modelled = []
    for path in _shared_models():
        r = crosscheck(path.read_bytes(), n_samples=2, seed=1)
        assert not r.mismatches, f"{path.name}: {r.mismatches[:3]}"
        assert r.ops_checked > 0
        if not r.ops_skipped:
            assert r.whole_graph is True, path.name
            fully_modelled.append(path.stem)
    # every shared model without an LSTM uses only modelled ops
    expected = {"mlperf_ad_toycar_int8", "mlperf_ic_resnet8_int8", "mlperf_kws_dscnn_int8",
                "mlperf_vww_mbv1_96_int8", "tflm_micro_speech_int8", "tflm_person_detect_int8"}
    present = {p.stem for p in _shared_models()}
    assert expected & present <= set(fully_modelled)


def _varied_net() -> bytes:
    """Ops and variants the shared models do not cover: dilation, stride with SAME padding,
    depth multiplier, max pool with SAME padding, ADD with different scales, CONCATENATION,
    RELU6 / RELU_N1_TO_1 fused activations, per-channel weights, odd sizes."""
    q = QNet(seed=7)
    x = q.input([1, 13, 11, 3], scale=0.04, zp=5)
    a = q.conv2d(x, 7, (3, 3), stride=2, padding="SAME", act="RELU6")
    b = q.conv2d(x, 5, (3, 2), stride=1, padding="VALID", dilation=2, act="NONE")
    b = q.pool(b, "MAX", size=3, stride=2, padding="SAME")
    c = q.depthwise(a, (3, 3), stride=1, padding="SAME", depth_multiplier=2, act="RELU_N1_TO_1")
    d = q.depthwise(x, (5, 5), stride=3, padding="VALID", dilation=1, depth_multiplier=3, act="RELU")
    e = q.conv2d(c, 9, (1, 1), act="NONE")
    f = q.conv2d(e, 9, (3, 3), act="NONE")
    g = q.add(e, f, act="RELU")
    h = q.pool(g, "AVERAGE", size=3, stride=2, padding="SAME")
    i = q.concat([h, q.pool(q.conv2d(c, 4, (1, 1), like=g), "AVERAGE", size=2, stride=2, padding="SAME")])
    flat = q.reshape(i, [1, int(np.prod(i.shape))])
    logits = q.fully_connected(flat, 6, act="RELU")
    return write_model(q.output(q.softmax(logits), b, d))


def _assert_every_op_matches(data: bytes, n_ops: int, n_samples: int, seed: int) -> None:
    """Every one of the ``n_ops`` ops and the whole graph agree with TFLM bit for bit."""
    r = crosscheck(data, n_samples=n_samples, seed=seed)
    assert not r.mismatches, r.mismatches[:3]
    assert not r.ops_skipped and r.whole_graph is True
    assert r.ops_checked == n_ops


@needs_tflm
def test_varied_ops_match_tflm():
    data = _varied_net()
    _assert_every_op_matches(data, len(read_model(data).main.operators), n_samples=3, seed=2)


@needs_tflm
def test_run_reference_outputs_equal_tflm_outputs():
    data = _varied_net()
    m = read_model(data)
    inputs = make_inputs(m, 2, seed=5)
    res = run(data, inputs, "tflm")
    assert res.ok, res.error
    for sample, want in zip(inputs, res.outputs):
        got = run_reference(m, sample)
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g.dtype == w.dtype and np.array_equal(g, w)
        assert len(np.unique(want[0])) > 1  # not a saturated, meaningless output


def test_unsupported_op_is_reported_not_crashed():
    for path in _shared_models():
        m = read_model(path.read_bytes())
        if any(op.type not in KERNELS for op in m.main.operators):
            with pytest.raises(ReferenceUnsupported):
                run_reference(m, make_inputs(m, 1)[0])
            return
    pytest.skip("every shared model is fully modelled")


def test_quantize_multiplier_known_values():
    assert quantize_multiplier(0.5) == (1 << 30, 0)
    assert quantize_multiplier(1.0) == (1 << 30, 1)
    assert quantize_multiplier(0.0) == (0, 0)
    m, s = quantize_multiplier(0.0003)
    assert s < 0 and (1 << 30) <= m < (1 << 31)
    assert abs(m * 2.0 ** (s - 31) - 0.0003) < 1e-12


def test_partial_sums_equal_the_whole_conv():
    """Summing FDT_PARTIAL parts over input-channel slices gives exactly the stock conv result."""
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, (1, 9, 7, 11)).astype(np.int8)
    w = rng.integers(-127, 128, (6, 3, 3, 11)).astype(np.int8)
    bias = rng.integers(-5000, 5000, 6).astype(np.int32)
    mult, shift = per_channel_multipliers(0.05, rng.uniform(0.001, 0.01, 6), 0.2, 6)
    base = dict(input_offset=17, output_offset=-3, act_min=-3, act_max=127, stride=(2, 1), dilation=(1, 2),
                pad=(1, 2), multiplier=mult.astype(np.int32), shift=shift.astype(np.int32))
    out_shape = [1, 5, 7, 6]
    acc = None
    bounds = [(0, 4), (4, 5), (5, 11)]
    for k, (lo, hi) in enumerate(bounds):
        p = PartialParams(KIND_CONV, k == 0, k == len(bounds) - 1, **base)
        acc = fdt_partial_eval(p, x[..., lo:hi], w[..., lo:hi], acc, bias if p.last else None, out_shape)
    whole = fdt_partial_eval(PartialParams(KIND_CONV, True, True, **base), x, w, None, bias, out_shape)
    assert acc.dtype == np.int8 and np.array_equal(acc, whole)
    # and the int32 path really differs from requantising each part (why the custom op exists)
    parts = [requantize(fdt_partial_eval(PartialParams(KIND_CONV, True, False, **base), x[..., lo:hi],
                                         w[..., lo:hi], None, None, out_shape).astype(np.int64),
                        mult, shift, 0, -128, 127) for lo, hi in bounds]
    assert not np.array_equal(sum(p.astype(np.int64) for p in parts), whole.astype(np.int64))


def _copy_ops_net() -> bytes:
    """PAD, STRIDED_SLICE (strides, masks), SPLIT, SPLIT_V, CONCATENATION, RESHAPE, RELU6 / RELU
    with unchanged quantisation: pure data movement that must match TFLM exactly."""
    from fdt_tflm.ir.builder import GraphBuilder, options, quant
    b = GraphBuilder()
    q = quant(0.05, 3)
    x = b.tensor("x", [1, 6, 5, 6], "INT8", q)
    b.sg.inputs.append(x)
    pads = b.const("pads", np.array([[0, 0], [1, 2], [0, 1], [0, 0]], np.int32))
    p = b.tensor("pad", [1, 9, 6, 6], "INT8", q.copy())
    b.op("PAD", [x, pads], [p], version=2)
    begin = b.const("begin", np.array([0, 1, 0, 1], np.int32))
    end = b.const("end", np.array([1, 9, 6, 6], np.int32))
    strides = b.const("strides", np.array([1, 2, 1, 1], np.int32))
    s = b.tensor("slice", [1, 4, 6, 5], "INT8", q.copy())
    b.op("STRIDED_SLICE", [p, begin, end, strides], [s],
         options("STRIDED_SLICE", BeginMask=4, EndMask=4, EllipsisMask=0, NewAxisMask=0, ShrinkAxisMask=0),
         version=2)
    axis = b.const("axis", np.array([2], np.int32))
    parts = [b.tensor(f"split{i}", [1, 4, 2, 5], "INT8", q.copy()) for i in range(3)]
    b.op("SPLIT", [axis, s], parts, options("SPLIT", NumSplits=3), version=2)
    sizes = b.const("sizes", np.array([2, -1], np.int32))
    axis3 = b.const("axis3", np.array([3], np.int32))
    v = [b.tensor("splitv0", [1, 4, 2, 2], "INT8", q.copy()), b.tensor("splitv1", [1, 4, 2, 3], "INT8", q.copy())]
    b.op("SPLIT_V", [parts[1], sizes, axis3], v, options("SPLIT_V", NumSplits=2), version=2)
    c = b.tensor("concat", [1, 4, 4, 5], "INT8", q.copy())
    b.op("CONCATENATION", [parts[2], parts[0]], [c], options("CONCATENATION", Axis=2, FusedActivationFunction=0),
         version=2)
    r6 = b.tensor("relu6", [1, 4, 4, 5], "INT8", q.copy())
    b.op("RELU6", [c], [r6], version=2)
    shape = b.const("shape", np.array([1, 80], np.int32))
    flat = b.tensor("flat", [1, 80], "INT8", q.copy())
    b.op("RESHAPE", [r6, shape], [flat], options("RESHAPE", NewShape=np.array([1, 80], np.int32)))
    r = b.tensor("relu", [1, 4, 2, 3], "INT8", q.copy())
    b.op("RELU", [v[1]], [r], version=2)
    b.sg.outputs.extend([flat, v[0], r])
    return write_model(b.model)


@needs_tflm
def test_copy_ops_match_tflm():
    _assert_every_op_matches(_copy_ops_net(), 8, n_samples=2, seed=4)
