"""``device-tree``: a TFLM tree from a tflite-micro checkout and its downloads, offline, all or nothing.

The fake checkout's create_tflm_tree.py checks its arguments and the placed downloads and writes a
minimal tree.  The real build runs when FDT_TFLM_SOURCE (a tflite-micro checkout at the pinned
commit) and FDT_TFLM_DOWNLOADS (its downloads) are set.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fdt_tflm.cli import main
from fdt_tflm.device import harness
from fdt_tflm.device.tree import CREATE_TREE, DOWNLOADS, FLATBUFFERS_PATCH, KISSFFT_PATCH

FAKE_CREATE = textwrap.dedent('''\
    import argparse, os, subprocess, sys
    p = argparse.ArgumentParser()
    p.add_argument("output_dir")
    p.add_argument("--makefile_options", default="")
    a = p.parse_args()
    opts = dict(kv.split("=", 1) for kv in a.makefile_options.split())
    assert opts["TARGET"] == "cortex_m_generic" and opts["TARGET_ARCH"] == "cortex-m4+fp", opts
    assert opts["TARGET_TOOLCHAIN_ROOT"].endswith("/"), opts
    assert os.path.isfile(opts["TARGET_TOOLCHAIN_ROOT"] + "arm-none-eabi-gcc"), opts
    d = "tensorflow/lite/micro/tools/make/downloads"
    need = ["gemmlowp", "ruy", "flatbuffers", "kissfft", "cmsis", "pigweed"]
    if opts.get("OPTIMIZED_KERNEL_DIR") == "cmsis_nn":
        need.append("cmsis_nn")
    for n in need:
        assert os.path.isdir(os.path.join(d, n)), n
    assert not os.path.exists(os.path.join(d, "gemmlowp", "BUILD"))
    assert not os.path.exists(os.path.join(d, "flatbuffers", "BUILD.bazel"))
    assert "patched" in open(os.path.join(d, "flatbuffers/include/flatbuffers/base.h")).read()
    assert "patched" in open(os.path.join(d, "kissfft/kiss_fft.h")).read()
    # the Makefile calls python3 by name: it must be the --python one (numpy, pillow)
    subprocess.run(["python3", "-c", "import numpy, PIL"], check=True)
    if os.environ.get("FAKE_MAKE_FAIL"):
        os.makedirs(os.path.join(a.output_dir, "tensorflow"), exist_ok=True)  # a half-made tree
        sys.stderr.write("Traceback (most recent call last):\\n  File x\\nRuntimeError: make failed with\\n\\n"
                         "tensorflow/lite/micro/tools/make/Makefile:28: *** Something went wrong.  Stop.\\n")
        sys.exit(1)
    m = os.path.join(a.output_dir, "tensorflow/lite/micro")
    os.makedirs(os.path.join(m, "kernels"), exist_ok=True)
    open(os.path.join(m, "micro_interpreter.h"), "w").write("// fake\\n")
    if opts.get("OPTIMIZED_KERNEL_DIR") == "cmsis_nn":
        os.makedirs(os.path.join(m, "kernels", "cmsis_nn"))
    ''')

MARKERS = {"gemmlowp": "fixedpoint/fixedpoint.h", "ruy": "ruy/profiler/instrumentation.h",
           "flatbuffers": "include/flatbuffers/base.h", "kissfft": "kiss_fft.h",
           "cmsis": "CMSIS/Core/Include/cmsis_compiler.h", "cmsis_nn": "Include/arm_nnfunctions.h"}


def _patch_for(path: str) -> str:
    return f"--- a/{path}\n+++ b/{path}\n@@ -1 +1,2 @@\n // original\n+// patched\n"


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """(source, downloads) of a fake checkout; stub tools first on PATH."""
    if shutil.which("patch") is None:
        pytest.skip("needs patch")
    src = tmp_path / "tflite-micro"
    (src / CREATE_TREE).parent.mkdir(parents=True)
    (src / CREATE_TREE).write_text(FAKE_CREATE)
    (src / FLATBUFFERS_PATCH).parent.mkdir(parents=True)
    (src / FLATBUFFERS_PATCH).write_text(_patch_for(MARKERS["flatbuffers"]))
    (src / KISSFFT_PATCH).parent.mkdir(parents=True)
    (src / KISSFFT_PATCH).write_text(_patch_for(MARKERS["kissfft"]))
    dl = tmp_path / "downloads"
    for name, marker in MARKERS.items():
        (dl / name / marker).parent.mkdir(parents=True, exist_ok=True)
        (dl / name / marker).write_text("// original\n")
    (dl / "gemmlowp" / "BUILD").write_text("")
    (dl / "flatbuffers" / "BUILD.bazel").write_text("")
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    for tool in ("arm-none-eabi-gcc",) + tuple(harness.TOOLS):
        (bin_ / tool).write_text("#!/bin/sh\nexit 0\n")
        (bin_ / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_}{os.pathsep}{os.environ.get('PATH', '')}")
    return src, dl


def _run(capsys, src, dl, kernels, out, *extra):
    rc = main(["device-tree", "--tflm-source", str(src), "--downloads", str(dl), "--kernels", kernels,
               "-o", str(out), *extra])
    return rc, capsys.readouterr()


def _one_line_error(cap) -> str:
    lines = cap.err.strip().splitlines()
    assert len(lines) == 1, cap.err
    assert lines[0].startswith("fdt-tflm: error: ")
    return lines[0]


def _no_leftovers(out: Path) -> None:
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]


@pytest.mark.parametrize("kernels", ["reference", "cmsis-nn"])
def test_builds_a_tree_device_run_accepts(fake, tmp_path, capsys, kernels):
    src, dl = fake
    out = tmp_path / "tree"
    rc, cap = _run(capsys, src, dl, kernels, out)
    assert rc == 0, cap.err
    assert harness.check_prerequisites(str(out), kernels) == out.resolve()
    assert "not a git checkout: revision not checked" in cap.out
    assert f"--tflm-tree {out} --kernels {kernels}" in cap.out
    placed = src / DOWNLOADS
    assert (placed / "cmsis_nn").is_dir() == (kernels == "cmsis-nn")
    assert (placed / "pigweed").is_dir()
    # a second tree from the same checkout: downloads kept, patches not applied twice
    rc, cap = _run(capsys, src, dl, kernels, tmp_path / "tree2")
    assert rc == 0, cap.err
    assert (placed / "flatbuffers" / MARKERS["flatbuffers"]).read_text().count("patched") == 1


def test_other_kernel_set_refused_by_device_run(fake, tmp_path, capsys):
    src, dl = fake
    rc, cap = _run(capsys, src, dl, "reference", tmp_path / "tree")
    assert rc == 0, cap.err
    with pytest.raises(harness.FdtError, match="without OPTIMIZED_KERNEL_DIR"):
        harness.check_prerequisites(str(tmp_path / "tree"), "cmsis-nn")


def test_missing_download(fake, tmp_path, capsys):
    src, dl = fake
    shutil.rmtree(dl / "cmsis_nn")
    out = tmp_path / "tree"
    rc, cap = _run(capsys, src, dl, "cmsis-nn", out)
    assert rc == 2
    assert "cmsis_nn" in _one_line_error(cap)
    _no_leftovers(out)
    assert not (src / DOWNLOADS).exists()  # checked before anything is placed
    rc, cap = _run(capsys, src, dl, "reference", out)  # not needed for the reference kernels
    assert rc == 0, cap.err


def test_python_without_numpy_pillow(fake, tmp_path, capsys):
    src, dl = fake
    py = tmp_path / "badpython"
    py.write_text("#!/bin/sh\necho 'ModuleNotFoundError: No module named numpy' >&2\nexit 1\n")
    py.chmod(0o755)
    out = tmp_path / "tree"
    rc, cap = _run(capsys, src, dl, "reference", out, "--python", str(py))
    assert rc == 2
    line = _one_line_error(cap)
    assert "numpy" in line and "pillow" in line and str(py) in line
    _no_leftovers(out)


def test_existing_output_refused(fake, tmp_path, capsys):
    src, dl = fake
    out = tmp_path / "tree"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    rc, cap = _run(capsys, src, dl, "reference", out)
    assert rc == 2
    assert "not empty" in _one_line_error(cap)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    out.joinpath("keep.txt").unlink()  # an empty directory is fine
    rc, cap = _run(capsys, src, dl, "reference", out)
    assert rc == 0, cap.err


def test_make_failure_one_line_nothing_left(fake, tmp_path, capsys, monkeypatch):
    src, dl = fake
    monkeypatch.setenv("FAKE_MAKE_FAIL", "1")
    out = tmp_path / "tree"
    rc, cap = _run(capsys, src, dl, "reference", out)
    assert rc == 2
    line = _one_line_error(cap)
    assert "create_tflm_tree.py failed" in line and "*** Something went wrong" in line
    _no_leftovers(out)


def test_not_tflite_micro(fake, tmp_path, capsys):
    _src, dl = fake
    rc, cap = _run(capsys, tmp_path / "downloads", dl, "reference", tmp_path / "tree")
    assert rc == 2
    assert "does not look like tflite-micro" in _one_line_error(cap)


def test_git_checkout_at_other_revision(fake, tmp_path, capsys):
    if shutil.which("git") is None:
        pytest.skip("needs git")
    src, dl = fake
    g = ["git", "-C", str(src), "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run(g + ["init", "-q"], check=True)
    subprocess.run(g + ["add", "-A"], check=True)
    subprocess.run(g + ["commit", "-q", "-m", "x"], check=True)
    rc, cap = _run(capsys, src, dl, "reference", tmp_path / "tree")
    assert rc == 2
    assert "not the pinned 90b983c2b3f1" in _one_line_error(cap)


def test_device_run_points_to_device_tree(tmp_path, monkeypatch):
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    for tool in harness.TOOLS:
        (bin_ / tool).write_text("#!/bin/sh\nexit 0\n")
        (bin_ / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_}{os.pathsep}{os.environ.get('PATH', '')}")
    with pytest.raises(harness.FdtError, match="python -m fdt_tflm device-tree .*--kernels cmsis-nn"):
        harness.check_prerequisites(str(tmp_path / "nothing"), "cmsis-nn")


@pytest.mark.skipif(not (os.environ.get("FDT_TFLM_SOURCE") and os.environ.get("FDT_TFLM_DOWNLOADS")),
                    reason="set FDT_TFLM_SOURCE (tflite-micro checkout) and FDT_TFLM_DOWNLOADS to build a real tree")
def test_real_reference_tree(tmp_path, capsys):
    for tool in ("make", "patch", "arm-none-eabi-gcc") + tuple(harness.TOOLS):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool}")
    real = Path(os.environ["FDT_TFLM_SOURCE"])
    src = tmp_path / "tflite-micro"  # a copy: the downloads are placed into the checkout
    skip = (real / DOWNLOADS).resolve()
    shutil.copytree(real, src, symlinks=True,
                    ignore=lambda d, names: [n for n in names if (Path(d) / n).resolve() == skip])
    out = tmp_path / "reference"
    rc, cap = _run(capsys, src, os.environ["FDT_TFLM_DOWNLOADS"], "reference", out, "--python", sys.executable)
    assert rc == 0, cap.err
    assert harness.check_prerequisites(str(out), "reference") == out.resolve()
