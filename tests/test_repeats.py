"""sweep.repeats: several range tests from the same start with different data order, combined; confidence; the plot."""

import dataclasses
import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from lrfind_cli.cli import app
from lrfind_cli.plot import legend_labels, subtitle_of
from lrfind_cli.repeats import combine
from lrfind_cli.results import RangeTestResult
from lrfind_cli.runner import Interrupted, run_spec
from lrfind_cli.spec import load_spec
from lrfind_cli.suggest import mean_curve, recommend, zero_lag

TINY = "configs/tiny.yaml"


def fake(seed: int, inflection: float, status: str = "diverged") -> tuple[int, RangeTestResult]:
    """A clean synthetic range test whose loss falls around 10**inflection and diverges later."""
    lrs = list(np.logspace(-6, 0, 90))
    u = np.log10(lrs)
    raw = 2.0 - 1.5 / (1 + np.exp(-(u - inflection) / 0.3)) + np.where(u > inflection + 1.5, 4 * (u - inflection - 1.5) ** 2, 0)
    raw = list(raw + 0.01 * np.random.default_rng(seed).standard_normal(90))
    smoothed, avg = [], 0.0
    for i, v in enumerate(raw):
        avg = 0.9 * avg + 0.1 * v
        smoothed.append(avg / (1 - 0.9 ** (i + 1)))
    result = RangeTestResult(lrs=lrs, losses=raw, smoothed=smoothed, status=status, stop_reason=f"run {seed}", suggestions={},
                             method="onecycle", suggested_lr=None, device="cpu", duration_s=1.0, start_lr=1e-6, end_lr=1.0,
                             num_iter=90, mode="exp")
    return seed, result


def flat_then_rising(seed: int) -> tuple[int, RangeTestResult]:
    """A range test whose loss stays flat within batch noise, then rises: a trained model's curve, or a noisy one."""
    _, result = fake(seed, -3.0)
    u = np.log10(result.lrs)
    raw = list(1.0 + np.where(u > -1.5, 3 * (u + 1.5), 0.0) + 0.05 * np.random.default_rng(seed).standard_normal(len(u)))
    return seed, dataclasses.replace(result, losses=raw, smoothed=raw)


@pytest.mark.parametrize("warm_start, method, flag", [(True, "finetune", "pretrained"), (None, "onecycle", "noisy"),
                                                      (False, "onecycle", "noisy")])
def test_repeats_of_a_flat_then_rising_curve_are_read_by_whether_the_model_started_trained(warm_start, method, flag):
    combined = combine([flat_then_rising(0), flat_then_rising(1)], "auto", "onecycle", warm_start)

    assert combined.method == method and flag in combined.confidence.flags
    assert combined.suggested_lr == combined.suggestions[method]


def test_one_run_is_returned_unchanged():
    only = fake(0, -3.0)
    assert combine([only], "auto", "onecycle") is only[1]


def test_combined_suggestion_is_read_on_the_mean_curve_of_the_runs():
    runs = [fake(0, -3.3), fake(1, -3.0), fake(2, -2.7)]
    combined = combine(runs, "auto", "onecycle")
    per_run = [recommend(r.lrs, r.smoothed, r.losses, "onecycle").lr for _, r in runs]
    averaged = mean_curve([(r.lrs, r.smoothed, r.losses) for _, r in runs])
    assert combined.suggested_lr == pytest.approx(recommend(*averaged, "onecycle").lr)
    assert min(per_run) <= combined.suggested_lr <= max(per_run)
    assert combined.method == "onecycle"
    assert combined.confidence.repeats == 3
    assert combined.confidence.spread_decades == pytest.approx(float(np.std(np.log10(per_run), ddof=1)))
    assert combined.lr_range[0] <= combined.suggested_lr <= combined.lr_range[1]
    assert combined.duration_s == 3.0
    assert [seed for seed, _ in combined.repeats] == [0, 1, 2]
    assert combined.lrs == runs[0][1].lrs  # the curve shown on top is the first run's


def test_combined_status_is_the_most_serious_one():
    combined = combine([fake(0, -3.0, "completed"), fake(1, -3.0, "diverged")], "auto", "onecycle")
    assert combined.status == "diverged"
    assert combined.stop_reason == "repeat 1: run 0; repeat 2: run 1"
    assert combine([fake(0, -3.0), fake(1, -3.0, "interrupted")], "auto", "onecycle").status == "interrupted"


def test_constant_schedule_names_the_constant_rule():
    combined = combine([fake(0, -3.0), fake(1, -2.9)], "auto", "constant")
    assert combined.method == "constant"
    assert combined.suggested_lr == combined.schedules["constant"].lr
    assert combined.suggested_lr < combined.schedules["onecycle"].lr


def test_result_json_round_trip_keeps_the_repeats():
    combined = combine([fake(0, -3.0), fake(1, -2.9), fake(2, -3.1)], "auto", "onecycle")
    doc = json.loads(json.dumps(combined.to_dict()))
    assert [e["seed"] for e in doc["repeats"]] == [0, 1, 2]
    assert all(set(e) >= {"suggested_lr", "history", "status", "best", "lr_range"} for e in doc["repeats"])
    back = RangeTestResult.from_dict(doc)
    assert len(back.repeats) == 3 and back.repeats[2][1].losses == pytest.approx(combined.repeats[2][1].losses)


def test_the_plot_draws_a_band_and_labels_the_recommendation_range_and_flags():
    from matplotlib.figure import Figure

    from lrfind_cli.plot import _draw_one

    combined = combine([fake(0, -3.0), fake(1, -2.9), fake(2, -3.1)], "auto", "onecycle")
    combined.confidence = dataclasses.replace(combined.confidence, flags=("noisy",))
    ax = Figure().add_subplot()
    _draw_one(ax, combined)
    labels = ax.get_legend_handles_labels()[1]
    assert "band across 3 repeats" in labels
    low, high = combined.lr_range
    assert f"lr_range {low:.2e} .. {high:.2e} (cyclic base_lr .. max_lr)" in labels
    assert f"one-cycle max_lr: {combined.suggested_lr:.2e}  (suggested)" in labels
    assert f"constant lr: {combined.schedules['constant'].lr:.2e}" in labels
    assert "3 repeats (spread" in subtitle_of(combined) and "low confidence: noisy" in subtitle_of(combined)
    assert legend_labels([("a", combined)]) == [f"a: {combined.suggested_lr:.2e}"]


def test_cli_repeats_three_times_with_different_data_order(tmp_path):
    result = CliRunner().invoke(app, ["run", TINY, "--set", "sweep.repeats=3", "--set", "sweep.num_iter=40", "--out", str(tmp_path),
                                      "--json"])
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert [r["seed"] for r in doc["repeats"]] == [0, 1, 2]
    histories = [r["history"]["loss"] for r in doc["repeats"]]
    assert histories[0] != histories[1] != histories[2]  # another data order each time
    # the history on top is the first repeat's; the zero-lag curve is the one the rule read, their mean's
    assert {k: v for k, v in doc["history"].items() if k != "zero_lag"} == {
        k: v for k, v in doc["repeats"][0]["history"].items() if k != "zero_lag"}
    mean = np.mean([r["history"]["loss"][:len(doc["history"]["zero_lag"])] for r in doc["repeats"]], axis=0)
    assert doc["history"]["zero_lag"][: len(mean)] == pytest.approx(zero_lag(doc["history"]["lr"][: len(mean)], mean)[1])
    assert doc["best"]["loss"] == pytest.approx(min(v for v in doc["history"]["zero_lag"] if v is not None))
    assert doc["confidence"]["repeats"] == 3 and doc["confidence"]["spread_decades"] is not None
    assert set(doc["schedules"]) == {"onecycle", "constant"}
    assert doc["suggestions"]["onecycle"] == doc["suggested_lr"] and doc["method"] == "onecycle"
    assert (tmp_path / "lr_find.png").read_bytes().startswith(b"\x89PNG")


def test_repeat_one_matches_a_plain_run(tmp_path):
    plain = CliRunner().invoke(app, ["run", TINY, "--set", "sweep.num_iter=20", "--out", str(tmp_path / "a"), "--json"])
    once = CliRunner().invoke(app, ["run", TINY, "--set", "sweep.num_iter=20", "--set", "sweep.repeats=1", "--out",
                                    str(tmp_path / "b"), "--json"])
    a, b = json.loads(plain.stdout), json.loads(once.stdout)
    assert "repeats" not in a and a["history"] == b["history"] and a["suggested_lr"] == b["suggested_lr"]


def test_live_output_names_each_repeat(tmp_path):
    result = CliRunner().invoke(app, ["run", TINY, "--set", "sweep.repeats=2", "--set", "sweep.num_iter=20", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.stderr
    assert "repeat 1/2: 20 steps" in result.stderr and "repeat 2/2: 20 steps" in result.stderr
    assert "repeats: 2, spread of the suggestion" in result.stdout


def test_an_interrupt_in_the_second_repeat_keeps_the_first(tmp_path):
    # read every step, so the interrupt raised from on_step at step 5 is the last step recorded
    loaded = load_spec(TINY, ["sweep.repeats=3", "sweep.num_iter=20", "performance.sync_every=1", f"output.dir={tmp_path}"])
    seen = {"repeat": 0}

    def on_repeat(index, count):
        seen["repeat"] = index

    def on_step(info):
        if seen["repeat"] == 1 and info.step == 5:
            raise KeyboardInterrupt

    with pytest.raises(Interrupted) as stop:
        run_spec(loaded, on_step=on_step, on_repeat=on_repeat)
    doc = json.loads((tmp_path / "result.json").read_text())
    assert doc["status"] == "interrupted"
    assert doc["repeats"][0]["status"] in ("completed", "diverged") and doc["repeats"][1]["status"] == "interrupted"
    assert len(doc["repeats"]) == 2 and doc["repeats"][1]["num_steps"] == 6
    assert stop.value.outcome.result.status == "interrupted"
    assert not math.isnan(doc["repeats"][0]["history"]["loss"][0])


def test_an_interrupt_between_two_repeats_writes_the_finished_ones(tmp_path):
    loaded = load_spec(TINY, ["sweep.repeats=3", "sweep.num_iter=20", f"output.dir={tmp_path}"])

    def on_repeat(index, count):
        if index == 2:
            raise KeyboardInterrupt  # Ctrl-C while the third repeat's loader is being built

    with pytest.raises(Interrupted):
        run_spec(loaded, on_repeat=on_repeat)
    doc = json.loads((tmp_path / "result.json").read_text())
    assert doc["status"] == "interrupted" and "before repeat 3 of 3" in doc["stop_reason"]
    assert [r["seed"] for r in doc["repeats"]] == [0, 1]
    # two of three repeats are not the answer the spec asked for: none on top, each repeat's own kept
    assert doc["suggested_lr"] is None and doc["confidence"]["flags"] == ["interrupted"]
    assert all(r["suggested_lr"] is not None for r in doc["repeats"])


def test_an_interrupt_between_two_grid_runs_writes_the_finished_ones(tmp_path):
    loaded = load_spec(TINY, ["grid={optimizer.kwargs.weight_decay: [0, 1.0e-4, 1.0e-3]}", "sweep.num_iter=20",
                              f"output.dir={tmp_path}"])

    def on_variant(index, count, label):
        if index == 2:
            raise KeyboardInterrupt

    with pytest.raises(Interrupted):
        run_spec(loaded, on_variant=on_variant)
    doc = json.loads((tmp_path / "result.json").read_text())
    assert doc["status"] == "interrupted" and "2 of 3 runs" in doc["stop_reason"]
    assert len(doc["runs"]) == 2
    # a CI step reading the file gets no number from an unfinished grid; each finished run keeps its own
    assert doc["suggested_lr"] is None and all(v is None for v in doc["suggestions"].values())
    assert all(run["status"] != "interrupted" and run["suggested_lr"] is not None for run in doc["runs"])


def test_asking_for_a_schedule_rule_by_name_reports_that_schedule(tmp_path):
    result = CliRunner().invoke(app, ["run", TINY, "--set", "suggest.method=onecycle", "--set", "suggest.schedule=constant",
                                      "--set", "sweep.num_iter=20", "--out", str(tmp_path), "--json"])
    doc = json.loads(result.stdout)
    assert doc["method"] == doc["schedule"] == "onecycle"
    assert doc["suggested_lr"] == doc["schedules"]["onecycle"]["suggested_lr"]


def test_repeats_without_shuffling_are_refused_at_their_line(cli_write_spec):
    spec = cli_write_spec("""
        model: {name: resnet18}
        data:
          shuffle: false
        sweep:
          repeats: 3
        """)
    result = CliRunner().invoke(app, ["validate", str(spec)])
    assert result.exit_code == 2
    assert f"{spec}:5 sweep.repeats: 3 repeats differ only in data order" in result.stderr
    assert "set data.shuffle: true" in result.stderr


def test_an_interrupted_repeat_leaves_the_combined_result_without_an_answer():
    full = [fake(0, -3.0), fake(1, -2.9)]
    seed, cut = fake(2, -3.0, status="interrupted")
    cut.lrs, cut.losses, cut.smoothed = cut.lrs[:30], cut.losses[:30], cut.smoothed[:30]  # stopped before the fall
    combined = combine([*full, (seed, cut)], "auto", "onecycle")
    assert combine(full, "auto", "onecycle").suggested_lr is not None
    assert combined.status == "interrupted" and combined.suggested_lr is None
    assert combined.confidence.flags == ("interrupted",) and combined.confidence.repeats == 2  # the finished ones
    assert len(combined.repeats) == 3  # still listed


def test_a_signal_while_the_outputs_are_written_waits_until_all_three_exist(tmp_path, monkeypatch):
    import os
    import signal

    from lrfind_cli import runner

    real = runner.save_plot

    def slow_plot(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C after result.json and history.csv, before the PNG
        for _ in range(1000):
            pass
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "save_plot", slow_plot)
    loaded = load_spec(TINY, ["sweep.num_iter=10", f"output.dir={tmp_path}"])
    with pytest.raises(KeyboardInterrupt):
        run_spec(loaded)
    assert {p.name for p in tmp_path.iterdir()} == {"result.json", "history.csv", "lr_find.png"}
