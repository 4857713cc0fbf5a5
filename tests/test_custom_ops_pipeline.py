"""--allow-custom-ops end to end: exact int8 partial sums through the bundled FDT_PARTIAL kernel."""
from __future__ import annotations

import pytest
from conftest import PROJECT_MODELS, SHARED_MODELS

import fdt_tflm
from fdt_tflm.io import read_model
from fdt_tflm.catalog.macs import graph_macs
from fdt_tflm.tiling.partial import needs_custom_kernel
from fdt_tflm.verify.custom import verify_custom

MICRO = SHARED_MODELS / "tflm_micro_speech_int8.tflite"


@pytest.mark.skipif(not MICRO.exists(), reason=f"{MICRO} not found (shared models absent)")
def test_micro_speech_partial_sums_fit_in_3000_bytes():
    res = fdt_tflm.optimize(str(MICRO), allow_custom_ops=True, progress=False)
    r = res.report
    assert r["original_arena_bytes"] == 5968
    assert r["arena_bytes"] <= 3000
    assert r["verified"] is True and r["needs_custom_kernel"] is True
    assert r["macs"] == r["original_macs"] == graph_macs(read_model(MICRO.read_bytes()).main)
    assert needs_custom_kernel(res.model)
    ok, details = verify_custom(MICRO.read_bytes(), res.model, 3, seed=11)  # fresh inputs, independently
    assert ok, details.errors


def test_conv_flatten_dense_model_shrinks_by_60_percent():
    path = PROJECT_MODELS / "convdense.tflite"
    m = read_model(path.read_bytes())
    dense = next(op for op in m.main.operators if op.type == "FULLY_CONNECTED")
    assert dense.inputs[0].nbytes >= 8 * 1024 and dense.outputs[0].num_elements <= 64
    res = fdt_tflm.optimize(str(path), allow_custom_ops=True, progress=False)
    r = res.report
    assert r["verified"] is True and r["needs_custom_kernel"] is True
    assert r["arena_bytes"] <= 0.4 * r["original_arena_bytes"], r
    assert r["macs"] == r["original_macs"]


def test_without_the_flag_the_output_stays_stock():
    res = fdt_tflm.optimize(str(PROJECT_MODELS / "convdense.tflite"), progress=False)
    assert not res.report["needs_custom_kernel"]
    assert all(oc.custom_code is None for oc in res.model.operator_codes)
    assert res.report["measured"] is True  # stock output: TFLM measured it
