"""The Python API as a notebook uses it: optimize() -> Result with save, summary, JSON, HTML and plot."""
from __future__ import annotations

import json

import pytest
from conftest import PROJECT_MODELS

import fdt_tflm
from fdt_tflm.errors import FdtError, VerificationError
from fdt_tflm.io import read_model
from fdt_tflm.verify import compare_models, make_inputs, run

KWS = PROJECT_MODELS / "kws.tflite"
RADAR = PROJECT_MODELS / "radar.tflite"


@pytest.fixture(scope="module")
def radar_result():
    return fdt_tflm.optimize(str(RADAR), passes="reorder,plan", progress=False)


def test_result_reports_what_tflm_measures(radar_result):
    r = radar_result.report
    original = RADAR.read_bytes()
    cmp = compare_models(read_model(original), original, radar_result.data)
    assert cmp.ok
    assert r["verified"] is True and r["measured"] is True
    assert r["arena_bytes"] == cmp.tflm.b.head
    assert r["total_arena_bytes"] == cmp.tflm.b.total
    assert r["original_arena_bytes"] == cmp.tflm.a.head
    assert r["arena_bytes"] == r["predicted_arena_bytes"], "the planner model must predict TFLM exactly"
    assert r["arena_bytes"] <= r["original_arena_bytes"] * 0.6, "reordering the three branches saves >= 40 %"


def test_result_outputs(radar_result, tmp_path):
    res = radar_result
    out = tmp_path / "radar.fdt.tflite"
    rep = tmp_path / "radar.json"
    res.save(out, rep)
    assert out.read_bytes() == res.data
    assert json.loads(rep.read_text())["arena_bytes"] == res.report["arena_bytes"]
    assert json.loads(res.to_json()) == json.loads(rep.read_text())
    text = res.summary()
    assert "arena head" in text and f"{res.report['arena_bytes']:,}" in text
    assert "never worse than the input: head and total <= the input's (measured by TFLM)" in text
    assert "<table>" in res._repr_html_() and f"{res.report.arena_bytes:,}" in res._repr_html_()
    png = tmp_path / "plot.png"
    fig = res.plot(png)
    assert png.read_bytes()[:4] == b"\x89PNG" and len(fig.axes) >= 3
    assert f"{res.report.original_arena_bytes:,} -> {res.report.arena_bytes:,} B" in fig.get_suptitle()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [], "no temp file left"
    # no tile pass: no front to draw, no slowdown budget to mention (the guard still holds the
    # default 1 % on the target)
    assert res.report.pareto == [] and res.report.max_slowdown_pct == 1.0 and "slowdown budget" not in text
    assert f"predicted for {res.report.instructions_for}" in text and res.report.instructions_for.startswith("cortex-m4")
    front = res.plot_pareto()
    assert "no tiling search" in front.get_suptitle() and all(not ax.collections for ax in front.axes)


def test_optimize_accepts_bytes_and_ir_and_is_deterministic():
    data = RADAR.read_bytes()
    a = fdt_tflm.optimize(data, passes="reorder,plan", progress=False, verify=False)
    b = fdt_tflm.optimize(read_model(data), passes="reorder,plan", progress=False, verify=False)
    assert a.data == b.data, "same input must give a byte-identical model"
    assert a.report["verified"] is None and a.report["measured"] is False
    res = run(a.data, make_inputs(read_model(data), 1))
    assert res.ok and res.head == a.report["arena_bytes"]


def test_save_refuses_unverified_failure_and_input_overwrite(tmp_path, radar_result):
    bad = fdt_tflm.Result(radar_result.model, radar_result.data, radar_result.report, verified=False)
    with pytest.raises(VerificationError):
        bad.save(tmp_path / "x.tflite")
    assert not (tmp_path / "x.tflite").exists()
    src = tmp_path / "in.tflite"
    src.write_bytes(RADAR.read_bytes())
    res = fdt_tflm.optimize(str(src), passes="none", progress=False, verify=False)
    with pytest.raises(FdtError, match="overwrite"):
        res.save(src)
    assert src.read_bytes() == RADAR.read_bytes()


def test_optimize_refuses_a_model_whose_outputs_change(monkeypatch):
    """Break the writer's output on purpose: optimize must raise, never return a saveable result."""
    import fdt_tflm.pipeline as pipeline
    real_write = pipeline.write_model

    def corrupting_write(model, **kw):
        for t in model.main.tensors:  # flip the first weight tensor's bytes
            if t.is_constant and t.dtype == 9 and len(t.buffer.data) > 16:
                t.buffer.data = bytes((x ^ 0x55) for x in t.buffer.data)
                break
        return real_write(model, **kw)

    monkeypatch.setattr(pipeline, "write_model", corrupting_write)
    with pytest.raises(VerificationError):
        fdt_tflm.optimize(KWS.read_bytes(), passes="none", progress=False)


def test_default_pipeline_is_deterministic_on_a_real_model():
    from conftest import SHARED_MODELS
    vww = SHARED_MODELS / "mlperf_vww_mbv1_96_int8.tflite"
    if not vww.exists():
        pytest.skip(f"{vww} not found (shared models absent)")
    a = fdt_tflm.optimize(str(vww), progress=False, verify=False)
    b = fdt_tflm.optimize(vww.read_bytes(), progress=False, verify=False)
    assert a.report["paths"], "the search should split VWW"
    assert a.data == b.data
