"""Target-true optimisation (issue #16): one Target, chosen by ``cpu=`` / ``kernels=``
(``--cpu`` / ``--part`` / ``--kernels``), prices every decision: the search (tail, kernel
scratch, instructions), the planner (scratch), the guard, the report and the header.

Expected values come from the target model's own predictions for the written bytes
(``predict_arena``, ``predict_instructions``), recomputed here independently of the
pipeline, and from the device records (QEMU) where a claim is about run time.
"""
from __future__ import annotations

import argparse
import math
import re

import pytest

import fdt_tflm
from fdt_tflm.io import read_model
from fdt_tflm.pipeline import DEFAULT_SLOWDOWN_PCT, Options
from fdt_tflm.tflm_model import CORTEX_M4, predict_arena, target_for
from fdt_tflm.tflm_model.head import predict_head
from fdt_tflm.tflm_model.instructions import predict_instructions, table_label
from fdt_tflm.tflm_model.scratch import scratch_intervals

from conftest import PROJECT_MODELS

RADAR = PROJECT_MODELS / "radar.tflite"
CMSIS_M4 = target_for("cortex-m4", "cmsis-nn")


@pytest.fixture(scope="module")
def radar_cmsis() -> fdt_tflm.Result:
    return fdt_tflm.optimize(str(RADAR), kernels="cmsis-nn", progress=False, samples=2)


@pytest.fixture(scope="module")
def radar_reference() -> fdt_tflm.Result:
    return fdt_tflm.optimize(str(RADAR), progress=False, samples=2)


def test_one_options_field_carries_the_target():
    """The API's cpu= / kernels= become Options.target; the default is a Cortex-M4 with
    TFLM's reference kernels, and the default slowdown budget is FDT's 1 % plus the MAC budget."""
    assert Options().target == CORTEX_M4 and Options().slowdown_budget == DEFAULT_SLOWDOWN_PCT == 1.0
    assert Options(max_overhead=30.0).slowdown_budget == 31.0
    assert Options(max_slowdown=math.inf).slowdown_budget is None
    assert Options(max_slowdown=50.0, max_overhead=30.0).slowdown_budget == 50.0


def test_report_and_guard_speak_for_the_target(radar_cmsis):
    """Instructions, the target prediction and the guard's header check are all for the
    Cortex-M4 with CMSIS-NN: recomputed here from the input and written bytes."""
    r, original = radar_cmsis.report, read_model(RADAR.read_bytes())
    written = read_model(radar_cmsis.data)
    assert radar_cmsis.target == CMSIS_M4
    assert r.instructions_for == table_label(CMSIS_M4) and "cmsis-nn" in r.instructions_for
    assert r.original_instructions == predict_instructions(original, target=CMSIS_M4)
    assert r.instructions == predict_instructions(written, target=CMSIS_M4)
    assert (r.target.cpu, r.target.kernels) == ("cortex-m4", "cmsis-nn")
    assert r.target.arena_size == predict_arena(written, CMSIS_M4).header
    assert r.guard.input_target_arena_size == predict_arena(original, CMSIS_M4).header
    kept = r.guard.attempts[-1] if r.guard.fallback else r.guard.attempts[0]
    assert kept.target_arena_size == r.target.arena_size <= r.guard.input_target_arena_size
    assert r.max_slowdown_pct == 1.0 and r.instruction_overhead_pct <= 1.0


def test_the_plan_reserves_the_targets_scratch(radar_cmsis):
    """The offline plan leaves a gap for every CMSIS-NN scratch buffer (im2col of the 3x3
    convs): TFLM places them at run time into the plan's gaps without growing the head, so
    the head with the target's scratch equals the head without any."""
    written = read_model(radar_cmsis.data)
    scratch = scratch_intervals(written.main, CMSIS_M4)
    assert sum(iv.size for iv in scratch) > 0, "CMSIS-NN's 3x3 convs request im2col buffers"
    assert predict_head(written, scratch=scratch).head == predict_head(written).head


def test_cmsis_nn_changes_the_chosen_rewrite(radar_cmsis, radar_reference):
    """Splitting a CMSIS-NN 3x3 conv by output channels rebuilds its im2col columns once per
    part: the search for CMSIS-NN chooses other rewrites than for the reference kernels."""
    paths = lambda res: [(p.kind, tuple(p.ops), p.parts) for p in res.report.paths]  # noqa: E731
    assert paths(radar_cmsis) != paths(radar_reference)
    assert radar_reference.report.paths, "with reference kernels FDT is free and taken"


def test_the_header_is_sized_for_the_same_target(tmp_path):
    """``optimize --emit-c --kernels cmsis-nn``: the header is the CMSIS-NN prediction of the
    written model, and the report says the same target."""
    from fdt_tflm.cli import main
    out, rep, c_dir = tmp_path / "r.tflite", tmp_path / "r.json", tmp_path / "c"
    assert main(["optimize", str(RADAR), "-o", str(out), "--json", str(rep), "--emit-c", str(c_dir),
                 "--kernels", "cmsis-nn"]) == 0
    header = (c_dir / "fdt_arena.h").read_text()
    size = int(re.search(r"#define FDT_TENSOR_ARENA_SIZE (\d+)", header).group(1))
    assert size == predict_arena(read_model(out.read_bytes()), CMSIS_M4).header
    assert "cmsis-nn kernels" in header


def test_firmware_header_follows_the_optimisations_target():
    """firmware's header takes the Target the optimisation was priced for."""
    from fdt_tflm.firmware.cli import target_of
    args = argparse.Namespace(cpu=None, part=None, kernels="reference")
    res = argparse.Namespace(target=CMSIS_M4)
    assert target_of(res, args) == ("cortex-m4", "cmsis-nn")
    assert target_of(None, argparse.Namespace(cpu="cortex-m33", part=None, kernels="cmsis-nn")) == \
        ("cortex-m33", "cmsis-nn")


def test_max_slowdown_reaches_the_old_memory_on_cmsis_nn():
    """With the run time allowed (``--max-slowdown 50``), CMSIS-NN's radar gets the memory the
    reference-priced search found: a header of at most 22,128 B (the device-measured header of
    that output, tests/data/device_measurements.json before this change)."""
    res = fdt_tflm.optimize(str(RADAR), kernels="cmsis-nn", max_slowdown=50, progress=False, samples=2)
    assert res.report.target.arena_size <= 22_128
    assert res.report.instruction_overhead_pct <= 50


def test_no_rewrite_within_budget_is_said():
    """A model where every rewrite costs run time says so and keeps the free memory (the notes
    name the budget and the target)."""
    res = fdt_tflm.optimize(str(RADAR), kernels="cmsis-nn", max_slowdown=0, progress=False, samples=2)
    r = res.report
    if r.paths:
        pytest.skip("a zero-cost rewrite exists for this model on this target")
    assert any(n.startswith("no rewrite within the 0 % instruction budget on the cortex-m4, cmsis-nn")
               for n in r.search_notes)
    assert "no rewrite within" in res.summary()
    assert r.arena_bytes <= r.original_arena_bytes
