"""The plot as a reader sees it: value labels that never print over each other or off the axes, a legend inside
the figure, and the onset of divergence (where the rule reads its answer) marked on every curve.

The pictures themselves were looked at for every offline example config, a grid and a compare; these tests pin
what can be measured: the pixel boxes of the labels and the legend, and the marks' positions.
"""

import itertools
import math

import numpy as np
import pytest

from lrfind_cli.plot import draw_plot
from lrfind_cli.plot_labels import text_box
from lrfind_cli.results import RangeTestResult, Repeat
from lrfind_cli.suggest import mean_curve, read_curve, summarize

LRS = list(np.logspace(-6, 0, 90))


def sweep_curve(shift: float = 0.0, seed: int = 0) -> tuple[list[float], list[float]]:
    """A range test's raw loss: flat at 2.5, falls to 0.1 around lr 1e-2 (times 10**shift), diverges past 10x that."""
    u = np.log10(LRS) - shift
    fall = 2.4 / (1 + np.exp(-(u + 2.2) / 0.25))
    rise = np.exp(np.clip((u + 0.9) * 6, None, 30)) - np.exp(np.clip((-2.2 + 0.9) * 6, None, 30))
    raw = 2.5 - fall + np.maximum(rise, 0) + np.random.default_rng(seed).normal(0, 0.03, len(u))
    return LRS, [float(v) for v in raw]


def ema(values: list[float], beta: float = 0.9) -> list[float]:
    avg, out = 0.0, []
    for t, v in enumerate(values, 1):
        avg = beta * avg + (1 - beta) * v
        out.append(avg / (1 - beta**t))
    return out


def result_of(lrs: list[float], raw: list[float], **overrides) -> RangeTestResult:
    smoothed = ema(raw)
    fields = {"lrs": list(lrs), "losses": raw, "smoothed": smoothed, "status": "diverged", "stop_reason": "diverged",
              "device": "cpu", "duration_s": 1.0, "start_lr": lrs[0], "end_lr": lrs[-1], "num_iter": len(lrs), "mode": "exp",
              **summarize([(lrs, smoothed, raw)]).fields()}
    fields.update(overrides)
    return RangeTestResult(**fields)


def labels_of(fig) -> list:
    return [t for t in fig.axes[0].texts]


def boxes(fig) -> list:
    renderer = fig.canvas.get_renderer()
    return [text_box(t, renderer) for t in labels_of(fig)]


def assert_labels_apart_and_inside(fig) -> None:
    found = boxes(fig)
    frame = fig.axes[0].get_window_extent(fig.canvas.get_renderer())
    for a, b in itertools.combinations(found, 2):
        assert not a.overlaps(b), (a, b)
    for box in found:
        assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1, (box, frame)


def assert_legend_inside(fig) -> None:
    (legend,) = fig.legends
    box, page = legend.get_window_extent(fig.canvas.get_renderer()), fig.bbox
    assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0 and box.y1 <= page.y1, (box, page)


# ---- value labels ------------------------------------------------------------------------------------------------

ONE_CYCLE = 0.0258
CROWDS = {
    # configs/resnet.yaml printed 0.015 over 0.021 (minimum and steepest, 0.15 decades apart)
    "resnet-like": {"onecycle": ONE_CYCLE, "constant": 0.0082, "steepest": 0.0206, "valley": 0.0021, "minimum": 0.0145},
    "all within a tenth of a decade": {"onecycle": ONE_CYCLE, "constant": 0.024, "steepest": 0.028, "valley": 0.022,
                                       "minimum": 0.030},
    "at the right edge": {"onecycle": 0.9, "constant": 0.95, "steepest": 1.0, "valley": 0.8, "minimum": 0.85},
    "at the left edge": {"onecycle": 1.0e-6, "constant": 1.2e-6, "steepest": 1.5e-6, "valley": 1.1e-6, "minimum": 1.3e-6},
}


@pytest.mark.parametrize("crowd", list(CROWDS))
def test_value_labels_never_overlap_and_stay_inside_the_axes(crowd):
    suggestions = CROWDS[crowd]
    result = result_of(*sweep_curve(), suggestions=suggestions, method="onecycle", suggested_lr=suggestions["onecycle"])

    fig = draw_plot(result, "title")

    written = [t.get_text() for t in labels_of(fig)]
    assert {f"{lr:.2g}" for lr in suggestions.values()} <= set(written)  # every value is written ...
    assert_labels_apart_and_inside(fig)  # ... and readable


def test_an_equal_value_is_written_once():
    result = result_of(*sweep_curve(), suggestions={"onecycle": ONE_CYCLE, "minimum": ONE_CYCLE}, method="onecycle",
                       suggested_lr=ONE_CYCLE)

    written = [t.get_text() for t in labels_of(draw_plot(result))]

    assert written.count(f"{ONE_CYCLE:.2g}") == 1


def test_grid_labels_of_close_answers_never_overlap():
    """A grid printed 0.048 over 0.096: runs whose answers and curves lie close together."""
    runs = [(f"optimizer.kwargs.weight_decay={wd}", result_of(*sweep_curve(shift, seed=i)))
            for i, (wd, shift) in enumerate([(0, 0.0), (1e-4, 0.05), (1e-3, 0.3), (1e-2, 0.32)])]
    runs += [("at the edge", result_of(*sweep_curve(), suggested_lr=0.95, method="onecycle"))]

    fig = draw_plot(runs, "grid")

    assert len(labels_of(fig)) == len(runs)
    assert_labels_apart_and_inside(fig)


def test_saving_keeps_the_labels_where_they_were_placed(tmp_path):
    fig = draw_plot(result_of(*sweep_curve(), suggestions=CROWDS["resnet-like"], method="onecycle", suggested_lr=ONE_CYCLE))
    before = [tuple(b.extents) for b in boxes(fig)]

    fig.savefig(tmp_path / "plot.png")

    assert [tuple(b.extents) for b in boxes(fig)] == before
    assert_labels_apart_and_inside(fig)


# ---- the legend --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("label", [
    "optimizer.kwargs.weight_decay=0.0001",
    # `lrfind compare` labels a grid's runs with the result's path: the legend was cut at both edges
    "lrfind-out/experiments/2026-11-30/resnet18-sgd-grid [optimizer.kwargs.weight_decay=0.0001, data.batch_size=256]",
    "a" * 300,
])
def test_the_legend_lies_inside_the_figure(label):
    runs = [(f"{label} #{i}", result_of(*sweep_curve(0.1 * i, seed=i))) for i in range(4)]

    fig = draw_plot(runs, "lrfind compare")

    assert_legend_inside(fig)
    shown = [t.get_text().replace("\n", "") for t in fig.legends[0].get_texts()]
    assert all(f"{label} #{i}".replace(" ", "") in text.replace(" ", "") for i, text in zip(range(4), shown))  # wrapped, not cut


def test_the_single_curve_legend_lies_inside_the_figure():
    assert_legend_inside(draw_plot(result_of(*sweep_curve()), "resnet18 · SGD · synthetic (batch 64)"))


# ---- the onset of divergence -------------------------------------------------------------------------------------


def onset_marks(fig) -> list:
    return [a for a in fig.axes[0].get_children() if getattr(a, "get_gid", lambda: None)() == "onset"]


def test_the_onset_the_answer_is_read_from_is_marked_and_named():
    lrs, raw = sweep_curve()
    result = result_of(lrs, raw)
    onset = read_curve(lrs, result.smoothed, raw).onset_lr

    fig = draw_plot(result)

    assert onset is not None and result.suggested_lr < onset
    marks = onset_marks(fig)
    assert marks and all(math.isclose(float(np.ravel(m.get_xdata())[0]), onset) for m in marks)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any(text.startswith(f"onset of divergence: {onset:.2e}") for text in legend), legend
    assert f"onset {onset:.2g}" in [t.get_text() for t in labels_of(fig)]


def test_a_curve_that_never_diverged_has_no_answer_and_marks_nothing_at_its_last_lr():
    lrs, raw = sweep_curve()
    cut = next(i for i, lr in enumerate(lrs) if lr > 0.03)  # stopped in the valley: no rise measured
    result = result_of(lrs[:cut], raw[:cut], status="completed")

    fig = draw_plot(result)

    assert result.suggested_lr is None and "no_divergence" in result.confidence.flags  # nothing is read off the last lr
    assert onset_marks(fig) == []


def test_a_curve_without_an_answer_marks_no_onset():
    lrs = LRS[:40]
    flat = [2.0 + 0.01 * math.sin(i) for i in range(40)]

    result = result_of(lrs, flat)

    assert result.suggested_lr is None and onset_marks(draw_plot(result)) == []


def test_every_run_of_a_grid_has_its_onset_marked():
    runs = [(f"run {i}", result_of(*sweep_curve(0.2 * i, seed=i))) for i in range(3)]

    fig = draw_plot(runs)

    xs = sorted(float(np.ravel(m.get_xdata())[0]) for m in onset_marks(fig))
    expected = sorted(read_curve(r.lrs, r.smoothed, r.losses, diverged=True).onset_lr for _, r in runs)
    assert xs == pytest.approx(expected)


def test_repeats_mark_the_onset_of_their_mean_curve():
    curves = [result_of(*sweep_curve(seed=seed)) for seed in range(3)]
    combined = result_of(*sweep_curve(seed=0), repeats=[Repeat(seed, r) for seed, r in enumerate(curves)])

    marks = onset_marks(draw_plot(combined))

    lrs, smoothed, raw = mean_curve([(c.lrs, c.smoothed, c.losses) for c in curves])
    assert len(raw) == len(LRS) and raw[5] == pytest.approx(np.mean([c.losses[5] for c in curves]))
    assert marks and float(np.ravel(marks[0].get_xdata())[0]) == pytest.approx(read_curve(lrs, smoothed, raw, diverged=True).onset_lr)
