"""The command line as users and CI call it: exit codes, one-line errors, JSON, no clobbered files."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PROJECT_MODELS, REPO, measured_heads, shared_params

from fdt_tflm.io import read_model
from fdt_tflm.verify import compare_models


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "fdt_tflm", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)


@pytest.mark.parametrize("path", shared_params())
def test_inspect_json_reports_tflm_default_arena(path):
    r = cli("inspect", str(path), "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    expected = measured_heads()[path.stem][0]
    assert info["tflm_default_arena_bytes"] == expected  # LSTM included: its kernel scratch is modelled
    assert info["peak_live_bytes"] <= info["tflm_default_arena_bytes"]
    assert len(info["ops"]) == info["operators"] and all("macs" in op for op in info["ops"])


def test_inspect_table_and_plot(tmp_path):
    png = tmp_path / "plan.png"
    r = cli("inspect", str(PROJECT_MODELS / "kws.tflite"), "--plot", str(png))
    assert r.returncode == 0, r.stderr
    assert "DEPTHWISE_CONV_2D" in r.stdout and "TFLM default arena head" in r.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _bad_files(tmp_path: Path) -> dict[str, Path]:
    rnd = tmp_path / "random.tflite"
    rnd.write_bytes(os.urandom(3072))
    trunc = tmp_path / "truncated.tflite"
    trunc.write_bytes((PROJECT_MODELS / "kws.tflite").read_bytes()[:20000])
    return {"missing": tmp_path / "nope.tflite", "random": rnd, "truncated": trunc, "folder": tmp_path}


@pytest.mark.parametrize("kind", ["missing", "random", "truncated", "folder"])
@pytest.mark.parametrize("command", ["inspect", "optimize", "verify"])
def test_bad_input_is_one_line_and_exit_2(tmp_path, kind, command):
    bad = _bad_files(tmp_path)[kind]
    out = tmp_path / "out.tflite"
    args = {"inspect": ["inspect", str(bad)], "optimize": ["optimize", str(bad), "-o", str(out)],
            "verify": ["verify", str(PROJECT_MODELS / "kws.tflite"), str(bad)]}[command]
    r = cli(*args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fdt-tflm: error:"), r.stderr
    assert "Traceback" not in r.stderr
    assert not out.exists()


def test_usage_errors_exit_2():
    r = cli("optimize")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    r = cli("optimize", str(PROJECT_MODELS / "kws.tflite"), "--passes", "bogus")
    assert r.returncode == 2 and "unknown pass" in r.stderr
    r = cli("optimize", str(PROJECT_MODELS / "kws.tflite"), "--objective", "arena")
    assert r.returncode == 2 and "invalid choice" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_optimize_passes_search_options_to_the_api(tmp_path, optimize_calls):
    from fdt_tflm.cli import main
    out = tmp_path / "o.tflite"
    rc = main(["optimize", str(PROJECT_MODELS / "kws.tflite"), "-o", str(out), "--objective", "head",
               "--max-overhead", "30", "--kernels", "cmsis-nn"])
    assert rc == 2 and not out.exists()
    assert (optimize_calls["objective"], optimize_calls["max_overhead"], optimize_calls["kernels"]) \
        == ("head", 30.0, "cmsis-nn")


@pytest.mark.parametrize("flag", ["--time-limit", "--search-budget"])
def test_removed_time_options_are_refused_in_one_line_naming_effort(tmp_path, flag):
    """The seconds-based options decided nothing for several releases: refused (exit 2, one
    line naming --effort), nothing written, never silently accepted."""
    out = tmp_path / "o.tflite"
    r = cli("optimize", str(PROJECT_MODELS / "kws.tflite"), "-o", str(out), flag, "12")
    assert r.returncode == 2 and not out.exists()
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and flag in lines[0] and "--effort" in lines[0], r.stderr


@pytest.mark.parametrize("value", ["-1", "-0.5", "nan", "fast"])
def test_a_bad_slowdown_budget_is_one_line_and_exit_2(tmp_path, value):
    out = tmp_path / "o.tflite"
    r = cli("optimize", str(PROJECT_MODELS / "kws.tflite"), "-o", str(out), f"--max-slowdown={value}")
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "--max-slowdown" in lines[0] and "percentage" in lines[0], r.stderr
    assert not out.exists()


def test_optimize_passes_the_slowdown_budget_to_the_api(tmp_path, optimize_calls):
    from fdt_tflm.cli import main
    kws = str(PROJECT_MODELS / "kws.tflite")
    assert main(["optimize", kws, "-o", str(tmp_path / "o.tflite"), "--max-slowdown", "2.5"]) == 2
    assert optimize_calls["max_slowdown"] == 2.5
    assert main(["optimize", kws, "-o", str(tmp_path / "o.tflite")]) == 2
    assert optimize_calls["max_slowdown"] is None


def test_optimize_plot_pareto_writes_the_front(tmp_path):
    """radar, channel splits only: one point per rewrite count on the front, drawn as a PNG."""
    png, rep = tmp_path / "front.png", tmp_path / "r.json"
    r = cli("optimize", str(PROJECT_MODELS / "radar.tflite"), "-o", str(tmp_path / "o.tflite"), "--no-verify",
            "--max-slowdown", "0.3", "--plot-pareto", str(png), "--json", str(rep))
    assert r.returncode == 0, r.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    d = json.loads(rep.read_text())
    assert d["max_slowdown_pct"] == 0.3 and d["paths"] and d["instruction_overhead_pct"] <= 0.3
    assert "slowdown budget 0.3 %" in r.stdout
    r = cli("optimize", str(PROJECT_MODELS / "radar.tflite"), "-o", str(tmp_path / "p.tflite"),
            "--plot-pareto", str(tmp_path / "front.tflite"))
    assert r.returncode == 2 and "cannot draw a .tflite file" in r.stderr and not (tmp_path / "p.tflite").exists()


def test_optimize_never_overwrites_the_input(tmp_path):
    model = tmp_path / "kws.tflite"
    model.write_bytes((PROJECT_MODELS / "kws.tflite").read_bytes())
    before = model.read_bytes()
    r = cli("optimize", str(model), "-o", str(model), "--passes", "none")
    assert r.returncode == 2 and "overwrite" in r.stderr
    link = tmp_path / "link.tflite"  # the input under another name
    link.symlink_to(model)
    r = cli("optimize", str(model), "-o", str(link), "--passes", "none")
    assert r.returncode == 2 and "overwrite" in r.stderr
    assert model.read_bytes() == before and link.is_symlink()


def test_optimize_leaves_no_temp_files(tmp_path):
    """Outputs go through temp files beside them: after a write, and after a write that fails
    once the model's temp file exists (the --json path, staged after the model, is a folder),
    only the files named on the command line remain, and nothing of the failed run."""
    model = tmp_path / "kws.tflite"
    model.write_bytes((PROJECT_MODELS / "kws.tflite").read_bytes())
    r = cli("optimize", str(model), "-o", str(tmp_path / "out.tflite"), "--passes", "none",
            "--json", str(tmp_path / "report.json"))
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kws.tflite", "out.tflite", "report.json"]
    folder = tmp_path / "taken"
    folder.mkdir()
    (folder / "keep").write_bytes(b"x")
    r = cli("optimize", str(model), "-o", str(tmp_path / "out2.tflite"), "--passes", "none", "--json", str(folder))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kws.tflite", "out.tflite", "report.json", "taken"]
    assert [p.name for p in folder.iterdir()] == ["keep"]


def test_optimize_passes_none_roundtrip_and_json_report(tmp_path):
    out = tmp_path / "kws.out.tflite"
    rep = tmp_path / "report.json"
    r = cli("optimize", str(PROJECT_MODELS / "kws.tflite"), "-o", str(out), "--passes", "none", "--json", str(rep))
    assert r.returncode == 0, r.stderr
    report = json.loads(rep.read_text())
    assert report["verified"] is True and report["passes"] == []
    original = (PROJECT_MODELS / "kws.tflite").read_bytes()
    cmp = compare_models(read_model(original), original, out.read_bytes())
    assert cmp.ok and cmp.tflm.b.head == report["arena_bytes"] == report["original_arena_bytes"]


def test_verify_command_prints_both_arenas(tmp_path):
    """Identical outputs: radar against its reorder + plan rewrite (other bytes, other arena,
    same function); the arenas printed are TFLM's own, measured here independently."""
    from fdt_tflm.memory.passes import plan, reorder
    from fdt_tflm.io import write_model
    from fdt_tflm.verify import make_inputs, run
    a = PROJECT_MODELS / "radar.tflite"
    m, _ = reorder(read_model(a.read_bytes()))
    m, _ = plan(m)
    b = tmp_path / "radar.planned.tflite"
    b.write_bytes(write_model(m))
    assert b.read_bytes() != a.read_bytes()
    x = make_inputs(read_model(a.read_bytes()), 1)
    ra, rb = run(a.read_bytes(), x), run(b.read_bytes(), x)
    assert ra.ok and rb.ok and rb.head < ra.head
    r = cli("verify", str(a), str(b))
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("outputs identical") == 2, r.stdout  # TFLM and LiteRT
    assert f"A: arena head {ra.head:,} B, tail {ra.tail:,} B" in r.stdout
    assert f"B: arena head {rb.head:,} B, tail {rb.tail:,} B" in r.stdout


def test_verify_command_reports_different_values(tmp_path):
    """Outputs differ: the same KWS graph (same shapes, same ops, same arena) with one weight
    of the first conv changed (-7 -> 127) through the IR; TFLM's outputs differ."""
    from fdt_tflm.io import write_model
    from fdt_tflm.verify import make_inputs, run
    a = PROJECT_MODELS / "kws.tflite"
    m = read_model(a.read_bytes())
    w = m.main.operators[0].inputs[1]
    assert m.main.operators[0].type == "CONV_2D" and w.buffer.data[0] == (-7) & 0xFF
    w.buffer.data = bytes([127]) + w.buffer.data[1:]
    b = tmp_path / "kws.changed.tflite"
    b.write_bytes(write_model(m))
    x = make_inputs(read_model(a.read_bytes()), 3)
    ra, rb = run(a.read_bytes(), x), run(b.read_bytes(), x)
    assert ra.ok and rb.ok and (ra.head, ra.tail) == (rb.head, rb.tail)
    assert any((oa != ob).any() for sa, sb in zip(ra.outputs, rb.outputs) for oa, ob in zip(sa, sb))
    r = cli("verify", str(a), str(b), "--json")
    assert r.returncode == 1, r.stderr
    rep = json.loads(r.stdout)
    assert rep["ok"] is False and rep["tflm"]["match"] is False and rep["tflm"]["max_abs_diff"] > 0
    r = cli("verify", str(a), str(b))
    assert r.returncode == 1 and "OUTPUTS DIFFER" in r.stdout


def test_hybrid_and_multi_subgraph_models_are_refused(tmp_path):
    from test_hardening import hybrid_model, multi_subgraph_model  # the bad-input builders, shared
    hybrid = tmp_path / "hybrid.tflite"
    hybrid.write_bytes(hybrid_model())
    r = cli("optimize", str(hybrid), "-o", str(tmp_path / "h.out.tflite"))
    assert r.returncode == 2 and "hybrid" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    multi = tmp_path / "multi.tflite"
    multi.write_bytes(multi_subgraph_model())
    r = cli("optimize", str(multi), "-o", str(tmp_path / "m.out.tflite"), "--passes", "reorder,plan")
    assert r.returncode == 2 and "several subgraphs" in r.stderr


def test_a_model_tflm_cannot_run_is_bad_input(tmp_path):
    """TFLM has no RELU_N1_TO_1 kernel: refused before any pass, one line, exit 2, nothing written."""
    from fdt_tflm.io import write_model
    from fdt_tflm.ir.qnet import QNet
    n = QNet(seed=5)
    m = n.output(n.unary(n.input([1, 8, 8, 4]), "RELU_N1_TO_1"))
    src = tmp_path / "relun1.tflite"
    src.write_bytes(write_model(m))
    out = tmp_path / "out.tflite"
    r = cli("optimize", str(src), "-o", str(out))
    assert r.returncode == 2 and "TFLM cannot run the input model" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not out.exists()
