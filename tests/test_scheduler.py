"""The operator scheduler: exact peak-minimising orders, checked by brute force and by TFLM itself."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from fdt_tflm.tflm_model.target import HOST
from fdt_tflm.effort import effort
from fdt_tflm.io import read_model, write_model
from fdt_tflm.ir.graph import Subgraph
from fdt_tflm.ir.qnet import QNet
from fdt_tflm.memory import scheduler
from fdt_tflm.tflm_model.lifetimes import lifetimes, peak_live
from fdt_tflm.memory.passes import reorder
from fdt_tflm.memory.scheduler import best_order
from fdt_tflm.tflm_model.scratch import scratch_bytes
from fdt_tflm.tflm_model.head import predict_head
from fdt_tflm.verify import compare_models, run, make_inputs

SHARED = Path(__file__).resolve().parents[2] / "shared" / "models"


def branchy(seed: int = 0, width: int = 3, breadth_first: bool = True, pool: bool = True):
    """``width`` conv branches of different sizes on one input, merged by CONCATENATION + dense."""
    q = QNet(seed)
    x = q.input([1, 16, 16, 2])
    chans = [4, 12, 8, 6, 10][:width]
    steps = [
        lambda y, c: q.conv2d(y, c),
        lambda y, c: q.pool(y, "MAX", 2, 2),
        lambda y, c: q.conv2d(y, 4, stride=2, like=None),
    ]
    ys = [x] * width
    if not pool:
        steps[1] = lambda y, c: y
    if breadth_first:
        for k, step in enumerate(steps[:2]):
            ys = [step(y, c) for y, c in zip(ys, chans)]
    else:
        ys = [steps[1](steps[0](y, c), c) for y, c in zip(ys, chans)]
    first = None
    outs = []
    for y in ys:
        z = q.conv2d(y, 4, stride=2, like=first)
        first = first or z
        outs.append(z)
    flat = [q.reshape(z, [1, z.num_elements]) for z in outs]
    c = q.concat(flat, axis=-1)
    return q.output(q.fully_connected(c, 5))


def topo_orders(sg: Subgraph):
    """Every topological order (brute force, for small graphs only)."""
    ops = list(sg.operators)
    prod = {id(t): op for op in ops for t in op.outputs}
    deps = {id(op): {id(prod[id(t)]) for t in op.inputs if t is not None and id(t) in prod} for op in ops}

    def rec(done: list, left: list):
        if not left:
            yield list(done)
            return
        ids = {id(o) for o in done}
        for i, op in enumerate(left):
            if deps[id(op)] <= ids:
                done.append(op)
                yield from rec(done, left[:i] + left[i + 1:])
                done.pop()

    yield from rec([], ops)


@pytest.mark.parametrize("width,pool", [(2, True), (3, False)])
def test_dp_matches_brute_force(width, pool):
    m = branchy(width=width, pool=pool)
    sg = m.main
    best = min(peak_live(lifetimes(sg, o)) for o in topo_orders(sg))
    s = best_order(sg)
    assert s.optimal
    assert s.peak == best == peak_live(lifetimes(sg, s.order))
    assert s.peak < peak_live(lifetimes(sg)), "breadth-first order is not optimal for branches"
    assert sorted(map(id, s.order)) == sorted(map(id, sg.operators))


def test_chain_keeps_stored_order_and_is_deterministic():
    q = QNet(1)
    x = q.input([1, 8, 8, 3])
    y = q.depthwise(q.conv2d(x, 8), act="RELU6")
    m = q.output(q.softmax(q.fully_connected(q.reshape(y, [1, 512]), 4)))
    s = best_order(m.main)
    assert s.order == list(m.main.operators) and s.optimal
    a, b = best_order(branchy().main), best_order(branchy().main)
    assert [o.outputs[0].name for o in a.order] == [o.outputs[0].name for o in b.order]


def test_never_worse_than_stored_order():
    """When the stored order is already optimal (brute force over all 70 orders), the
    scheduler keeps it, op for op, even where its own search would pick another optimal order.
    The graph is no chain and its stored peak is above the per-op bound, so the search runs."""
    sg = branchy(width=2).main
    found = best_order(sg).order
    orders = list(topo_orders(sg))
    best = min(peak_live(lifetimes(sg, o)) for o in orders)
    optimal = [o for o in orders if peak_live(lifetimes(sg, o)) == best]
    assert len(optimal) > 1
    other = next(o for o in optimal if o != found)  # optimal, but not what the search finds
    m = branchy(width=2)
    pos = {id(op): i for i, op in enumerate(sg.operators)}
    m.main.operators = [m.main.operators[pos[id(op)]] for op in other]
    assert best > scheduler.op_bound(m.main) and not scheduler._is_chain(m.main)
    s = best_order(m.main)
    assert s.peak == best and s.optimal
    assert s.order == list(m.main.operators), s.method
    assert s.method.startswith("stored")


def test_beam_fallback_is_valid_and_no_worse(monkeypatch):
    monkeypatch.setattr(scheduler, "MAX_LAYER_STATES", 2)
    monkeypatch.setattr(scheduler, "BEAM_WIDTH", 2)
    m = branchy(width=3)
    s = best_order(m.main)
    assert s.peak <= peak_live(lifetimes(m.main))
    seen: set[int] = set()
    prod = {id(t): op for op in m.main.operators for t in op.outputs}
    for op in s.order:  # topological
        for t in op.inputs:
            if t is not None and id(t) in prod:
                assert id(prod[id(t)]) in seen
        seen.add(id(op))


def test_state_budget_bounds_the_search():
    """One state of budget: the quick beam still runs, then every DP layer keeps one state (a
    greedy finish).  The order stays valid and no worse than the stored one, but no longer
    claims optimality (only the brute force, or the full budget, can tell it is)."""
    sg = branchy(width=3, pool=False).main
    best = min(peak_live(lifetimes(sg, o)) for o in topo_orders(sg))
    stored = peak_live(lifetimes(sg))
    full = best_order(sg)
    starved = best_order(sg, effort=dataclasses.replace(effort(), schedule_states=1))
    assert full.optimal and full.peak == best < stored
    assert not starved.optimal and best <= starved.peak <= stored
    assert sorted(map(id, starved.order)) == sorted(map(id, sg.operators))
    assert best_order(sg, effort=effort(1)).peak == best


def test_scratch_counts_at_its_op():
    q = QNet(2)
    x = q.input([1, 16, 16, 8])
    a = q.mean(q.conv2d(x, 8), axes=(2,))
    b = q.mean(q.conv2d(x, 8), axes=(2,))
    m = q.output(q.add(a, b))
    sc = scratch_bytes(m.main, HOST)
    assert sc, "int8 MEAN requests an int32 accumulator"
    s = best_order(m.main, scratch=sc)
    plain = best_order(m.main)
    assert s.peak >= plain.peak
    assert s.peak == scheduler._peak_of(m.main, s.order, sc)


def test_reorder_pass_runs_bit_exact_in_tflm():
    m = branchy(width=3)
    before = write_model(m)
    r, sched = reorder(m)
    assert [op.outputs[0].name for op in m.main.operators] != [op.outputs[0].name for op in r.main.operators]
    assert peak_live(lifetimes(m.main)) > sched.peak, "input model must not be mutated"
    after = write_model(r)
    cmp = compare_models(m, before, after, n_samples=3)
    assert cmp.ok, cmp.to_dict()
    assert cmp.tflm.b.head == predict_head(r).head
    assert cmp.tflm.b.head < cmp.tflm.a.head


def test_shared_models_orders_are_valid():
    paths = sorted(SHARED.glob("*.tflite")) if SHARED.is_dir() else []
    if not paths:
        pytest.skip(f"{SHARED} not found (shared models absent)")
    for p in paths:
        m = read_model(p)
        s = best_order(m.main, scratch=scratch_bytes(m.main, HOST))
        assert s.optimal, p.name
        assert s.peak <= scheduler._peak_of(m.main, list(m.main.operators), scratch_bytes(m.main, HOST))


def test_lstm_scratch_matches_tflm_head():
    p = SHARED / "tflm_micro_speech_lstm_int8.tflite"
    if not p.exists():
        pytest.skip(f"{p} not found (shared models absent)")
    m = read_model(p)
    r = run(p.read_bytes(), make_inputs(m, 1))
    from fdt_tflm.tflm_model.scratch import scratch_intervals
    assert predict_head(m, scratch=scratch_intervals(m.main, HOST)).head == r.head
    assert predict_head(m).head < r.head


def test_beams_that_prefer_freed_memory_schedule_tile_graphs(monkeypatch):
    """VWW's first block in 3x3 FFMT tiles: nine independent chains that share the big graph
    input.  A beam that keeps only the lowest peaks so far holds the input too long; the slack
    beams free it early.  Checked against the same beams without slack (BEAM_SLACK_OUTPUTS =
    (0,)): both the quick beam and the full scheduler must be strictly better with slack, no
    worse than the stored tile-by-tile order and no better than the per-op lower bound.  Both
    results are valid topological orders, and the quick one is deterministic."""
    from fdt_tflm.tiling.ffmt import apply_ffmt
    p = SHARED / "mlperf_vww_mbv1_96_int8.tflite"
    if not p.exists():
        pytest.skip(f"{p} not found (shared models absent)")
    sg = apply_ffmt(read_model(p), [0, 1, 2, 3], (3, 3)).main
    scr = scratch_bytes(sg, HOST)
    stored = scheduler._peak_of(sg, list(sg.operators), scr)
    bound = scheduler.op_bound(sg, scr)
    quick = scheduler.quick_order(sg, scr)
    assert quick == scheduler.quick_order(sg, scr)
    assert sorted(map(id, quick)) == sorted(map(id, sg.operators))
    s = best_order(sg, scratch=scr)
    done: set[int] = set()
    produced = {id(t) for op in sg.operators for t in op.outputs}
    for op in s.order:  # every input is produced before it is read
        assert all(t is None or id(t) not in produced or id(t) in done for t in op.inputs)
        done.update(id(t) for t in op.outputs)
    with monkeypatch.context() as mp:
        mp.setattr(scheduler, "BEAM_SLACK_OUTPUTS", (0.0,))
        quick0 = scheduler._peak_of(sg, scheduler.quick_order(sg, scr), scr)
        full0 = best_order(sg, scratch=scr).peak
    quick_peak = scheduler._peak_of(sg, quick, scr)
    assert bound <= quick_peak < quick0 <= stored, (quick_peak, quick0, stored)  # 41,888 < 42,736 <= 43,792
    assert bound <= s.peak < full0 and s.peak <= quick_peak, (s.peak, full0)  # 40,960 < 41,744
