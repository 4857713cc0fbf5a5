"""``device-tree``: build a TFLM tree (tflite-micro's ``create_tflm_tree.py``) offline, in one command.

Checks what can be checked without network access (the checkout, its revision when it is a git
checkout, the third-party downloads, numpy/pillow for the Python the Makefile runs,
arm-none-eabi-gcc), places the downloads where the Makefile looks for them with TFLM's own
post-processing, and runs ``create_tflm_tree.py`` into a temporary directory beside the output,
renamed at the end: all or nothing.  Any failure is one :class:`FdtError` line.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from ..errors import FdtError

TFLM_COMMIT = "90b983c2b3f1480642e040bbd2ddb37b998f3424"
CREATE_TREE = Path("tensorflow/lite/micro/tools/project_generation/create_tflm_tree.py")
DOWNLOADS = Path("tensorflow/lite/micro/tools/make/downloads")
FLATBUFFERS_PATCH = Path("tensorflow/lite/micro/tools/make/flatbuffers.patch")
KISSFFT_PATCH = Path("third_party/kissfft/kissfft.patch")
FLATBUFFERS_VERSION = (25, 9, 23)

# download directory -> a file it must contain (relative to it)
REQUIRED = {
    "gemmlowp": "fixedpoint/fixedpoint.h",
    "ruy": "ruy/profiler/instrumentation.h",
    "flatbuffers": "include/flatbuffers/base.h",
    "kissfft": "kiss_fft.h",
    "cmsis": "CMSIS/Core/Include/cmsis_compiler.h",
}
CMSIS_NN = ("cmsis_nn", "Include/arm_nnfunctions.h")
OPTIONAL_EMPTY = ("pigweed",)  # test utilities only: an empty directory is enough

KERNEL_SETS = ("reference", "cmsis-nn")
TIMEOUT = 3600.0


@dataclass
class TreeOptions:
    source: str
    downloads: str
    kernels: str
    output: str
    python: Optional[str] = None
    timeout: float = TIMEOUT


@dataclass
class TreeResult:
    tree: Path
    kernels: str
    notes: list[str] = field(default_factory=list)

    def device_run_command(self) -> str:
        return (f"python -m fdt_tflm device-run MODEL.tflite --tflm-tree {self.tree} --kernels {self.kernels}")


def _required(kernels: str) -> dict[str, str]:
    req = dict(REQUIRED)
    if kernels == "cmsis-nn":
        req[CMSIS_NN[0]] = CMSIS_NN[1]
    return req


def check_source(source: Path) -> str:
    """The checkout's note (revision checked or not); FdtError when it is not tflite-micro at the pin."""
    if not source.is_dir():
        raise FdtError(f"--tflm-source {source}: no such directory (a tflite-micro checkout at {TFLM_COMMIT[:7]})")
    if not (source / CREATE_TREE).is_file():
        raise FdtError(f"--tflm-source {source} does not look like tflite-micro (no {CREATE_TREE})")
    if not (source / ".git").exists():
        return "not a git checkout: revision not checked"
    try:
        head = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"git rev-parse failed ({e}): revision not checked"
    if head.returncode != 0:
        return "git rev-parse HEAD failed: revision not checked"
    rev = head.stdout.strip()
    if rev != TFLM_COMMIT:
        raise FdtError(f"--tflm-source {source} is at {rev[:12]}, not the pinned {TFLM_COMMIT[:12]} "
                       f"(git -C {source} checkout {TFLM_COMMIT})")
    return f"revision {TFLM_COMMIT[:12]} (pinned)"


def check_downloads(downloads: Path, kernels: str) -> list[str]:
    """FdtError naming the first missing download; notes on what was checked."""
    if not downloads.is_dir():
        raise FdtError(f"--downloads {downloads}: no such directory (see docs/firmware.md, 'Getting a TFLM tree')")
    for name, marker in _required(kernels).items():
        d = downloads / name
        if not d.is_dir():
            raise FdtError(f"--downloads {downloads} has no {name}/ (needed for {kernels} kernels; see the table "
                           "in docs/firmware.md, 'Getting a TFLM tree')")
        if not (d / marker).is_file():
            raise FdtError(f"--downloads {d} is not {name} (no {marker})")
    notes = []
    base = downloads / "flatbuffers" / REQUIRED["flatbuffers"]
    ver = tuple(int(m) for m in re.findall(r"#define FLATBUFFERS_VERSION_(?:MAJOR|MINOR|REVISION) (\d+)",
                                             base.read_text(errors="replace")))
    if len(ver) == 3:
        if ver != FLATBUFFERS_VERSION:
            raise FdtError(f"--downloads {downloads}/flatbuffers is version {'.'.join(map(str, ver))}, "
                           f"not the pinned v{'.'.join(map(str, FLATBUFFERS_VERSION))}")
        notes.append(f"flatbuffers v{'.'.join(map(str, ver))} (pinned)")
    return notes


def python_wrapper(python: str, into: Path) -> Path:
    """A directory holding ``python3`` that runs *python* (the Makefile calls ``python3`` by name).
    A script, not a symlink: a symlink to a venv's python would lose the venv."""
    into.mkdir(parents=True, exist_ok=True)
    w = into / "python3"
    w.write_text(f"#!/bin/sh\nexec '{python}' \"$@\"\n")
    w.chmod(0o755)
    return into


def check_python(python: str, env: dict[str, str]) -> None:
    """numpy and pillow importable by the ``python3`` the Makefile will run."""
    try:
        r = subprocess.run(["python3", "-c", "import numpy, PIL"], capture_output=True, text=True, env=env,
                           timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise FdtError(f"--python {python} cannot be run: {e}")
    if r.returncode != 0:
        raise FdtError(f"--python {python} cannot import numpy and pillow (the Makefile's generate_cc_arrays.py "
                       f"needs both: {python} -m pip install numpy pillow)")


def toolchain_root() -> str:
    gcc = shutil.which("arm-none-eabi-gcc")
    if gcc is None:
        raise FdtError("device-tree needs arm-none-eabi-gcc on PATH (Debian: gcc-arm-none-eabi); "
                       "it is TARGET_TOOLCHAIN_ROOT, so the Makefile does not download a compiler")
    return str(Path(gcc).parent) + "/"


def _patch_applied(folder: Path, patch: Path) -> bool:
    """True when applied already, False when it applies cleanly; FdtError when neither."""
    def dry(*extra: str) -> bool:
        with open(patch, "rb") as f:
            return subprocess.run(["patch", "-p1", "--dry-run", "-s", "-f", *extra], stdin=f, cwd=folder,
                                  capture_output=True).returncode == 0
    if shutil.which("patch") is None:
        raise FdtError("device-tree needs patch on PATH (to apply TFLM's flatbuffers.patch and kissfft.patch)")
    if dry("-R"):
        return True
    if dry():
        return False
    raise FdtError(f"{patch.name} neither applies to nor is applied in {folder} (not the pinned revision?)")


def place_downloads(source: Path, downloads: Path, kernels: str, say: Callable[[str], None]) -> None:
    """Copy the downloads into the checkout (skip those there already), then TFLM's post-processing."""
    dest = source / DOWNLOADS
    dest.mkdir(parents=True, exist_ok=True)
    same = dest.resolve() == downloads.resolve()
    names = list(_required(kernels)) + list(OPTIONAL_EMPTY)
    for name in names:
        d = dest / name
        if d.exists():
            if not same:
                say(f"  {name}: already in {dest}, kept")
            continue
        src = downloads / name
        if src.is_dir():
            say(f"  {name}: copying from {src}")
            tmp = dest / f".{name}.partial"
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(src, tmp, symlinks=True)
            tmp.rename(d)
        else:  # only OPTIONAL_EMPTY can get here
            d.mkdir()
            say(f"  {name}: not in --downloads, empty directory (test utilities only)")
    # download_and_extract.sh deletes '*BUILD'; flatbuffers_download.sh BUILD and BUILD.bazel
    for name, pattern in (("gemmlowp", re.compile(r".*BUILD$")), ("ruy", re.compile(r".*BUILD$")),
                          ("flatbuffers", re.compile(r"^(BUILD|BUILD\.bazel)$"))):
        for root, _dirs, files in os.walk(dest / name):
            for f in files:
                if pattern.match(f):
                    os.unlink(os.path.join(root, f))
    for name, patch in (("flatbuffers", FLATBUFFERS_PATCH), ("kissfft", KISSFFT_PATCH)):
        p = source / patch
        if not p.is_file():
            raise FdtError(f"--tflm-source {source} has no {patch}")
        if _patch_applied(dest / name, p):
            continue
        with open(p, "rb") as f:
            r = subprocess.run(["patch", "-p1", "-s", "-f"], stdin=f, cwd=dest / name, capture_output=True,
                               text=True)
        if r.returncode != 0:
            raise FdtError(f"patch -p1 < {patch} failed in {dest / name}: {_last_line(r.stdout + r.stderr)}")
        say(f"  {name}: applied {p.name}")


_NOISE = re.compile(r"^(Traceback |  File |    |During handling|The above exception)")


def _last_line(output: str) -> str:
    """The last meaningful line of a tool's output: a make error ('***') if any, else the last line
    that is not traceback boilerplate."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if "***" in ln and not ln.startswith("make: *** ["):
            return ln
    for ln in reversed(lines):
        if "***" in ln:
            return ln
    useful = [ln for ln in lines if not _NOISE.match(ln)]
    return useful[-1] if useful else "(no output)"


def makefile_options(kernels: str, toolchain: str) -> str:
    opts = f"TARGET=cortex_m_generic TARGET_ARCH=cortex-m4+fp TARGET_TOOLCHAIN_ROOT={toolchain}"
    return opts + (" OPTIMIZED_KERNEL_DIR=cmsis_nn" if kernels == "cmsis-nn" else "")


def _check_output(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FdtError(f"-o {out} exists and is not empty; choose a new directory")
    if not out.parent.is_dir():
        raise FdtError(f"-o {out}: {out.parent} does not exist")


def _check_tree(tree: Path, kernels: str) -> None:
    """What device-run's check_prerequisites asks of a tree."""
    micro = tree / "tensorflow" / "lite" / "micro"
    if not (micro / "micro_interpreter.h").is_file():
        raise FdtError("create_tflm_tree.py made no tensorflow/lite/micro/micro_interpreter.h")
    if (micro / "kernels" / "cmsis_nn").is_dir() != (kernels == "cmsis-nn"):
        raise FdtError(f"create_tflm_tree.py made a tree that cannot build {kernels} kernels "
                       "(kernels/cmsis_nn/ present or missing)")


def build_tree(opts: TreeOptions, say: Callable[[str], None] = print) -> TreeResult:
    """Checks, places the downloads, runs create_tflm_tree.py; the finished tree or FdtError."""
    if opts.kernels not in KERNEL_SETS:
        raise FdtError(f"--kernels {opts.kernels}: choose one of {', '.join(KERNEL_SETS)}")
    source = Path(opts.source).resolve()
    downloads = Path(opts.downloads).resolve()
    out = Path(opts.output).absolute()
    python = opts.python or sys.executable
    _check_output(out)
    notes = [check_source(source)]
    notes += check_downloads(downloads, opts.kernels)
    toolchain = toolchain_root()
    with tempfile.TemporaryDirectory(prefix="fdt-tree-py-") as wrap:
        env = dict(os.environ)
        env["PATH"] = str(python_wrapper(python, Path(wrap))) + os.pathsep + env.get("PATH", "")
        check_python(python, env)
        for n in notes:
            say(f"  {n}")
        say(f"  numpy and pillow: importable by {python}")
        say(f"  arm-none-eabi-gcc: {toolchain}")
        place_downloads(source, downloads, opts.kernels, say)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
        try:
            mk = makefile_options(opts.kernels, toolchain)
            say(f"  running create_tflm_tree.py --makefile_options=\"{mk}\"")
            try:
                r = subprocess.run([python, str(CREATE_TREE), f"--makefile_options={mk}", str(tmp)], cwd=source,
                                   env=env, capture_output=True, text=True, timeout=opts.timeout)
            except subprocess.TimeoutExpired:
                raise FdtError(f"create_tflm_tree.py did not finish in {opts.timeout:.0f} s")
            except OSError as e:
                raise FdtError(f"cannot run {python}: {e}")
            if r.returncode != 0:
                raise FdtError(f"create_tflm_tree.py failed: {_last_line(r.stdout + chr(10) + r.stderr)}")
            _check_tree(tmp, opts.kernels)
            if out.exists():
                out.rmdir()  # empty (checked above)
            tmp.rename(out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return TreeResult(tree=out, kernels=opts.kernels, notes=notes)
