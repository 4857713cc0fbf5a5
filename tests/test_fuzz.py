"""A short, deterministic run of the fuzz campaign (benchmarks/fuzz.py) for CI: no crash, no
hang, every hostile model a clean exit 2; and checks that the harness itself can see a crash."""
from __future__ import annotations

import sys

import pytest
from conftest import PROJECT_MODELS, REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import fuzz  # noqa: E402

from fdt_tflm.errors import FdtError  # noqa: E402
from fdt_tflm.io import read_model  # noqa: E402


@pytest.fixture(scope="module")
def seeds() -> list:
    return fuzz.load_seeds()


def test_mutants_are_deterministic_and_varied(seeds) -> None:
    a = [fuzz.mutant(seeds, 5, i) for i in range(40)]
    assert a == [fuzz.mutant(seeds, 5, i) for i in range(40)]
    assert len({d for _, d in a}) == 40
    kinds = {k for desc, _ in a for k in desc.split(":")[1].split("+")}
    assert {"field", "bytes", "truncate", "splice"} <= kinds


def test_field_sites_point_at_the_fields(seeds) -> None:
    """Patching the site of an operator's opcode index changes what the reader sees."""
    data = (PROJECT_MODELS / "kws.tflite").read_bytes()
    sites = fuzz.field_sites(data)
    s = next(x for x in sites if x.path.endswith(".OpcodeIndex"))
    with pytest.raises(FdtError, match="uses opcode 4000"):
        read_model(fuzz.patch(data, s, 4000))
    shape = next(x for x in sites if x.path == "Subgraphs[0].Tensors[0].Shape[1]")
    m = read_model(fuzz.patch(data, shape, 7))
    assert m.main.tensors[0].shape[1] == 7
    assert {"scalar", "element", "length", "offset"} <= {x.kind for x in sites}
    widths = {x.path.split(".")[-1].split("[")[0]: x.width for x in sites if x.kind in ("scalar", "element")}
    assert (widths["DeprecatedBuiltinCode"], widths["Type"], widths["Shape"], widths["Data"]) == (1, 1, 4, 1)


def test_reader_campaign_short_run_has_no_crash_or_hang() -> None:
    t = fuzz.run_reader(seed=1, n=400, jobs=2, progress=False)
    assert t.tried == 400
    assert (t.crashes, t.hangs) == (0, 0), t.findings
    assert t.clean_errors > 50 and t.accepted > 50, "the mutants reach both outcomes"


def test_optimize_campaign_short_run_has_no_crash_or_hang() -> None:
    t = fuzz.run_optimize(seed=2, n=4, jobs=2, progress=False)
    assert t.tried == 4 and (t.crashes, t.hangs) == (0, 0), t.findings


def test_hostile_models_exit_2_quickly_under_the_memory_limit() -> None:
    rows = fuzz.run_hostile(time_limit=60.0)
    assert len(rows) == len(fuzz.hostile_models()) >= 15
    bad = [r for r in rows if r["outcome"] != "error" or r["output_written"]]
    assert not bad, bad
    assert max(r["seconds"] for r in rows) < 60


def test_every_hostile_model_is_refused_by_the_reader_or_before_any_pass() -> None:
    from fdt_tflm.analysis import check_optimizable
    for name, build in fuzz.hostile_models().items():
        with pytest.raises(FdtError):
            check_optimizable(read_model(build()))


def test_a_worker_killed_by_a_signal_is_a_crash_at_its_file(monkeypatch) -> None:
    monkeypatch.setenv("FDT_FUZZ_SELFTEST_ABORT", "7")
    t = fuzz.run_reader(seed=1, n=20, jobs=2, progress=False)
    assert t.tried == 20 and t.crashes == 1 and t.hangs == 0
    assert t.findings[0]["index"] == 7 and "worker died (exit -6)" in t.findings[0]["outcome"]


def test_the_harness_sees_crashes(monkeypatch) -> None:
    """A reader that raises something other than FdtError, or a CLI that prints a traceback
    or exits 3, is counted as a crash: the figures above could fail."""
    import fdt_tflm.io
    monkeypatch.setattr(fdt_tflm.io, "read_model", lambda data: [][1])
    assert fuzz.reader_outcome(b"anything").startswith("crash: IndexError")
    assert fuzz.classify(3, "fdt-tflm: internal error: KeyError").startswith("crash")
    assert fuzz.classify(2, "Traceback (most recent call last):\n  ...\nfdt-tflm: error: x").startswith("crash")
    assert fuzz.classify(-11, "").startswith("crash")
    assert fuzz.classify(2, "fdt-tflm: error: bad file") == "error"
    assert fuzz.classify(1, "fdt-tflm: error: outputs differ") == "mismatch"


def test_a_deprecated_opcode_field_that_disagrees_is_read_as_tflm_reads_it() -> None:
    """Fuzz finding (optimize #170/#470, seed 0): deprecated_builtin_code set to -1 next to
    builtin_code 22.  TFLM takes the larger (RESHAPE) and runs the model; the reader once took
    the deprecated field and wrote back a model TFLM cannot run ("outputs differ")."""
    import numpy as np
    from fdt_tflm.io import write_model
    from fdt_tflm.verify import make_inputs, run
    data = (PROJECT_MODELS / "convdense.tflite").read_bytes()
    s = next(x for x in fuzz.field_sites(data) if x.path == "OperatorCodes[1].DeprecatedBuiltinCode")
    odd = fuzz.patch(data, s, -1)
    m = read_model(odd)
    assert [op.type for op in m.main.operators] == ["CONV_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"]
    inputs = make_inputs(m, 2)
    a, b = run(odd, inputs), run(write_model(m), inputs)
    assert a.ok and b.ok, (a.error, b.error)
    assert all(np.array_equal(x, y) for sa, sb in zip(a.outputs, b.outputs) for x, y in zip(sa, sb))
