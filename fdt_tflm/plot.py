"""Pictures of memory: live bytes over time (before/after) and the arena layout (buffers over time)."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Optional, Union

from .errors import FdtError
from .ir.graph import Model
from .memory.lifetimes import lifetimes, live_bytes_per_scope

if TYPE_CHECKING:
    from .api import Result


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


def _headline(res: "Result") -> str:
    """The report's numbers: measured by TFLM where it ran the model (the panels are predictions)."""
    r = res.report
    basis = "measured by TFLM" if r.measured else "predicted"
    total = (f", total {r.original_total_arena_bytes:,} -> {r.total_arena_bytes:,} B"
             if r.total_arena_bytes is not None and r.original_total_arena_bytes is not None else "")
    return f"{r.model}: head {r.original_arena_bytes:,} -> {r.arena_bytes:,} B{total} ({basis})"
