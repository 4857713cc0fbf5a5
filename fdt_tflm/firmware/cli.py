"""Command-line glue for firmware emission (used by ``fdt_tflm/cli.py``).

- ``add_emit_arguments(parser)``: ``--emit-c DIR --prefix --kernels --cpu --target-ram
  --target-flash --part`` for ``optimize``; ``stage_emit(result, args, scratch)`` runs them
  into a scratch folder, ``optimize`` writes them with its other outputs (all or nothing).
- ``add_firmware_parser(subparsers, optimize_fn)``: the ``firmware MODEL --target
  stm32|nrf -o DIR`` subcommand; ``optimize_fn(model_path, args)`` returns an
  ``api.Result`` (or None to use the model as it is, with ``--no-optimize``).
"""
from __future__ import annotations

import argparse
import os
from typing import Any, Callable, Optional

from ..errors import FdtError
from ..tiling import OBJECTIVES
from ..tflm_model import CPUS
from .emit import DEFAULT_CPU, EmitResult, KERNELS, emit_c
from .targets import fit_report, format_fit_report, parse_size
from .template import TARGETS, instantiate, part_cpu


def add_emit_arguments(parser: argparse.ArgumentParser, emit_dir: bool = True) -> None:
    """Options shared by ``optimize --emit-c`` and ``firmware``."""
    g = parser.add_argument_group("firmware output")
    if emit_dir:
        g.add_argument("--emit-c", metavar="DIR", default=None,
                       help="also write <prefix>_model.h/.cc, <prefix>_arena.h, <prefix>_op_resolver.h to DIR")
    g.add_argument("--prefix", default="fdt", help="C symbol/file prefix (default fdt -> FDT_TENSOR_ARENA_SIZE)")
    g.add_argument("--kernels", choices=KERNELS, default="reference",
                   help="TFLM kernels of the firmware (their op data and scratch size the arena)")
    g.add_argument("--cpu", choices=sorted(CPUS), default=None,
                   help=f"CPU the arena is sized for (default: the --part's core, else {DEFAULT_CPU}; "
                        "host = the 64-bit host interpreter)")
    g.add_argument("--part", default=None, help="check the fit for this part (e.g. STM32F446, nRF52840)")
    g.add_argument("--target-ram", default=None, metavar="SIZE", help="RAM for the fit check, e.g. 256K")
    g.add_argument("--target-flash", default=None, metavar="SIZE", help="flash for the fit check, e.g. 1M")


def _sizes(args: argparse.Namespace) -> tuple[Optional[int], Optional[int]]:
    ram = parse_size(args.target_ram) if getattr(args, "target_ram", None) else None
    flash = parse_size(args.target_flash) if getattr(args, "target_flash", None) else None
    return ram, flash


def cpu_of(args: argparse.Namespace) -> str:
    """--cpu, else the core of --part, else DEFAULT_CPU."""
    return getattr(args, "cpu", None) or part_cpu(getattr(args, "part", None) or "")


def target_of(result: Any, args: argparse.Namespace) -> tuple[str, str]:
    """(cpu, kernels) the header is sized for: the optimisation's Target (the one the search,
    planner and guard priced), else --cpu / --part's core and --kernels."""
    t = getattr(result, "target", None)
    return (t.cpu, t.kernels) if t is not None else (cpu_of(args), args.kernels)


def stage_emit(result: Any, args: argparse.Namespace, scratch: str) -> tuple[EmitResult, dict[str, bytes]]:
    """``--emit-c`` into the ``scratch`` folder: the result and {path under --emit-c: bytes},
    for the caller to write together with its other outputs (all or nothing)."""
    cpu, kernels = target_of(result, args)
    res = emit_c(result.data, scratch, prefix=args.prefix, kernels=kernels, cpu=cpu,
                 original_bytes=getattr(result, "original", None) or None)
    return res, {os.path.join(args.emit_c, f.name): f.read_bytes() for f in res.files}


def print_emitted(res: EmitResult, args: argparse.Namespace, out: str) -> None:
    print(f"  wrote {', '.join(os.path.basename(str(f)) for f in res.files)} to {out}")
    _print_arena(res, args)


def _print_arena(res: EmitResult, args: argparse.Namespace) -> None:
    up = args.prefix.upper()
    est = " (estimated)" if res.arena.estimated or res.extra_scratch else ""
    print(f"  {up}_TENSOR_ARENA_SIZE = {res.arena_size:,} B{est}")
    ram, flash = _sizes(args)
    if getattr(args, "part", None) or ram is not None or flash is not None:
        rows = fit_report(res.arena_size, res.model_size, args.part, ram, flash)
        print(format_fit_report(rows))


def add_firmware_parser(subparsers: Any, optimize_fn: Optional[Callable[[str, argparse.Namespace], Any]]) -> None:
    """The ``firmware`` subcommand: optimise MODEL and write a buildable firmware project."""
    f = subparsers.add_parser("firmware", help="optimise a model and write a buildable STM32 or nRF firmware project")
    f.add_argument("model")
    f.add_argument("--target", required=True, choices=sorted(TARGETS), help="firmware template")
    f.add_argument("-o", "--output", required=True, metavar="DIR", help="project directory to write")
    f.add_argument("--no-optimize", action="store_true", help="use the model as it is (only emit the project)")
    f.add_argument("--passes", default=None, help="as for optimize")
    f.add_argument("--max-overhead", type=float, default=0.0, metavar="PCT", help="as for optimize")
    f.add_argument("--max-slowdown", type=float, default=None, metavar="PCT", help="as for optimize")
    f.add_argument("--objective", choices=OBJECTIVES, default="total", help="as for optimize")
    f.add_argument("--no-verify", action="store_true", help="as for optimize (not recommended)")
    f.add_argument("--allow-custom-ops", action="store_true", help="as for optimize (uses fdt_kernels/)")
    add_emit_arguments(f, emit_dir=False)

    def run(args: argparse.Namespace) -> int:
        return cmd_firmware(args, optimize_fn)

    f.set_defaults(func=run)


def cmd_firmware(args: argparse.Namespace, optimize_fn: Optional[Callable[[str, argparse.Namespace], Any]]) -> int:
    """Handler of ``firmware``: returns the exit code (0)."""
    from ..io import load_bytes
    original = load_bytes(args.model)
    data, result = original, None
    if not args.no_optimize:
        if optimize_fn is None:
            raise FdtError("optimisation is not available here; use --no-optimize")
        result = optimize_fn(args.model, args)
        if getattr(result, "verified", None) is False:
            raise FdtError("the optimised model failed verification; nothing written")
        data = result.data
    ram, flash = _sizes(args)
    cpu, kernels = target_of(result, args) if result is not None else (getattr(args, "cpu", None), args.kernels)
    inst = instantiate(args.target, args.output, data, prefix=args.prefix, kernels=kernels, part=args.part,
                       original_bytes=original, ram=ram, flash=flash, protect=[args.model],
                       cpu=cpu)  # None: the part's core
    print(f"fdt-tflm: {args.target} project for {inst.part} in {inst.out_dir}")
    _print_arena(inst.emitted, argparse.Namespace(**{**vars(args), "part": inst.part}))
    print("  build:\n    " + inst.build_steps.strip().replace("\n", "\n    "))
    return 0
