"""Fused feature-map tiling: every rewrite must be bit-exact in the TFLM host interpreter."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fdt_tflm.io import read_model, write_model
from fdt_tflm.ir.builder import options
from fdt_tflm.ir.graph import Model
from fdt_tflm.ir.macs import graph_macs
from fdt_tflm.ir.qnet import QNet
from fdt_tflm.memory.lifetimes import lifetimes, peak_live
from fdt_tflm.tiling.ffmt import (FfmtUnsupported, Span, apply_ffmt, ffmt_candidates, ffmt_chains,
                                  ffmt_overhead_pct, ffmt_recompute_macs, plan_ffmt, split_sizes)
from fdt_tflm.verify import compare_models, make_inputs, run

MODELS = Path(__file__).resolve().parents[2] / "shared" / "models"


def assert_exact(model: Model, path: list[int], tiles: tuple[int, int], litert: bool = True) -> Model:
    """Tile, check bit-exactness in TFLM (and LiteRT), and that the MAC prediction is the graph's."""
    tiled = apply_ffmt(model, path, tiles)
    cmp = compare_models(model, write_model(model), write_model(tiled), n_samples=3, litert=litert)
    assert cmp.tflm.ran_b, cmp.tflm.note
    assert cmp.ok, (cmp.tflm.note, cmp.tflm.max_abs_diff)
    assert graph_macs(tiled.main) - graph_macs(model.main) == ffmt_recompute_macs(model, path, tiles)
    return tiled


def op_types(model: Model) -> list[str]:
    return [op.type for op in model.main.operators]


# -- small generated graphs ----------------------------------------------------------------
def conv_chain(h: int = 17, w: int = 15, zp: int = 5) -> Model:
    q = QNet(seed=1)
    x = q.input([1, h, w, 4], zp=zp)
    y = q.conv2d(x, 8, stride=2)            # SAME, stride 2
    y = q.depthwise(y)                      # SAME 3x3
    y = q.conv2d(y, 8, kernel=(1, 1))       # pointwise conv
    return q.output(q.unary(y, "RELU"))


@pytest.mark.parametrize("tiles", [(2, 1), (1, 2), (2, 2), (3, 2)])
def test_conv_depthwise_chain_exact(tiles):
    m = conv_chain()
    tiled = assert_exact(m, [0, 1, 2, 3], tiles)
    types = op_types(tiled)
    assert types.count("CONV_2D") == 2 * tiles[0] * tiles[1]
    assert "PAD" in types and "STRIDED_SLICE" in types and types[-1] == "CONCATENATION"
    # no tile op keeps implicit SAME padding
    assert all(op.opt("Padding") == 1 for op in tiled.main.operators if op.type in ("CONV_2D", "DEPTHWISE_CONV_2D"))


def test_tile_counts_that_do_not_divide():
    m = conv_chain(h=19, w=13)  # outputs 10 x 7
    plan = plan_ffmt(m, [0, 1, 2], (3, 3))
    assert [ts[-1].out_h.size for ts in plan.tile_steps[::3]] == [4, 3, 3]
    assert [ts[-1].out_w.size for ts in plan.tile_steps[:3]] == [3, 2, 2]
    assert_exact(m, [0, 1, 2], (3, 3), litert=False)


def test_halo_arithmetic_same_padding():
    """TFLM SAME: pad_total = max((out-1)*stride + eff_k - in, 0), pad_before = pad_total // 2."""
    m = conv_chain(h=16, w=15)  # 16 -> 8 rows: pad_total = 7*2 + 3 - 16 = 1, pad_before = 0
    plan = plan_ffmt(m, [0], (2, 1))
    top, bottom = plan.tile_steps[0][0], plan.tile_steps[1][0]
    assert (top.in_h, top.pads[:2]) == (Span(0, 9), (0, 0))
    assert (bottom.in_h, bottom.pads[:2]) == (Span(8, 16), (0, 1))
    # W: 15 -> 8 columns, pad_total = 7*2 + 3 - 15 = 2, one column each side
    assert top.pads[2:] == (1, 1)


def test_dilation_and_valid_padding():
    q = QNet(seed=3)
    x = q.input([1, 20, 18, 3], zp=-9)
    y = q.conv2d(x, 6, padding="VALID", dilation=2)
    y = q.depthwise(y, dilation=2)  # SAME, dilated
    m = q.output(y)
    assert_exact(m, [0, 1], (2, 2))


def test_depthwise_multiplier_and_large_kernel_float():
    q = QNet(seed=4, dtype="FLOAT32")
    x = q.input([1, 15, 15, 2])
    y = q.depthwise(x, kernel=(5, 5), stride=2, depth_multiplier=3)
    y = q.conv2d(y, 4)
    m = q.output(y)
    assert_exact(m, [0, 1], (2, 2))


def test_max_pool_same_pads_with_lowest_value():
    q = QNet(seed=2)
    x = q.input([1, 16, 17, 3], zp=7)
    y = q.conv2d(x, 6, act="NONE")
    y = q.pool(y, "MAX", 3, 2, "SAME")
    m = q.output(y)
    tiled = assert_exact(m, [0, 1], (2, 2))
    assert "PADV2" in op_types(tiled)


def test_average_pool_valid_and_unpadded_same():
    q = QNet(seed=5)
    x = q.input([1, 16, 16, 4], zp=2)
    y = q.conv2d(x, 6)
    y = q.pool(y, "AVERAGE", 2, 2, "SAME")  # even size, stride 2: SAME needs no padding
    y = q.pool(y, "AVERAGE", 3, 1, "VALID")
    m = q.output(y)
    assert_exact(m, [0, 1, 2], (2, 3))


def test_average_pool_same_with_border_is_refused():
    q = QNet(seed=5)
    x = q.input([1, 12, 12, 4])
    y = q.conv2d(x, 6)
    y = q.pool(y, "AVERAGE", 3, 1, "SAME")  # TFLM divides by the in-image count at the border
    m = q.output(y)
    with pytest.raises(FfmtUnsupported):
        apply_ffmt(m, [0, 1], (2, 1))
    with pytest.raises(FfmtUnsupported):
        ffmt_recompute_macs(m, [0, 1], (2, 1))
    assert_exact(m, [0], (2, 1), litert=False)  # the conv alone is fine


def test_explicit_pad_in_chain():
    q = QNet(seed=6)
    x = q.input([1, 12, 12, 4], zp=3)
    p = q.b.tensor("padded", [1, 14, 14, 4], "INT8", x.quantization.copy())
    pads = q.b.const("pads", np.array([[0, 0], [1, 1], [1, 1], [0, 0]], np.int32))
    q.b.op("PAD", [x, pads], [p], options("PAD"), version=2)
    y = q.depthwise(p, padding="VALID", stride=2)
    y = q.conv2d(y, 8, kernel=(1, 1))
    m = q.output(y)
    tiled = assert_exact(m, [0, 1, 2], (2, 2))
    # 14 padded rows, 3x3 stride 2 VALID reads rows 0..12 only: the bottom/right pad is never
    # read, so only the tiles touching the top or left border keep a PAD (3 of 4)
    assert op_types(tiled).count("PAD") == 3


def test_residual_add_next_to_and_inside_path():
    q = QNet(seed=7)
    x = q.input([1, 12, 12, 4], zp=3)
    a = q.conv2d(x, 8)
    b = q.conv2d(a, 8)
    c = q.depthwise(b)
    m = q.output(q.add(a, c))
    assert_exact(m, [1, 2], (1, 3))        # `a` also feeds the ADD outside the path
    tiled = assert_exact(m, [1, 2, 3], (2, 2))  # the ADD's other operand is sliced per tile
    assert op_types(tiled).count("ADD") == 4


def test_macs_prediction_and_pointwise_only_costs_nothing():
    q = QNet(seed=8)
    x = q.input([1, 10, 10, 4])
    y = q.conv2d(x, 8, kernel=(1, 1))
    y = q.conv2d(y, 8, kernel=(1, 1))
    m = q.output(y)
    assert ffmt_recompute_macs(m, [0, 1], (2, 2)) == 0
    m2 = conv_chain()
    for tiles in [(2, 1), (1, 2), (3, 3), (4, 2)]:
        extra = ffmt_recompute_macs(m2, [0, 1, 2], tiles)
        assert extra > 0
        assert graph_macs(apply_ffmt(m2, [0, 1, 2], tiles).main) - graph_macs(m2.main) == extra
        assert ffmt_overhead_pct(m2, [0, 1, 2], tiles) == pytest.approx(100 * extra / graph_macs(m2.main))


def test_refusals_leave_model_untouched():
    q = QNet(seed=9)
    x = q.input([1, 8, 8, 4])
    a = q.conv2d(x, 8)
    b = q.conv2d(a, 8)
    s = q.add(a, b)
    f = q.fully_connected(q.reshape(s, [1, 8 * 8 * 8]), 4)
    m = q.output(f)
    before = write_model(m)
    bad = [([0, 1], (2, 2)),          # `a` is used outside the chain
           ([0, 4], (2, 1)),          # not a chain
           ([1, 0], (2, 1)),          # wrong order
           ([4], (2, 1)),             # FULLY_CONNECTED has no spatial tiling
           ([1], (9, 1)),             # more tiles than rows
           ([1], (1, 1)),             # nothing to tile
           ([99], (2, 1))]
    for path, tiles in bad:
        with pytest.raises(FfmtUnsupported):
            apply_ffmt(m, path, tiles)
    assert write_model(m) == before
    assert write_model(apply_ffmt(m, [1], (2, 2))) == write_model(apply_ffmt(m, [1], (2, 2)))  # deterministic


def test_chains_and_candidates():
    m = conv_chain()
    assert ffmt_chains(m) == [[0, 1, 2, 3]]
    cands = ffmt_candidates(m, tile_options=[(2, 1), (2, 2)], max_len=3)
    assert {c.path for c in cands} == {(0,), (0, 1), (0, 1, 2), (1,), (1, 2), (1, 2, 3), (2,), (2, 3)}
    for c in cands:
        assert c.extra_macs == ffmt_recompute_macs(m, list(c.path), c.tiles)
        tiled = apply_ffmt(m, list(c.path), c.tiles)
        assert len(tiled.main.operators) - len(m.main.operators) == c.added_ops
    assert split_sizes(10, 3) == [Span(0, 4), Span(4, 7), Span(7, 10)]


# -- real models -----------------------------------------------------------------------------
def _real(name: str) -> Model:
    p = MODELS / f"{name}.tflite"
    if not p.exists():
        pytest.skip(f"shared model {p} not available (expected the repo's sibling ../shared/models)")
    return read_model(p)


@pytest.mark.parametrize("name,path,tiles,max_head,max_ovh", [
    # the first four layers hold the 48x48x8 / 48x48x16 buffers; TFLM measured 73728 B untiled
    ("mlperf_vww_mbv1_96_int8", [0, 1, 2, 3], (4, 4), 43_000, 4.3),  # measured 42160
    # untiled 55296 B; the chain through the 24x24x32 layers
    ("tflm_person_detect_int8", [0, 1, 2, 3, 4, 5, 6, 7], (3, 3), 30_500, 12.8),  # measured 29728
])
def test_real_model_first_layers(name, path, tiles, max_head, max_ovh):
    m = _real(name)
    tiled = apply_ffmt(m, path, tiles)
    cmp = compare_models(m, write_model(m), write_model(tiled), n_samples=2, litert=False)
    assert cmp.ok, cmp.tflm.note
    assert cmp.tflm.b.head <= max_head < cmp.tflm.a.head
    assert peak_live(lifetimes(tiled.main)) < peak_live(lifetimes(m.main))
    assert ffmt_overhead_pct(m, path, tiles) <= max_ovh
    assert any(c.path == tuple(path) and c.tiles == tiles for c in ffmt_candidates(m, [tiles], max_len=len(path)))
