"""The ``device-run`` subcommand (registered by ``fdt_tflm/cli.py``)."""
from __future__ import annotations

import argparse
import json
from typing import Any, Optional

from ..errors import FdtError
from ..firmware.emit import KERNELS
from ..tiling import OBJECTIVES
from .harness import DeviceOptions, DeviceResult, OptimizeFn, device_run
from .machines import CPUS, MACHINES
from .zephyr import BOARDS as ZEPHYR_BOARDS, QEMU_BOARD as ZEPHYR_QEMU_BOARD
from .tree import KERNEL_SETS, TFLM_COMMIT, TIMEOUT as TREE_TIMEOUT, TreeOptions, build_tree


def add_device_parser(subparsers: Any, optimize_fn: Optional[OptimizeFn]) -> None:
    """``device-run MODEL --tflm-tree DIR``: build the STM32 firmware, run it in QEMU, measure."""
    d = subparsers.add_parser("device-run", help="build the STM32 firmware for MODEL, run it in QEMU and "
                              "measure the arena it needs, its outputs and instructions")
    d.add_argument("model")
    d.add_argument("--tflm-tree", default=None, metavar="DIR", help="tree from create_tflm_tree.py (STM32 template)")
    z = d.add_argument_group("nRF / Zephyr template (instead of --tflm-tree; docs/firmware.md, 'Offline Zephyr workspace')")
    z.add_argument("--zephyr", default=None, metavar="WORKSPACE",
                   help="offline Zephyr workspace (zephyr/, modules/...): build firmware_template/nrf with Zephyr")
    z.add_argument("--board", default=None, choices=sorted(ZEPHYR_BOARDS),
                   help=f"Zephyr board (default {ZEPHYR_QEMU_BOARD}, run in QEMU with the arena probe)")
    z.add_argument("--build-only", action="store_true",
                   help="build the plain application (no probe) and check the link's RAM / flash against the board's part")
    d.add_argument("--kernels", choices=KERNELS, default="reference", help="must match the tree")
    d.add_argument("--cpu", choices=CPUS, default="cortex-m4")
    d.add_argument("--machine", choices=sorted(MACHINES), default=None,
                   help="QEMU machine (default: netduinoplus2 for cortex-m4, mps2-an505 for cortex-m33)")
    mode = d.add_mutually_exclusive_group()
    mode.add_argument("--no-optimize", action="store_true", help="the model as it is")
    mode.add_argument("--allow-custom-ops", action="store_true", help="as for optimize (FDT_PARTIAL kernel)")
    d.add_argument("--passes", default=None, help="as for optimize")
    d.add_argument("--max-overhead", type=float, default=0.0, metavar="PCT", help="as for optimize")
    d.add_argument("--max-slowdown", type=float, default=None, metavar="PCT", help="as for optimize")
    d.add_argument("--objective", choices=OBJECTIVES, default="total", help="as for optimize")
    d.add_argument("--build-dir", default=None, metavar="DIR",
                   help="where builds are kept, one per tree/kernels/machine (default ~/.cache/fdt-tflm/device)")
    d.add_argument("--timeout", type=float, default=1800.0, metavar="S", help="for each build and QEMU run")
    d.add_argument("--profile-ops", action="store_true",
                   help="also measure instructions per operator (one more Invoke with a TFLM profiler)")
    d.add_argument("--no-bisect", action="store_true",
                   help="skip the search for the smallest working arena (faster; reported as -)")
    d.add_argument("--two-arenas", action="store_true",
                   help="build with FDT_TWO_ARENAS (separate persistent and non-persistent arenas of the header's "
                   "sizes) and measure both: enough, 32 B less, smallest of each")
    d.add_argument("--json", action="store_true", help="print one JSON object")

    def run(args: argparse.Namespace) -> int:
        return cmd_device_run(args, optimize_fn)

    d.set_defaults(func=run)
    add_tree_parser(subparsers)


def add_tree_parser(subparsers: Any) -> None:
    """``device-tree --tflm-source DIR --downloads DIR --kernels K -o TREE``: a TFLM tree, offline."""
    t = subparsers.add_parser("device-tree", help="make the TFLM tree device-run needs (create_tflm_tree.py) "
                              "from a tflite-micro checkout and its third-party downloads, offline")
    t.add_argument("--tflm-source", required=True, metavar="DIR",
                   help=f"tflite-micro checkout at {TFLM_COMMIT[:12]}")
    t.add_argument("--downloads", required=True, metavar="DIR",
                   help="folder with the Makefile's downloads: gemmlowp ruy flatbuffers kissfft cmsis "
                   "[cmsis_nn] [pigweed] (docs/firmware.md, 'Getting a TFLM tree')")
    t.add_argument("--kernels", choices=KERNEL_SETS, required=True)
    t.add_argument("-o", "--output", required=True, metavar="TREE", help="new (or empty) directory")
    t.add_argument("--python", default=None, metavar="PY",
                   help="the python3 the Makefile runs, with numpy and pillow (default: this one)")
    t.add_argument("--timeout", type=float, default=TREE_TIMEOUT, metavar="S", help="for create_tflm_tree.py")
    t.set_defaults(func=cmd_device_tree)


def cmd_device_tree(args: argparse.Namespace) -> int:
    """Exit 0 with the tree made; FdtError (one line, exit 2) otherwise."""
    print(f"fdt-tflm device-tree: {args.kernels} kernels from {args.tflm_source}")
    res = build_tree(TreeOptions(source=args.tflm_source, downloads=args.downloads, kernels=args.kernels,
                                 output=args.output, python=args.python, timeout=args.timeout))
    print(f"tree: {res.tree}")
    print(f"use it with: {res.device_run_command()}")
    return 0


def options_from_args(args: argparse.Namespace) -> DeviceOptions:
    mode = "original" if args.no_optimize else "custom-ops" if args.allow_custom_ops else "optimized"
    return DeviceOptions(model=args.model, tree=args.tflm_tree, kernels=args.kernels, cpu=args.cpu, mode=mode,
                         machine=args.machine, build_dir=args.build_dir, timeout=args.timeout, passes=args.passes,
                         max_overhead=args.max_overhead, objective=args.objective, max_slowdown=args.max_slowdown,
                         profile_ops=getattr(args, "profile_ops", False), bisect=not getattr(args, "no_bisect", False),
                         two_arenas=getattr(args, "two_arenas", False))


def format_result(r: DeviceResult) -> str:
    """Human-readable summary of one measurement."""
    def num(v: Optional[int]) -> str:
        return "-" if v is None else f"{v:,}"
    yes = {True: "yes", False: "NO", None: "-"}
    lines = [f"fdt-tflm device-run: {r.model} ({r.mode}, {r.kernels} kernels, {r.cpu} on QEMU {r.qemu_machine})",
             f"  FDT_TENSOR_ARENA_SIZE      {num(r.header_arena_bytes)} B",
             f"  allocates and runs in it   {yes[r.allocates_in_header]}",
             f"  fails with 32 B less       {yes[r.fails_at_header_minus_32]}",
             f"  smallest working arena     {num(r.min_working_arena_bytes)} B",
             f"  arena_used_bytes           {num(r.arena_used_bytes)} B",
             f"  outputs = original (host)  {yes[r.outputs_equal_original_host]}",
             f"  instructions / inference   {num(r.instructions_per_inference)} measured, "
             f"{num(r.predicted_instructions)} predicted ({r.cpu}, {r.kernels} kernels)",
             f"  model sha256               {r.model_sha256}"]
    if r.two_arenas_allocate is not None:
        lines += [f"  two arenas (header)        persistent {num(r.persistent_header_bytes)} B, "
                  f"non-persistent {num(r.non_persistent_header_bytes)} B: runs {yes[r.two_arenas_allocate]}",
                  f"  fails with 32 B less       persistent {yes[r.persistent_fails_minus_32]}, "
                  f"non-persistent {yes[r.non_persistent_fails_minus_32]}",
                  f"  smallest working           persistent {num(r.min_persistent_bytes)} B, "
                  f"non-persistent {num(r.min_non_persistent_bytes)} B"]
    if r.op_instructions is not None:
        lines.append(f"  instructions per operator  {', '.join(f'{v:,}' for v in r.op_instructions)}")
    return "\n".join(lines + [f"  note: {n}" for n in r.notes])


def _zephyr(args: argparse.Namespace, optimize_fn: Optional[OptimizeFn]) -> int:
    from . import zephyr
    stm32_only = [f for f, on in (("--allow-custom-ops", args.allow_custom_ops), ("--profile-ops", args.profile_ops),
                                  ("--two-arenas", args.two_arenas), ("--machine", args.machine)) if on]
    if stm32_only:
        raise FdtError(f"{', '.join(stm32_only)} not supported with --zephyr")
    opts = zephyr.options_from_args(args)
    if args.build_only:
        b = zephyr.zephyr_build_only(opts, optimize_fn)
        print(json.dumps(b.to_dict(), indent=2) if args.json else zephyr.format_build(b))
        return 0 if b.fits else 1
    res = zephyr.zephyr_run(opts, optimize_fn)
    print(json.dumps(res.to_dict(), indent=2) if args.json else format_result(res))
    return 0 if res.allocates_in_header and res.outputs_equal_original_host else 1


def cmd_device_run(args: argparse.Namespace, optimize_fn: Optional[OptimizeFn]) -> int:
    """Exit 0 when the header's arena works and the outputs equal the original's, else 1.
    ``--zephyr``: the nRF / Zephyr template (``zephyr.py``); with ``--build-only``, exit 0
    when the build fits the board's part."""
    if (args.tflm_tree is None) == (args.zephyr is None):
        raise FdtError("device-run needs exactly one of --tflm-tree DIR (STM32) or --zephyr WORKSPACE (nRF / Zephyr)")
    if args.zephyr is not None:
        return _zephyr(args, optimize_fn)
    if args.board or args.build_only:
        raise FdtError("--board and --build-only go with --zephyr WORKSPACE")
    res = device_run(options_from_args(args), optimize_fn)
    print(json.dumps(res.to_dict(), indent=2) if args.json else format_result(res))
    return 0 if res.allocates_in_header and res.outputs_equal_original_host else 1
