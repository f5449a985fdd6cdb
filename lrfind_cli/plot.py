"""The lr_find.png plot: smoothed (and faint raw) loss against learning rate, suggestions marked."""

from __future__ import annotations

import io
import math
from pathlib import Path

from .results import RangeTestResult, write_atomic

_COLOURS = {"steepest": "tab:red", "valley": "tab:green", "minimum": "tab:purple"}


def save_plot(result: RangeTestResult, path: Path, title: str = "") -> Path:
    """Draw the curve and write the PNG atomically (never opens a window)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5), dpi=110, layout="constrained")
    ax = fig.add_subplot()
    lrs, raw, smooth = result.lrs, result.losses, result.smoothed
    finite_raw = [(lr, v) for lr, v in zip(lrs, raw) if math.isfinite(v)]
    if finite_raw:
        ax.plot(*zip(*finite_raw), color="tab:blue", alpha=0.25, linewidth=1, label="loss (raw)")
    finite = [(lr, v) for lr, v in zip(lrs, smooth) if math.isfinite(v)]
    if finite:
        ax.plot(*zip(*finite), color="tab:blue", linewidth=2, label="loss (smoothed)")
        _limit_y(ax, [v for _, v in finite], min(v for _, v in finite_raw))
    if result.mode == "exp":
        ax.set_xscale("log")
    for name, lr in result.suggestions.items():
        if lr is None:
            continue
        chosen = name == result.method and lr == result.suggested_lr
        ax.axvline(lr, color=_COLOURS.get(name, "tab:gray"), linestyle="-" if chosen else ":",
                   linewidth=2 if chosen else 1.2,
                   label=f"{name}: {lr:.2e}" + ("  (suggested)" if chosen else ""))
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    status = f"{result.status}, {result.num_steps} steps"
    ax.set_title(f"{title}\n{status}" if title else status, fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    write_atomic(path, buf.getvalue())
    return path


def _limit_y(ax, smoothed: list[float], raw_low: float) -> None:
    """Keep the interesting part readable: show the whole descent, clip the diverged tail a little above the start."""
    low = min(min(smoothed), raw_low)
    start, high = smoothed[0], max(smoothed)
    top = min(high, start + 0.25 * (start - low))
    if top > low:
        margin = 0.05 * (top - low)
        ax.set_ylim(low - margin, top + margin)
