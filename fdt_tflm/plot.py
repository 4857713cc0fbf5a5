"""Pictures of memory: live bytes over time (before/after) and the arena layout (buffers over time)."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Optional, Union

from .errors import FdtError
from .ir.graph import Model
from .tflm_model.lifetimes import lifetimes, live_bytes_per_scope

if TYPE_CHECKING:
    from .api import Result
    from .report import ParetoEntry, Report


def _plt():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise FdtError("plots need matplotlib: pip install 'fdt-tflm[plot]'") from None
    return plt


def _layout(ax, model: Model, title: str) -> None:
    """Each arena buffer as a rectangle: x = scopes it is alive, y = its byte range."""
    from .analysis import predicted_head
    pred = predicted_head(model)
    for iv, off in zip(pred.buffers, pred.offsets):
        ax.add_patch(_rect(iv.first - 0.45, off, iv.last - iv.first + 0.9, iv.size))
    n = max((iv.last for iv in pred.buffers), default=0) + 1
    ax.set_xlim(-0.5, n - 0.5)
    ax.set_ylim(0, max(pred.head, 1) * 1.05)
    ax.set_xlabel("step (0 = inputs, i+1 = operator i)")
    ax.set_ylabel("arena offset (bytes)")
    ax.set_title(f"{title}: head {pred.head:,} B")


def _rect(x, y, w, h):
    from matplotlib.patches import Rectangle
    return Rectangle((x, y), w, h, facecolor="#4c72b0", edgecolor="white", alpha=0.85)


def plot_model(model: Model, path: Optional[Union[str, os.PathLike]] = None):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, 4.5))
    _layout(ax, model, "arena layout")
    fig.tight_layout()
    if path is not None:
        fig.savefig(os.fspath(path), dpi=110)
    return fig


def plot_result(res: "Result", path: Optional[Union[str, os.PathLike]] = None):
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    for model, label, style in ((res._original_model, "original", "--"), (res.model, "optimised", "-")):
        if model is None:
            continue
        ivs = lifetimes(model.main)
        live = live_bytes_per_scope(ivs, len(model.main.operators) + 1)
        axes[0].step(range(len(live)), live, style, where="mid", label=f"{label} (peak {max(live, default=0):,} B)")
    axes[0].set_xlabel("step")
    axes[0].set_ylabel("live activation bytes")
    axes[0].set_title("memory over time")
    axes[0].legend()
    if res._original_model is not None:
        _layout(axes[1], res._original_model, "original (TFLM greedy)")
    _layout(axes[2], res.model, "optimised")
    fig.suptitle(_headline(res))
    fig.tight_layout()
    if path is not None:
        fig.savefig(os.fspath(path), dpi=110)
    return fig


def figure_bytes(fig, path: Union[str, os.PathLike]) -> bytes:
    """The figure rendered in the format ``path`` names (PNG without an extension), so that
    callers can write it atomically beside the other outputs."""
    import io
    fmt = os.path.splitext(os.fspath(path))[1].lstrip(".").lower() or "png"
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format=fmt, dpi=110)
    except ValueError as e:  # matplotlib: unknown format
        raise FdtError(f"{os.fspath(path)}: cannot draw a .{fmt} file ({e})") from None
    return buf.getvalue()


def _headline(res: "Result") -> str:
    """The report's numbers: measured by TFLM where it ran the model (the panels are predictions)."""
    r = res.report
    basis = "measured by TFLM" if r.measured else "predicted"
    total = (f", total {r.original_total_arena_bytes:,} -> {r.total_arena_bytes:,} B"
             if r.total_arena_bytes is not None and r.original_total_arena_bytes is not None else "")
    return f"{r.model}: head {r.original_arena_bytes:,} -> {r.arena_bytes:,} B{total} ({basis})"


def plot_pareto(report: "Report"):
    """The tiling search's Pareto front: arena on the objective against MAC overhead and
    against predicted instruction overhead, so the cost of each byte saved is visible in both
    currencies; the chosen point is highlighted, the budgets drawn as dashed lines."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    _front_panel(axes[0], report, "mac_overhead_pct", "MAC overhead (%)", report.max_overhead_pct)
    _front_panel(axes[1], report, "instruction_overhead_pct", "instruction overhead (%, predicted)",
                 report.max_slowdown_pct)
    axes[0].set_ylabel(f"estimated {report.objective} arena (bytes)")
    fig.suptitle(f"{report.model}: tiling search front on the {report.objective} objective"
                 + ("" if report.pareto else " (no tiling search in the kept model)"))
    fig.tight_layout()
    return fig


def _front_panel(ax, report: "Report", key: str, label: str, budget: Optional[float]) -> None:
    """One panel: the front's points (gid "pareto"), the chosen one ("chosen"), the budget."""
    if report.pareto:
        ax.scatter([getattr(p, key) for p in report.pareto], [_arena(p, report.objective) for p in report.pareto],
                   color="#4c72b0", gid="pareto", label=f"Pareto front ({len(report.pareto)} points)")
    chosen = chosen_point(report)
    if chosen is not None:
        ax.scatter([getattr(chosen, key)], [_arena(chosen, report.objective)], s=140, facecolor="none",
                   edgecolor="#c44e52", linewidth=2, gid="chosen", label=f"chosen ({chosen.n_paths} rewrites)")
    if budget is not None:
        ax.axvline(budget, color="grey", linestyle="--", label=f"budget {budget:g} %")
    ax.set_xlabel(label)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper right")


def _arena(p: "ParetoEntry", objective: str) -> int:
    return p.head if objective == "head" else p.total


def chosen_point(report: "Report") -> Optional["ParetoEntry"]:
    """The front's point the search ended on: as many rewrites as the report's paths, at the
    last path's overheads and estimated total (the start, with no paths); None if it is not
    on the front (another point is as good in every coordinate)."""
    last = report.paths[-1] if report.paths else None
    for p in report.pareto:
        if last is None:
            if p.n_paths == 0:
                return p
        elif (p.n_paths, p.total) == (len(report.paths), last.total_after) \
                and abs(p.mac_overhead_pct - last.mac_overhead_pct) < 1e-6 \
                and abs(p.instruction_overhead_pct - last.instruction_overhead_pct) < 1e-6:
            return p
    return None
