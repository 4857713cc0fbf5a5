"""Device harness for the nRF / Zephyr template (``firmware_template/nrf``).

The project is instantiated by the ``firmware`` subcommand's own code (``--target nrf``), so
what is built is what users get, and built with Zephyr (CMake + Ninja, no west needed) from an
offline workspace (docs/firmware.md, "Offline Zephyr workspace"):

- ``mps2/an521/cpu0`` (Cortex-M33 without the DSP extension, as Zephyr builds it; QEMU
  ``-M mps2-an521``): the application gets
  FDT_ARENA_PROBE and FDT_PROBE_ARENA_SIZE (``common/fdt_probe.inc``; never FDT_SYSTICK_COUNT:
  Zephyr's kernel owns SysTick), runs in QEMU, and the probe's lines give the same
  :class:`~.harness.DeviceResult` as the STM32 harness: the header's arena works, 32 B less
  fails, the smallest working arena, every output byte against the original model in the
  host TFLM.
- any other board (``nrf52840dk/nrf52840``): build only, no probe (what a firmware engineer
  gets); the link's memory report (Zephyr prints it) is checked against the part.

One build directory per (board, kernels, probe defines) under ``build_dir``: Zephyr and TFLM
are compiled once, each model then rebuilds only the application sources.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from ..errors import FdtError
from .harness import (MODES, DeviceOptions, DeviceResult, OptimizeFn, _locked, _nice, _result, _run,
                      default_build_root, host_outputs, instantiate_project, read_header)
from .machines import KB, Machine
from .serial import parse_serial

QEMU_BOARD = "mps2/an521/cpu0"
# Boards this harness knows: CPU the header is sized for, RAM / flash to check the link against,
# the QEMU machine that runs it (None: build only).
BOARDS: dict[str, dict[str, Any]] = {
    # Zephyr builds this board with -mcpu=cortex-m33+nodsp (no ARMV8_M_DSP): CMSIS-NN's plain C paths
    QEMU_BOARD: {"cpu": "cortex-m33+nodsp", "ram": 4096 * KB, "flash": 4096 * KB, "qemu": "mps2-an521",
                 "part": None},
    "nrf52840dk/nrf52840": {"cpu": "cortex-m4", "ram": 256 * KB, "flash": 1024 * KB, "qemu": None,
                            "part": "nRF52840"},
}
# Module folders of a west workspace (zephyr/west.yml paths), first existing one wins.
MODULES: dict[str, tuple[str, ...]] = {
    "tflite-micro": ("optional/modules/lib/tflite-micro", "modules/lib/tflite-micro"),
    "cmsis": ("modules/hal/cmsis",),
    "cmsis_6": ("modules/lib/cmsis_6",),
    "cmsis-nn": ("modules/lib/cmsis-nn",),
    "hal_nordic": ("modules/hal/nordic",),
    "cmsis-dsp": ("modules/lib/cmsis-dsp",),  # CONFIG_CMSIS_NN selects CMSIS_DSP: cmsis-nn builds only
}
OPTIONAL_MODULES = ("hal_nordic", "cmsis-dsp")
TOOLS = ("cmake", "ninja", "dtc", "arm-none-eabi-gcc")
_MEM_RE = re.compile(r"^\s*(FLASH|RAM):\s+(\d+)\s*(B|KB|MB|GB)\s+(\d+)\s*(B|KB|MB|GB)", re.M)
_UNIT = {"B": 1, "KB": 1024, "MB": 1024 ** 2, "GB": 1024 ** 3}


@dataclass(frozen=True)
class ZephyrOptions:
    """What to build: the model, the workspace, the board, how the firmware is made."""

    model: str
    workspace: str
    board: str = QEMU_BOARD
    kernels: str = "reference"
    mode: str = "optimized"
    build_dir: Optional[str] = None
    timeout: float = 3600.0
    passes: Optional[str] = None
    max_overhead: float = 0.0
    max_slowdown: Optional[float] = None
    objective: str = "total"
    bisect: bool = True

    @property
    def cpu(self) -> str:
        return BOARDS[self.board]["cpu"]

    def device_options(self) -> DeviceOptions:
        return DeviceOptions(model=self.model, tree=self.workspace, kernels=self.kernels, cpu=self.cpu,
                             mode=self.mode, build_dir=self.build_dir, timeout=self.timeout, passes=self.passes,
                             max_overhead=self.max_overhead, max_slowdown=self.max_slowdown,
                             objective=self.objective, bisect=self.bisect)


@dataclass
class ZephyrBuild:
    """A build-only result (``--build-only``): the link's memory use against the board's part."""

    model: str
    mode: str
    kernels: str
    board: str
    part: Optional[str]
    model_sha256: str
    header_arena_bytes: int
    ram_used_bytes: int
    flash_used_bytes: int
    ram_bytes: int
    flash_bytes: int
    fits: bool
    zephyr: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Workspace:
    """An offline Zephyr workspace: ZEPHYR_BASE and the module folders the template needs."""

    root: Path
    zephyr: Path
    modules: dict[str, Path]

    def module_list(self, kernels: str) -> str:
        """ZEPHYR_MODULES: the modules found, in one order for all boards (a different list
        changes autoconf.h, which every object depends on); cmsis-dsp for CMSIS-NN builds."""
        if kernels == "cmsis-nn" and "cmsis-dsp" not in self.modules:
            raise FdtError(f"the workspace {self.root} has no cmsis-dsp module (modules/lib/cmsis-dsp), which "
                           "CONFIG_TENSORFLOW_LITE_MICRO_CMSIS_NN_KERNELS needs")
        return ";".join(str(self.modules[n]) for n in MODULES
                        if n in self.modules and (n != "cmsis-dsp" or kernels == "cmsis-nn"))

    def revisions(self) -> dict[str, str]:
        """The commit of ZEPHYR_BASE and of each module (when they are git checkouts)."""
        out = {"zephyr": _git_head(self.zephyr), "zephyr_version": _zephyr_version(self.zephyr)}
        out.update({k: _git_head(v) for k, v in sorted(self.modules.items())})
        return out


def _git_head(path: Path) -> str:
    try:
        proc = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return proc.stdout.strip() if proc.returncode == 0 else "not a git checkout"


def _zephyr_version(zephyr: Path) -> str:
    text = (zephyr / "VERSION").read_text()
    v = {k: m.group(1) for k in ("MAJOR", "MINOR", "PATCHLEVEL")
         if (m := re.search(rf"^(?:VERSION_)?{k}\s*=\s*(\d+)", text, re.M))}
    return f"{v.get('MAJOR', '?')}.{v.get('MINOR', '?')}.{v.get('PATCHLEVEL', '?')}"


def find_workspace(path: str, board: str) -> Workspace:
    """The workspace at ``path``; FdtError (one line) when something is missing."""
    if board not in BOARDS:
        raise FdtError(f"unknown board {board!r} (choose from {', '.join(BOARDS)})")
    for tool in TOOLS + (("qemu-system-arm",) if BOARDS[board]["qemu"] else ()):
        if shutil.which(tool) is None:
            raise FdtError(f"device-run --zephyr needs {tool} on PATH (Debian: cmake ninja-build "
                           "device-tree-compiler gcc-arm-none-eabi picolibc-arm-none-eabi "
                           "libstdc++-arm-none-eabi-picolibc qemu-system-arm)")
    root = Path(path).resolve()
    zephyr = root / "zephyr"
    if not (zephyr / "cmake" / "modules" / "zephyr_default.cmake").is_file() or not (zephyr / "VERSION").is_file():
        raise FdtError(f"{path} is not a Zephyr workspace (no zephyr/cmake/modules/zephyr_default.cmake); "
                       "see docs/firmware.md, 'Offline Zephyr workspace'")
    modules: dict[str, Path] = {}
    for name, cands in MODULES.items():
        # a module folder without zephyr/module.yml (cmsis_6) takes its name from the folder
        hit = next((root / c for c in cands if (root / c).is_dir() and any((root / c).iterdir())), None)
        if hit is None:
            if name in OPTIONAL_MODULES and not (name == "hal_nordic" and board.startswith("nrf")):
                continue  # (when present they are passed all the same: one module list per kernel set)
            raise FdtError(f"the workspace {path} has no {name} module (looked in {', '.join(cands)})")
        modules[name] = hit
    return Workspace(root, zephyr, modules)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    gcc = shutil.which("arm-none-eabi-gcc")
    env.setdefault("ZEPHYR_TOOLCHAIN_VARIANT", "gnuarmemb")
    if gcc and env["ZEPHYR_TOOLCHAIN_VARIANT"] == "gnuarmemb":
        env.setdefault("GNUARMEMB_TOOLCHAIN_PATH", str(Path(gcc).resolve().parent.parent))
    return env


def work_dir(opts: ZephyrOptions, defines: tuple[str, ...]) -> Path:
    root = Path(opts.build_dir) if opts.build_dir else default_build_root()
    probe = "probe" if defines else "plain"
    return root / f"zephyr-{opts.board.replace('/', '_')}-{opts.kernels}-{probe}"


def gcc_version() -> str:
    gcc = shutil.which("arm-none-eabi-gcc")
    if gcc is None:
        return "none"
    out = subprocess.run([gcc, "--version"], capture_output=True, text=True).stdout
    return (out.splitlines() or ["unknown"])[0]


def build(ws: Workspace, opts: ZephyrOptions, proj: Path, build_dir: Path, defines: tuple[str, ...]) -> tuple[Path, str]:
    """Configure (first time) and build; returns the ELF and the build's output (with the
    link's memory report: the ELF is removed first so that the final link always runs)."""
    env = _env()
    env["ZEPHYR_BASE"] = str(ws.zephyr)
    cmd = ["cmake", "-GNinja", "-S", str(proj), "-B", str(build_dir), f"-DBOARD={opts.board}",
           f"-DZEPHYR_MODULES={ws.module_list(opts.kernels)}", f"-DFDT_APP_DEFINES={';'.join(defines)}",
           "-DBUILD_VERSION=fdt", "-DTOOLCHAIN_HAS_PICOLIBC=ON"]
    if opts.kernels == "cmsis-nn":
        cmd.append("-DEXTRA_CONF_FILE=cmsis-nn.conf")
    _run_env(cmd, "Zephyr cmake configure", opts.timeout, env)
    elf = build_dir / "zephyr" / "zephyr.elf"
    if elf.exists():
        elf.unlink()
    out = _run_env(["cmake", "--build", str(build_dir), "-j2"], "Zephyr build", opts.timeout, env)
    if not elf.is_file():
        raise FdtError(f"the Zephyr build wrote no {elf}")
    return elf, out


def _run_env(cmd: list[str], what: str, timeout: float, env: dict[str, str]) -> str:
    try:
        proc = subprocess.run(_nice() + cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise FdtError(f"{what} timed out after {timeout:.0f} s") from None
    if proc.returncode != 0:
        text = proc.stdout + proc.stderr
        lines = [ln for ln in text.splitlines() if "error" in ln.lower()]
        last = (lines or text.strip().splitlines() or ["no output"])[-1]
        raise FdtError(f"{what} failed (exit {proc.returncode}): {last.strip()}")
    return proc.stdout


def memory_report(text: str) -> dict[str, tuple[int, int]]:
    """{'FLASH'|'RAM': (used, region size)} in bytes from the link's --print-memory-usage."""
    out = {}
    for m in _MEM_RE.finditer(text):
        out[m.group(1)] = (int(m.group(2)) * _UNIT[m.group(3)], int(m.group(4)) * _UNIT[m.group(5)])
    if "RAM" not in out or "FLASH" not in out:
        raise FdtError("the Zephyr link printed no memory report (FLASH / RAM lines)")
    return out


def run_qemu(elf: Path, machine: str, timeout: float) -> str:
    """Run the ELF, the console on stdio, until the application prints ``fdt: done``
    (Zephyr then idles; QEMU is stopped).  Returns what it printed.  The pipe is read with
    ``os.read`` (no buffered reader: its buffer could hold the last line while select waits)."""
    import selectors
    cmd = _nice() + ["qemu-system-arm", "-M", machine, "-cpu", "cortex-m33", "-display", "none", "-monitor",
                     "none", "-serial", "stdio", "-net", "none", "-kernel", str(elf)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    out = bytearray()
    t0 = time.monotonic()
    try:
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while not re.search(rb"^fdt: done.*\n", bytes(out), re.M):
                left = timeout - (time.monotonic() - t0)
                if left <= 0:
                    raise FdtError(f"QEMU ({machine}) timed out after {timeout:.0f} s")
                if not sel.select(min(left, 5.0)):
                    if proc.poll() is not None:
                        break
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                out += chunk
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    text = out.decode("utf-8", "replace").replace("\r", "")
    if "fdt: done" not in text:
        last = (text.strip().splitlines() or ["no output"])[-1]
        raise FdtError(f"the firmware did not finish in QEMU ({machine}): {last}")
    return text


def zephyr_run(opts: ZephyrOptions, optimize_fn: Optional[OptimizeFn] = None) -> DeviceResult:
    """Instantiate, build for the QEMU board with the probe, run, measure (module docstring)."""
    from ..io import load_bytes
    if opts.mode not in MODES[:2]:
        raise FdtError(f"unknown mode {opts.mode!r} (choose from original, optimized)")
    if BOARDS.get(opts.board, {}).get("qemu") is None:
        raise FdtError(f"QEMU runs only {QEMU_BOARD}; build {opts.board} with --build-only")
    ws = find_workspace(opts.workspace, opts.board)
    board = BOARDS[opts.board]
    machine = Machine(board["qemu"], board["cpu"], opts.board, board["ram"])
    dopts = opts.device_options()
    original = load_bytes(opts.model)
    probe = ("FDT_ARENA_PROBE",) + (() if opts.bisect else ("FDT_PROBE_NO_BISECT",))
    work = work_dir(opts, probe)
    print(f"fdt-tflm device-run --zephyr: {os.path.basename(opts.model)} ({opts.mode}) for {opts.board} "
          f"({machine.cpu}, {opts.kernels} kernels) in QEMU {machine.qemu}, build in {work}", file=sys.stderr)
    times: dict[str, float] = {}
    with _locked(work / ".lock"):
        t0 = time.monotonic()
        data = instantiate_project(dopts, work / "proj", optimize_fn, target="nrf")
        header = read_header(work / "proj")
        times["instantiate_s"] = round(time.monotonic() - t0, 1)
        t0 = time.monotonic()
        defines = probe + (f"FDT_PROBE_ARENA_SIZE={machine.probe_buffer(header)}",)
        elf, _ = build(ws, opts, work / "proj", work / "build", defines)
        times["build_s"] = round(time.monotonic() - t0, 1)
        t0 = time.monotonic()
        text = run_qemu(elf, machine.qemu, opts.timeout)
        times["qemu_s"] = round(time.monotonic() - t0, 1)
    report = parse_serial(text)
    if not report.ended:
        raise FdtError("the firmware's probe did not finish (no 'fdt-probe: end' line)")
    res = _result(dopts, machine, data, original, header, report, host_outputs(original))
    res.timings = times
    revs = ws.revisions()
    res.notes.append(f"zephyr {revs['zephyr_version']} ({revs['zephyr']}), board {opts.board}, "
                     f"tflite-micro {revs['tflite-micro']}")
    return res


def zephyr_build_only(opts: ZephyrOptions, optimize_fn: Optional[OptimizeFn] = None) -> ZephyrBuild:
    """Build the plain application (no probe) for ``opts.board``; RAM / flash from the link."""
    if opts.mode not in MODES[:2]:
        raise FdtError(f"unknown mode {opts.mode!r} (choose from original, optimized)")
    ws = find_workspace(opts.workspace, opts.board)
    board = BOARDS[opts.board]
    work = work_dir(opts, ())
    times: dict[str, float] = {}
    with _locked(work / ".lock"):
        t0 = time.monotonic()
        data = instantiate_project(opts.device_options(), work / "proj", optimize_fn, target="nrf",
                                   part=board["part"])
        header = read_header(work / "proj")
        times["instantiate_s"] = round(time.monotonic() - t0, 1)
        t0 = time.monotonic()
        _, out = build(ws, opts, work / "proj", work / "build", ())
        times["build_s"] = round(time.monotonic() - t0, 1)
    mem = memory_report(out)
    ram, flash = mem["RAM"][0], mem["FLASH"][0]
    return ZephyrBuild(model=os.path.basename(opts.model), mode=opts.mode, kernels=opts.kernels, board=opts.board,
                       part=board["part"], model_sha256=hashlib.sha256(data).hexdigest(), header_arena_bytes=header,
                       ram_used_bytes=ram, flash_used_bytes=flash, ram_bytes=board["ram"], flash_bytes=board["flash"],
                       fits=ram <= board["ram"] and flash <= board["flash"], zephyr=ws.revisions(), timings=times)


def options_from_args(args: argparse.Namespace) -> ZephyrOptions:
    return ZephyrOptions(model=args.model, workspace=args.zephyr, board=args.board or QEMU_BOARD,
                         kernels=args.kernels, mode="original" if args.no_optimize else "optimized",
                         build_dir=args.build_dir, timeout=args.timeout, passes=args.passes,
                         max_overhead=args.max_overhead, max_slowdown=args.max_slowdown, objective=args.objective,
                         bisect=not args.no_bisect)


def format_build(b: ZephyrBuild) -> str:
    pct = lambda used, size: f"{used:,} / {size:,} B ({100.0 * used / size:.1f}%)"  # noqa: E731
    return "\n".join([f"fdt-tflm device-run --zephyr --build-only: {b.model} ({b.mode}, {b.kernels} kernels) "
                      f"for {b.board}",
                      f"  FDT_TENSOR_ARENA_SIZE      {b.header_arena_bytes:,} B",
                      f"  RAM                        {pct(b.ram_used_bytes, b.ram_bytes)}",
                      f"  flash                      {pct(b.flash_used_bytes, b.flash_bytes)}",
                      f"  fits {b.part or b.board:<21} {'yes' if b.fits else 'NO'}"])
