"""Path search: finds the peak, splits it, never makes the TFLM total worse, stays bit-exact."""
from __future__ import annotations

import pytest
from conftest import PROJECT_MODELS, shared_params

from fdt_tflm.io import read_model, write_model
from fdt_tflm.ir.graph import Model
from fdt_tflm.catalog.macs import graph_macs
from fdt_tflm.ir.qnet import QNet
from fdt_tflm.memory.passes import plan, reorder
from fdt_tflm.tflm_model import HOST
from fdt_tflm.tiling.search import estimate, fdt_candidates, pareto_front, ParetoPoint, peak_seeds, search
from fdt_tflm.verify import compare_models

# (head, total) TFLM must reach at 0 % MAC overhead after search + reorder + plan
TARGETS = {"mlperf_vww_mbv1_96_int8": (47_000, 80_000), "tflm_person_detect_int8": (37_000, 70_000)}


def finish(model: Model) -> Model:
    """What the pipeline does after the search: reorder, then write the offline plan."""
    m, _ = reorder(model)
    m, _ = plan(m)
    return m


def measure(original: Model, candidate: Model, samples: int = 2):
    cmp = compare_models(original, write_model(original), write_model(candidate), n_samples=samples, litert=False)
    assert cmp.tflm.ran_a and cmp.tflm.ran_b, cmp.tflm.note
    assert cmp.ok, (cmp.tflm.note, cmp.tflm.max_abs_diff)
    return cmp.tflm.b


def mobilenet_head(seed: int = 0) -> Model:
    """An expanding 1x1 conv feeding a stride-2 depthwise: the classic FDT win."""
    q = QNet(seed=seed)
    x = q.input([1, 32, 32, 4])
    a = q.conv2d(x, 8, kernel=(3, 3), stride=2)
    b = q.conv2d(a, 48, kernel=(1, 1))
    c = q.depthwise(b, stride=2)
    d = q.conv2d(c, 16, kernel=(1, 1))
    e = q.pool(d, "AVERAGE", size=8, stride=8)
    return q.output(q.softmax(q.reshape(e, [1, 16])))


def test_search_splits_the_peak_and_stays_exact():
    m = mobilenet_head()
    msgs: list[str] = []
    res = search(m, max_overhead=0.0, progress=msgs.append)
    assert res.paths, "the expanding conv + stride-2 depthwise should be split"
    p = res.paths[0]
    assert p.kind == "FDT" and p.op_types[:2] == ["CONV_2D", "DEPTHWISE_CONV_2D"] and p.parts >= 2
    assert res.final.total < res.baseline.total
    assert graph_macs(res.model.main) == graph_macs(m.main)  # budget 0: no recomputation
    assert msgs and any("applied" in s for s in msgs)
    assert res.pareto and all(pt.mac_overhead_pct == 0 for pt in res.pareto)
    base = measure(m, finish(m))
    new = measure(m, finish(res.model))
    assert new.total < base.total and new.head < base.head
    # the search input is untouched and the result deterministic
    again = search(m, max_overhead=0.0)
    assert write_model(again.model) == write_model(res.model)


def test_two_equal_peaks_need_the_lookahead():
    """Two blocks peak at the same 20,480 B: splitting one alone only adds tail bytes."""
    q = QNet(seed=4)
    x = q.input([1, 32, 32, 2])
    b = q.depthwise(q.conv2d(x, 16, kernel=(1, 1)), stride=2)
    d = q.depthwise(q.conv2d(b, 64, kernel=(1, 1)), stride=2)
    m = q.output(q.conv2d(d, 8, kernel=(1, 1)))
    res = search(m)
    assert len(res.paths) >= 2 and res.final.total < res.baseline.total
    split = {tuple(p.op_types) for p in res.paths}
    assert split == {("CONV_2D", "DEPTHWISE_CONV_2D")}
    base, new = measure(m, finish(m)), measure(m, finish(res.model))
    assert new.total < base.total


def test_nothing_to_gain_returns_the_input():
    """Two dense layers, 20 -> 16 -> 4 int8: by hand the head is 48 B (the first layer's
    input, 20 B aligned to 32, and output, 16 B, live together); nothing can split that."""
    q = QNet(seed=1)
    x = q.input([1, 20])
    m = q.output(q.fully_connected(q.fully_connected(x, 16, act="RELU"), 4))
    res = search(m, target=HOST)  # priced as the host interpreter, to compare with its measurement
    assert res.paths == [] and res.model is m
    tflm = measure(m, finish(m))
    assert res.final.head == tflm.head == 32 + 16
    assert res.final.total == tflm.total


def test_unsupported_ops_end_paths():
    q = QNet(seed=2)
    x = q.input([1, 12, 12, 3])
    s = q.softmax(q.conv2d(x, 8))           # SOFTMAX: no rule
    m = q.output(q.conv2d(q.depthwise(s), 4))
    sg = m.main
    seeds = peak_seeds(sg, sg.operators)
    cands = fdt_candidates(sg, list(range(len(sg.operators))))
    assert all(1 not in c.ops for c in cands)
    assert seeds
    # the peak is the SOFTMAX's input + output (2 x 12*12*8 B by hand): nothing to split
    res = search(m)
    assert res.paths == [] and res.final.head == 2 * 12 * 12 * 8 == measure(m, finish(m)).head
    # conv (expand) -> depthwise -> SOFTMAX -> conv: the FDT path stops before the SOFTMAX
    q = QNet(seed=2)
    x = q.input([1, 16, 16, 4])
    y = q.softmax(q.depthwise(q.conv2d(x, 48, kernel=(1, 1)), stride=2))
    m = q.output(q.conv2d(y, 16, kernel=(1, 1)))
    res = search(m)
    assert [p.op_types for p in res.paths] == [["CONV_2D", "DEPTHWISE_CONV_2D"]]
    base, new = measure(m, finish(m)), measure(m, finish(res.model))
    assert new.head < base.head


def test_budget_is_respected_with_ffmt():
    m = mobilenet_head(seed=3)
    res = search(m, max_overhead=5.0)
    over = 100.0 * (graph_macs(res.model.main) - graph_macs(m.main)) / graph_macs(m.main)
    assert over <= 5.0 + 1e-9
    assert all(p.mac_overhead_pct <= 5.0 + 1e-9 for p in res.pareto)
    measure(m, finish(res.model))


def test_float_partial_sums_need_a_budget():
    """The summing ADDs of a float partial-sum end are extra MACs: chosen only under a budget."""
    q = QNet(seed=5, dtype="FLOAT32")
    x = q.input([1, 24, 24, 4])
    c = q.conv2d(q.depthwise(q.conv2d(x, 32, kernel=(1, 1))), 8, kernel=(1, 1))
    m = q.output(q.pool(c, "AVERAGE", size=24, stride=24))
    assert search(m, max_overhead=0.0, allow_ffmt=False).paths == []
    res = search(m, max_overhead=5.0, allow_ffmt=False)
    assert [p.end for p in res.paths] == ["partial"] and 0 < res.paths[0].mac_overhead_pct <= 5.0
    base, new = measure(m, finish(m)), measure(m, finish(res.model))
    assert new.total < base.total


def test_pareto_front():
    pts = [ParetoPoint(100, 80, 0.0, 0), ParetoPoint(90, 70, 2.0, 1), ParetoPoint(95, 70, 3.0, 1),
           ParetoPoint(80, 60, 5.0, 2)]
    assert [p.total for p in pareto_front(pts)] == [100, 90, 80]
    assert [p.head for p in pareto_front(pts, "head")] == [80, 70, 60]
    pts.append(ParetoPoint(120, 50, 1.0, 1))  # a lower head for a higher total
    assert [p.head for p in pareto_front(pts, "head")] == [80, 50]
    assert [p.total for p in pareto_front(pts)] == [100, 90, 80]


def test_estimate_is_a_lower_bound_of_the_exact_one():
    m = mobilenet_head()
    cheap, exact = estimate(m), estimate(m, exact=True)
    assert cheap.head <= exact.head and cheap.tail == exact.tail


# -- the shared real models ------------------------------------------------------------------


@pytest.mark.parametrize("path", shared_params())
def test_shared_models(path):
    m = read_model(path)
    res = search(m, max_overhead=0.0)
    assert graph_macs(res.model.main) == graph_macs(m.main)
    base = measure(m, finish(m))
    new = measure(m, finish(res.model)) if res.paths else base
    assert new.total <= base.total, "never worse than reorder + plan alone (TFLM total)"
    if path.stem in TARGETS:
        head, total = TARGETS[path.stem]
        assert res.paths
        assert new.head <= head and new.total <= total, (new.head, new.total)


# -- the head objective ----------------------------------------------------------------------


def test_head_objective_trades_tail_for_head_within_the_total_cap():
    """``objective="head"`` accepts a larger total than the default search (more FDT parts, each
    costing tail), never more than reorder + plan alone, for a smaller head (here 6,144 B
    against 7,424 B)."""
    m = mobilenet_head(seed=6)
    by_total = search(m, max_overhead=10.0)
    by_head = search(m, max_overhead=10.0, objective="head")
    assert by_head.final.total <= by_head.baseline.total
    assert by_head.final.head < by_total.final.head and by_head.final.total > by_total.final.total
    new = measure(m, finish(by_head.model))
    base = measure(m, finish(m))
    assert new.total <= base.total and new.head < base.head
    with pytest.raises(ValueError, match="objective"):
        search(m, objective="arena")


def test_vww_head_objective_meets_the_arena_target():
    """MLPerf Tiny VWW at <= 30 % MAC overhead, optimising the head: TFLM measures a head of at
    most 40,000 B (73,728 B untiled; issue #11's target) and a total no larger than the input's
    as TFLM runs it (the head objective's cap), bit-exact.  The default objective (total) stops
    at FDT's 46,080 / 76,688 B: the spatial tiles' persistent tail costs more than their head saves."""
    import fdt_tflm
    from conftest import SHARED_MODELS
    vww = SHARED_MODELS / "mlperf_vww_mbv1_96_int8.tflite"
    if not vww.exists():
        pytest.skip(f"{vww} not found (shared models absent)")
    res = fdt_tflm.optimize(str(vww), max_overhead=30, objective="head", progress=False, samples=2)
    r = res.report
    assert res.verified and r["measured"] and r["objective"] == "head"
    assert r["original_arena_bytes"] == 73_728
    assert r["arena_bytes"] <= 40_000, r["arena_bytes"]  # measured 39,648
    assert r["total_arena_bytes"] <= r["original_total_arena_bytes"], r["total_arena_bytes"]  # 98,848 <= 103,680
    assert 0 < r["mac_overhead_pct"] <= 30
    assert any(p["kind"] == "FFMT" for p in r["paths"])
    assert "(objective: head)" in res.summary()


def test_radar_three_branches_reach_the_benchmarked_total():
    """The project's radar model (three parallel branches, each peaking alike): the lookahead
    splits all three, later rounds split again; TFLM measures <= 26,000 B total (25,648 B in
    the benchmark; reorder + plan alone: 39,024 B).  Pins the search against regressions in
    the order its rounds work on."""
    from conftest import PROJECT_MODELS
    m = read_model(PROJECT_MODELS / "radar.tflite")
    res = search(m, max_overhead=0.0)
    assert len(res.paths) >= 4 and graph_macs(res.model.main) == graph_macs(m.main)
    new = measure(m, finish(res.model))
    assert new.total <= 26_000 and new.head <= 15_000, (new.head, new.total)


def test_head_objective_caps_the_host_total_too():
    """The head objective's cap holds on the target's tail AND on the 64-bit host's, which the
    never-worse guard measures: a result within the Cortex-M4 cap but 64 B over on the host
    (person_detect once: 85,328 vs 85,264 B) would be thrown away by the guard."""
    from fdt_tflm.tflm_model import CORTEX_M4
    from fdt_tflm.tiling.search import Estimate, _Search
    m = read_model((PROJECT_MODELS / "kws.tflite").read_bytes())
    host, m4 = estimate(m, target=HOST), estimate(m, target=CORTEX_M4)
    assert m4.host_tail == host.tail > m4.tail  # both tails are computed, the host's is larger
    st = _Search(max_overhead=30.0, allow_ffmt=True, allow_custom_ops=False, parts=(2,), say=lambda s: None,
                 orig_macs=1, orig_instructions=1, objective="head", total_cap=1000, host_cap=1100)
    assert st.allowed(Estimate(500, 500, True, 600))
    assert not st.allowed(Estimate(500, 500, True, 601))  # within the target's cap, over the host's
    assert not st.allowed(Estimate(500, 501, True, 550))
