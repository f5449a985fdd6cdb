"""read_curve, recommend, recommend_repeats and the confidence flags on hand-made curves with known answers."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lrfind_cli.suggest import (
    BASE_FACTOR,
    CONSTANT_FACTOR,
    FINETUNE_DECADES,
    ONECYCLE_DECADES,
    Suggestion,
    horizon,
    mean_curve,
    read_curve,
    recommend,
    recommend_repeats,
    summarize,
    zero_lag,
)

# without a plan the rule answers for the assumed length; these curves come with no steps per pass (a stream)
ASSUMED = horizon.length_decades(horizon.DEFAULT_STEPS, None)
INFLECTION = -3.0  # log10 lr of the steepest fall
WIDTH = 0.4


def clean(lrs, inflection=INFLECTION):
    """A sigmoid fall in log-lr from 2.0 to 0.5 (steepest at 10**inflection), then a blow-up past 10**-1.2."""
    u = np.log10(lrs)
    fall = 2.0 - 1.5 / (1.0 + np.exp(-(u - inflection) / WIDTH))
    return fall + np.where(u > inflection + 1.8, np.expm1(4 * (u - inflection - 1.8)), 0.0)


def ema(raw, beta=0.98):
    """The bias-corrected EMA the finder records as `smoothed`."""
    out, avg = [], 0.0
    for t, v in enumerate(raw, 1):
        avg = beta * avg + (1 - beta) * v
        out.append(avg / (1 - beta**t))
    return np.array(out)


def confidence(curves, **kwargs):
    """The Confidence a result reports for these curves (what `summarize` computes)."""
    return summarize(curves, **kwargs).confidence


def curve(n=100, inflection=INFLECTION, noise=0.0, seed=0):
    lrs = np.logspace(-6, 0, n)
    raw = clean(lrs, inflection) + noise * np.random.default_rng(seed).standard_normal(n)
    return lrs, ema(raw), raw


# ---------------------------------------------------------------- a clean curve


def test_landmarks_of_a_clean_curve_are_in_order():
    lrs, smoothed, raw = curve()
    reading = read_curve(lrs, smoothed, raw)
    marks = reading.landmarks
    assert reading.fell and marks is not None
    assert marks.start < marks.steepest <= marks.knee < reading.m < reading.onset
    assert 10**INFLECTION / 1.5 <= reading.steepest_lr <= 10**INFLECTION * 1.5
    # the knee: 75% of the fall done, at u = inflection + WIDTH * ln 3
    assert math.log10(reading.lr(marks.knee)) == pytest.approx(INFLECTION + WIDTH * math.log(3), abs=0.1)


def test_onecycle_lr_is_its_distance_below_the_onset_of_divergence_and_above_the_steepest_fall():
    lrs, smoothed, raw = curve()
    found = recommend(lrs, smoothed, raw, schedule="onecycle")
    reading = read_curve(lrs, smoothed, raw)
    assert found.lr == pytest.approx(reading.onset_lr / 10 ** (ONECYCLE_DECADES + ASSUMED), rel=1e-9)
    assert reading.steepest_lr <= found.lr < reading.minimum_lr < reading.onset_lr
    # the onset is where the blow-up (past 10**-1.2) lifts the loss above its valley by more than noise
    assert -1.3 <= math.log10(reading.onset_lr) <= -0.9
    assert found.method == "onecycle"


def test_constant_lr_is_lower_than_onecycle_by_the_constant_factor():
    lrs, smoothed, raw = curve()
    one = recommend(lrs, smoothed, raw, schedule="onecycle").lr
    const = recommend(lrs, smoothed, raw, schedule="constant").lr
    assert const == pytest.approx(one / CONSTANT_FACTOR, rel=1e-9)


@pytest.mark.parametrize("schedule", ["onecycle", "constant"])
def test_lr_range_contains_the_lr(schedule):
    lrs, smoothed, raw = curve()
    found = recommend(lrs, smoothed, raw, schedule=schedule)
    if schedule != "onecycle":
        assert found.lr_range is None  # base_lr .. max_lr belongs to a cyclic schedule only
        return
    low, high = found.lr_range
    assert lrs[0] <= low <= found.lr <= high <= lrs[-1]


def test_default_schedule_is_onecycle():
    lrs, smoothed, raw = curve()
    assert recommend(lrs, smoothed, raw) == recommend(lrs, smoothed, raw, schedule="onecycle")


def test_unknown_schedule_raises():
    lrs, smoothed, raw = curve()
    with pytest.raises(ValueError, match="unknown schedule"):
        recommend(lrs, smoothed, raw, schedule="cyclic")


def test_the_raw_losses_undo_the_ema_lag():
    # the EMA (beta 0.98) trails the raw curve by decades; with the raw losses the answer matches the clean curve's
    lrs, smoothed, raw = curve()
    from_raw = recommend(lrs, smoothed, raw).lr
    from_ema = recommend(lrs, smoothed, None).lr
    truth = recommend(lrs, raw, None).lr  # the clean curve itself, used as the smoothed one
    assert from_raw == pytest.approx(truth, rel=0.15)
    assert from_ema > 2 * truth


def test_zero_lag_smoothing_keeps_a_straight_line_and_cuts_at_nan():
    lrs = np.logspace(-5, -1, 40)
    line = 3.0 - 0.5 * np.log10(lrs)
    x, z = zero_lag(lrs, line)
    np.testing.assert_allclose(z, line, atol=1e-9)
    broken = line.copy()
    broken[30] = np.nan
    x, z = zero_lag(lrs, broken)
    assert len(x) == len(z) == 30


# ---------------------------------------------------------------- noise and repeats


def test_noisy_curve_still_lands_near_the_clean_answer():
    lrs, smoothed, raw = curve(noise=0.05, seed=1)
    truth = recommend(*curve()).lr
    lr = recommend(lrs, smoothed, raw).lr
    assert abs(math.log10(lr) - math.log10(truth)) < 0.3


def test_repeats_read_the_mean_curve_and_measure_the_spread_of_single_answers():
    runs = [curve(inflection=INFLECTION + d, noise=0.03, seed=d_i) for d_i, d in enumerate((-0.2, 0.0, 0.2))]
    combined = recommend_repeats(runs)
    singles = [recommend(*run).lr for run in runs]
    assert list(combined.runs) == singles
    averaged = mean_curve(runs)
    np.testing.assert_allclose(averaged[2], np.mean([run[2] for run in runs], axis=0))
    assert combined.lr == pytest.approx(recommend(*averaged).lr, rel=1e-9)
    assert abs(math.log10(combined.lr) - math.log10(sorted(singles)[1])) < 0.15  # near the middle answer
    assert combined.spread_decades == pytest.approx(float(np.std(np.log10(singles), ddof=1)))
    low, high = combined.lr_range
    assert low <= combined.lr <= high


def test_averaging_repeats_lowers_the_noise_the_landmarks_are_read_on():
    truth = recommend(*curve()).lr
    errors_single, errors_mean = [], []
    for trial in range(6):
        runs = [curve(noise=0.5, seed=10 * trial + k) for k in range(3)]  # noise that moves the onset
        errors_single.append(abs(math.log10(recommend(*runs[0]).lr) - math.log10(truth)))
        errors_mean.append(abs(math.log10(recommend_repeats(runs).lr) - math.log10(truth)))
    assert np.mean(errors_mean) < np.mean(errors_single)


def test_mean_curve_stops_where_the_shortest_run_stopped_and_refuses_other_schedules():
    a, b = curve(), curve(seed=1)
    short = tuple(x[:60] for x in b)
    lrs, smoothed, raw = mean_curve([a, short])
    assert len(lrs) == len(smoothed) == len(raw) == 60
    other = (np.logspace(-5, 0, 100), a[1], a[2])
    assert mean_curve([a, other]) is None
    # the per-run median answers instead
    combined = recommend_repeats([a, other])
    assert combined.lr == pytest.approx(10 ** np.median(np.log10([recommend(*a).lr, recommend(*other).lr])))


def test_repeats_with_no_answer_anywhere():
    lrs = np.logspace(-6, 0, 50)
    flat = (lrs, np.full(50, 1.0), np.full(50, 1.0))
    assert recommend_repeats([flat, flat]) == Suggestion(None, None, "onecycle", runs=(None, None), spread_decades=None)


def test_repeats_with_one_answer_have_no_spread():
    lrs = np.logspace(-6, 0, 100)
    flat = (lrs, np.full(100, 1.0), np.full(100, 1.0))
    combined = recommend_repeats([curve(), flat])
    # the mean of a falling curve and a flat one falls half as far, at the same learning rates
    assert abs(math.log10(combined.lr) - math.log10(recommend(*curve()).lr)) < 0.15
    assert combined.runs[1] is None and combined.spread_decades is None


# ---------------------------------------------------------------- awkward curves


def test_flat_curve_gives_nothing_and_is_flagged():
    lrs = np.logspace(-6, 0, 50)
    losses = np.full(50, 1.3)
    assert recommend(lrs, losses, losses) == Suggestion(None, None, "onecycle")
    assert confidence([(lrs, losses, losses)]).flags == ("flat_curve",)


def test_pure_noise_is_not_a_descent():
    lrs = np.logspace(-6, 0, 100)
    raw = 1.0 + 0.05 * np.random.default_rng(3).standard_normal(100)
    assert recommend(lrs, ema(raw), raw).lr is None


def test_nan_at_step_3_leaves_too_few_points():
    lrs, smoothed, raw = curve()
    raw, smoothed = raw.copy(), smoothed.copy()
    raw[3] = smoothed[3] = np.nan
    assert recommend(lrs, smoothed, raw).lr is None
    assert confidence([(lrs, smoothed, raw)]).flags == ("too_few_points",)


def test_a_late_nan_cuts_the_curve():
    lrs, smoothed, raw = curve()
    cut = 85
    broken = raw.copy()
    broken[cut] = np.nan
    broken[cut + 1 :] = -5.0  # ignored, even though it would be a new minimum
    found = recommend(lrs, smoothed, broken)
    assert found.lr == recommend(lrs[:cut], smoothed[:cut], raw[:cut]).lr
    assert found.lr_range[1] <= lrs[cut - 1]


def test_negative_losses_give_the_same_answer():
    lrs, smoothed, raw = curve()
    plain = recommend(lrs, smoothed, raw)
    shifted = recommend(lrs, smoothed - 10.0, raw - 10.0)
    assert shifted.lr == pytest.approx(plain.lr, rel=1e-9)
    # the range's low end is the steepest point: rounding may tip a near-tie there to the neighbouring point
    step = lrs[1] / lrs[0]
    for a, b in zip(shifted.lr_range, plain.lr_range):
        assert b / step * 0.999 <= a <= b * step * 1.001


def test_minimum_at_the_last_point_gives_no_answer_read_off_the_last_lr_and_says_no_divergence():
    lrs = np.logspace(-6, -1.5, 70)
    raw = clean(lrs)
    assert int(np.argmin(raw)) == len(raw) - 1
    found = summarize([(lrs, ema(raw), raw)])
    assert read_curve(lrs, ema(raw), raw).onset is None
    assert found.suggested_lr is None and found.schedules["constant"].lr is None  # end_lr is no edge of stability
    assert all(lr is None for lr in found.suggestions.values())  # minimum/10 would be read off the last lr too
    assert found.confidence.flags == ("no_divergence",) and "raise sweep.end_lr" in found.confidence.notes[0]


def test_minimum_at_the_first_point_gives_nothing_and_says_the_sweep_began_past_the_edge():
    lrs = np.logspace(-6, 0, 60)
    raw = 1.0 + np.linspace(0, 3, 60) ** 2
    assert recommend(lrs, ema(raw), raw).lr is None
    assert confidence([(lrs, ema(raw), raw)]).flags == ("began_past_edge",)


def test_a_diverged_clean_curve_has_no_flags():
    lrs, smoothed, raw = curve()
    assert confidence([(lrs, smoothed, raw)]).to_json() == {"spread_decades": None, "flags": [], "notes": [], "repeats": 1}


def _small_fall(noise):
    lrs = np.logspace(-6, 0, 200)
    u = np.log10(lrs)
    raw = 1.0 - 0.3 / (1 + np.exp(-(u + 3) / 0.3)) + np.where(u > -1, 5 * (u + 1), 0.0)
    return lrs, raw + noise * np.random.default_rng(0).standard_normal(200)


def test_noise_large_against_the_drop_is_flagged():
    lrs, raw = _small_fall(noise=0.12)  # the fall of 0.3 passes the noise gate, but by less than 2x
    assert recommend(lrs, ema(raw), raw).lr is not None
    flags = confidence([(lrs, ema(raw), raw)]).flags
    assert "noisy" in flags


def test_a_fall_within_batch_noise_is_no_fall_and_the_answer_comes_from_the_rise():
    lrs, raw = _small_fall(noise=0.25)  # a fall of 0.3 against batch noise of 0.25: not beyond the gate
    found = recommend(lrs, ema(raw), raw)
    reading = read_curve(lrs, ema(raw), raw)
    assert reading.fell is False
    assert found.lr == pytest.approx(reading.onset_lr / 10 ** (ONECYCLE_DECADES + ASSUMED), rel=1e-9)
    assert confidence([(lrs, ema(raw), raw)]).flags == ("noisy",)  # a model nobody said is trained: its fall was hidden


@pytest.mark.parametrize("warm_start, method, flag", [(True, "finetune", "pretrained"), (None, "onecycle", "noisy"),
                                                      (False, "onecycle", "noisy")])
def test_a_flat_then_rising_curve_is_a_trained_models_only_when_the_model_is_said_to_start_trained(warm_start, method, flag):
    lrs, raw = _small_fall(noise=0.25)
    found = summarize([(lrs, ema(raw), raw)], warm_start=warm_start)

    assert found.method == method and found.confidence.flags == (flag,)
    # a trained model's rate is a decade below the onset; an untrained one's is its schedule's
    expected = recommend(lrs, ema(raw), raw, schedule=method).lr
    assert found.suggested_lr == pytest.approx(expected, rel=1e-12)
    divergence = found.schedules["onecycle"].lr_range[1] * 10 ** (ONECYCLE_DECADES + ASSUMED)
    # the fine-tuning rate is a bound, not moved by the length law
    assert expected == pytest.approx(divergence / 10 ** (FINETUNE_DECADES if method == "finetune" else ONECYCLE_DECADES + ASSUMED))
    assert (found.suggestions["finetune"] is None) == (warm_start is not True)
    assert (found.lr_range is None) == (warm_start is True)


def test_confidence_spread_over_several_curves():
    runs = [curve(inflection=INFLECTION + d) for d in (-0.3, 0.0, 0.3)]
    found = confidence(runs)
    assert found.flags == ()
    assert found.spread_decades == pytest.approx(0.3, abs=0.06)
    assert found.repeats == 3


def test_repeats_that_disagree_by_a_decade_are_flagged_unstable_with_a_note():
    runs = [curve(inflection=INFLECTION + d) for d in (-1.0, 0.0, 1.0)]
    found = confidence(runs)
    assert found.spread_decades > 0.5
    assert found.flags == ("unstable",)
    assert "sweep.repeats" in found.notes[0]


def test_smoothed_only_still_answers():
    lrs, smoothed, _ = curve()
    found = recommend(lrs, smoothed)
    assert found.lr is not None and lrs[0] <= found.lr <= lrs[-1]


def test_linear_mode_curve_answers_inside_the_range():
    lrs = np.linspace(1e-4, 1.0, 80)
    raw = 2.0 - 1.5 / (1.0 + np.exp(-(lrs - 0.3) / 0.05)) + np.where(lrs > 0.8, 20 * (lrs - 0.8) ** 2, 0.0)
    found = recommend(lrs, ema(raw), raw)
    reading = read_curve(lrs, ema(raw), raw)
    assert found.lr is not None and 0.05 <= found.lr <= 0.5
    assert found.lr < reading.minimum_lr < reading.onset_lr


curves = st.lists(st.floats(min_value=-5.0, max_value=5.0, allow_nan=False), min_size=0, max_size=40)


@settings(max_examples=150, deadline=None)
@given(curves, st.sampled_from(["onecycle", "constant"]))
def test_any_curve_gives_none_or_an_lr_inside_its_range(losses, schedule):
    lrs = np.logspace(-6, 0, len(losses))
    found = recommend(lrs, losses, losses, schedule=schedule)
    if found.lr is None:
        assert found.lr_range is None
        return
    low, high = found.lr_range
    assert lrs[0] <= low <= found.lr <= high <= lrs[-1]
    flags = confidence([(lrs, losses, losses)]).flags
    assert set(flags) <= {"no_divergence", "noisy"}


def _zero_lag_reference(lrs, losses):
    """zero_lag written plainly, point by point, as its docstring describes it."""
    x, y = np.asarray(lrs, float), np.asarray(losses, float)
    n = len(y)
    if n < 3:
        return x, y.copy()
    u = np.log(x)
    k, h = max(1, n // 50), max(2, n // 25)
    med = np.array([np.median(y[i - min(k, i, n - 1 - i) : i + min(k, i, n - 1 - i) + 1]) for i in range(n)])
    out = np.empty(n)
    for i in range(n):
        lo, hi = max(0, i - h), min(n, i + h + 1)
        w = 1.0 - np.abs(np.arange(lo, hi) - i) / (h + 1)
        uu, yy = u[lo:hi], med[lo:hi]
        mu, my = np.average(uu, weights=w), np.average(yy, weights=w)
        var = np.sum(w * (uu - mu) ** 2)
        slope = np.sum(w * (uu - mu) * (yy - my)) / var if var > 0 else 0.0
        out[i] = my + slope * (u[i] - mu)
    return x, out


@pytest.mark.parametrize("n", [3, 4, 5, 9, 26, 50, 51, 100, 333, 1000])
def test_vectorised_zero_lag_matches_the_point_by_point_definition(n):
    rng = np.random.default_rng(n)
    lrs = np.logspace(-7, 1, n)
    losses = 2.0 + rng.standard_normal(n).cumsum() * 0.1
    expected = _zero_lag_reference(lrs, losses)[1]
    np.testing.assert_allclose(zero_lag(lrs, losses)[1], expected, rtol=1e-9, atol=1e-9)


def test_lr_range_runs_from_a_rate_safe_to_hold_up_to_max_lr():
    lrs, smoothed, raw = curve()
    onecycle = recommend(lrs, smoothed, raw, "onecycle")
    low, high = onecycle.lr_range
    assert high == onecycle.lr
    assert low == min(read_curve(lrs, smoothed, raw).steepest_lr, onecycle.lr / BASE_FACTOR)
    assert high / low >= BASE_FACTOR * 0.999  # a real range, never one point


def test_a_fall_sharper_than_the_lag_still_gives_a_real_range():
    lrs = np.geomspace(1e-6, 10, 100)
    i = np.arange(100)
    raw = 3 - 2 / (1 + np.exp(-(i - 42) / 0.7)) + np.where(i > 80, 0.5 * (i - 80), 0.0)
    found = recommend(lrs, ema(raw), raw)
    low, high = found.lr_range
    assert high == found.lr and high / low >= BASE_FACTOR * 0.999


def test_a_repeat_that_stopped_early_does_not_drag_the_combined_answer_down():
    runs = [curve(noise=0.02, seed=s) for s in range(3)]
    full = recommend_repeats(runs[:2]).lr
    short = tuple(np.asarray(x)[:35] for x in runs[2])  # stopped (NaN, interrupt) well before the knee
    combined = recommend_repeats([runs[0], runs[1], short])
    assert abs(math.log10(combined.lr) - math.log10(full)) < 0.1
    assert combined.runs[2] is None or combined.runs[2] < full


def test_running_median_in_chunks_matches_one_pass(monkeypatch):
    from lrfind_cli.suggest import curve as suggest

    lrs = np.logspace(-7, 1, 700)
    losses = np.random.default_rng(3).standard_normal(700).cumsum()
    whole = zero_lag(lrs, losses)[1]
    monkeypatch.setattr(suggest, "MEDIAN_CHUNK", 100)  # many small chunks
    np.testing.assert_array_equal(zero_lag(lrs, losses)[1], whole)
