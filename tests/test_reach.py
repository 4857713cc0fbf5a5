"""Reach (#17): FDT inside spatial tiles, other exporters' MobileNetV2 form, and the head
objective never behind the default.  Oracles: TFLM (bit-exact outputs, measured arenas), the
default run's measured head, and counts by hand."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from fdt_tflm import optimize
from fdt_tflm.io import write_model
from fdt_tflm.ir.graph import Model
from fdt_tflm.ir.qnet import QNet
from fdt_tflm.memory import ilp
from fdt_tflm.tflm_model.lifetimes import lifetimes, peak_live
from fdt_tflm.tiling.ffmt import apply_ffmt, ffmt_candidates
from fdt_tflm.tiling.paths import candidate_paths
from fdt_tflm.verify import compare_models

from conftest import PROJECT_MODELS, SHARED_MODELS

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "models"))
import build_models  # noqa: E402  (the project's model builder)

SLOW = os.environ.get("FDT_SLOW_TESTS") == "1"


def inverted_residual_net(separate_relu6: bool) -> Model:
    """Stem conv -> expand (x6) -> depthwise -> project, on 24x24: an MBV2 stem in small,
    ReLU6 fused (Keras) or as separate ops (other exporters)."""
    q = QNet(seed=11, converter_like=True)
    act = "NONE" if separate_relu6 else "RELU6"

    def relu6(t):
        return q.unary(t, "RELU6") if separate_relu6 else t
    x = q.input([1, 24, 24, 3], scale=2 / 255, zp=-1)
    y = relu6(q.conv2d(x, 8, (3, 3), stride=2, act=act))       # 12x12x8
    y = relu6(q.conv2d(y, 48, (1, 1), act=act))                 # expand: 12x12x48
    y = relu6(q.depthwise(y, (3, 3), act=act))
    y = q.conv2d(y, 8, (1, 1), act="NONE")                       # project
    return q.output(y)


@pytest.mark.parametrize("separate", [False, True], ids=["fused-relu6", "separate-relu6"])
def test_fdt_inside_every_tile_is_exact_and_lowers_the_tile_peak(separate):
    """2x2 tiles, and each tile's expand -> depthwise path in 2 channel parts joined before the
    projection: TFLM and LiteRT bit-exact; the 48-channel maps never exist whole in a tile (the
    largest planned buffer of the split model is below the plain tiling's); same MACs."""
    m = inverted_residual_net(separate)
    path = list(range(len(m.main.operators)))
    plain = apply_ffmt(m, path, (2, 2))
    split = apply_ffmt(m, path, (2, 2), inner_parts=2)
    cmp = compare_models(m, write_model(m), write_model(split), n_samples=3)
    assert cmp.tflm.ran_b and cmp.ok, (cmp.tflm.note, cmp.tflm.max_abs_diff)
    concat = [op for op in split.main.operators if op.type == "CONCATENATION"]
    # per tile one join of the channel parts (and the stem path's), plus the tiling's joins
    assert len(concat) > sum(op.type == "CONCATENATION" for op in plain.main.operators)
    biggest = lambda model: max(iv.size for iv in lifetimes(model.main))  # noqa: E731
    assert biggest(split) < biggest(plain)
    assert peak_live(lifetimes(split.main)) < peak_live(lifetimes(plain.main))


def test_separate_activations_do_not_shorten_spatial_chains():
    """A sub-chain's length does not count separate unary ops: the separate-ReLU6 net offers
    the same sub-chains (as op spans) as the fused one under one max length."""
    fused, sep = inverted_residual_net(False), inverted_residual_net(True)
    kinds = lambda model, c: tuple(model.main.operators[i].type for i in c.path if  # noqa: E731
                                   model.main.operators[i].type != "RELU6")
    a = {kinds(fused, c) for c in ffmt_candidates(fused, [(2, 2)], max_len=3)}
    b = {kinds(sep, c) for c in ffmt_candidates(sep, [(2, 2)], max_len=3)}
    assert a and a == b


def test_channel_paths_never_cut_before_a_separate_activation():
    """FDT paths include the separate ReLU6 after their last op and never start with one that
    has its producer in the chain: a cut there would run the activation on the whole map."""
    m = inverted_residual_net(True)
    sg = m.main
    seen = 0
    for seed in range(len(sg.operators)):
        for ops, _ in candidate_paths(sg, seed):
            seen += 1
            after = ops[-1] + 1
            assert not (after < len(sg.operators) and sg.operators[after].type == "RELU6"
                        and sg.operators[after].inputs[0] is sg.operators[ops[-1]].outputs[0])
    assert seen


def test_large_plans_skip_the_ilp(monkeypatch):
    """Past PAIRS_PER_NODE order variables per node of the budget the ILP is not run: on the
    planner test's seed 18 (no heuristic reaches the bound, the ILP does) the heuristic plan
    is kept, larger than the ILP's, still sound."""
    from test_planner import NO_LOCAL_SEARCH, random_intervals
    from fdt_tflm.tflm_model.offline_plan import find_overlap
    ivs = random_intervals(18)
    full = ilp.plan_offsets(ivs, effort=NO_LOCAL_SEARCH)
    monkeypatch.setattr(ilp, "PAIRS_PER_NODE", 0)
    skipped = ilp.plan_offsets(ivs, effort=NO_LOCAL_SEARCH)
    assert full.method.startswith("ilp-cbc") and "ilp skipped" in skipped.method
    assert skipped.arena > full.arena and not skipped.optimal
    assert find_overlap(list(zip(ivs, skipped.offsets))) is None


# -- the head objective never behind the default --------------------------------------------
# CI runs the quick ones (radar at 30 % has its own test below); FDT_SLOW_TESTS=1 every model
SMALL = [PROJECT_MODELS / "kws.tflite", PROJECT_MODELS / "convdense.tflite",
         SHARED_MODELS / "mlperf_ad_toycar_int8.tflite", SHARED_MODELS / "tflm_micro_speech_int8.tflite"]
LARGE = [PROJECT_MODELS / "radar.tflite", PROJECT_MODELS / "mobilenet_v2_224.tflite"] + sorted(
    p for p in SHARED_MODELS.glob("*.tflite") if p not in SMALL) if SHARED_MODELS.is_dir() else []


def _head(path: Path, **kw) -> int:
    r = optimize(str(path), **kw).report
    assert r.verified is True
    return r.arena_bytes


@pytest.mark.parametrize("path", [pytest.param(p, id=p.stem) for p in SMALL] +
                         [pytest.param(p, id=p.stem, marks=pytest.mark.skipif(not SLOW, reason="FDT_SLOW_TESTS=1"))
                          for p in LARGE])
def test_head_objective_head_is_never_above_the_default(path):
    """TFLM's measured head of ``--objective head`` at 0, 10 and 30 % MACs is at most the
    default run's (total objective, 0 %) and the total objective's at the same budget."""
    if not path.exists():
        pytest.skip(f"{path} not found (shared models absent)")
    default = _head(path)
    for budget in (0, 10, 30):
        total = default if budget == 0 else _head(path, max_overhead=budget)
        head = _head(path, objective="head", max_overhead=budget)
        assert head <= min(default, total), (budget, head, default, total)


def test_radar_head_objective_regains_the_default_head():
    """The issue's case: radar's default gives a smaller head than the head objective at 30 %
    used to (61,504 vs 66,624 B on the original gesture CNN); now the head objective's is
    never larger, and here strictly below the input's."""
    path = PROJECT_MODELS / "radar.tflite"
    r = optimize(str(path), objective="head", max_overhead=30).report
    assert r.verified and r.arena_bytes <= _head(path) < r.original_arena_bytes


# -- MobileNetV2-224 (#17's reach goal) ------------------------------------------------------
@pytest.mark.skipif(not SLOW, reason="about a minute per model: FDT_SLOW_TESTS=1")
@pytest.mark.parametrize("build", ["mobilenet_v2_224", "mobilenet_v2_224_pytorch"])
def test_mobilenet_v2_224_head_below_250k_at_15pct(build, tmp_path):
    """MobileNetV2 1.0 at 224x224 int8, in the Keras form (models/) and a PyTorch-style export
    built by our builder: TFLM-measured head <= 250,000 B at <= 15 % extra MACs, bit-exact."""
    path = PROJECT_MODELS / f"{build}.tflite"
    if not path.exists():
        path = tmp_path / f"{build}.tflite"
        path.write_bytes(write_model(build_models.EXTRA_MODELS[build]()))
    r = optimize(str(path), objective="head", max_overhead=15).report
    assert r.verified is True and r.verified_by == "tflm"
    assert r.arena_bytes <= 250_000 and r.mac_overhead_pct <= 15.0
