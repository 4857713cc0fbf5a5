"""Device harness: build the STM32 firmware project for one model, run it in QEMU, and
measure what the arena header promises, on the device's own (32-bit) TFLM.

Why: every number fdt-tflm computes otherwise comes from the 64-bit host interpreter.  The
project is instantiated by the ``firmware`` subcommand's own code (``cmd_firmware``), so
what is measured is what users get; the application is built with FDT_ARENA_PROBE and
FDT_SYSTICK_COUNT (``common/fdt_probe.inc``), which only add lines after the normal ones.
``profile_ops`` adds FDT_OP_PROFILE (instructions per operator, from one more Invoke with a
profiler); ``bisect=False`` adds FDT_PROBE_NO_BISECT (no smallest-arena search);
``two_arenas`` adds FDT_TWO_ARENAS: the firmware's interpreter gets the header's persistent and
non-persistent arenas (``MicroAllocator::Create`` with two buffers), and the probe checks both
sizes, each 32 B short, and the smallest of each (the ``two_arenas`` / ``*persistent*`` fields).

Builds are expensive, so there is one CMake build directory per (TFLM tree, kernels,
machine, optional probe defines) under ``build_dir``: TFLM is compiled once and each model
only rebuilds the application (ccache is used when installed).  A lock file serialises runs
sharing one.
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import io
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import numpy as np

from ..errors import FdtError
from .machines import RAM_RESERVE, Machine, machine_for
from .serial import SerialReport, parse_serial

MODES = ("original", "optimized", "custom-ops")
TOOLS = ("cmake", "arm-none-eabi-g++", "qemu-system-arm")
PROBE_DEFINES = ("FDT_ARENA_PROBE", "FDT_SYSTICK_COUNT")
OP_PROFILE_EVENT_BYTES = 8  # FDT_OP_PROFILE's static storage per kept event (fdt_probe.inc)
_HEADER_RE = re.compile(r"#define\s+FDT_TENSOR_ARENA_SIZE\s+(\d+)")
_SPLIT_RE = {k: re.compile(rf"#define\s+FDT_{k}_ARENA_SIZE\s+(\d+)") for k in ("PERSISTENT", "NON_PERSISTENT")}
OptimizeFn = Callable[[str, argparse.Namespace], Any]


@dataclass(frozen=True)
class DeviceOptions:
    """What to measure: the model, how the firmware is made, and where it runs."""

    model: str
    tree: str
    kernels: str = "reference"
    cpu: str = "cortex-m4"
    mode: str = "optimized"
    machine: Optional[str] = None  # QEMU -M; default per cpu
    build_dir: Optional[str] = None
    timeout: float = 1800.0
    passes: Optional[str] = None
    max_overhead: float = 0.0
    max_slowdown: Optional[float] = None  # as for optimize (None: its default budget)
    objective: str = "total"
    profile_ops: bool = False  # FDT_OP_PROFILE: instructions per operator (DeviceResult.op_instructions)
    bisect: bool = True  # False: FDT_PROBE_NO_BISECT, min_working_arena_bytes stays None
    two_arenas: bool = False  # FDT_TWO_ARENAS: persistent + non-persistent arena (DeviceResult.two_arenas_*)

    def extra_defines(self) -> tuple[str, ...]:
        """The optional probe defines (their set keys the build directory)."""
        return ((("FDT_OP_PROFILE",) if self.profile_ops else ()) + (() if self.bisect else ("FDT_PROBE_NO_BISECT",))
                + (("FDT_TWO_ARENAS",) if self.two_arenas else ()))


@dataclass
class DeviceResult:
    """One device measurement (the JSON of ``device-run --json``)."""

    model: str
    mode: str
    kernels: str
    cpu: str
    qemu_machine: str
    model_sha256: str  # of the model in the firmware
    original_sha256: str
    header_arena_bytes: int
    arena_used_bytes: Optional[int]
    allocates_in_header: bool
    fails_at_header_minus_32: Optional[bool]
    min_working_arena_bytes: Optional[int]
    outputs_equal_original_host: Optional[bool]
    instructions_per_inference: Optional[int]
    systick_hz: Optional[int]  # the raw counts below give instructions_per_inference again
    invoke_ticks: Optional[int]
    calibration_ticks: Optional[int]
    device_status: Optional[int]
    probe_buffer_bytes: Optional[int]
    # --profile-ops: instructions per operator (subgraph 0's order), each less an empty
    # profiler pair; the raw SysTick ticks and the empty pairs' ticks give them again.
    op_instructions: Optional[list[int]] = None
    op_ticks: Optional[list[int]] = None
    op_overhead_ticks: Optional[int] = None
    op_overhead_pairs: Optional[int] = None
    op_invoke_ticks: Optional[int] = None  # the profiled Invoke (profiler calls included)
    # the instruction model's prediction for this CPU and kernel set (the report's figures)
    predicted_instructions: Optional[int] = None
    predicted_original_instructions: Optional[int] = None
    # --two-arenas (FDT_TWO_ARENAS): the header's FDT_PERSISTENT_ARENA_SIZE and
    # FDT_NON_PERSISTENT_ARENA_SIZE; whether AllocateTensors and Invoke succeed with both, and
    # fail with 32 B less in one (the other unchanged); the smallest working size of each (the
    # other at its header size; None: not even the probe's buffer works, or --no-bisect).
    # With --two-arenas the normal run (allocates_in_header, arena_used_bytes) uses the two.
    persistent_header_bytes: Optional[int] = None
    non_persistent_header_bytes: Optional[int] = None
    two_arenas_allocate: Optional[bool] = None
    persistent_fails_minus_32: Optional[bool] = None
    non_persistent_fails_minus_32: Optional[bool] = None
    min_persistent_bytes: Optional[int] = None
    min_non_persistent_bytes: Optional[int] = None
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_prerequisites(tree: str, kernels: str) -> Path:
    """The TFLM tree as a Path; FdtError (one line) when a tool or the tree is missing."""
    for tool in TOOLS:
        if shutil.which(tool) is None:
            raise FdtError(f"device-run needs {tool} on PATH (Debian: cmake, gcc-arm-none-eabi "
                           "libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib, qemu-system-arm)")
    root = Path(tree).resolve()
    if not (root / "tensorflow" / "lite" / "micro" / "micro_interpreter.h").is_file():
        raise FdtError(f"{tree} is not a TFLM tree (no tensorflow/lite/micro/micro_interpreter.h); make one with "
                       f"python -m fdt_tflm device-tree --tflm-source TFLITE_MICRO --downloads DIR "
                       f"--kernels {kernels} -o {tree} (docs/firmware.md, 'Getting a TFLM tree')")
    has_cmsis = (root / "tensorflow" / "lite" / "micro" / "kernels" / "cmsis_nn").is_dir()
    if has_cmsis != (kernels == "cmsis-nn"):
        made = "with" if has_cmsis else "without"
        raise FdtError(f"{tree} was made {made} OPTIMIZED_KERNEL_DIR=cmsis_nn; it cannot build {kernels} kernels")
    return root


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def default_build_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "fdt-tflm" / "device"


def work_dir(opts: DeviceOptions, tree: Path, machine: Machine) -> Path:
    """One persistent project + build directory per (tree, kernels, machine, optional defines):
    a profiling build does not thrash the plain one."""
    root = Path(opts.build_dir) if opts.build_dir else default_build_root()
    tag = hashlib.sha1(str(tree).encode()).hexdigest()[:8]
    extra = opts.extra_defines()
    if extra:
        tag += "-" + hashlib.sha1(";".join(sorted(extra)).encode()).hexdigest()[:6]
    return root / f"{opts.kernels}-{machine.qemu}-{tag}"


def _firmware_args(opts: DeviceOptions, out: Path, target: str = "stm32", part: Optional[str] = None
                   ) -> argparse.Namespace:
    return argparse.Namespace(
        model=opts.model, target=target, output=str(out), no_optimize=opts.mode == "original",
        passes=opts.passes, max_overhead=opts.max_overhead, objective=opts.objective, no_verify=False,
        max_slowdown=opts.max_slowdown,
        allow_custom_ops=opts.mode == "custom-ops", prefix="fdt", kernels=opts.kernels, cpu=opts.cpu, part=part,
        target_ram=None, target_flash=None)


def read_header(proj: Path) -> int:
    """FDT_TENSOR_ARENA_SIZE from the generated arena header."""
    m = _HEADER_RE.search((proj / "generated" / "fdt_arena.h").read_text())
    if m is None:
        raise FdtError(f"no FDT_TENSOR_ARENA_SIZE in {proj / 'generated' / 'fdt_arena.h'}")
    return int(m.group(1))


def read_split_header(proj: Path) -> tuple[int, int]:
    """FDT_PERSISTENT_ARENA_SIZE and FDT_NON_PERSISTENT_ARENA_SIZE from the arena header."""
    text = (proj / "generated" / "fdt_arena.h").read_text()
    out = []
    for k, rx in _SPLIT_RE.items():
        m = rx.search(text)
        if m is None:
            raise FdtError(f"no FDT_{k}_ARENA_SIZE in {proj / 'generated' / 'fdt_arena.h'}")
        out.append(int(m.group(1)))
    return out[0], out[1]


def two_arena_buffers(persistent: int, non_persistent: int, room: int) -> tuple[int, int]:
    """The probe's two buffers (FDT_PROBE_PERSISTENT_SIZE / _NON_PERSISTENT_SIZE): each
    twice its header size + 1 KB (so that a size the header gets wrong is still found), less
    in proportion when both do not fit in ``room`` bytes (the firmware lays them side by side
    in the probe's single-arena buffer, which is used at other times)."""
    want = (persistent + 1024, non_persistent + 1024)
    scale = min(1.0, max(0, room - persistent - non_persistent - 32) / sum(want))
    return ((persistent + int(want[0] * scale)) // 16 * 16, (non_persistent + int(want[1] * scale)) // 16 * 16)


def instantiate_project(opts: DeviceOptions, proj: Path, optimize_fn: Optional[OptimizeFn],
                        target: str = "stm32", part: Optional[str] = None) -> bytes:
    """Write the ``target`` project exactly as ``fdt-tflm firmware`` does; returns the
    firmware's model bytes.  The subcommand's printout (a board's flashing steps) is not shown: what runs is
    the emulated machine, which :func:`device_run` names."""
    from ..firmware.cli import cmd_firmware
    from ..io import load_bytes
    results: list[Any] = []

    def capture(path: str, args: argparse.Namespace) -> Any:
        if optimize_fn is None:
            raise FdtError("optimisation is not available here; use --no-optimize")
        results.append(optimize_fn(path, args))
        return results[-1]

    with contextlib.redirect_stdout(io.StringIO()):
        cmd_firmware(_firmware_args(opts, proj, target, part), capture)
    return results[-1].data if results else load_bytes(opts.model)


def _nice() -> list[str]:
    """Builds and emulation yield to interactive work on small machines."""
    return ["nice", "-n", "10"] if shutil.which("nice") else []


def _run(cmd: list[str], what: str, timeout: float, cwd: Optional[Path] = None) -> str:
    try:
        proc = subprocess.run(_nice() + cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd)
    except subprocess.TimeoutExpired:
        raise FdtError(f"{what} timed out after {timeout:.0f} s") from None
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if "error" in ln.lower()]
        last = (lines or (proc.stdout + proc.stderr).strip().splitlines() or ["no output"])[-1]
        raise FdtError(f"{what} failed (exit {proc.returncode}): {last.strip()}")
    return proc.stdout


def n_events(model_bytes: bytes) -> int:
    """Profiler events one Invoke can make: every operator of every subgraph at most once
    (more only with loops, whose extra events are counted but not kept)."""
    from ..io import read_model
    return max(1, sum(len(sg.operators) for sg in read_model(model_bytes).subgraphs))


def probe_defines(opts: DeviceOptions, machine: Machine, header: int, model_bytes: bytes,
                  split: Optional[tuple[int, int]] = None) -> tuple[str, ...]:
    """The application's defines: the probe, its buffer, and the optional ones.  The op
    profile's storage comes out of the probe buffer when RAM is the limit.  ``two_arenas``:
    ``split`` is the header's two sizes, their probe buffers share the single one's memory."""
    buffer = machine.probe_buffer(header)
    extra = list(opts.extra_defines())
    if opts.two_arenas:
        if split is None:
            raise FdtError("two_arenas needs the header's persistent and non-persistent sizes")
        room = machine.ram - RAM_RESERVE - (OP_PROFILE_EVENT_BYTES * n_events(model_bytes) if opts.profile_ops else 0)
        pb, qb = two_arena_buffers(*split, room)
        extra += [f"FDT_PROBE_PERSISTENT_SIZE={max(pb, split[0])}", f"FDT_PROBE_NON_PERSISTENT_SIZE={max(qb, split[1])}"]
    if opts.profile_ops:
        events = n_events(model_bytes)
        extra.append(f"FDT_OP_PROFILE_MAX={events}")
        room = (machine.ram - RAM_RESERVE - OP_PROFILE_EVENT_BYTES * events) // 16 * 16
        buffer = max(min(buffer, room), header)
    return PROBE_DEFINES + (f"FDT_PROBE_ARENA_SIZE={buffer}",) + tuple(extra)


def build(proj: Path, build_dir: Path, tree: Path, kernels: str, machine: Machine, defines_: tuple[str, ...],
          timeout: float) -> Path:
    """Configure (first time: toolchain, ccache) and build with the application ``defines_``
    (``probe_defines``); returns the ELF."""
    defines = ";".join(defines_)
    cmd = ["cmake", "-S", str(proj), "-B", str(build_dir), f"-DFDT_PART={machine.part}", f"-DTFLM_DIR={tree}",
           f"-DFDT_KERNELS={kernels}", f"-DFDT_APP_DEFINES={defines}"]
    if not (build_dir / "CMakeCache.txt").exists():
        cmd.append(f"-DCMAKE_TOOLCHAIN_FILE={proj / 'cmake' / 'arm-none-eabi.cmake'}")
        if shutil.which("ccache"):
            cmd += ["-DCMAKE_C_COMPILER_LAUNCHER=ccache", "-DCMAKE_CXX_COMPILER_LAUNCHER=ccache"]
    _run(cmd, "cmake configure", timeout)
    _run(["cmake", "--build", str(build_dir), "-j2"], "firmware build", timeout)
    elf = build_dir / "fdt_app.elf"
    if not elf.is_file():
        raise FdtError(f"the build wrote no {elf}")
    return elf


def run_qemu(elf: Path, machine: Machine, timeout: float) -> str:
    """Run the ELF with semihosting; ``-icount shift=0`` makes virtual time count instructions
    (1 ns each), which the SysTick measures.  Returns what the firmware printed."""
    cmd = _nice() + ["qemu-system-arm", "-M", machine.qemu, "-nographic", "-monitor", "none", "-serial", "none",
           "-semihosting-config", "enable=on,target=native", "-icount", "shift=0", "-kernel", str(elf)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise FdtError(f"QEMU ({machine.qemu}) timed out after {timeout:.0f} s") from None
    if "fdt: done" not in proc.stdout:
        last = (proc.stderr.strip().splitlines() or proc.stdout.strip().splitlines() or ["no output"])[-1]
        raise FdtError(f"the firmware did not finish in QEMU ({machine.qemu}, exit {proc.returncode}): {last}")
    return proc.stdout


def pattern_inputs(model_bytes: bytes) -> list[np.ndarray]:
    """The firmware's input: byte i of every input tensor is (7 i + 3) mod 256."""
    from ..io import read_model
    from ..ir.types import DTYPE_NUMPY
    out = []
    for t in read_model(model_bytes).main.inputs:
        raw = ((np.arange(t.nbytes) * 7 + 3) & 0xFF).astype(np.uint8)
        out.append(raw.view(DTYPE_NUMPY[t.dtype]).reshape(t.shape))
    return out


def host_outputs(original: bytes) -> list[bytes]:
    """The ORIGINAL model's outputs in the host TFLM on the firmware's input, as bytes."""
    from ..verify import run
    res = run(original, [pattern_inputs(original)], runtime="tflm")
    if not res.ok:
        raise FdtError(f"the host TFLM could not run the original model: {res.error}")
    return [np.ascontiguousarray(o).tobytes() for o in res.outputs[0]]


def outputs_equal(report: SerialReport, host: list[bytes]) -> Optional[bool]:
    """Every output byte of the device equals the host's (None: the device printed none)."""
    if not report.outputs:
        return None
    return sorted(report.outputs) == list(range(len(host))) and all(
        report.outputs[i] == h for i, h in enumerate(host))


def _result(opts: DeviceOptions, machine: Machine, data: bytes, original: bytes, header: int,
            report: SerialReport, host: list[bytes]) -> DeviceResult:
    notes = []
    if opts.two_arenas:
        notes.append("two arenas: the normal run (allocates_in_header, its arena_used_bytes) used the header's "
                     "persistent + non-persistent arenas; the probe's single-arena fields are as without")
    elif report.used_in_header is not None and report.full_used not in (None, report.used_in_header):
        notes.append(f"arena_used_bytes differs: {report.used_in_header} in the header's arena, "
                     f"{report.full_used} in the probe buffer")
    if report.op_ticks is not None:
        from ..io import read_model
        n_ops = len(read_model(data).main.operators)
        if report.op_events != n_ops or len(report.op_ticks) != n_ops:
            notes.append(f"op profile: {report.op_events} events ({len(report.op_ticks)} kept) for the "
                         f"{n_ops} operators of subgraph 0")
    return DeviceResult(
        model=os.path.basename(opts.model), mode=opts.mode, kernels=opts.kernels, cpu=opts.cpu,
        qemu_machine=machine.qemu, model_sha256=hashlib.sha256(data).hexdigest(),
        original_sha256=hashlib.sha256(original).hexdigest(), header_arena_bytes=header,
        arena_used_bytes=report.full_used or report.used_in_header,
        allocates_in_header=report.status == 0 and report.used_in_header is not None,
        fails_at_header_minus_32=None if report.minus32_allocates is None else not report.minus32_allocates,
        min_working_arena_bytes=report.min_working, outputs_equal_original_host=outputs_equal(report, host),
        instructions_per_inference=report.instructions, systick_hz=report.systick_hz,
        invoke_ticks=report.invoke_ticks, calibration_ticks=report.calib_ticks, device_status=report.status,
        probe_buffer_bytes=report.buffer, op_instructions=report.op_instructions, op_ticks=report.op_ticks,
        op_overhead_ticks=report.op_overhead_ticks,
        op_overhead_pairs=None if report.op_ticks is None else report.op_overhead_pairs,
        op_invoke_ticks=report.op_invoke_ticks, persistent_header_bytes=report.two_persistent,
        non_persistent_header_bytes=report.two_non_persistent, two_arenas_allocate=report.two_works,
        persistent_fails_minus_32=None if report.two_persistent_minus32_works is None
        else not report.two_persistent_minus32_works,
        non_persistent_fails_minus_32=None if report.two_non_persistent_minus32_works is None
        else not report.two_non_persistent_minus32_works,
        min_persistent_bytes=report.two_min_persistent or None,
        min_non_persistent_bytes=report.two_min_non_persistent or None, notes=notes)


def device_run(opts: DeviceOptions, optimize_fn: Optional[OptimizeFn] = None) -> DeviceResult:
    """Instantiate, build, run in QEMU and measure one model (see the module docstring)."""
    from ..io import load_bytes
    if opts.mode not in MODES:
        raise FdtError(f"unknown mode {opts.mode!r} (choose from {', '.join(MODES)})")
    machine = machine_for(opts.cpu, opts.machine)
    tree = check_prerequisites(opts.tree, opts.kernels)
    original = load_bytes(opts.model)
    work = work_dir(opts, tree, machine)
    print(f"fdt-tflm device-run: {os.path.basename(opts.model)} ({opts.mode}) for QEMU {machine.qemu} "
          f"({machine.cpu}, {opts.kernels} kernels; template part {machine.part}) in {work}", file=sys.stderr)
    times: dict[str, float] = {}
    with _locked(work / ".lock"):
        t0 = time.monotonic()
        data = instantiate_project(opts, work / "proj", optimize_fn)
        header = read_header(work / "proj")
        split = read_split_header(work / "proj") if opts.two_arenas else None
        times["instantiate_s"] = round(time.monotonic() - t0, 1)
        t0 = time.monotonic()
        elf = build(work / "proj", work / "build", tree, opts.kernels, machine,
                    probe_defines(opts, machine, header, data, split), opts.timeout)
        times["build_s"] = round(time.monotonic() - t0, 1)
        t0 = time.monotonic()
        text = run_qemu(elf, machine, opts.timeout)
        times["qemu_s"] = round(time.monotonic() - t0, 1)
    report = parse_serial(text)
    if not report.ended:
        raise FdtError("the firmware's probe did not finish (no 'fdt-probe: end' line)")
    if opts.profile_ops and report.op_ticks is None:
        raise FdtError("the firmware printed no op profile (its profiled Invoke failed)")
    if opts.two_arenas and report.two_works is None:
        raise FdtError("the firmware printed no two-arena probe (was it built with FDT_TWO_ARENAS?)")
    res = _result(opts, machine, data, original, header, report, host_outputs(original))
    res.timings = times
    res.predicted_instructions, res.predicted_original_instructions = predicted_instructions(opts, data, original)
    return res


def predicted_instructions(opts: DeviceOptions, data: bytes, original: bytes) -> tuple[int, int]:
    """What the report predicts for one invoke of the firmware's model and of the original on
    this CPU and kernel set (:mod:`fdt_tflm.tflm_model.instructions`), beside the measurement."""
    from ..io import read_model
    from ..tflm_model import target_for
    from ..tflm_model.instructions import predict_instructions
    t = target_for(opts.cpu, opts.kernels)
    return predict_instructions(read_model(data), target=t), predict_instructions(read_model(original), target=t)
