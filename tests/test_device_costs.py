"""The device instruction model (issue #16): fitted to per-op QEMU icount measurements
(tests/data/device_op_measurements.json, benchmarks/device_ops.py), scored on records the
fit never saw.

The shipped tables (fdt_tflm/tflm_model/device_costs.py) must be exactly the fit on the
training split, so the held-out error below is the shipped tables' own, not a refit's.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from fdt_tflm.tflm_model import instructions as ins
from fdt_tflm.tflm_model.device_costs import DEVICE_COSTS

REPO = Path(__file__).resolve().parents[1]
MAX_HELD_OUT_PP = 3.0  # predicted vs measured overhead, percentage points (the bound)


def _fit_module():
    if "fdt_device_fit" not in sys.modules:
        spec = importlib.util.spec_from_file_location("fdt_device_fit", REPO / "benchmarks" / "device_fit.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules["fdt_device_fit"] = mod
        spec.loader.exec_module(mod)
    return sys.modules["fdt_device_fit"]


@pytest.fixture(scope="module")
def fit():
    mod = _fit_module()
    records = mod.load()
    if not records:
        pytest.skip(f"no per-op device measurements in {mod.DATA}")
    train, held = mod.split(records)
    return mod, records, train, held


def test_records_are_consistent(fit):
    """Every record: per-op counts for every op, each op's instructions within the invoke's,
    and the per-op sum no more than the invoke (the rest is Invoke's own dispatch)."""
    mod, records, _, _ = fit
    for r in records:
        assert r["ops"], r["model"]
        assert all(set(o["counts"]) >= set(ins.FEATURES) - {"cols"} for o in r["ops"])
        total = sum(o["instructions"] for o in r["ops"])
        assert 0 < total <= r["instructions_per_inference"], r["model"]


def test_both_kernel_sets_are_measured_on_the_m4(fit):
    mod, records, train, held = fit
    configs = mod.configs(records)
    assert ("cortex-m4", "reference") in configs and ("cortex-m4", "cmsis-nn") in configs
    assert {r["model"] for r in held} <= mod.HOLDOUT and not any(r["model"] in mod.HOLDOUT for r in train)


def test_shipped_tables_are_the_training_fit(fit):
    """The tables in the package are the fit on the training split: the held-out records
    below were never seen by what the search uses."""
    mod, records, train, _ = fit
    fitted = mod.fit_all(train)
    assert set(fitted) == set(DEVICE_COSTS)
    for cfg, table in fitted.items():
        assert table == DEVICE_COSTS[cfg], cfg


def test_held_out_overheads_within_three_points(fit):
    """Predicted vs measured instruction overhead of every held-out rewritten model (original
    and rewrite both held out), for each kernel set: within 3 percentage points."""
    mod, records, train, held = fit
    errors = mod.overhead_errors(held, DEVICE_COSTS)
    assert {cfg for cfg, *_ in errors} >= {"cortex-m4/reference", "cortex-m4/cmsis-nn"}
    worst = max(errors, key=lambda e: abs(e[3] - e[2]))
    assert abs(worst[3] - worst[2]) <= MAX_HELD_OUT_PP, worst


def test_the_package_predicts_what_the_fit_predicts(fit):
    """predict_instructions on a model equals the fit's prediction from the recorded counts
    (same row keys, same counts): the recorded features are the package's."""
    mod, records, _, _ = fit
    from fdt_tflm.tflm_model import target_for
    models = {p.name: p for d in (REPO / "models", REPO.parent / "shared" / "models") if d.is_dir()
              for p in d.glob("*.tflite")}
    import hashlib
    from fdt_tflm.io import read_model
    checked = 0
    for r in records:
        p = models.get(r["model"])
        if r.get("mode") != "original" or p is None or hashlib.sha256(p.read_bytes()).hexdigest() != r["model_sha256"]:
            continue
        table = DEVICE_COSTS[(r["cpu"], r["kernels"])]
        got = ins.predict_instructions(read_model(p.read_bytes()), target=target_for(r["cpu"], r["kernels"]))
        assert got == mod.predicted(r, table), r["model"]
        checked += 1
    if not checked:
        pytest.skip("no original model of the records is available here")
