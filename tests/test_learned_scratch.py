"""Kernel scratch learned from TFLM for ops the planner does not know (fdt_tflm.verify.probe).

Oracles: TFLM's measured head (RecordingMicroAllocator) and hand computations from the kernel
sources in tflite-micro (signal/micro/kernels/rfft.cc: Prepare requests fft_length * sizeof(T)).
"""
from __future__ import annotations

import copy
import time

import numpy as np
import pytest

import fdt_tflm
from fdt_tflm.ir.builder import GraphBuilder
from fdt_tflm.ir.graph import ScratchProbe
from fdt_tflm.ir.signal import custom_op, rfft, rfft_scratch_bytes, spectrum_model
from fdt_tflm.tflm_model.lifetimes import align
from fdt_tflm.memory.passes import plan, reorder, reorder_and_plan
from fdt_tflm.tflm_model.reference_scratch import SCRATCH_RULES, NO_SCRATCH
from fdt_tflm.tflm_model.scratch import scratch_intervals, scratch_requests
from fdt_tflm.tflm_model.target import HOST
from fdt_tflm.tflm_model.head import predict_head
from fdt_tflm.verify import make_inputs, run, runtime_available
from fdt_tflm.verify.probe import (distinct_one_op_models, learn_kernel_scratch, measure_heads,
                                   one_op_model, scratch_notes)

from conftest import PROJECT_MODELS, SHARED_MODELS

pytestmark = pytest.mark.skipif(not runtime_available("tflm"), reason="needs the TFLM host interpreter")


def _tflm_head(model) -> int:
    res = run(fdt_tflm.write_model(model), make_inputs(model, 2))
    assert res.ok, res.error
    return res.head


def _ffts_model(lengths: list[int], repeat_first: bool = False):
    """One SignalRfft per length on its own int16 input (the first one twice if ``repeat_first``)."""
    b = GraphBuilder()
    outs = []
    for n in lengths + lengths[:1] * repeat_first:
        x = b.tensor("frame", [n], "INT16")
        b.sg.inputs.append(x)
        outs.append(rfft(b, x, n))
    b.sg.outputs = outs
    return b.model


def _op(model, op_type: str):
    return next(op for op in model.main.operators if op.type == op_type)


def test_rfft_scratch_is_what_the_kernel_source_requests():
    learned = learn_kernel_scratch(_ffts_model([64, 256, 512], repeat_first=True))
    got = [op.learned_scratch for op in learned.main.operators]
    # rfft.cc RfftPrepare: RequestScratchBufferInArena(fft_length * sizeof(int16_t)), one request
    assert [p.requests for p in got] == [(128,), (512,), (1024,), (128,)]
    assert [rfft_scratch_bytes(n) for n in (64, 256, 512)] == [128, 512, 1024]
    assert all(p.error == "" for p in got)
    assert [scratch_requests(op, HOST) for op in learned.main.operators] == [[128], [512], [1024], [128]]
    assert scratch_notes(learned) == ["SignalRfft: 128 B, 512 B, 1,024 B scratch measured in TFLM"]


def test_probe_equals_tflm_head_of_the_one_op_model():
    """Oracle: TFLM's head for the RFFT alone, run with inference by the verify runner, is the
    input + output + scratch (hand computation: every buffer is alive at the op's step)."""
    m = _ffts_model([512])
    one = one_op_model(m.main.operators[0])
    head = _tflm_head(one)
    assert head == align(512 * 2) + align(514 * 2) + 512 * 2 == 3088
    learned = learn_kernel_scratch(m)
    probe = learned.main.operators[0].learned_scratch
    assert predict_head(one).head + sum(probe.requests) == head


def test_one_child_probes_each_signature_once():
    m = _ffts_model([64, 256], repeat_first=True)
    entries = distinct_one_op_models(m)
    assert sorted(len(e.ops) for e in entries) == [1, 2]  # the repeated FFT shares its probe
    t0 = time.perf_counter()
    heads = measure_heads([(e.data, e.arena) for e in entries])
    assert time.perf_counter() - t0 < 10
    assert [h for h, _ in heads] == [e.predicted_head + rfft_scratch_bytes(n) for e, n in zip(entries, (64, 256))]


def test_signal_ops_without_requests_learn_zero_and_builtins_are_not_probed():
    learned = learn_kernel_scratch(spectrum_model())
    by_type = {op.type: op.learned_scratch for op in learned.main.operators}
    # window.cc and energy.cc only allocate persistent buffers (tail), never scratch
    assert by_type["SignalWindow"] == ScratchProbe(())
    assert by_type["SignalEnergy"] == ScratchProbe(())
    assert by_type["SignalRfft"] == ScratchProbe((1024,))
    assert by_type["CAST"] is None and by_type["MAXIMUM"] is None  # builtins the table knows
    assert distinct_one_op_models(learned) == []  # learning again probes nothing
    assert scratch_notes(learned) == ["SignalRfft: 1,024 B scratch measured in TFLM",
                                      "no scratch measured in TFLM: SignalWindow, SignalEnergy"]


def test_op_tflm_cannot_run_falls_back_and_says_so():
    b = GraphBuilder()
    x = b.tensor("frame", [256], "INT16")
    y = b.tensor("mystery", [256], "INT16")
    b.sg.inputs = [x]
    custom_op(b, "NoSuchKernel", [x], [y], {"k": 1})
    b.sg.outputs = [y, rfft(b, x, 256)]
    learned = learn_kernel_scratch(b.model)
    mystery, fft = learned.main.operators
    assert mystery.learned_scratch.requests == ()
    assert "NoSuchKernel" in mystery.learned_scratch.error and "assumed no scratch" in mystery.learned_scratch.error
    assert scratch_requests(mystery, HOST) == []
    assert fft.learned_scratch == ScratchProbe((512,))  # the same child went on after the failure
    assert any("NoSuchKernel" in n for n in scratch_notes(learned))


def test_models_of_known_ops_start_no_child(monkeypatch):
    import fdt_tflm.verify.probe as probe

    def no_child(*a, **k):
        raise AssertionError("a child process was started for ops the table knows")
    monkeypatch.setattr(probe.subprocess, "run", no_child)
    m = fdt_tflm.read_model(PROJECT_MODELS / "kws.tflite")
    learned = learn_kernel_scratch(m)
    assert all(op.learned_scratch is None for op in learned.main.operators)


def _table_models() -> list:
    paths = sorted(PROJECT_MODELS.glob("*.tflite"))
    lstm = SHARED_MODELS / "tflm_micro_speech_lstm_int8.tflite"
    return paths + ([lstm] if lstm.exists() else [])


def test_the_scratch_table_agrees_with_tflm():
    """Every op of our models, alone, in TFLM: head == our prediction with the table's scratch
    (int8 CONV/DW/FC request none; the LSTM, when the shared model is present, its four)."""
    seen = set()
    for path in _table_models():
        m = fdt_tflm.read_model(path)
        entries = distinct_one_op_models(m, wanted=lambda op: True)
        heads = measure_heads([(e.data, e.arena) for e in entries])
        for e, (head, why) in zip(entries, heads):
            one = fdt_tflm.read_model(e.data)
            expect = predict_head(one, scratch_intervals(one.main, HOST)).head
            assert head == expect, f"{path.name} {e.op_type}: TFLM {head} ({why}), predicted {expect}"
            seen.add(e.op_type)
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "SOFTMAX"} <= seen


def test_table_and_no_scratch_list_are_disjoint():
    assert not (set(SCRATCH_RULES) & NO_SCRATCH)


def test_learned_scratch_survives_the_passes_and_is_never_written():
    learned = learn_kernel_scratch(spectrum_model())
    for m in (copy.deepcopy(learned), reorder(learned)[0], plan(learned)[0], reorder_and_plan(learned)[0]):
        assert _op(m, "SignalRfft").learned_scratch == ScratchProbe((1024,))
    assert fdt_tflm.write_model(learned) == fdt_tflm.write_model(spectrum_model())
    assert _op(fdt_tflm.read_model(fdt_tflm.write_model(learned)), "SignalRfft").learned_scratch is None


@pytest.fixture(scope="module")
def spectrum_runs() -> dict:
    """TFLM-measured heads of the Signal test model: input, reorder+plan without and with learning."""
    m = spectrum_model()
    inputs = make_inputs(m, 3)
    learned = learn_kernel_scratch(m)
    blind, blind_sched, blind_rep = reorder_and_plan(m)
    seen, seen_sched, seen_rep = reorder_and_plan(learned)
    runs = {k: run(fdt_tflm.write_model(x), inputs) for k, x in (("input", m), ("blind", blind), ("seen", seen))}
    assert all(r.ok for r in runs.values()), {k: r.error for k, r in runs.items()}
    return dict(runs=runs, learned=learned, blind=(blind, blind_sched, blind_rep), seen=(seen, seen_sched, seen_rep),
                model=m)


def test_with_learning_the_plan_is_never_worse_and_exactly_predicted(spectrum_runs):
    runs, (seen, sched, rep) = spectrum_runs["runs"], spectrum_runs["seen"]
    learned, m = spectrum_runs["learned"], spectrum_runs["model"]
    assert predict_head(learned, scratch_intervals(learned.main, HOST)).head == runs["input"].head == 5136
    assert runs["seen"].head <= runs["input"].head
    assert runs["seen"].head == rep.predicted_head == 5120
    # the order matters: the feature branch now runs before the FFT (stored: after it)
    order = [op.type for op in seen.main.operators]
    assert order.index("MAXIMUM") < order.index("SignalRfft")
    assert [op.type for op in m.main.operators].index("MAXIMUM") > 1
    for a, b in zip(runs["input"].outputs, runs["seen"].outputs):
        assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_without_learning_the_plan_was_worse_than_the_input(spectrum_runs):
    """The failure mode this module fixes: the RFFT's 1,024 B scratch finds no gap in a plan that
    did not reserve it, TFLM puts it on top, and the head exceeds both prediction and input."""
    runs, (_, _, rep) = spectrum_runs["runs"], spectrum_runs["blind"]
    assert rep.predicted_head == 5120
    assert runs["blind"].head > runs["input"].head
    assert runs["blind"].head == 6144  # = the plan's 5,120 B + 1,024 B of scratch above it


def test_a_kernel_that_kills_tflm_falls_back_and_the_next_child_goes_on():
    """rfft.cc's Init returns no params for an unknown type T; Prepare then dereferences them
    (a segfault of the child).  The op falls back, the ops after it are still probed."""
    b = GraphBuilder()
    x = b.tensor("frame", [256], "INT16")
    y = b.tensor("bad_type", [258], "INT16")
    b.sg.inputs = [x]
    custom_op(b, "SignalRfft", [x], [y], {"T": 99, "fft_length": 256})
    b.sg.outputs = [y, rfft(b, x, 256)]
    crashed, fft = learn_kernel_scratch(b.model).main.operators
    assert crashed.learned_scratch.requests == () and "aborted" in crashed.learned_scratch.error
    assert fft.learned_scratch == ScratchProbe((512,))


def test_a_hostile_tensor_is_not_probed(monkeypatch):
    import fdt_tflm.verify.probe as probe

    monkeypatch.setattr(probe.subprocess, "run", lambda *a, **k: pytest.fail("a child was started"))
    b = GraphBuilder()
    x = b.tensor("huge", [1, 65535, 65535, 255], "INT8")
    y = b.tensor("out", [1], "INT8")
    b.sg.inputs, b.sg.outputs = [x], [y]
    custom_op(b, "SignalEnergy", [x], [y], {"end_index": 1, "start_index": 0})
    p = learn_kernel_scratch(b.model).main.operators[0].learned_scratch
    assert p.requests == () and "too large to probe" in p.error


def test_the_time_budget_bounds_all_children(tmp_path, monkeypatch):
    """A child that never answers (a TFLM hang, stood in for by a sleeping script, so the test
    does not depend on how fast the machine runs TFLM) is cut at the budget, and the models
    after it are not started."""
    import fdt_tflm.verify.probe as probe

    hang = tmp_path / "hang.py"
    hang.write_text("import time\ntime.sleep(600)\n")
    monkeypatch.setattr(probe, "_CHILD", str(hang))
    data = fdt_tflm.write_model(one_op_model(_ffts_model([64]).main.operators[0]))
    t0 = time.perf_counter()
    heads = measure_heads([(data, 1 << 20)] * 3, timeout=0.5)
    assert time.perf_counter() - t0 < 30  # cut at the budget, not after the child's 600 s
    assert heads[0][0] is None and "did not finish within" in heads[0][1]
    assert all(h is None and "budget was spent" in why for h, why in heads[1:])


def test_a_kernel_with_several_requests_is_learned_as_their_aligned_sum():
    """reduce_common.cc, int8 MEAN of [1, 4, 4, 8] over axes (1, 2): an int32 accumulator per
    output element (32 B), one int per input dimension (16 B), one per axis (8 B -> 16 B aligned)."""
    from fdt_tflm.ir.builder import options, quant
    b = GraphBuilder()
    x = b.tensor("x", [1, 4, 4, 8], "INT8", quant(0.1, 0))
    y = b.tensor("y", [1, 1, 1, 8], "INT8", quant(0.1, 0))
    b.sg.inputs, b.sg.outputs = [x], [y]
    b.op("MEAN", [x, b.const("axes", np.array([1, 2], np.int32))], [y], options("MEAN", KeepDims=True))
    op = b.model.main.operators[0]
    assert [align(r) for r in scratch_requests(op, HOST)] == [32, 16, 16]
    entry, = distinct_one_op_models(b.model, wanted=lambda o: True)
    (head, why), = measure_heads([(entry.data, entry.arena)])
    assert head - entry.predicted_head == 64, why
