"""The typed report: its JSON Schema lists exactly the dataclass's fields, docs/report.md
documents each, and real models' reports validate against the schema."""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import jsonschema
import pytest
from conftest import PROJECT_MODELS, REPO, SHARED_MODELS

import fdt_tflm
from fdt_tflm.report import Attempt, Fallback, Guard, ParetoEntry, PathEntry, Report, TargetPrediction, load_schema
from fdt_tflm.verify import make_inputs, run

# dataclass -> where its JSON object is described in the schema
RECORDS = {Report: (), PathEntry: ("$defs", "path"), ParetoEntry: ("$defs", "pareto_point"),
           Attempt: ("$defs", "attempt"), Fallback: ("$defs", "fallback"), Guard: ("$defs", "guard"),
           TargetPrediction: ("$defs", "target")}


def _node(schema: dict, where: tuple) -> dict:
    for k in where:
        schema = schema[k]
    return schema


def _validator() -> "jsonschema.protocols.Validator":
    schema = load_schema()
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


@pytest.mark.parametrize("record", list(RECORDS), ids=lambda c: c.__name__)
def test_schema_lists_exactly_the_dataclass_fields(record):
    node = _node(load_schema(), RECORDS[record])
    names = {f.name for f in dataclasses.fields(record)}
    assert set(node["properties"]) == names
    assert set(node["required"]) == names
    assert node["additionalProperties"] is False


@pytest.mark.parametrize("record", list(RECORDS), ids=lambda c: c.__name__)
def test_docs_document_every_field(record):
    doc = (REPO / "docs" / "report.md").read_text()
    documented = set(re.findall(r"^\| `(\w+)` \|", doc, flags=re.M))
    missing = {f.name for f in dataclasses.fields(record)} - documented
    assert not missing, f"docs/report.md lacks {sorted(missing)}"


REAL = [PROJECT_MODELS / "kws.tflite", SHARED_MODELS / "mlperf_ad_toycar_int8.tflite",
        SHARED_MODELS / "tflm_micro_speech_int8.tflite"]


@pytest.mark.parametrize("path", REAL, ids=lambda p: p.stem)
def test_real_reports_validate_against_the_schema(path: Path):
    if not path.exists():
        pytest.skip(f"{path} not found (shared models absent)")
    res = fdt_tflm.optimize(str(path), progress=False, samples=2)
    d = json.loads(res.to_json())
    _validator().validate(d)
    assert d == res.report.to_dict() and d["schema_version"] == 1
    # the report's numbers are TFLM's: an independent run of the written model agrees
    assert (d["arena_bytes"], d["total_arena_bytes"]) == tflm_measure(res.data)
    assert d["measured"] is True and d["verified"] is True and d["verified_by"] == "tflm"
    assert "verified: yes (TFLM host interpreter, bit-exact)" in res.summary()
    assert res.report["arena_bytes"] == res.report.arena_bytes  # the old dict-style access reads the field


def test_unverified_and_custom_op_reports_validate():
    """Null fields (verification off) and an FDT_PARTIAL path with FFMT-style tiles."""
    v = _validator()
    res = fdt_tflm.optimize(str(PROJECT_MODELS / "convdense.tflite"), verify=False, progress=False)
    r = res.report
    assert r.verified is None and r.verified_by is None and r.total_arena_bytes is None and r.guard.measured is False
    v.validate(r.to_dict())
    tiled = dataclasses.replace(r, paths=[PathEntry("FFMT", ["0:CONV_2D"], ["CONV_2D"], 6, "concat", [2, (1, 2, 1)],
                                                    900, 800, 1.5, 4.25)])
    d = tiled.to_dict()
    assert d["paths"][0]["tiles"] == [2, [1, 2, 1]]
    v.validate(d)
    custom = fdt_tflm.optimize(str(PROJECT_MODELS / "convdense.tflite"), allow_custom_ops=True, progress=False,
                               samples=2)
    assert custom.report.needs_custom_kernel and custom.report.paths[-1].end == "custom-partial"
    # TFLM's host build cannot run FDT_PARTIAL: the summary must not claim TFLM checked it
    assert custom.report.verified_by == "numpy-reference" and "TFLM host interpreter" not in custom.summary()
    assert "verified: yes (bit-exact NumPy reference" in custom.summary()
    v.validate(custom.report.to_dict())


def test_report_is_read_only():
    res = fdt_tflm.optimize(str(PROJECT_MODELS / "kws.tflite"), passes="none", verify=False, progress=False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.report.arena_bytes = 0
    with pytest.raises(TypeError):
        res.report["arena_bytes"] = 0
    with pytest.raises(KeyError):
        res.report["output"]


def test_cli_reads_the_report_and_patches_nothing(tmp_path):
    """``optimize --emit-c --json``: the JSON on disk is the schema's (no key added by the CLI,
    such as the output path), and the arena header carries the report's target arena."""
    import subprocess
    import sys
    out, rep, emit = tmp_path / "kws.out.tflite", tmp_path / "kws.json", tmp_path / "emit"
    emit.mkdir()
    r = subprocess.run([sys.executable, "-m", "fdt_tflm", "optimize", str(PROJECT_MODELS / "kws.tflite"), "-o",
                        str(out), "--passes", "reorder,plan", "--samples", "1", "--json", str(rep), "--emit-c",
                        str(emit)], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr
    d = json.loads(rep.read_text())
    _validator().validate(d)
    assert f"wrote {out}" in r.stdout
    header = (emit / "fdt_arena.h").read_text()
    assert f"#define FDT_TENSOR_ARENA_SIZE {d['target']['arena_size']}\n" in header
    assert f"#define FDT_TENSOR_ARENA_TAIL {d['target']['tail_bytes']}\n" in header
    assert (d["arena_bytes"], d["total_arena_bytes"]) == tflm_measure(out.read_bytes())


def tflm_measure(data: bytes) -> tuple[int, int]:
    r = run(data, make_inputs(fdt_tflm.read_model(data), 1))
    assert r.ok, r.error
    return r.head, r.total


def test_target_prediction_matches_measurements():
    """KWS on a Cortex-M4 with reference kernels: TFLM used 22,772 B (head + tail) in QEMU
    (README, Known limits); the head does not depend on the pointer size, so it equals the
    host TFLM's measured head, while the 32-bit tail is smaller than the host's."""
    res = fdt_tflm.optimize(str(PROJECT_MODELS / "kws.tflite"), passes="reorder,plan", progress=False, samples=1)
    r, t = res.report, res.report.target
    assert (t.cpu, t.kernels, t.abi) == ("cortex-m4", "reference", "cortex-m")
    assert t.head_bytes == r.arena_bytes and t.head_bytes + t.tail_bytes == 22_772
    assert t.tail_bytes < r.tail_bytes and t.arena_size % 16 == 0 and t.arena_size >= t.min_working_bytes
    assert "cortex-m4, reference kernels (predicted): arena" in res.summary()
