"""Suggestion methods on hand-made curves with known answers, and `choose`."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lrfind_cli.suggest import METHODS, choose, minimum, steepest, suggest_all, valley

INFLECTION_LR = 1e-3


def descent(lrs):
    """A clean sigmoid-shaped fall in log-lr from 2.0 to 0.5, steepest at INFLECTION_LR."""
    u = np.log10(lrs)
    return 2.0 - 1.5 / (1.0 + np.exp(-(u - math.log10(INFLECTION_LR)) / 0.4))


def descent_then_blow_up(n=100):
    lrs = np.logspace(-6, 0, n)
    u = np.log10(lrs)
    losses = descent(lrs) + np.where(u > -1.2, np.expm1(4 * (u + 1.2)), 0.0)
    return lrs, losses


def assert_in_range(value, lrs):
    assert value is not None and math.isfinite(value)
    assert min(lrs) / 10 <= value <= max(lrs)


# ---------------------------------------------------------------- a clean curve


def test_steepest_is_near_the_inflection_point():
    lrs, losses = descent_then_blow_up()
    lr = steepest(lrs, losses)
    assert lr is not None
    assert INFLECTION_LR / 2 <= lr <= INFLECTION_LR * 2


def test_minimum_is_a_tenth_of_the_lr_at_the_lowest_loss():
    lrs, losses = descent_then_blow_up()
    assert minimum(lrs, losses) == pytest.approx(lrs[int(np.argmin(losses))] / 10, rel=1e-12)


def test_valley_lies_inside_the_descending_region():
    lrs, losses = descent_then_blow_up()
    lr = valley(lrs, losses)
    lowest = int(np.argmin(losses))
    assert lr is not None
    assert lrs[0] < lr < lrs[lowest]
    i = int(np.argmin(np.abs(lrs - lr)))
    assert losses[i] < losses[0]  # the loss is already falling there
    assert np.all(np.diff(losses[: i + 1]) < 0)


def test_no_suggestion_comes_from_the_blow_up():
    lrs, losses = descent_then_blow_up()
    lowest_lr = lrs[int(np.argmin(losses))]
    for name, lr in suggest_all(lrs, losses).items():
        assert lr is not None, name
        assert lr <= lowest_lr, name


def test_suggest_all_returns_every_method():
    lrs, losses = descent_then_blow_up()
    assert set(suggest_all(lrs, losses)) == set(METHODS) == {"steepest", "valley", "minimum"}


def test_plain_lists_are_accepted():
    lrs, losses = descent_then_blow_up()
    assert suggest_all(list(lrs), list(losses)) == suggest_all(lrs, losses)


# ---------------------------------------------------------------- curves with no answer


def test_flat_curve_gives_no_suggestion():
    lrs = np.logspace(-6, 0, 50)
    assert suggest_all(lrs, np.full(50, 1.3)) == {"steepest": None, "valley": None, "minimum": None}


def test_curve_that_barely_moves_gives_no_suggestion():
    lrs = np.logspace(-6, 0, 50)
    losses = 1.0 - 0.004 * np.linspace(0, 1, 50)  # a 0.4% dip: noise, not learning
    assert suggest_all(lrs, losses) == {"steepest": None, "valley": None, "minimum": None}


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4])
def test_too_few_points_give_no_suggestion(n):
    lrs = np.logspace(-5, -1, 4)[:n]
    losses = [2.0, 1.5, 1.0, 0.5][:n]
    assert suggest_all(lrs, losses) == {"steepest": None, "valley": None, "minimum": None}


def test_curve_that_never_fell_gives_no_suggestion():
    lrs = np.logspace(-6, 0, 60)
    losses = 1.0 + np.linspace(0, 3, 60) ** 2  # minimum at the first point
    assert suggest_all(lrs, losses) == {"steepest": None, "valley": None, "minimum": None}
    assert choose("auto", suggest_all(lrs, losses)) == ("auto", None)


# ---------------------------------------------------------------- non-finite values


def test_nan_early_leaves_too_short_a_prefix():
    lrs, losses = descent_then_blow_up()
    losses = losses.copy()
    losses[3] = np.nan
    assert suggest_all(lrs, losses) == {"steepest": None, "valley": None, "minimum": None}


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_loss_cuts_the_curve_there(bad):
    lrs, losses = descent_then_blow_up()
    cut = 85
    broken = losses.copy()
    broken[cut] = bad
    broken[cut + 1 :] = 0.0  # whatever follows a non-finite loss must be ignored, even a new "minimum"
    assert suggest_all(lrs, broken) == suggest_all(lrs[:cut], losses[:cut])
    for lr in suggest_all(lrs, broken).values():
        assert lr is not None and lr <= lrs[cut - 1]


# ---------------------------------------------------------------- shapes


def test_negative_losses_work_like_positive_ones():
    lrs, losses = descent_then_blow_up()
    shifted = suggest_all(lrs, losses - 10.0)  # e.g. a negative log-likelihood
    plain = suggest_all(lrs, losses)
    assert all(v is not None for v in shifted.values())
    assert shifted["minimum"] == pytest.approx(plain["minimum"], rel=1e-12)
    assert shifted["valley"] == pytest.approx(plain["valley"], rel=1e-12)
    # the slope is the same; rounding may tip a near-tie at the inflection to the neighbouring point
    step = lrs[1] / lrs[0]
    assert plain["steepest"] / step * 0.999 <= shifted["steepest"] <= plain["steepest"] * step * 1.001


def test_losses_crossing_zero_work():
    lrs = np.logspace(-6, 0, 80)
    losses = descent(lrs) - 1.0  # from +1 to -0.5
    for lr in suggest_all(lrs, losses).values():
        assert_in_range(lr, lrs)


def test_still_falling_at_the_end_gives_finite_answers():
    lrs = np.logspace(-6, -1.5, 70)
    losses = descent(lrs)  # minimum at the last point
    assert int(np.argmin(losses)) == len(losses) - 1
    found = suggest_all(lrs, losses)
    for lr in found.values():
        assert_in_range(lr, lrs)
    assert found["minimum"] == pytest.approx(lrs[-1] / 10, rel=1e-12)
    assert INFLECTION_LR / 2 <= found["steepest"] <= INFLECTION_LR * 2


def test_noisy_curve_gives_finite_answers_inside_the_range():
    lrs, losses = descent_then_blow_up()
    noisy = losses + 0.05 * np.random.default_rng(0).standard_normal(len(losses))
    found = suggest_all(lrs, noisy)
    for lr in found.values():
        assert_in_range(lr, lrs)
    assert found["steepest"] <= lrs[int(np.argmin(noisy))]


def test_linear_mode_curve_gives_answers_inside_the_range():
    lrs = np.linspace(1e-4, 1.0, 60)
    losses = 2.0 - 1.5 / (1.0 + np.exp(-(lrs - 0.3) / 0.05)) + np.where(lrs > 0.8, 20 * (lrs - 0.8) ** 2, 0.0)
    found = suggest_all(lrs, losses)
    for lr in found.values():
        assert_in_range(lr, lrs)
    assert found["steepest"] == pytest.approx(0.3, abs=0.05)


def test_valley_never_picks_the_rising_tail():
    # one sharp drop, then a steady rise: the only decreasing run is the first two points
    lrs = np.logspace(-6, -5, 6)
    losses = [1.0, 0.5, 0.6, 0.7, 0.8, 0.9]
    lr = valley(lrs, losses)
    assert lr is None or lr <= lrs[1]


curves = st.lists(st.floats(min_value=-5.0, max_value=5.0, allow_nan=False), min_size=0, max_size=40)


@settings(max_examples=150, deadline=None)
@given(curves)
def test_any_curve_gives_none_or_an_lr_inside_the_range(losses):
    lrs = np.logspace(-6, 0, len(losses))
    found = suggest_all(lrs, losses)
    for name, lr in found.items():
        if lr is not None:
            assert math.isfinite(lr), name
            assert lrs[0] / 10 <= lr <= lrs[-1], name
    if found["steepest"] is not None:
        assert found["steepest"] <= lrs[int(np.argmin(losses))]


# ---------------------------------------------------------------- choose


def test_auto_takes_the_median_of_three():
    assert choose("auto", {"steepest": 1e-3, "valley": 2e-3, "minimum": 5e-4}) == ("steepest", 1e-3)
    assert choose("auto", {"steepest": 9e-3, "valley": 2e-3, "minimum": 5e-4}) == ("valley", 2e-3)


def test_auto_takes_the_lower_of_two():
    assert choose("auto", {"steepest": None, "valley": 2e-3, "minimum": 5e-4}) == ("minimum", 5e-4)
    assert choose("auto", {"steepest": 3e-3, "valley": 2e-3, "minimum": None}) == ("valley", 2e-3)


def test_auto_with_one_answer_takes_it():
    assert choose("auto", {"steepest": None, "valley": None, "minimum": 4e-4}) == ("minimum", 4e-4)


def test_auto_with_no_answer_is_none():
    assert choose("auto", {"steepest": None, "valley": None, "minimum": None}) == ("auto", None)


def test_a_named_method_is_returned_even_when_none():
    suggestions = {"steepest": 1e-3, "valley": None, "minimum": 5e-4}
    assert choose("valley", suggestions) == ("valley", None)
    assert choose("steepest", suggestions) == ("steepest", 1e-3)


def test_unknown_method_raises_value_error():
    with pytest.raises(ValueError, match="unknown suggestion method"):
        choose("fastest", {"steepest": 1e-3, "valley": None, "minimum": 5e-4})
