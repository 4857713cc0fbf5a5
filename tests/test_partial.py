"""Exact int8 partial-sum FDT with the FDT_PARTIAL custom op.

Rewritten models cannot run in the pip TFLM interpreter (custom op), so they are verified
with the bit-exact reference (itself pinned to TFLM in test_reference.py) against the
original model's TFLM outputs.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fdt_tflm.errors import FdtError
from fdt_tflm.io import read_model, write_model
from fdt_tflm.ir.qnet import QNet
from fdt_tflm.tflm_model.head import predict_head
from fdt_tflm.reference.partial_op import FDT_PARTIAL_CODE, PartialParams
from fdt_tflm.catalog.macs import graph_macs
from fdt_tflm.tflm_model.inplace import shareable_pairs
from fdt_tflm.memory.passes import plan
from fdt_tflm.tiling.partial import analyze_partial, apply_partial, needs_custom_kernel, partial_candidates
from fdt_tflm.tflm_model.lifetimes import lifetimes
from fdt_tflm.verify import runtime_available
from fdt_tflm.verify.custom import verify_custom

MODELS = Path(__file__).resolve().parents[2] / "shared" / "models"
needs_tflm = pytest.mark.skipif(not runtime_available("tflm"), reason="tflite-micro is not installed")


def _micro_speech() -> bytes:
    p = MODELS / "tflm_micro_speech_int8.tflite"
    if not p.is_file():
        pytest.skip(f"shared model not found: {p}")
    return p.read_bytes()


def planned_head(model) -> int:
    """The head the plan pass gives ``model`` (accumulators and RESHAPEs share bytes in place)."""
    return plan(model)[1].predicted_head


def _conv_flatten_dense(seed: int = 3) -> bytes:
    """conv -> flatten -> dense: the dense input is 10 KB, its output 10 values."""
    q = QNet(seed=seed)
    x = q.input([1, 16, 16, 8])
    y = q.conv2d(x, 40, (3, 3), act="RELU")
    y = q.reshape(y, [1, 16 * 16 * 40])
    y = q.fully_connected(y, 10)
    return write_model(q.output(q.softmax(y)))


def _conv_end_net() -> bytes:
    """conv (odd channels) -> depthwise -> 3x3 strided, dilated conv end with per-channel scales."""
    q = QNet(seed=11)
    x = q.input([1, 12, 10, 3], zp=7)
    y = q.conv2d(x, 9, (1, 1), act="RELU6")
    y = q.depthwise(y, (3, 3), act="RELU")
    y = q.conv2d(y, 5, (3, 3), stride=2, dilation=2, padding="SAME", act="RELU")
    return write_model(q.output(y))


@needs_tflm
@pytest.mark.parametrize("parts", [4, 8])
def test_micro_speech_fits_3000_bytes_exactly(parts):
    data = _micro_speech()
    m = read_model(data)
    assert predict_head(m).head == 5968
    sg = m.main
    path = [i for i, op in enumerate(sg.operators) if op.type in ("DEPTHWISE_CONV_2D", "FULLY_CONNECTED")]
    new = apply_partial(m, path, parts)
    assert planned_head(new) <= 3000
    assert graph_macs(new.main) == graph_macs(m.main)
    assert needs_custom_kernel(new) and not needs_custom_kernel(m)
    ok, details = verify_custom(data, new, n_samples=5)
    assert ok, details.errors
    assert details.outputs_compared == 5 and not details.ops_from_tflm


@needs_tflm
def test_conv_flatten_dense_saves_60_percent():
    data = _conv_flatten_dense()
    m = read_model(data)
    fc = next(op for op in m.main.operators if op.type == "FULLY_CONNECTED")
    assert fc.inputs[0].nbytes >= 8192 and fc.outputs[0].num_elements <= 64
    cands = [c for c in partial_candidates(m) if c.parts == 8]
    assert cands and cands[0].ops == (0, 1, 2)
    new = apply_partial(m, cands[0].ops, 8)
    tflm_default = predict_head(m).head
    best_original = planned_head(m)  # the original with an optimal plan and in-place reshape
    assert planned_head(new) <= 0.4 * tflm_default
    assert planned_head(new) <= 0.4 * best_original
    assert graph_macs(new.main) == graph_macs(m.main)
    ok, details = verify_custom(data, new, n_samples=3)
    assert ok, details.errors


@needs_tflm
def test_conv_end_with_stride_dilation_padding_is_exact():
    data = _conv_end_net()
    m = read_model(data)
    for parts in (2, 3):
        new = apply_partial(m, [0, 1, 2], parts)
        assert sum(op.opcode.custom_code == FDT_PARTIAL_CODE for op in new.main.operators) == parts
        ok, details = verify_custom(data, new, n_samples=3)
        assert ok, details.errors
        assert graph_macs(new.main) == graph_macs(m.main)


@needs_tflm
def test_verification_catches_a_wrong_multiplier():
    data = _micro_speech()
    m = read_model(data)
    new = apply_partial(m, [1, 2], 4)
    last = [op for op in new.main.operators if op.opcode.custom_code == FDT_PARTIAL_CODE][-1]
    p = PartialParams.decode(last.custom_options)
    p.multiplier = p.multiplier.copy()
    p.multiplier = (p.multiplier.astype(np.int64) * 33 // 32).astype(np.int32)  # +3 % on every channel
    last.custom_options = p.encode()
    ok, details = verify_custom(data, new, n_samples=5)
    assert not ok and details.errors


def test_accumulators_share_memory_in_place():
    m = read_model(_micro_speech())
    new = apply_partial(m, [1, 2], 4)
    ivs = lifetimes(new.main)
    pairs = shareable_pairs(new.main, ivs, frozenset({FDT_PARTIAL_CODE.decode()}))
    assert len(pairs) == 3  # acc0->acc1->acc2->output
    for a, b in pairs:
        assert ivs[a].overlaps(ivs[b])
    # every accumulator is counted at 4 bytes per output element
    accs = [iv for iv in ivs if iv.tensor.dtype_name == "INT32"]
    assert accs and all(iv.size == 16 for iv in accs)  # 4 outputs * 4 B
    assert planned_head(new) >= max(iv.size for iv in ivs)


def test_rewrite_is_deterministic_and_round_trips():
    m = read_model(_micro_speech())
    a = write_model(apply_partial(m, [1, 2], 8))
    b = write_model(apply_partial(read_model(_micro_speech()), [1, 2], 8))
    assert a == b
    back = read_model(a)
    ops = [op for op in back.main.operators if op.opcode.custom_code == FDT_PARTIAL_CODE]
    assert len(ops) == 8
    params = [PartialParams.decode(op.custom_options) for op in ops]
    assert params[0].first and not params[0].last and params[-1].last
    assert params[-1].multiplier.size == 4
    assert ops[0].inputs[2:] == [] and ops[-1].inputs[3] is not None  # no acc in; bias in the last part


def test_invalid_paths_raise_fdt_error():
    m = read_model(_micro_speech())
    with pytest.raises(FdtError):
        apply_partial(m, [2, 3], 2)  # FULLY_CONNECTED -> SOFTMAX: SOFTMAX is not a partial end
    with pytest.raises(FdtError):
        apply_partial(m, [1, 2], 9)  # 8 channels cannot make 9 parts
    with pytest.raises(FdtError):
        analyze_partial(m.main, [2], 2)
    fq = QNet(seed=0, dtype="FLOAT32")
    x = fq.input([1, 4, 4, 4])
    y = fq.fully_connected(fq.reshape(fq.conv2d(x, 4, (1, 1)), [1, 64]), 3)
    fm = fq.output(y)
    with pytest.raises(FdtError):
        apply_partial(fm, [0, 1, 2], 2)  # float: stock ADD partial sums, not this rewrite
    assert partial_candidates(fm) == []


def test_options_round_trip_and_reject_garbage():
    p = PartialParams(0, True, True, 5, -3, -128, 100, (2, 1), (1, 3), (1, 0),
                      np.array([1 << 30, 123456789], np.int32), np.array([-3, 1], np.int32))
    q = PartialParams.decode(p.encode())
    assert (q.kind, q.first, q.last, q.input_offset, q.output_offset, q.act_min, q.act_max) == \
        (0, True, True, 5, -3, -128, 100)
    assert q.stride == (2, 1) and q.dilation == (1, 3) and q.pad == (1, 0)
    assert q.multiplier.tolist() == [1 << 30, 123456789] and q.shift.tolist() == [-3, 1]
    for bad in (b"", p.encode()[:-1], b"\0" * 60):
        with pytest.raises(FdtError):
            PartialParams.decode(bad)


def test_written_plan_is_proved_and_complete():
    """The plan pass plans a partial-sum model like any other (accumulators in place), its
    plan is proved and written whole, and the proof is not vacuous."""
    from fdt_tflm.errors import FdtError
    from fdt_tflm.tflm_model.offline_plan import check_offline_plan, read_plan, set_plan
    m = read_model(_micro_speech())
    planned, rep = plan(apply_partial(m, [1, 2], 8))
    back = read_model(write_model(planned))
    offs = read_plan(back)
    ivs = lifetimes(back.main)
    assert len(offs) == len(back.main.tensors)
    assert max(offs[iv.index] + iv.size for iv in ivs) == rep.planned_bytes <= 3000
    check_offline_plan(back)
    # moving one accumulator onto a live neighbour that is not its in-place partner is caught
    a, b = shareable_pairs(back.main, ivs)[0]
    other = next(k for k, iv in enumerate(ivs) if k not in (a, b) and iv.overlaps(ivs[b]))
    bad = {iv.index: offs[iv.index] for iv in ivs}
    bad[ivs[b].index] = offs[ivs[other].index]
    set_plan(back, bad)
    with pytest.raises(FdtError):
        check_offline_plan(back)
