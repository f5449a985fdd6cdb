"""The lr_find.png plot: the zero-lag loss the rule reads (faint raw and EMA) against learning rate, suggestions marked."""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Sequence
from pathlib import Path

from .plot_labels import ValueLabel, place_labels
from .results import RangeTestResult, write_atomic
from .suggest import SCHEDULE_NAMES, read_repeats

_COLOURS = {"steepest": "tab:red", "valley": "tab:green", "minimum": "tab:purple", "onecycle": "black", "constant": "tab:olive",
            "finetune": "tab:brown"}
LEGEND_MARGIN_PX = 4  # the legend's distance from the figure's left and right edges, at least
ONSET_COLOUR = "darkred"  # the onset of divergence, which every rule measures from
Curve = tuple[str, RangeTestResult]  # (legend label, result); one unlabelled curve is the plain plot


def save_plot(curves: RangeTestResult | Sequence[Curve], path: Path, title: str = "") -> Path:
    """Draw the plot (`draw_plot`) and write the PNG atomically; return `path`."""
    buf = io.BytesIO()
    draw_plot(curves, title).savefig(buf, format="png")
    write_atomic(path, buf.getvalue())
    return path


def draw_plot(curves: RangeTestResult | Sequence[Curve], title: str = ""):
    """One curve (with every method's suggestion) or several overlaid (each with its suggestion), as a Figure.

    Each curve's onset of divergence, where the rule reads its answer from, is marked. Value labels are
    placed so that none overlaps another or leaves the axes (`plot_labels`), and the legend below the
    axes gets as many columns, and its entries as many lines, as keep it inside the figure. Never
    opens a window and never switches matplotlib's backend: the Figure renders with its own Agg
    canvas, so a notebook that imports lrfind keeps its backend.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if isinstance(curves, RangeTestResult):
        curves = [("", curves)]
    fig = Figure(figsize=(8, 5.6), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if len(curves) == 1:
        labels = _draw_one(ax, curves[0][1])
        subtitle = subtitle_of(curves[0][1])
    else:
        labels = _draw_many(ax, curves)
        subtitle = f"{len(curves)} runs"
    if any(r.mode == "exp" for _, r in curves):
        ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss")
    ax.set_title(f"{title}\n{subtitle}" if title else subtitle, fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    _fit_legend(fig, ax)
    # The layout, done once and then fixed: the labels are placed in the pixels of the final axes, and
    # saving draws the figure as it stands.
    fig.get_layout_engine().execute(fig)
    fig.set_layout_engine("none")
    ax.get_xlim(), ax.get_ylim()  # autoscaling settles the limits the placement converts with
    place_labels(ax, labels)
    return fig


def _fit_legend(fig, ax) -> None:
    """The legend below the axes (it never covers the curve or the labels), no wider than the figure.

    Two columns when they fit, else one, else one with its entries wrapped onto more lines: a legend
    wider than the figure is centred and cut at both edges (a grid's labels lost their first and last
    characters that way).
    """
    handles, texts = ax.get_legend_handles_labels()
    if not handles:
        return
    renderer = fig.canvas.get_renderer()
    room = fig.bbox.width - 2 * LEGEND_MARGIN_PX
    longest = max(len(t) for t in texts)
    for ncols, width in [(2, longest), (1, longest), *((1, int(longest * f)) for f in (0.8, 0.65, 0.5, 0.4, 0.3, 0.2))]:
        wrapped = [textwrap.fill(t, width=max(width, 20), subsequent_indent="  ") for t in texts]
        legend = fig.legend(handles, wrapped, loc="outside lower center", fontsize=8, ncols=ncols, frameon=False)
        if legend.get_window_extent(renderer).width <= room:
            return
        legend.remove()
    fig.legend(handles, wrapped, loc="outside lower center", fontsize=8, ncols=1, frameon=False)


def legend_labels(curves: Sequence[Curve]) -> list[str]:
    """The legend entries save_plot draws for several overlaid curves (one per curve, in order)."""
    return [f"{label or f'run {i + 1}'}: {_lr_text(r.suggested_lr)}" for i, (label, r) in enumerate(curves)]


def _draw_one(ax, result: RangeTestResult) -> list[ValueLabel]:
    """The curves, the lr_range, a line per method's suggestion and the onset; returns the value labels to place."""
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
        values = [v for _, v in main]
        _limit_y(ax, min(min(values), min(v for _, v in raw) if raw else math.inf), values[0], max(values))
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
    onset = onset_of(result, main)
    if onset is not None:
        ax.axvline(onset, color=ONSET_COLOUR, linestyle="--", linewidth=1.4,
                   label=f"onset of divergence: {onset:.2e} (the rule reads from here)", gid="onset")
    return _value_labels(ax, main, shown, result, onset) if main else []


def _value_labels(ax, curve: list[tuple[float, float]], shown: list[tuple[float, str]], result: RangeTestResult,
                  onset: float | None) -> list[ValueLabel]:
    """A marker on the curve at each suggestion and at the onset; the label of each value, the suggested one first.

    A value equal to one already marked (within 0.005 decades) is neither marked nor written again.
    """
    labels: list[ValueLabel] = []
    for lr, name in shown:
        chosen = name == result.method and lr == result.suggested_lr
        colour = _COLOURS.get(name, "tab:gray")
        if any(abs(math.log10(lr / other.x)) < 0.005 for other in labels):
            continue  # the same value as one marked already: its line is drawn, its marker and label would hide the first
        y = _in_view(ax, _value_at(curve, lr))
        ax.plot([lr], [y], marker="o", markersize=9 if chosen else 6, color=colour, markeredgecolor="white", zorder=6 if chosen else 5,
                clip_on=False)
        labels.append(ValueLabel(lr, y, f"{lr:.2g}", colour, bold=chosen))
    if onset is not None:
        y = _in_view(ax, _value_at(curve, onset))
        ax.plot([onset], [y], marker="v", markersize=8, color=ONSET_COLOUR, markeredgecolor="white", zorder=6, gid="onset", clip_on=False)
        labels.append(ValueLabel(onset, y, f"onset {onset:.2g}", ONSET_COLOUR))
    return labels


def rule_curve(result: RangeTestResult) -> list[tuple[float, float]]:
    """The zero-lag curve the rule reads (`RangeTestResult.curve`: of the raw losses, or of the repeats' mean)."""
    return [(lr, v) for lr, v in zip(result.lrs, result.curve) if v is not None]


def onset_of(result: RangeTestResult, curve: list[tuple[float, float]]) -> float | None:
    """The onset of divergence the rule measured its answer from; None when there is no answer (never the last lr).

    The onset of the reading the rule took (`suggest.read_repeats`: the result's own curve, or its finished
    repeats' mean), so it lies on the curve the plot draws.
    """
    if not curve or result.suggested_lr is None:
        return None
    finished = [r for _, r in result.repeats if r.status != "interrupted"] or [result]
    reading = read_repeats([(r.lrs, r.smoothed, r.losses) for r in finished], [r.status for r in finished]).rule_reading
    return reading.onset_lr if reading is not None else None


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


def _draw_many(ax, curves: Sequence[Curve]) -> list[ValueLabel]:
    """Each run's curve in its colour, its suggestion marked (o) and its onset (v); returns the value labels to place."""
    import matplotlib
    from matplotlib.lines import Line2D

    colours = matplotlib.colormaps["tab10"]
    lows, starts, tops, drawn = [], [], [], []
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
        drawn.append((colour, smooth, result))
    if lows:
        _limit_y(ax, min(lows), max(starts), max(tops))
    labels, onsets = [], False
    for colour, smooth, result in drawn:  # marks once the view is set: a mark above it sits on its edge
        onset = onset_of(result, smooth)
        if onset is not None:
            y = _in_view(ax, _value_at(smooth, onset))
            ax.plot([onset], [y], marker="v", markersize=8, color=colour, markeredgecolor=ONSET_COLOUR, gid="onset",
                    clip_on=False, zorder=6)
            onsets = True
        if result.suggested_lr is not None:
            y = _in_view(ax, _value_at(smooth, result.suggested_lr))
            ax.plot([result.suggested_lr], [y], marker="o", markersize=8, color=colour, markeredgecolor="black", clip_on=False,
                    zorder=6)
            labels.append(ValueLabel(result.suggested_lr, y, f"{result.suggested_lr:.2g}", colour))
    if onsets:
        ax.add_line(Line2D([], [], marker="v", markersize=8, linestyle="none", color="white", markeredgecolor=ONSET_COLOUR,
                           label="each run's onset of divergence (the rule reads from here)"))
    return labels


def _in_view(ax, y: float) -> float:
    """y, or the nearer edge of the axes' view when y lies beyond it (the diverged tail is cut off the view)."""
    low, high = sorted(ax.get_ylim())
    return min(max(y, low), high)


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


def _limit_y(ax, low: float, start: float, high: float) -> None:
    """Keep the interesting part readable: the whole descent to `low`, the diverged tail clipped a little above `start`."""
    top = min(high, start + 0.25 * (start - low))
    if top > low:
        margin = 0.05 * (top - low)
        ax.set_ylim(low - margin, top + margin)
