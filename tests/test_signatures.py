"""Signature defs survive every rewrite: each result, run through its signature, gives the
original's outputs by name, bit for bit.

The models carry a signature whose inputs and outputs are listed in another order than the
subgraph's, so an index that points at the wrong tensor gives wrong outputs (or none).
Oracles: LiteRT's signature runner, and TFLM.  TFLM's Python interpreter has no signatures
(only inputs/outputs by position), so the signature's names are resolved to tensor indices in
the written flatbuffer with the ``tflite`` package and each is looked up among the subgraph's
input/output indices; TFLM's value at that position is the signature's.  The FDT_PARTIAL model
runs in neither runtime (custom op); its signature tensors are evaluated with the bit-exact
NumPy reference, by the index the file names.
"""
from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import pytest
from tflite.Model import Model as FbModel

import fdt_tflm
from fdt_tflm.errors import FdtError
from fdt_tflm.io import read_model, write_model
from fdt_tflm.ir import Buffer, SignatureDef
from fdt_tflm.ir.graph import Model, Tensor
from fdt_tflm.ir.qnet import QNet
from fdt_tflm.memory.passes import reorder_and_plan
from fdt_tflm.reference import FDT_PARTIAL_CODE, run_reference_tensors
from fdt_tflm.tiling.fdt import apply_fdt
from fdt_tflm.tiling.ffmt import apply_ffmt
from fdt_tflm.tiling.partial import apply_partial
from fdt_tflm.verify import run, runtime_available

KEY = "serving_default"
N_SAMPLES = 3
Feeds = dict[str, np.ndarray]

pytestmark = pytest.mark.skipif(not (runtime_available("tflm") and runtime_available("litert")),
                                reason="needs tflite-micro and ai-edge-litert (pip install -e '.[test]')")


# -- models --------------------------------------------------------------------------------
def net(dtype: str = "INT8", seed: int = 5, size: int = 16, stem: bool = False) -> Model:
    """image -> [stem conv ->] conv (s2 after a stem) -> depthwise s2 -> 1x1 conv ("features")
    -> pool -> dense + offset ("scores").  Subgraph inputs (image, offset), outputs (features,
    scores); the signature lists both the other way round.  The stem's large map is what a
    spatial tiling (and only that) can shrink."""
    q = QNet(seed=seed, dtype=dtype)
    x = q.input([1, size, size, 3], name="image", zp=3)
    y = q.conv2d(q.conv2d(x, 8), 12, stride=2) if stem else q.conv2d(x, 12)
    c = q.conv2d(q.depthwise(y, stride=2), 8, kernel=(1, 1))
    pool = c.shape[1]
    dense = q.fully_connected(q.reshape(q.pool(c, "AVERAGE", size=pool, stride=pool), [1, 8]), 5)
    # the offset on the dense output's scale, so the scores depend on both inputs
    off = q.input([1, 5], name="offset", scale=1.0 if q.float else float(dense.quantization.scale[0]), zp=-2)
    logits = q.add(dense, off)
    scores = logits if q.float else q.softmax(logits)
    m = q.output(c, scores)
    m.signature_defs.append(SignatureDef(KEY.encode(), 0, [(b"offset", off), (b"image", x)],
                                         [(b"scores", scores), (b"features", c)]))
    return m


def integer_net() -> Model:
    """The float32 net with small-integer weights and biases: on integer inputs every sum is
    exact in float32, so a partial-sum rewrite (another order of additions) must be bit-identical."""
    m = net("FLOAT32", seed=6)
    for t in m.main.tensors:
        if t.is_constant and t.dtype == 0:  # FLOAT32
            t.buffer = Buffer(np.round(t.numpy() * 3).astype(np.float32).tobytes())
    return m


def feeds_for(model: Model, seed: int = 0) -> list[Feeds]:
    """Seeded inputs by signature name: full int8 range, or small integers for float models."""
    rng = np.random.default_rng(seed)
    sd = model.signature_defs[0]
    out = []
    for _ in range(N_SAMPLES):
        sample = {}
        for name, t in sd.inputs:
            if t.dtype == 0:
                sample[name.decode()] = rng.integers(-4, 5, size=t.shape).astype(np.float32)
            else:
                sample[name.decode()] = rng.integers(-128, 128, size=t.shape).astype(np.int8)
        out.append(sample)
    return out


# -- the signature as the written file states it (the tflite package, not our reader) -------------
@dataclass(frozen=True)
class FileSignature:
    inputs: dict[str, int]  # name -> tensor index in the subgraph
    outputs: dict[str, int]
    graph_inputs: list[int]  # the subgraph's input/output tensor indices, in order
    graph_outputs: list[int]


def file_signature(data: bytes, key: str = KEY) -> FileSignature:
    fb = FbModel.GetRootAs(data, 0)
    sigs = [fb.SignatureDefs(i) for i in range(fb.SignatureDefsLength())]
    sd = next(s for s in sigs if s.SignatureKey().decode() == key)
    sg = fb.Subgraphs(sd.SubgraphIndex())
    ins = [sd.Inputs(i) for i in range(sd.InputsLength())]
    outs = [sd.Outputs(i) for i in range(sd.OutputsLength())]
    return FileSignature({m.Name().decode(): m.TensorIndex() for m in ins},
                         {m.Name().decode(): m.TensorIndex() for m in outs},
                         sg.InputsAsNumpy().tolist(), sg.OutputsAsNumpy().tolist())


# -- runs through the signature --------------------------------------------------------------
def litert_by_signature(data: bytes, feeds: list[Feeds]) -> list[Feeds]:
    from ai_edge_litert.interpreter import Interpreter
    runner = Interpreter(model_content=data, num_threads=1).get_signature_runner(KEY)
    return [{k: np.array(v) for k, v in runner(**sample).items()} for sample in feeds]


def tflm_by_signature(data: bytes, feeds: list[Feeds]) -> list[Feeds]:
    sig = file_signature(data)
    assert sorted(sig.graph_inputs) == sorted(sig.inputs.values()), "a signature input is not a graph input"
    missing = {n: i for n, i in sig.outputs.items() if i not in sig.graph_outputs}
    assert not missing, f"signature outputs that are not graph outputs (TFLM cannot return them): {missing}"
    by_index = {i: n for n, i in sig.inputs.items()}
    res = run(data, [[s[by_index[i]] for i in sig.graph_inputs] for s in feeds], "tflm")
    assert res.ok, res.error
    return [{n: outs[sig.graph_outputs.index(i)] for n, i in sig.outputs.items()} for outs in res.outputs]


def reference_by_signature(data: bytes, feeds: list[Feeds]) -> list[Feeds]:
    """The NumPy reference's value of each signature output, found by the index the file gives."""
    sig = file_signature(data)
    model = read_model(data)  # tensors in file order: index i is tensors[i]
    tensors = model.main.tensors
    by_index = {i: n for n, i in sig.inputs.items()}
    out = []
    for s in feeds:
        vals = run_reference_tensors(model, [s[by_index[model.main.index_of(t)]] for t in model.main.inputs])
        out.append({n: vals[tensors[i]] for n, i in sig.outputs.items()})
    return out


def assert_identical(got: list[Feeds], want: list[Feeds], what: str) -> None:
    assert len(got) == len(want) == N_SAMPLES, (what, len(got), len(want))
    for s, (g, w) in enumerate(zip(got, want)):
        assert sorted(g) == sorted(w), (what, sorted(g), sorted(w))
        for name in w:
            assert g[name].dtype == w[name].dtype and g[name].shape == w[name].shape, \
                (what, s, name, g[name].shape, w[name].shape)
            assert np.array_equal(g[name], w[name]), (what, s, name, "values differ")


@dataclass(frozen=True)
class Expected:
    """The original model's outputs through its signature, per runtime."""

    feeds: list[Feeds]
    litert: list[Feeds]
    tflm: list[Feeds]


def expected(model: Model) -> Expected:
    """Runs the original; pins its signature against the outputs by position first (so the
    oracle does not rest on the signature machinery under test)."""
    data = write_model(model)
    feeds = feeds_for(model)
    lit, tf = litert_by_signature(data, feeds), tflm_by_signature(data, feeds)
    sd = model.signature_defs[0]
    pos = {n.decode(): model.main.outputs.index(t) for n, t in sd.outputs}
    in_order = [[s[n.decode()] for n, _ in sorted(sd.inputs, key=lambda p: model.main.inputs.index(p[1]))]
                for s in feeds]
    plain = run(data, in_order, "tflm")
    assert plain.ok, plain.error
    for by_sig, outs in zip(tf, plain.outputs):
        assert all(np.array_equal(by_sig[n], outs[p]) for n, p in pos.items())
    assert pos == {"features": 0, "scores": 1}  # listed against the subgraph's order
    return Expected(feeds, lit, tf)


def assert_runs_like(new: Model, want: Expected, litert: bool = True) -> bytes:
    data = write_model(new)
    sig = file_signature(data)
    assert list(sig.outputs) == ["scores", "features"] and list(sig.inputs) == ["offset", "image"]
    if litert:
        assert_identical(litert_by_signature(data, want.feeds), want.litert, "LiteRT")
    assert_identical(tflm_by_signature(data, want.feeds), want.tflm, "TFLM")
    return data


def op_types(model: Model) -> list[str]:
    return [op.type for op in model.main.operators]


# -- every rewrite ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def int8_case() -> tuple[Model, Expected]:
    m = net()
    return m, expected(m)


def test_fdt_concat(int8_case):
    m, want = int8_case
    new = apply_fdt(m, [0, 1], 3)
    assert "CONCATENATION" in op_types(new) and len(new.main.tensors) != len(m.main.tensors)
    assert_runs_like(new, want)


@pytest.mark.parametrize("tiles", [(2, 2), (3, 1)])
def test_ffmt(int8_case, tiles):
    """FFMT deletes the chain's intermediate tensors: every later index shifts."""
    m, want = int8_case
    new = apply_ffmt(m, [0, 1, 2], tiles)
    assert op_types(new).count("SLICE") == tiles[0] * tiles[1]
    assert_runs_like(new, want)


def test_reorder_and_plan(int8_case):
    m, want = int8_case
    new, _, _ = reorder_and_plan(apply_ffmt(m, [0, 1, 2], (2, 2)))
    assert new.get_metadata("OfflineMemoryAllocation") is not None
    assert_runs_like(new, want)


def test_int8_partial_sum_custom_kernel(int8_case):
    """FDT_PARTIAL runs in neither runtime: the reference evaluates the tensors the rewritten
    file's signature names, against the original through its signature in TFLM."""
    m, want = int8_case
    new = apply_partial(m, [0, 1, 2], 3)
    assert sum(op.opcode.custom_code == FDT_PARTIAL_CODE for op in new.main.operators) == 3
    data = write_model(new)
    sig = file_signature(data)
    assert list(sig.outputs) == ["scores", "features"]
    assert_identical(reference_by_signature(data, want.feeds), want.tflm, "reference")
    assert_identical(reference_by_signature(write_model(m), want.feeds), want.tflm, "reference on the original")


def test_fdt_float_partial_sum_end():
    m = integer_net()
    want = expected(m)
    new = apply_fdt(m, [0, 1, 2], 3, end="partial")
    assert op_types(new).count("ADD") == 3 and "CONCATENATION" not in op_types(new)
    assert_runs_like(new, want)


def test_optimize_default(int8_case):
    m, want = int8_case
    res = fdt_tflm.optimize(write_model(m), progress=False)
    assert res.verified
    assert res.report.paths, "the search tiled nothing: the test would not exercise a rewrite"
    assert_runs_like(res.model, want)


def test_optimize_head_objective_with_recomputation():
    m = net(size=32, stem=True)
    want = expected(m)
    res = fdt_tflm.optimize(write_model(m), progress=False, objective="head", max_overhead=30)
    assert res.verified
    assert "FFMT" in [p.kind for p in res.report.paths], "no spatial tiling: the test would not exercise FFMT"
    assert_runs_like(res.model, want)


# -- reader and writer -----------------------------------------------------------------------
def test_written_indices_and_round_trip():
    m = net()
    data = write_model(m)
    sig = file_signature(data)
    idx = {n: m.main.index_of(t) for n, t in [("image", m.main.inputs[0]), ("offset", m.main.inputs[1]),
                                                 ("features", m.main.outputs[0]), ("scores", m.main.outputs[1])]}
    assert sig.inputs == {"offset": idx["offset"], "image": idx["image"]}
    assert sig.outputs == {"scores": idx["scores"], "features": idx["features"]}
    again = read_model(data)
    sd = again.signature_defs[0]
    assert [(n, t.name) for n, t in sd.outputs] == [(b"scores", m.main.outputs[1].name),
                                                   (b"features", m.main.outputs[0].name)]
    assert sd.outputs[1][1] is again.main.outputs[0] and sd.inputs[1][1] is again.main.inputs[0]
    assert write_model(again) == data


def test_writer_refuses_a_signature_tensor_not_in_the_subgraph():
    """E.g. a rewrite that pruned it: no index would be right, so nothing is written."""
    m = net()
    m.signature_defs[0].outputs[1] = (b"features", Tensor("stray", [1, 8, 8, 8], 9))
    with pytest.raises(FdtError, match="signature b'serving_default' refers to tensor 'stray' .* not in subgraph 0"):
        write_model(m)


def test_reader_refuses_an_out_of_range_signature_index(tmp_path):
    """One line, exit code 2 in the CLI, like the reader's other index checks."""
    m = net()
    data = bytearray(write_model(m))
    fb = FbModel.GetRootAs(bytes(data), 0)
    tm = fb.SignatureDefs(0).Outputs(0)
    slot = tm._tab.Pos + tm._tab.Offset(6)  # TensorMap.tensor_index (field 1)
    n = len(m.main.tensors)
    data[slot:slot + 4] = np.uint32(n + 7).tobytes()
    message = f"signature 'serving_default' output refers to tensor {n + 7}, the subgraph has {n}"
    with pytest.raises(FdtError, match=message):
        read_model(bytes(data))
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(bytes(data))
    proc = subprocess.run([sys.executable, "-m", "fdt_tflm", "inspect", str(bad)], capture_output=True, text=True)
    assert proc.returncode == 2 and message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
