"""Command line: ``python -m fdt_tflm {inspect,optimize,verify,firmware,device-run}``.

A thin layer over the Python API.  Bad input -> one line on stderr and exit code 2;
outputs that differ after optimisation -> exit code 1 and nothing written.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING, Callable, Optional, Sequence

from .errors import FdtError, VerificationError
from .tiling import OBJECTIVES

if TYPE_CHECKING:
    from .api import Result
    from .firmware.emit import EmitResult
    from .ir.graph import Model

EXIT_OK, EXIT_MISMATCH, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's own usage errors: one line, exit 2
        raise FdtError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="fdt-tflm", description="Shrink the TFLite Micro tensor arena: fused depthwise tiling, "
                "operator reordering and optimal offline memory plans, verified in TFLM.")
    from .version import __version__
    p.add_argument("--version", action="version", version=f"fdt-tflm {__version__}")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)

    i = sub.add_parser("inspect", help="per-op table, memory summary and the TFLM default arena")
    i.add_argument("model")
    i.add_argument("--json", action="store_true", help="print one JSON object")
    i.add_argument("--plot", metavar="PNG", help="draw the arena layout (buffers over time) to a PNG")

    o = sub.add_parser("optimize", help="tile, reorder and plan; write a model stock TFLM runs")
    o.add_argument("model")
    o.add_argument("-o", "--output", help="output .tflite (default: MODEL stem + .fdt.tflite)")
    o.add_argument("--passes", default=None, help="comma list of tile,reorder,plan or 'none' "
                   "(default: tile,reorder,plan)")
    o.add_argument("--max-overhead", type=float, default=0.0, metavar="PCT",
                   help="MAC overhead budget for spatial tiling in percent (default 0: no recomputation)")
    o.add_argument("--max-slowdown", type=_percent, default=None, metavar="PCT",
                   help="budget of predicted extra instructions per invoke for tiling, in percent of the "
                        "input's (default: 1 plus the --max-overhead budget; 'inf': no limit)")
    o.add_argument("--objective", choices=OBJECTIVES, default="total",
                   help="what the tiling search minimises: TFLM's total arena, head + persistent tail "
                        "(default), or the head alone, keeping the total at or below the input's, never a "
                        "larger head than the default's")
    o.add_argument("--json", metavar="REPORT", help="write the JSON report here ('-' for stdout)")
    o.add_argument("--no-verify", action="store_true", help="skip the TFLM/LiteRT check (not recommended)")
    o.add_argument("--allow-custom-ops", action="store_true",
                   help="allow exact int8 partial sums through the bundled FDT_PARTIAL kernel")
    o.add_argument("--effort", type=int, choices=range(1, 6), default=2, metavar="N",
                   help="1..5: how much work the search, scheduler and planner may do, counted, never timed, "
                        "so the output is the same on any machine (default 2; 4 does about twice the work)")
    o.add_argument("--time-limit", type=float, default=None, help=argparse.SUPPRESS)  # removed: refused
    o.add_argument("--search-budget", type=float, default=None, help=argparse.SUPPRESS)  # removed: refused
    o.add_argument("--samples", type=int, default=5, help="random inputs used for verification")
    o.add_argument("--plot", metavar="PNG", help="memory over time before/after")
    o.add_argument("--plot-pareto", metavar="PNG", help="the tiling search's Pareto front: arena vs MAC and "
                   "predicted instruction overhead")
    _add_firmware_args(o)

    v = sub.add_parser("verify", help="compare two models in TFLM and LiteRT; print both arenas")
    v.add_argument("a")
    v.add_argument("b")
    v.add_argument("--json", action="store_true")
    v.add_argument("--samples", type=int, default=5)

    try:
        from .firmware.cli import add_firmware_parser
    except ImportError:
        add_firmware_parser = None
    if add_firmware_parser is not None:
        add_firmware_parser(sub, _optimize_for_firmware)
        from .device.cli import add_device_parser
        add_device_parser(sub, _optimize_for_firmware)
    return p


def _percent(text: str) -> float:
    """A budget in percent: a number >= 0 (argparse turns the error into one line, exit 2)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a percentage, not {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be a percentage >= 0, not {text}")
    return value


def _add_firmware_args(parser: argparse.ArgumentParser) -> None:
    try:
        from .firmware.cli import add_emit_arguments
    except ImportError:
        return
    add_emit_arguments(parser)


def _optimize_for_firmware(model_path: str, args: argparse.Namespace):
    from .api import optimize
    return optimize(model_path, passes=getattr(args, "passes", None), max_overhead=getattr(args, "max_overhead", 0.0),
                    verify=not getattr(args, "no_verify", False),
                    allow_custom_ops=getattr(args, "allow_custom_ops", False),
                    objective=getattr(args, "objective", "total"), effort=getattr(args, "effort", 2),
                    max_slowdown=getattr(args, "max_slowdown", None), **_target_of(args))


def _target_of(args: argparse.Namespace) -> dict:
    """The firmware target the report predicts for: --cpu (else --part's core) and --kernels."""
    try:
        from .firmware.cli import cpu_of
    except ImportError:
        return {}
    return {"cpu": cpu_of(args), "kernels": getattr(args, "kernels", None) or "reference"}


def cmd_inspect(args: argparse.Namespace) -> int:
    from .analysis import format_table, summary
    from .io import read_model
    _check_outputs([args.plot], args.model, args.plot)
    model = read_model(args.model)
    info = summary(model)
    if args.plot:
        from .io.atomic import write_all
        from .plot import plot_model
        write_all({args.plot: _drawn(lambda path: plot_model(model, path), args.plot)}, protect=[args.model])
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(format_table(model, info))
    return EXIT_OK


def default_output(path: str) -> str:
    stem, _ = os.path.splitext(path)
    return stem + ".fdt.tflite"


def cmd_optimize(args: argparse.Namespace) -> int:
    from .api import optimize
    from .io.atomic import write_all
    for flag, value in (("--time-limit", args.time_limit), ("--search-budget", args.search_budget)):
        if value is not None:
            raise FdtError(f"{flag} was removed: the search, scheduler and planner are bounded by counted "
                           "work, never seconds; use --effort 1..5")
    out = args.output or default_output(args.model)
    report_path = args.json if args.json and args.json != "-" else None
    _check_outputs([out, report_path, args.plot, args.plot_pareto], args.model, args.plot,
                   args.plot_pareto)  # before the long run
    res = optimize(args.model, passes=args.passes, max_overhead=args.max_overhead, verify=not args.no_verify,
                   allow_custom_ops=args.allow_custom_ops, samples=args.samples,
                   objective=args.objective, effort=args.effort,
                   max_slowdown=args.max_slowdown, **_target_of(args))
    if res.verified is False:
        raise VerificationError("refusing to write a model that failed verification")
    files, emitted = _staged_outputs(res, args, out, report_path)
    write_all(files, protect=[args.model], make_dirs=[args.emit_c] if getattr(args, "emit_c", None) else [])
    if args.json == "-":
        print(res.to_json())
        return EXIT_OK
    print(res.summary())
    print(f"  wrote {out}")
    if emitted is not None:
        from .firmware.cli import print_emitted
        print_emitted(emitted, args, args.emit_c)
    return EXIT_OK


def _staged_outputs(res: "Result", args: argparse.Namespace, out: str,
                    report_path: Optional[str]) -> tuple[dict[str, bytes], Optional["EmitResult"]]:
    """Every file ``optimize`` writes, as {path: bytes}: nothing is written until all exist."""
    import tempfile
    files: dict[str, bytes] = {out: res.data}
    emitted = None
    if getattr(args, "emit_c", None):
        from .firmware.cli import stage_emit
        with tempfile.TemporaryDirectory(prefix="fdt_tflm_") as scratch:
            emitted, c_files = stage_emit(res, args, scratch)
        files.update(c_files)
    if args.plot:
        files[args.plot] = _drawn(res.plot, args.plot)
    if args.plot_pareto:
        files[args.plot_pareto] = _drawn(res.plot_pareto, args.plot_pareto)
    if report_path:
        files[report_path] = (res.to_json() + "\n").encode()
    return files, emitted


def _check_outputs(targets: Sequence[Optional[str]], model: str, *plots: Optional[str]) -> None:
    """Refuse, before any work, outputs that name the input or a plot format matplotlib lacks."""
    from .io.atomic import refuse_overwrite
    refuse_overwrite([t for t in targets if t], [model])
    for plot in plots:
        if plot:
            _plot_format(plot)


def _plot_format(target: str) -> str:
    fmt = os.path.splitext(target)[1].lstrip(".").lower() or "png"
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:  # plotting itself says how to install matplotlib
        return fmt
    formats = FigureCanvasBase.get_supported_filetypes()
    if fmt not in formats:
        raise FdtError(f"{target}: cannot draw a .{fmt} file (choose one of {', '.join(sorted(formats))})")
    return fmt


def _drawn(draw: Callable[[str], object], target: str) -> bytes:
    """The bytes of a plot drawn into a scratch file (matplotlib takes the format from the name)."""
    import tempfile
    with tempfile.TemporaryDirectory(prefix="fdt_tflm_") as scratch:
        path = os.path.join(scratch, "plot." + _plot_format(target))
        draw(path)
        with open(path, "rb") as f:
            return f.read()


def cmd_verify(args: argparse.Namespace) -> int:
    from .io import load_bytes, read_model
    from .verify import compare_models, runtime_available
    ma, mb = read_model(args.a), read_model(args.b)  # one-line errors that name the file
    a, b = load_bytes(args.a), load_bytes(args.b)
    if not runtime_available("tflm"):
        raise FdtError("verify needs the TFLM host interpreter: pip install 'fdt-tflm[verify]'")
    cmp = compare_models(ma, a, b, n_samples=args.samples)
    if not cmp.tflm.ran_a:
        raise FdtError(f"{args.a}: TFLM cannot run this model: {cmp.tflm.note}")
    if not cmp.tflm.ran_b:
        _check_runs(b, mb, args.b)  # bad input (exit 2) unless it runs on inputs of its own shape
    if args.json:
        print(json.dumps(cmp.to_dict(), indent=2))
    else:
        for rc in [cmp.tflm] + ([cmp.litert] if cmp.litert else []):
            state = {True: "outputs identical", False: "OUTPUTS DIFFER", None: "not comparable"}[rc.match]
            print(f"{rc.runtime:>6}: {state} (max |diff| {rc.max_abs_diff:g})" + (f"  [{rc.note}]" if rc.note else ""))
            for tag, r in (("A", rc.a), ("B", rc.b)):
                if r is not None and r.head is not None:
                    print(f"        {tag}: arena head {r.head:,} B, tail {r.tail:,} B, total {r.total:,} B")
    return EXIT_OK if cmp.ok else EXIT_MISMATCH


def _check_runs(data: bytes, model: "Model", path: str) -> None:
    """B failed on A's inputs: a model TFLM cannot run at all is bad input, not a difference."""
    from .verify import make_inputs, run
    own = run(data, make_inputs(model, 1))
    if not own.ok:
        raise FdtError(f"{path}: TFLM cannot run this model: {own.error}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    debug = bool(os.environ.get("FDT_TFLM_DEBUG"))
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return EXIT_USAGE
        handler = {"inspect": cmd_inspect, "optimize": cmd_optimize, "verify": cmd_verify}.get(args.command)
        if handler is None:
            return int(args.func(args))
        return handler(args)
    except VerificationError as e:
        print(f"fdt-tflm: error: {e}", file=sys.stderr)
        return EXIT_MISMATCH
    except FdtError as e:
        print(f"fdt-tflm: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("fdt-tflm: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print("fdt-tflm: error: out of memory: the model needs more than this process may allocate", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return EXIT_OK
    except Exception as e:  # a bug of ours: still one line, unless debugging
        if debug:
            raise
        print(f"fdt-tflm: internal error: {type(e).__name__}: {e} (set FDT_TFLM_DEBUG=1 for a traceback)",
              file=sys.stderr)
        return 3
