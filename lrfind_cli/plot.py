"""The lr_find.png plot: the zero-lag loss the rule reads (faint raw and EMA) against learning rate, suggestions marked."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path

from .results import RangeTestResult, write_atomic
from .suggest import SCHEDULE_NAMES

_COLOURS = {"steepest": "tab:red", "valley": "tab:green", "minimum": "tab:purple", "onecycle": "black", "constant": "tab:olive",
            "finetune": "tab:brown"}
Curve = tuple[str, RangeTestResult]  # (legend label, result); one unlabelled curve is the plain plot


def save_plot(curves: RangeTestResult | Sequence[Curve], path: Path, title: str = "") -> Path:
    """Draw one curve (with every method's suggestion) or several overlaid (each with its suggestion), and
    write the PNG atomically. Never opens a window and never switches matplotlib's backend: a bare
    Figure renders with its own Agg canvas, so a notebook that imports lrfind keeps its backend.
    """
    from matplotlib.figure import Figure

    if isinstance(curves, RangeTestResult):
        curves = [("", curves)]
    fig = Figure(figsize=(8, 5.6), dpi=110, layout="constrained")
    ax = fig.add_subplot()
    if len(curves) == 1:
        _draw_one(ax, curves[0][1])
        result = curves[0][1]
        subtitle = subtitle_of(result)
    else:
        _draw_many(ax, curves)
        subtitle = f"{len(curves)} runs"
    if any(r.mode == "exp" for _, r in curves):
        ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss")
    ax.set_title(f"{title}\n{subtitle}" if title else subtitle, fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        # below the axes, so the legend never covers the curve or the markers' values
        fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", fontsize=8, ncols=2, frameon=False)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    write_atomic(path, buf.getvalue())
    return path


def legend_labels(curves: Sequence[Curve]) -> list[str]:
    """The legend entries save_plot draws for several overlaid curves (one per curve, in order)."""
    return [f"{label or f'run {i + 1}'}: {_lr_text(r.suggested_lr)}" for i, (label, r) in enumerate(curves)]


def _draw_one(ax, result: RangeTestResult) -> None:
    raw = _finite(result.lrs, result.losses)
    smooth = _finite(result.lrs, result.smoothed)
    read = rule_curve(result)
    _draw_band(ax, result, "tab:blue")
    if raw:
        ax.plot(*zip(*raw), color="tab:blue", alpha=0.25, linewidth=1, label="loss (raw)")
    if smooth:
        ax.plot(*zip(*smooth), color="tab:gray", alpha=0.6, linewidth=1, linestyle="--", label="loss (EMA, lags)")
    main = read or smooth
    if main:
        ax.plot(*zip(*main), color="tab:blue", linewidth=2.2, label="loss (zero-lag: what the rule reads)")
        _limit_y(ax, [v for _, v in main], min(v for _, v in raw) if raw else min(v for _, v in main))
    _draw_val(ax, result, "tab:orange", "validation loss")
    if result.lr_range and result.suggested_lr is not None:
        low, high = result.lr_range
        ax.axvspan(low, high, color="gold", alpha=0.2,
                   label=f"lr_range {low:.2e} .. {high:.2e} (cyclic base_lr .. max_lr)")
    shown = sorted((lr, name) for name, lr in result.suggestions.items() if lr is not None)
    # the suggested one first, so a method with the same value does not hide it
    shown.sort(key=lambda item: item[1] != result.method)
    for lr, name in shown:
        chosen = name == result.method and lr == result.suggested_lr
        colour = _COLOURS.get(name, "tab:gray")
        ax.axvline(lr, color=colour, linestyle="-" if chosen else ":", linewidth=2.2 if chosen else 1.2,
                   label=f"{SCHEDULE_NAMES.get(name, name)}: {lr:.2e}" + ("  (suggested)" if chosen else ""))
    if main:
        _mark_values(ax, main, shown, result)


def _mark_values(ax, curve: list[tuple[float, float]], shown: list[tuple[float, str]], result: RangeTestResult) -> None:
    """A marker on the curve at each suggestion, its value written beside it.

    Values within 0.2 decades of each other are stacked (each label a line above the last), so
    they never print over each other; a value equal to one already written is marked, not written.
    """
    written: list[float] = []
    for lr, name in shown:
        chosen = name == result.method and lr == result.suggested_lr
        colour = _COLOURS.get(name, "tab:gray")
        y = _value_at(curve, lr)
        ax.plot([lr], [y], marker="o", markersize=9 if chosen else 6, color=colour, markeredgecolor="white", zorder=6 if chosen else 5)
        if any(abs(math.log10(lr / w)) < 0.005 for w in written):
            continue
        level = sum(1 for w in written if abs(math.log10(lr / w)) < 0.2)
        ax.annotate(f"{lr:.2g}", (lr, y), xytext=(5, 8 + 13 * level), textcoords="offset points", fontsize=8, color=colour,
                    fontweight="bold" if chosen else "normal")
        written.append(lr)


def rule_curve(result: RangeTestResult) -> list[tuple[float, float]]:
    """The zero-lag curve the rule reads (`RangeTestResult.curve`: of the raw losses, or of the repeats' mean)."""
    return [(lr, v) for lr, v in zip(result.lrs, result.curve) if v is not None]


def _draw_band(ax, result: RangeTestResult, colour, labelled: bool = True) -> None:
    """The smoothed loss's lowest..highest value across repeats (sweep.repeats), step by step."""
    if len(result.repeats) < 2:
        return
    columns: dict[int, list[float]] = {}
    for _, run in result.repeats:
        for i, v in enumerate(run.smoothed):
            if v is not None and math.isfinite(v):
                columns.setdefault(i, []).append(v)
    steps = [i for i in sorted(columns) if len(columns[i]) >= 2]
    # every repeat follows the same schedule, so the longest repeat's lrs give each step's lr
    planned = max((run.lrs for _, run in result.repeats), key=len)
    lrs = [planned[i] for i in steps]
    if steps:
        ax.fill_between(lrs, [min(columns[i]) for i in steps], [max(columns[i]) for i in steps], color=colour, alpha=0.18,
                        linewidth=0, label=f"band across {len(result.repeats)} repeats" if labelled else "_nolegend_")


def subtitle_of(result: RangeTestResult) -> str:
    """The plot's second title line(s) for one curve: status, steps, repeats and spread, low-confidence flags."""
    return f"{result.status}, {result.num_steps} steps" + _repeats_text(result) + _flags_text(result)


def _repeats_text(result: RangeTestResult) -> str:
    spread = result.confidence.spread_decades
    if len(result.repeats) < 2:
        return ""
    return f", {len(result.repeats)} repeats" + (f" (spread {spread:.2f} decades)" if spread is not None else "")


def _flags_text(result: RangeTestResult) -> str:
    low = result.confidence.low
    other = [f for f in result.confidence.flags if f not in low]
    parts = ([f"low confidence: {', '.join(low)}"] if low else []) + ([f"note: {', '.join(other)}"] if other else [])
    return "\n" + "; ".join(parts) if parts else ""


def _draw_many(ax, curves: Sequence[Curve]) -> None:
    import matplotlib

    colours = matplotlib.colormaps["tab10"]
    lows, starts, tops = [], [], []
    for i, ((_, result), label) in enumerate(zip(curves, legend_labels(curves))):
        colour = colours(i % 10)
        _draw_band(ax, result, colour, labelled=i == 0)  # one legend entry stands for every run's band
        raw = _finite(result.lrs, result.losses)
        smooth = rule_curve(result) or _finite(result.lrs, result.smoothed)  # the curve each run's answer was read on
        if raw:
            ax.plot(*zip(*raw), color=colour, alpha=0.15, linewidth=1)
        if not smooth:
            continue
        ax.plot(*zip(*smooth), color=colour, linewidth=2, label=label)
        _draw_val(ax, result, colour, "validation loss (dashed)" if i == 0 else None)
        lows.append(min(min(v for _, v in smooth), min(v for _, v in raw)))
        starts.append(smooth[0][1])
        tops.append(max(v for _, v in smooth))
        if result.suggested_lr is not None:
            y = _value_at(smooth, result.suggested_lr)
            ax.plot([result.suggested_lr], [y], marker="o", markersize=8, color=colour, markeredgecolor="black")
            ax.annotate(f"{result.suggested_lr:.2g}", (result.suggested_lr, y), xytext=(5, 8 if i % 2 == 0 else -14),
                        textcoords="offset points", fontsize=8, color=colour)
    if lows:
        low, start = min(lows), max(starts)
        top = min(max(tops), start + 0.25 * (start - low))
        if top > low:
            ax.set_ylim(low - 0.05 * (top - low), top + 0.05 * (top - low))


def _draw_val(ax, result: RangeTestResult, colour, label: str | None) -> None:
    if result.val_losses is None:
        return
    points = [(lr, v) for lr, v in zip(result.lrs, result.val_losses) if v is not None and math.isfinite(v)]
    if points:
        ax.plot(*zip(*points), linestyle="--", marker="s", markersize=3, color=colour, label=label or "_nolegend_")


def _finite(lrs: Sequence[float], values: Sequence[float]) -> list[tuple[float, float]]:
    return [(lr, v) for lr, v in zip(lrs, values) if v is not None and math.isfinite(v)]


def _value_at(points: list[tuple[float, float]], lr: float) -> float:
    return min(points, key=lambda p: abs(math.log(p[0]) - math.log(lr)) if p[0] > 0 and lr > 0 else abs(p[0] - lr))[1]


def _lr_text(lr: float | None) -> str:
    return "no suggestion" if lr is None else f"{lr:.2e}"


def _limit_y(ax, smoothed: list[float], raw_low: float) -> None:
    """Keep the interesting part readable: show the whole descent, clip the diverged tail a little above the start."""
    low = min(min(smoothed), raw_low)
    start, high = smoothed[0], max(smoothed)
    top = min(high, start + 0.25 * (start - low))
    if top > low:
        margin = 0.05 * (top - low)
        ax.set_ylim(low - margin, top + margin)
