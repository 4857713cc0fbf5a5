"""Determinism (issue #11): the same input gives the same bytes on any machine, at any load.

Work budgets (:mod:`fdt_tflm.effort`) decide every result, the clock none: ``optimize`` is run
in fresh processes under different ``PYTHONHASHSEED`` values and while two busy loops load
the CPU, and the scheduler and planner are run with a clock that jumps hours on every read.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from fdt_tflm.tflm_model.target import HOST
from fdt_tflm.effort import effort
from fdt_tflm.io import read_model
from fdt_tflm.memory.ilp import plan_offsets
from fdt_tflm.tflm_model.lifetimes import lifetimes, peak_live
from fdt_tflm.memory.scheduler import best_order
from fdt_tflm.tflm_model.scratch import scratch_bytes

from test_planner import random_intervals  # noqa: E402  (tests/ is on sys.path, as for conftest)
from test_scheduler import branchy, topo_orders  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "models"
SEEDS = (0, 1, 12345)
SHARED = REPO.parent / "shared" / "models"
CASES = {"kws": ("kws.tflite",), "radar": ("radar.tflite",),
         "radar-10pct": ("radar.tflite", "--max-overhead", "10"),
         # the head objective's spatial tilings: the cost view, forks, budgets and lookahead
         "resnet8-head-30": (str(SHARED / "mlperf_ic_resnet8_int8.tflite"), "--objective", "head",
                             "--max-overhead", "30")}


def untimed(report: object) -> object:
    """The report without its timing fields (``seconds``, ``*_seconds``): all else must repeat."""
    if isinstance(report, dict):
        return {k: untimed(v) for k, v in report.items() if k != "seconds" and not k.endswith("_seconds")}
    if isinstance(report, list):
        return [untimed(v) for v in report]
    return report


def optimize(tmp: Path, tag: str, args: tuple[str, ...], seed: int) -> tuple[bytes, dict]:
    """``python -m fdt_tflm optimize`` in a fresh process: (output bytes, untimed report)."""
    out, rep = tmp / f"{tag}-{seed}.tflite", tmp / f"{tag}-{seed}.json"
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONHASHSEED=str(seed))
    r = subprocess.run([sys.executable, "-m", "fdt_tflm", "optimize", str(MODELS / args[0]), *args[1:],
                        "-o", str(out), "--json", str(rep)], capture_output=True, text=True, env=env, timeout=1800)
    assert r.returncode == 0, r.stderr
    return out.read_bytes(), untimed(json.loads(rep.read_text()))


@contextmanager
def cpu_load(processes: int = 2) -> Iterator[None]:
    """Busy loops on every core of the test machine while the body runs."""
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(processes)]
    try:
        yield
    finally:
        for p in busy:
            p.kill()
            p.wait()


def assert_all_equal(runs: list[tuple[bytes, dict]]) -> None:
    data, report = runs[0]
    assert report["verified"] is True and report["arena_bytes"] <= report["original_arena_bytes"]
    for k, (other_data, other_report) in enumerate(runs[1:], 1):
        assert other_report == report, f"run {k}: the report differs"
        assert other_data == data, f"run {k}: the model bytes differ"


@pytest.mark.parametrize("case", list(CASES))
def test_optimize_is_byte_identical_across_hash_seeds_and_cpu_load(case, tmp_path):
    if not (MODELS / CASES[case][0]).exists():
        pytest.skip(f"{CASES[case][0]} not found (shared models absent)")
    runs = [optimize(tmp_path, case, CASES[case], seed) for seed in SEEDS]
    with cpu_load():
        runs.append(optimize(tmp_path, case + "-loaded", CASES[case], SEEDS[0]))
    assert_all_equal(runs)
    if "--objective" in CASES[case]:  # the case exists to exercise spatial tiling
        assert any(p["kind"] == "FFMT" for p in runs[0][1]["paths"]), runs[0][1]["paths"]


def test_effort_1_is_byte_identical_idle_and_under_load(tmp_path):
    args = (*CASES["radar"], "--effort", "1")
    runs = [optimize(tmp_path, "effort1", args, SEEDS[0])]
    with cpu_load():
        runs.append(optimize(tmp_path, "effort1-loaded", args, SEEDS[2]))
    assert_all_equal(runs)


# -- the clock decides nothing -------------------------------------------------------------
def jump_clock(mp: pytest.MonkeyPatch) -> None:
    """``time.perf_counter`` jumps three hours forward on every read: any deadline is long past."""
    real, reads = time.perf_counter, itertools.count(1)
    mp.setattr(time, "perf_counter", lambda: real() + 3 * 3600.0 * next(reads))


def test_best_order_ignores_the_clock(monkeypatch):
    """Branches with no one-op-bound shortcut (the DP runs): exact under any clock, and the
    optimum equals the brute force over all topological orders.  The radar model too."""
    sg = branchy(width=3, pool=False).main
    radar = read_model(MODELS / "radar.tflite").main
    best = min(peak_live(lifetimes(sg, o)) for o in topo_orders(sg))
    calm = [best_order(sg), best_order(radar, scratch=scratch_bytes(radar, HOST))]
    with monkeypatch.context() as mp:
        jump_clock(mp)
        rushed = [best_order(sg), best_order(radar, scratch=scratch_bytes(radar, HOST))]
    assert calm[0].optimal and calm[0].peak == best
    for a, b in zip(calm, rushed):
        assert [id(op) for op in a.order] == [id(op) for op in b.order]
        assert (a.peak, a.optimal, a.method) == (b.peak, b.optimal, b.method)


def test_plan_offsets_ignores_the_clock(monkeypatch):
    """Seed 18 of the planner tests: no one-pass heuristic reaches the live bound.  The local
    search does, and (without it) the ILP does; both the same under any clock."""
    ivs = random_intervals(18)
    ilp_only = dataclasses.replace(effort(), plan_moves=0)
    calm = [plan_offsets(ivs), plan_offsets(ivs, effort=ilp_only)]
    with monkeypatch.context() as mp:
        jump_clock(mp)
        rushed = [plan_offsets(ivs), plan_offsets(ivs, effort=ilp_only)]
    assert [p.method[:12] for p in calm] == ["local search", "ilp-cbc"]
    for a, b in zip(calm, rushed):
        assert a.arena == b.arena == peak_live(ivs) and a.optimal and b.optimal
        assert (a.offsets, a.method) == (b.offsets, b.method)


# -- the levels -----------------------------------------------------------------------------
def test_effort_levels_scale_the_default_budgets():
    fields = ("schedule_states", "plan_moves", "ilp_nodes", "search_evaluations", "exact_evaluations")
    budgets = {level: tuple(getattr(effort(level), f) for f in fields) for level in range(1, 6)}
    assert effort() == effort(2)
    assert budgets[2] == (200_000, 2_000, 1_000, 800, 100)
    assert budgets[1] == (100_000, 1_000, 500, 400, 50)
    assert budgets[4] == (400_000, 4_000, 2_000, 1_600, 200)
    assert budgets[5] == (500_000, 5_000, 2_500, 2_000, 250)


@pytest.mark.parametrize("bad", [0, 6, -1, 2.0, "2", True, None])
def test_bad_effort_levels_are_one_line_value_errors(bad):
    with pytest.raises(ValueError, match="^effort level must be an integer from 1 to 5, not ") as e:
        effort(bad)
    assert "\n" not in str(e.value)


def test_optimize_passes_the_effort_level_to_the_api(tmp_path, optimize_calls):
    from fdt_tflm.cli import main
    out = tmp_path / "o.tflite"
    levels = []
    for extra in ([], ["--effort", "4"]):
        assert main(["optimize", str(MODELS / "kws.tflite"), "-o", str(out), *extra]) == 2 and not out.exists()
        levels.append(optimize_calls["effort"])
    assert levels == [2, 4]


def test_bad_effort_in_the_api_fails_before_any_work():
    import fdt_tflm
    with pytest.raises(ValueError, match="effort level"):
        fdt_tflm.optimize(b"not even a model", effort=0)


def test_bad_effort_on_the_command_line_is_a_usage_error(tmp_path):
    out = tmp_path / "x.tflite"
    r = subprocess.run([sys.executable, "-m", "fdt_tflm", "optimize", str(MODELS / "kws.tflite"), "--effort", "6",
                        "-o", str(out)], capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)),
                       timeout=600)
    assert r.returncode == 2 and not out.exists()
    assert r.stderr.count("\n") == 1 and "--effort" in r.stderr, r.stderr
