"""The search's central invariant (issue #19): a candidate priced as a *change* to the cost
view (``costview.price``) equals a full recompute of the rewritten model in the order the
view chose: the head (peak live bytes, kernel scratch included), the MACs and the predicted
instructions exactly, the persistent tail within a few bytes (alignment of the replay).

The full recompute uses the TFLM model's own functions on the whole candidate model; nothing
is taken from the cost view.  Candidates come from the search's own enumeration on shared
models (FDT and FFMT, every tiling of a few sub-chains) for the default target and for a
Cortex-M4 with CMSIS-NN.
"""
from __future__ import annotations

import pytest
from conftest import PROJECT_MODELS, SHARED_MODELS

from fdt_tflm.catalog.macs import graph_macs
from fdt_tflm.io import read_model
from fdt_tflm.ir.surgery import fork
from fdt_tflm.tflm_model import CORTEX_M4, target_for
from fdt_tflm.tflm_model.instructions import predict_instructions
from fdt_tflm.tflm_model.lifetimes import lifetimes, live_bytes_per_scope
from fdt_tflm.tflm_model.scratch import scratch_intervals
from fdt_tflm.tflm_model.tail import predict_tail
from fdt_tflm.tiling.costview import View, price
from fdt_tflm.tiling.search import _Search

# The tail: per-op tails are summed, while the replay aligns the running tail after each
# allocation (a 16-byte aligned op data after a 4-byte node may fill the node's padding),
# so the two may part by a few bytes: at most 16 B plus 2 B per op the rewrite adds.
PER_MODEL = 40  # candidates per model and target (test time)


def _candidates(model, max_overhead: float):
    st = _Search(max_overhead=max_overhead, allow_ffmt=True, allow_custom_ops=False, parts=(2, 3, 4),
                 say=lambda s: None, orig_macs=1, orig_instructions=1)
    direct, chains = st.candidates(model)
    spatial = [c for cs in list(chains.values())[:4] for c in cs]
    return (direct + spatial)[:PER_MODEL]


def _full(cand, order, target) -> tuple[int, int, int, int]:
    """(head, tail, MACs, instructions) of the whole candidate, recomputed."""
    m = fork(cand)
    m.main.operators = list(order)
    sg = m.main
    live = live_bytes_per_scope(lifetimes(sg) + scratch_intervals(sg, target), len(sg.operators) + 1)
    return max(live), predict_tail(m, target), graph_macs(sg), predict_instructions(m, target=target)


MODELS = [SHARED_MODELS / "mlperf_vww_mbv1_96_int8.tflite", SHARED_MODELS / "tflm_person_detect_int8.tflite",
          SHARED_MODELS / "mlperf_ic_resnet8_int8.tflite", PROJECT_MODELS / "radar.tflite"]


@pytest.mark.parametrize("target", [CORTEX_M4, target_for("cortex-m4", "cmsis-nn")], ids=lambda t: t.kernels)
@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.stem)
def test_price_equals_a_full_recompute(path, target):
    if not path.exists():
        pytest.skip(f"{path} not found (shared models absent)")
    model = read_model(path.read_bytes())
    view = View.of(model, target)
    checked = 0
    for c in _candidates(model, 30.0):
        try:
            cand = c.apply(model)
        except Exception:  # a tiling the rewrite refuses is skipped by the search too
            continue
        p = price(view, cand, instructions=True)
        head, tail, macs, instr = _full(cand, p.order, target)
        assert (p.head, p.macs, p.instructions) == (head, macs, instr), c.label(model.main)
        slack = 16 + 2 * max(0, len(cand.main.operators) - len(model.main.operators))
        assert abs(p.tail - tail) <= slack, (c.label(model.main), p.tail, tail)
        checked += 1
    assert checked >= 5
