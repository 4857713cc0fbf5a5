"""Offset planning (heuristics + ILP) and the reorder/plan passes, proven against TFLM's measured head."""
from __future__ import annotations

import copy
import dataclasses
import random

import pytest

from fdt_tflm.tflm_model.target import HOST
from fdt_tflm.effort import effort
from fdt_tflm.errors import FdtError
from fdt_tflm.io import read_model, write_model
from fdt_tflm.ir.qnet import QNet
from fdt_tflm.memory import ilp
from fdt_tflm.memory.heuristics import best_heuristic
from fdt_tflm.memory.ilp import plan_offsets
from fdt_tflm.tflm_model.lifetimes import Interval, lifetimes, peak_live
from fdt_tflm.tflm_model.offline_plan import PlanError, find_overlap, read_plan, set_plan
from fdt_tflm.memory.passes import plan, reorder
from fdt_tflm.tflm_model.scratch import scratch_intervals
from fdt_tflm.tflm_model.head import predict_head
from fdt_tflm.verify import compare_models, make_inputs, run

from conftest import shared_params  # noqa: E402  (../shared/models, skipped with a reason when absent)


def random_intervals(seed: int, n: int = 14, scopes: int = 10) -> list[Interval]:
    r = random.Random(seed)
    out = []
    for i in range(n):
        a = r.randrange(scopes)
        b = min(scopes - 1, a + r.randrange(4))
        out.append(Interval(None, 16 * r.randrange(1, 20), a, b, i))
    return out


def radar_like(seed: int = 0):
    """Radar-gesture style: one input, three parallel conv branches (emitted breadth-first, as
    converters do), each pooled and flattened, merged by CONCATENATION and two dense layers."""
    q = QNet(seed)
    x = q.input([1, 32, 32, 2])
    ys = [q.conv2d(x, 16) for _ in range(3)]
    ys = [q.conv2d(y, 16) for y in ys]
    ys = [q.pool(y, "MAX", 2, 2) for y in ys]
    first = None
    outs = []
    for y in ys:
        z = q.conv2d(y, 8, stride=2, like=first)
        first = first or z
        outs.append(z)
    ys = [q.reshape(q.pool(z, "AVERAGE", 8, 8), [1, 8]) for z in outs]
    d = q.fully_connected(q.concat(ys, axis=-1), 16, act="RELU")
    return q.output(q.softmax(q.fully_connected(d, 4)))


@pytest.mark.parametrize("path", shared_params())
def test_shared_model_reorder_plan(path):
    m = read_model(path)
    original = path.read_bytes()
    r, sched = reorder(m)
    p, rep = plan(r)
    data = write_model(p)
    cmp = compare_models(m, original, data, n_samples=2)
    assert cmp.tflm.match, cmp.to_dict()
    assert cmp.ok, cmp.to_dict()
    assert cmp.tflm.b.head == rep.predicted_head
    assert cmp.tflm.b.head <= cmp.tflm.a.head
    assert rep.peak_live_bytes >= sched.peak
    if rep.optimal:
        assert rep.planned_bytes == rep.peak_live_bytes
    assert read_plan(read_model(data)) is not None
    if path.stem == "mlperf_vww_mbv1_96_int8":
        assert cmp.tflm.a.head == 73728
        assert cmp.tflm.b.head <= 55296


def test_radar_reorder_cuts_arena_by_40_percent():
    m = radar_like()
    original = write_model(m)
    r, sched = reorder(m)
    p, rep = plan(r)
    cmp = compare_models(m, original, write_model(p), n_samples=3)
    assert cmp.ok, cmp.to_dict()
    assert cmp.tflm.b.head == rep.predicted_head
    assert cmp.tflm.b.head <= 0.6 * cmp.tflm.a.head, (cmp.tflm.a.head, cmp.tflm.b.head)
    # the plan alone (no reorder) cannot get there: the stored order keeps three branches alive
    _, stored = plan(m)
    assert stored.peak_live_bytes > 0.6 * cmp.tflm.a.head


def test_plan_replaces_existing_plan_and_leaves_input_alone():
    m = radar_like(1)
    p1, _ = plan(m)
    assert read_plan(m) is None
    spread = {iv.index: 4096 * k for k, iv in enumerate(lifetimes(p1.main))}
    set_plan(p1, spread)
    p2, rep = plan(p1)
    assert read_plan(p1) == [spread.get(i, -1) for i in range(len(p1.main.tensors))]
    assert predict_head(p2).head == rep.predicted_head < predict_head(p1).head


def test_overlapping_plan_is_refused_before_writing(monkeypatch):
    """The proof lives with the plan (check_offline_plan) and the pipeline runs it before it
    writes: a plan pass that put every tensor at offset 0 makes optimize fail, nothing written."""
    from fdt_tflm.tflm_model.offline_plan import check_offline_plan
    import fdt_tflm
    import fdt_tflm.memory.passes as memory_passes
    m = radar_like()
    ivs = lifetimes(m.main)
    set_plan(m, {iv.index: 0 for iv in ivs})  # every tensor at offset 0: the conv in/outs collide
    with pytest.raises(PlanError):
        check_offline_plan(m)

    def colliding(model, **kw):
        out = copy.deepcopy(model)
        set_plan(out, {iv.index: 0 for iv in lifetimes(out.main)})
        return out, None
    monkeypatch.setattr(memory_passes, "plan", colliding)
    with pytest.raises(PlanError, match="overlapping"):
        fdt_tflm.optimize(write_model(radar_like()), passes="plan", progress=False, verify=False)


@pytest.mark.parametrize("seed", [0, 18, 22, 32])
def test_plan_offsets_sound_and_bounded(seed):
    ivs = random_intervals(seed)
    res = plan_offsets(ivs)
    assert len(res.offsets) == len(ivs)
    assert all(o % 16 == 0 and o >= 0 for o in res.offsets)
    assert find_overlap(list(zip(ivs, res.offsets))) is None
    assert res.arena == max(o + iv.size for o, iv in zip(res.offsets, ivs))
    assert res.lower_bound == peak_live(ivs) <= res.arena
    assert res.arena <= best_heuristic(ivs).arena
    if res.optimal:
        assert res.gap == 0.0


NO_LOCAL_SEARCH = dataclasses.replace(effort(), plan_moves=0)


def test_ilp_improves_on_heuristics_and_proves_optimum():
    """Seed 18: no one-pass heuristic reaches the live bound; the ILP does and says so."""
    ivs = random_intervals(18)
    heur = best_heuristic(ivs, moves=0)
    assert heur.arena > peak_live(ivs)
    res = plan_offsets(ivs, effort=NO_LOCAL_SEARCH)
    assert res.method.startswith("ilp-cbc")
    assert res.optimal and res.arena == peak_live(ivs) < heur.arena


def test_ilp_is_never_worse_than_the_heuristic(monkeypatch):
    """Even if the solver fails, the heuristic plan comes back (sound, not optimal)."""
    monkeypatch.setattr(ilp, "_solve_ilp", lambda *a, **k: None)
    ivs = random_intervals(18)
    res = plan_offsets(ivs, effort=NO_LOCAL_SEARCH)
    assert res.arena == best_heuristic(ivs, moves=0).arena and not res.optimal and res.gap > 0


def test_ilp_stops_on_its_node_budget_with_one_thread(monkeypatch):
    """The solver gets the effort's node limit and one thread (deterministic); the wall-clock
    limit is only the far-off watchdog.  Level 4 doubles the nodes."""
    import pulp
    seen: list[dict] = []
    real = pulp.PULP_CBC_CMD

    def spy(*args, **kw):
        seen.append(kw)
        return real(*args, **kw)
    monkeypatch.setattr(pulp, "PULP_CBC_CMD", spy)
    ivs = random_intervals(18)
    for level in (2, 4):
        plan_offsets(ivs, effort=dataclasses.replace(effort(level), plan_moves=0))
    assert [(kw["maxNodes"], kw["threads"], kw["timeLimit"]) for kw in seen] == \
        [(1000, 1, ilp.WATCHDOG_SECONDS), (2000, 1, ilp.WATCHDOG_SECONDS)]


def test_the_planner_takes_no_seconds():
    """Work budgets only: the old time_limit slot is gone, and a positional second argument
    is refused instead of being taken as some other option."""
    ivs = random_intervals(18)
    with pytest.raises(TypeError):
        plan_offsets(ivs, 0.001)
    assert plan_offsets(ivs).arena == peak_live(ivs)


def test_the_api_warns_on_the_deprecated_seconds():
    """optimize(time_limit=, search_budget=): keyword-only, a DeprecationWarning, no effect."""
    import fdt_tflm
    from conftest import PROJECT_MODELS
    data = (PROJECT_MODELS / "kws.tflite").read_bytes()
    with pytest.warns(DeprecationWarning, match="search_budget"):
        warned = fdt_tflm.optimize(data, search_budget=1, verify=False, progress=False)
    assert warned.data == fdt_tflm.optimize(data, verify=False, progress=False).data
    with pytest.raises(TypeError):
        fdt_tflm.optimize(data, None, 0.0, False, False, 5.0)  # the old positional time_limit slot


def test_shareable_pairs_may_sit_on_top_of_each_other():
    # a (int32 accumulator) and b (the next partial sum) are alive together but may share bytes
    a = Interval(None, 256, 1, 3, 0)
    b = Interval(None, 256, 2, 4, 1)
    c = Interval(None, 64, 0, 4, 2)
    plain = plan_offsets([a, b, c])
    shared = plan_offsets([a, b, c], shareable=[(1, 0)])
    assert plain.arena == 576 and shared.arena == 320
    assert shared.offsets[0] == shared.offsets[1]
    assert shared.optimal


def test_local_search_reaches_the_bound_the_one_pass_heuristics_miss():
    ivs = random_intervals(18)
    res = plan_offsets(ivs)
    assert res.optimal and res.arena == peak_live(ivs)
    assert plan_offsets(ivs).offsets == res.offsets, "deterministic"


def test_bad_arguments_are_fdt_errors():
    with pytest.raises(FdtError):
        plan_offsets([Interval(None, 10, 0, 0, 0)])
    with pytest.raises(FdtError):
        plan_offsets([Interval(None, 16, 0, 0, 0)], shareable=[(0, 5)])
    with pytest.raises(FdtError):
        ilp._solver(__import__("pulp"), "gurobi-please", 100)


def test_scratch_gap_is_reserved_and_tflm_agrees():
    """int8 MEAN over one axis asks for an int32 accumulator; the plan leaves room for it."""
    q = QNet(3)
    x = q.input([1, 32, 32, 16])
    y = q.conv2d(x, 16)
    m = q.output(q.mean(y, axes=(2,)))
    sc = scratch_intervals(m.main, HOST)
    assert sum(iv.size for iv in sc) >= 32 * 16 * 4
    p, rep = plan(m)
    r = run(write_model(p), make_inputs(m, 1))
    assert r.ok, r.error
    assert r.head == rep.predicted_head == rep.planned_bytes
    base = run(write_model(m), make_inputs(m, 1))
    assert base.head == predict_head(m, scratch=sc).head
    assert r.head <= base.head


def test_reorder_plan_is_deterministic():
    m = radar_like(2)
    outs = []
    for _ in range(2):
        r, _ = reorder(m)
        p, _ = plan(r)
        outs.append(write_model(p))
    assert outs[0] == outs[1]
