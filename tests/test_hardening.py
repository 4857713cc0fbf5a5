"""Bad input is a clean exit 2 from every subcommand, under a 4 GB address-space limit and in
bounded time; outputs are all or nothing, follow the umask and never replace the input."""
from __future__ import annotations

import os
import resource
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import PROJECT_MODELS, REPO

from fdt_tflm.errors import FdtError
from fdt_tflm.io import read_model, write_model
from fdt_tflm.io.atomic import TEMP_PREFIX, atomic_write, write_all
from fdt_tflm.ir import Operator, Subgraph
from fdt_tflm.ir.builder import GraphBuilder, quant

KWS = PROJECT_MODELS / "kws.tflite"
ADDRESS_SPACE = 4_000_000 * 1024  # `ulimit -v 4000000`
TIME_LIMIT = 60.0


def _limits() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))
    os.umask(0o022)


def cli(*args: str) -> tuple[subprocess.CompletedProcess, float]:
    """The CLI in a child under RLIMIT_AS and umask 022; fails the test past 60 s."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "fdt_tflm", *args], capture_output=True, text=True, env=env,
                       timeout=TIME_LIMIT, preexec_fn=_limits)
    return r, time.perf_counter() - t0


def assert_one_line_exit_2(r: subprocess.CompletedProcess) -> None:
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, (r.returncode, r.stdout[-500:], r.stderr[-2000:])
    assert len(lines) == 1 and lines[0].startswith("fdt-tflm: error:"), r.stderr
    assert "Traceback" not in r.stderr


# -- models ----------------------------------------------------------------------------------

def no_kernel_model(custom: bool) -> bytes:
    """One op TFLM has no kernel for: an unknown custom op, or a builtin TFLM does not implement."""
    g = GraphBuilder()
    x = g.tensor("x", [1, 8, 8, 4], "INT8", quant(0.05, 0))
    y = g.tensor("y", [1, 8, 8, 4], "INT8", quant(0.05, 0))
    if custom:
        g.sg.operators.append(Operator(g.model.opcode(32, 1, custom_code=b"FDT_NO_SUCH_KERNEL"), [x], [y]))
    else:
        g.op("RELU_N1_TO_1", [x], [y])
    g.sg.inputs, g.sg.outputs = [x], [y]
    return write_model(g.model)


def hybrid_model() -> bytes:
    g = GraphBuilder()
    x = g.tensor("x", [1, 8], "FLOAT32")
    w = g.const("w", np.ones((4, 8), np.int8))
    y = g.tensor("y", [1, 4], "FLOAT32")
    g.op("FULLY_CONNECTED", [x, w, None], [y])
    g.sg.inputs, g.sg.outputs = [x], [y]
    return write_model(g.model)


def multi_subgraph_model() -> bytes:
    m = read_model(KWS.read_bytes())
    m.subgraphs.append(Subgraph(name=b"extra"))
    return write_model(m)


def hostile_shape_model() -> bytes:
    """kws whose first op claims an output of shape [1, 65535, 65535, 255] (about 1 TB)."""
    m = read_model(KWS.read_bytes())
    m.main.operators[0].outputs[0].shape = [1, 65535, 65535, 255]
    return write_model(m)


def bad_input(kind: str, tmp: Path) -> Path:
    p = tmp / f"{kind}.tflite"
    writers = {
        "random": lambda: np.random.default_rng(3).bytes(3072),
        "truncated": lambda: KWS.read_bytes()[:20000],
        "not tflite": lambda: b"\x1c\x00\x00\x00TFL2" + bytes(200),
        "hybrid": hybrid_model,
        "several subgraphs": multi_subgraph_model,
        "custom op without kernel": lambda: no_kernel_model(True),
        "builtin without TFLM kernel": lambda: no_kernel_model(False),
        "shape [1, 65535, 65535, 255]": hostile_shape_model,
    }
    if kind == "missing":
        return p
    if kind == "folder":
        p.mkdir()
        return p
    p.write_bytes(writers[kind]())
    return p


FILE_KINDS = ["missing", "folder", "random", "truncated", "not tflite", "shape [1, 65535, 65535, 255]"]
MODEL_KINDS = ["hybrid", "several subgraphs", "custom op without kernel", "builtin without TFLM kernel"]
# What each subcommand refuses besides broken files: the passes (optimize, firmware) need one
# subgraph and a model TFLM runs; verify needs models TFLM runs (it compares any two of
# them, several subgraphs included); inspect is static analysis of any readable model.
REFUSED = {
    "inspect": FILE_KINDS,
    "verify": FILE_KINDS + ["hybrid", "custom op without kernel", "builtin without TFLM kernel"],
    "optimize": FILE_KINDS + MODEL_KINDS,
    "firmware": FILE_KINDS + MODEL_KINDS,
}
CASES = [(cmd, kind) for cmd, kinds in REFUSED.items() for kind in kinds]


def command(cmd: str, bad: Path, tmp: Path, bad_first: bool = False) -> list[str]:
    return {"inspect": ["inspect", str(bad)],
            "optimize": ["optimize", str(bad), "-o", str(tmp / "out.tflite"), "--json", str(tmp / "r.json")],
            "verify": ["verify", *((str(bad), str(KWS)) if bad_first else (str(KWS), str(bad)))],
            "firmware": ["firmware", str(bad), "--target", "stm32", "-o", str(tmp / "proj")]}[cmd]


@pytest.mark.parametrize("cmd,kind", CASES, ids=[f"{c}-{k}" for c, k in CASES])
def test_bad_input_exits_2_with_one_line_under_4gb_within_60s(tmp_path: Path, cmd: str, kind: str) -> None:
    bad = bad_input(kind, tmp_path)
    r, seconds = cli(*command(cmd, bad, tmp_path))
    assert_one_line_exit_2(r)
    assert seconds < TIME_LIMIT
    assert not (tmp_path / "out.tflite").exists() and not (tmp_path / "r.json").exists()
    assert not (tmp_path / "proj").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no temp files or folders left"


@pytest.mark.parametrize("kind", ["custom op without kernel", "truncated"])
def test_verify_refuses_a_bad_first_model_too(tmp_path: Path, kind: str) -> None:
    bad = bad_input(kind, tmp_path)
    r, _ = cli(*command("verify", bad, tmp_path, bad_first=True))
    assert_one_line_exit_2(r)
    assert bad.name in r.stderr


def test_verify_names_models_that_run_but_differ_exit_1(tmp_path: Path) -> None:
    """Same graph, one weight changed: both run in TFLM, the outputs differ -> 1, not 2."""
    m = read_model(KWS.read_bytes())
    w = next(t for t in m.main.operators[0].inputs if t is not None and t.is_constant)
    arr = np.frombuffer(w.buffer.data, np.int8).copy()
    arr[: arr.size // 2] = -arr[: arr.size // 2] // 2
    w.buffer = type(w.buffer)(arr.tobytes())
    other = tmp_path / "other.tflite"
    other.write_bytes(write_model(m))
    r, _ = cli("verify", str(KWS), str(other))
    assert r.returncode == 1, r.stderr
    assert "OUTPUTS DIFFER" in r.stdout and r.stderr == ""


# -- umask -----------------------------------------------------------------------------------

def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_optimize_outputs_follow_umask_022(tmp_path: Path) -> None:
    out, rep, png, cdir = tmp_path / "o.tflite", tmp_path / "r.json", tmp_path / "p.png", tmp_path / "c"
    r, _ = cli("optimize", str(KWS), "-o", str(out), "--passes", "none", "--json", str(rep), "--plot", str(png),
               "--emit-c", str(cdir))
    assert r.returncode == 0, r.stderr
    for f in (out, rep, png, *cdir.iterdir()):
        assert mode(f) == 0o644, (f, oct(mode(f)))
    assert mode(cdir) == 0o755
    assert sorted(p.name for p in cdir.iterdir()) == ["fdt_arena.h", "fdt_model.cc", "fdt_model.h",
                                                      "fdt_op_resolver.h"]


def test_atomic_write_follows_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        atomic_write(tmp_path / "a.bin", b"x")
    finally:
        os.umask(old)
    assert mode(tmp_path / "a.bin") == 0o640


def test_firmware_project_follows_umask_022(tmp_path: Path) -> None:
    proj = tmp_path / "proj"
    r, _ = cli("firmware", str(KWS), "--target", "stm32", "-o", str(proj), "--no-optimize")
    assert r.returncode == 0, r.stderr
    assert mode(proj) == 0o755
    for f in (proj / "generated").iterdir():
        assert mode(f) == 0o644, f


# -- all or nothing --------------------------------------------------------------------------

def test_failing_emit_c_leaves_no_tflite(tmp_path: Path) -> None:
    """One of the C files cannot be written (a folder has its name): nothing is written, and
    the model's temp file, staged before the C files, is gone too."""
    cdir = tmp_path / "c"
    (cdir / "fdt_model.cc").mkdir(parents=True)
    (cdir / "keep.txt").write_text("mine")
    out, rep = tmp_path / "o.tflite", tmp_path / "r.json"
    r, _ = cli("optimize", str(KWS), "-o", str(out), "--passes", "none", "--emit-c", str(cdir), "--json", str(rep))
    assert_one_line_exit_2(r)
    assert "fdt_model.cc" in r.stderr
    assert not out.exists() and not rep.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]
    assert sorted(p.name for p in cdir.iterdir()) == ["fdt_model.cc", "keep.txt"]


def test_emit_c_into_a_new_folder_that_fails_removes_the_folder(tmp_path: Path) -> None:
    out = tmp_path / "o.tflite"
    out.mkdir()  # -o names a folder: staging the model fails after the C folder was created
    r, _ = cli("optimize", str(KWS), "-o", str(out), "--passes", "none", "--emit-c", str(tmp_path / "new" / "c"))
    assert_one_line_exit_2(r)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.tflite"] and not any(out.iterdir())


def test_a_failed_rename_restores_what_was_already_replaced(tmp_path: Path, monkeypatch) -> None:
    """The second rename fails: the first target gets its old bytes back, no temp file stays."""
    import fdt_tflm.io.atomic as atomic
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"old a")
    real_replace, seen = os.replace, []

    def replace(src, dst):
        seen.append(sorted(p.name for p in tmp_path.iterdir()))
        if os.fspath(dst) == str(b):
            raise OSError(28, "No space left on device")
        real_replace(src, dst)
    monkeypatch.setattr(atomic.os, "replace", replace)
    with pytest.raises(FdtError, match="No space left"):
        write_all({a: b"new a", b: b"new b"})
    assert len(seen) >= 2 and sum(n.startswith(TEMP_PREFIX) for n in seen[0]) >= 2, "temp files existed"
    assert a.read_bytes() == b"old a" and not b.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"]


def test_atomic_write_interrupted_during_the_write_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    """Interrupted while the temp file is being written: the temp file is removed."""
    import fdt_tflm.io.atomic as atomic
    target = tmp_path / "m.tflite"
    target.write_bytes(b"previous")
    during = []

    real_fchmod = os.fchmod

    def fchmod(fd, m):  # runs inside the write, with the temp file open
        real_fchmod(fd, m)
        during.append(sorted(p.name for p in tmp_path.iterdir()))
        raise KeyboardInterrupt
    monkeypatch.setattr(atomic.os, "fchmod", fchmod)
    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, b"new contents")
    assert during and any(n.startswith(TEMP_PREFIX) for n in during[0]), "the temp file existed"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.tflite"]
    assert target.read_bytes() == b"previous"


@pytest.mark.parametrize("flag", ["--json", "--plot", "-o"])
def test_no_output_may_replace_the_input(tmp_path: Path, flag: str) -> None:
    model = tmp_path / "kws.tflite"
    model.write_bytes(KWS.read_bytes())
    args = ["optimize", str(model), "--passes", "none"]
    args += [flag, str(tmp_path / "." / "kws.tflite")] + (["-o", str(tmp_path / "o.tflite")] if flag != "-o" else [])
    r, _ = cli(*args)
    assert_one_line_exit_2(r)
    assert "overwrite the input" in r.stderr and model.read_bytes() == KWS.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kws.tflite"]


def test_inspect_plot_may_not_replace_the_input_and_names_a_format(tmp_path: Path) -> None:
    model = tmp_path / "kws.tflite"
    model.write_bytes(KWS.read_bytes())
    for plot, msg in ((model, "overwrite the input"), (tmp_path / "plan.tflm", "cannot draw a .tflm file")):
        r, _ = cli("inspect", str(model), "--plot", str(plot))
        assert_one_line_exit_2(r)
        assert msg in r.stderr
    assert model.read_bytes() == KWS.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kws.tflite"]


def test_emit_c_may_not_replace_the_input(tmp_path: Path) -> None:
    cdir = tmp_path / "c"
    cdir.mkdir()
    model = cdir / "fdt_model.cc"  # an odd name for a model, but it is the input
    model.write_bytes(KWS.read_bytes())
    r, _ = cli("optimize", str(model), "-o", str(tmp_path / "o.tflite"), "--passes", "none", "--emit-c", str(cdir))
    assert_one_line_exit_2(r)
    assert model.read_bytes() == KWS.read_bytes() and not (tmp_path / "o.tflite").exists()
    assert sorted(p.name for p in cdir.iterdir()) == ["fdt_model.cc"]


# -- firmware: the project appears whole or not at all ------------------------------------------

def _instantiate(out: Path, **kw):
    from fdt_tflm.firmware.emit import ArenaInfo
    from fdt_tflm.firmware.template import instantiate
    return instantiate("stm32", out, KWS.read_bytes(), arena=ArenaInfo(16000, 8272, 16000, 0), **kw)


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_firmware_failing_half_way_leaves_no_project(tmp_path: Path, monkeypatch) -> None:
    """emit_c fails after the template was copied: no project folder, no temp folder."""
    import fdt_tflm.firmware.template as template
    copied = []

    def failing_emit(*a, **kw):
        copied.append([p.name for p in tmp_path.iterdir()])
        raise FdtError("simulated failure while writing the sources")
    monkeypatch.setattr(template, "emit_c", failing_emit)
    with pytest.raises(FdtError, match="simulated"):
        _instantiate(tmp_path / "proj")
    assert copied and copied[0] and copied[0][0].startswith("."), "the build folder existed beside proj"
    assert list(tmp_path.iterdir()) == []


def test_firmware_failure_keeps_the_previous_project_intact(tmp_path: Path, monkeypatch) -> None:
    import fdt_tflm.firmware.template as template
    proj = tmp_path / "proj"
    _instantiate(proj)
    before = _tree(proj)
    monkeypatch.setattr(template, "emit_c", lambda *a, **kw: (_ for _ in ()).throw(FdtError("simulated")))
    with pytest.raises(FdtError):
        _instantiate(proj)
    assert _tree(proj) == before
    assert [p.name for p in tmp_path.iterdir()] == ["proj"]


def test_firmware_rewrite_replaces_the_project_and_keeps_build_and_user_files(tmp_path: Path) -> None:
    proj = tmp_path / "proj"
    _instantiate(proj)
    (proj / "build").mkdir()
    (proj / "build" / "CMakeCache.txt").write_text("cache")
    (proj / "notes.md").write_text("mine")
    (proj / "generated" / "stale.h").write_text("old generated file")
    inst = _instantiate(proj, prefix="net")
    assert (proj / "build" / "CMakeCache.txt").read_text() == "cache"
    assert (proj / "notes.md").read_text() == "mine"
    assert not (proj / "generated" / "stale.h").exists() and not (proj / "generated" / "fdt_model.cc").exists()
    assert (proj / "generated" / "net_model.cc").is_file()
    assert all(f.parent == proj / "generated" and f.is_file() for f in inst.emitted.files)
    assert [p.name for p in tmp_path.iterdir()] == ["proj"]


def test_firmware_refuses_a_folder_that_is_not_a_project(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("not a project")
    with pytest.raises(FdtError, match="not an fdt-tflm project"):
        _instantiate(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["mine.txt"]


def test_firmware_never_replaces_its_input(tmp_path: Path) -> None:
    proj = tmp_path / "proj"
    _instantiate(proj)
    model = proj / "generated" / "model.tflite"
    model.write_bytes(KWS.read_bytes())
    r, _ = cli("firmware", str(model), "--target", "stm32", "-o", str(proj), "--no-optimize")
    assert_one_line_exit_2(r)
    assert model.read_bytes() == KWS.read_bytes()


# -- graphs the passes cannot reorder ----------------------------------------------------------

def _cycle(sg: Subgraph) -> None:
    sg.operators[0].inputs[0] = sg.operators[1].outputs[0]


def _writes_constant(sg: Subgraph) -> None:
    sg.operators[0].outputs[0] = next(t for t in sg.tensors if t.is_constant)


def _reads_unwritten(sg: Subgraph) -> None:
    del sg.operators[3]  # operator 4 now reads a tensor nobody writes: uninitialised memory


def _two_writers(sg: Subgraph) -> None:
    sg.operators[2].outputs[0] = sg.operators[1].outputs[0]


@pytest.mark.parametrize("edit,msg", [(_cycle, "before operator 1 writes it"),
                                      (_writes_constant, "writes the constant tensor"),
                                      (_reads_unwritten, "neither a graph input"),
                                      (_two_writers, "written by operators 1 and 2")])
def test_graphs_the_passes_cannot_reorder_are_refused(edit, msg) -> None:
    """TFLM runs them blindly in the stored order, so the reader accepts them; the passes not."""
    from fdt_tflm.analysis import check_optimizable
    m = read_model(KWS.read_bytes())
    edit(m.main)
    again = read_model(write_model(m))
    with pytest.raises(FdtError, match=msg):
        check_optimizable(again)


def test_out_of_memory_is_one_line_exit_2(monkeypatch, capsys) -> None:
    """Should an allocation still fail (a tighter limit than ours), the user gets one line."""
    import fdt_tflm.io
    from fdt_tflm.cli import main

    def no_memory(source):
        raise MemoryError()
    monkeypatch.setattr(fdt_tflm.io, "read_model", no_memory)
    assert main(["inspect", str(KWS)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fdt-tflm: error: out of memory")
