"""``max_slowdown``: a budget of predicted instructions beside the MAC budget (issue #11).

MLPerf Tiny ResNet-8 under the head objective at 30 % MACs, priced for the default target (a
Cortex-M4 with reference kernels): within the default budget the search tiles spatially at a
predicted +5.67 % instructions per invoke; with a 5 % budget it must stay within 5 % (and
still tiles, more finely: +3.90 %).  The overheads are recomputed here from the written bytes with the instruction
model alone (``predict_instructions``), the outputs and arena checked in TFLM.
"""
from __future__ import annotations

import dataclasses
import json

import jsonschema
import pytest
from conftest import SHARED_MODELS

import fdt_tflm
from fdt_tflm.tflm_model import CORTEX_M4
from fdt_tflm.tflm_model.instructions import predict_instructions
from fdt_tflm.errors import FdtError
from fdt_tflm.io import read_model
from fdt_tflm.report import load_schema
from fdt_tflm.verify import compare_models

RESNET8 = SHARED_MODELS / "mlperf_ic_resnet8_int8.tflite"
BUDGET = 5.0
SEARCH = dict(objective="head", max_overhead=30.0, progress=False)

pytestmark = pytest.mark.skipif(not RESNET8.exists(), reason=f"{RESNET8} not found (shared models absent)")


def overhead_pct(original: bytes, written: bytes) -> float:
    """Predicted instruction overhead of ``written`` over ``original``, from their bytes."""
    before, after = (predict_instructions(read_model(m), target=CORTEX_M4) for m in (original, written))
    return (after - before) / before * 100


@pytest.fixture(scope="module")
def free() -> fdt_tflm.Result:
    """No slowdown budget (verification off: only its predicted instructions matter here)."""
    return fdt_tflm.optimize(str(RESNET8), verify=False, **SEARCH)


@pytest.fixture(scope="module")
def bound() -> fdt_tflm.Result:
    return fdt_tflm.optimize(str(RESNET8), max_slowdown=BUDGET, samples=2, **SEARCH)


def test_the_budget_binds_and_holds(free, bound):
    original = RESNET8.read_bytes()
    assert any(p.kind == "FFMT" for p in free.report.paths), "unconstrained, the search tiles spatially"
    assert overhead_pct(original, free.data) > BUDGET, "the budget must exclude the unconstrained result"
    assert bound.report.paths, "within the budget the search still finds a rewrite"
    assert overhead_pct(original, bound.data) <= BUDGET
    assert bound.data != free.data


def test_the_report_agrees_with_an_independent_recount(bound):
    r = bound.report
    original = RESNET8.read_bytes()
    assert r.max_slowdown_pct == BUDGET and r.max_overhead_pct == 30.0
    assert r.instruction_overhead_pct == round(overhead_pct(original, bound.data), 3)
    assert (r.original_instructions, r.instructions) == (predict_instructions(read_model(original), target=CORTEX_M4),
                                                         predict_instructions(read_model(bound.data), target=CORTEX_M4))
    assert r.paths[-1].instruction_overhead_pct == pytest.approx(r.instruction_overhead_pct, abs=0.01)
    assert all(p.instruction_overhead_pct <= BUDGET for p in r.paths)
    assert "slowdown budget 5 %" in bound.summary()


def test_the_bounded_result_runs_in_tflm(bound):
    """Outputs bit-exact in TFLM, head measured by TFLM below the input's."""
    r = bound.report
    assert r.verified is True and r.verified_by == "tflm" and r.guard.fallback is None
    original = RESNET8.read_bytes()
    cmp = compare_models(read_model(original), original, bound.data, n_samples=2, litert=False)
    assert cmp.ok and cmp.tflm.b.head == r.arena_bytes < cmp.tflm.a.head == r.original_arena_bytes


def test_the_report_validates_with_the_new_fields(bound):
    schema = load_schema()
    d = json.loads(bound.to_json())
    jsonschema.validate(d, schema)
    assert d["max_slowdown_pct"] == BUDGET
    assert all("instruction_overhead_pct" in p for p in d["paths"] + d["pareto"])
    unset = dataclasses.replace(bound.report, max_slowdown_pct=None).to_dict()
    jsonschema.validate(unset, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(dataclasses.replace(bound.report, max_slowdown_pct=-1.0).to_dict(), schema)
    missing = {k: v for k, v in d.items() if k != "max_slowdown_pct"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(missing, schema)


def test_the_pareto_front_is_three_dimensional(bound):
    """No point of the front is beaten in all of head, MACs and instructions by another."""
    pts = [(p.head, p.mac_overhead_pct, p.instruction_overhead_pct) for p in bound.report.pareto]
    assert len(pts) >= 2
    for i, p in enumerate(pts):
        assert not any(all(a <= b for a, b in zip(q, p)) and q != p for j, q in enumerate(pts) if j != i)


def test_plot_pareto_draws_every_point(bound, tmp_path):
    r = bound.report
    png = tmp_path / "front.png"
    fig = bound.plot_pareto(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["front.png"], "no temp file left beside it"
    assert len(fig.axes) == 2
    for ax, key in zip(fig.axes, ("mac_overhead_pct", "instruction_overhead_pct")):
        front = _points(ax, "pareto")
        assert front == [(getattr(p, key), p.head) for p in r.pareto]
        last = r.paths[-1]
        assert _points(ax, "chosen") == [(getattr(last, key), _chosen_head(r))]
    budgets = [[line.get_xdata()[0] for line in ax.get_lines()] for ax in fig.axes]
    assert budgets == [[30.0], [BUDGET]]


def _chosen_head(r) -> int:
    """The head of the front point the search ended on (as many rewrites, its overheads)."""
    last = r.paths[-1]
    (head,) = [p.head for p in r.pareto if p.n_paths == len(r.paths) and p.total == last.total_after]
    return head


def _points(ax, gid: str) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for c in ax.collections if c.get_gid() == gid for x, y in c.get_offsets()]


def test_plot_pareto_without_a_front_and_never_over_the_input(bound, tmp_path):
    empty = dataclasses.replace(bound, report=dataclasses.replace(bound.report, paths=[], pareto=[]))
    fig = empty.plot_pareto()
    assert all(_points(ax, "pareto") == [] and _points(ax, "chosen") == [] for ax in fig.axes)
    assert "no tiling search" in fig.get_suptitle()
    src = tmp_path / "in.png"  # an input that happens to have a plot's name
    src.write_bytes(b"model")
    with pytest.raises(FdtError, match="overwrite"):
        dataclasses.replace(bound, source_path=str(src)).plot_pareto(src)
    with pytest.raises(FdtError, match="cannot draw a .tflite file"):
        bound.plot_pareto(tmp_path / "front.tflite")
    assert src.read_bytes() == b"model" and [p.name for p in tmp_path.iterdir()] == ["in.png"]


def test_a_negative_budget_is_refused_before_any_work():
    with pytest.raises(ValueError, match="max_slowdown"):
        fdt_tflm.optimize(b"not a model", max_slowdown=-1.0)
    with pytest.raises(ValueError, match="max_slowdown"):
        fdt_tflm.optimize(b"not a model", max_slowdown=float("nan"))
