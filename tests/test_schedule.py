"""lr_schedule: the learning rate of each step, exp and linear, both ends exact."""

import numpy as np
import pytest

from lrfind_cli.finder import lr_schedule


def test_exp_schedule_is_geometric_between_the_ends():
    lrs = lr_schedule(1e-5, 0.1, 5, "exp")
    np.testing.assert_allclose(lrs, [1e-5, 1e-4, 1e-3, 1e-2, 0.1], rtol=1e-12)


def test_exp_is_the_default_mode():
    np.testing.assert_array_equal(lr_schedule(1e-5, 0.1, 5), lr_schedule(1e-5, 0.1, 5, "exp"))


def test_linear_schedule_has_equal_steps():
    lrs = lr_schedule(1e-5, 5e-5, 5, "linear")
    np.testing.assert_allclose(lrs, [1e-5, 2e-5, 3e-5, 4e-5, 5e-5], rtol=1e-12)


@pytest.mark.parametrize("mode", ["exp", "linear"])
@pytest.mark.parametrize(("start", "end", "n"), [(1e-7, 10.0, 100), (1e-5, 0.1, 5), (3e-4, 7e-4, 2), (1e-8, 1.0, 37),
                                              (0.0051, 0.1, 50), (5.5e-06, 6.0, 20), (0.032, 0.3, 9)])  # ends a plain formula misses
def test_both_endpoints_are_exact(mode, start, end, n):
    lrs = lr_schedule(start, end, n, mode)
    assert len(lrs) == n
    assert lrs[0] == start
    assert lrs[-1] == end


@pytest.mark.parametrize("mode", ["exp", "linear"])
def test_schedule_is_strictly_increasing(mode):
    lrs = lr_schedule(1e-7, 10.0, 500, mode)
    assert np.all(np.diff(lrs) > 0)


def test_exp_schedule_has_a_constant_ratio():
    lrs = lr_schedule(1e-6, 1.0, 61, "exp")
    ratios = lrs[1:] / lrs[:-1]
    np.testing.assert_allclose(ratios, ratios[0], rtol=1e-9)


@pytest.mark.parametrize(
    ("start", "end", "n", "mode"),
    [
        (1e-5, 0.1, 1, "exp"),  # a single step cannot reach both ends
        (1e-5, 0.1, 0, "exp"),
        (0.1, 1e-5, 5, "exp"),  # decreasing
        (1e-3, 1e-3, 5, "exp"),  # empty range
        (0.0, 0.1, 5, "exp"),  # zero start (log of zero)
        (-1e-3, 0.1, 5, "linear"),  # negative lr
        (1e-5, 0.1, 5, "cosine"),  # unknown mode
    ],
)
def test_invalid_arguments_raise_value_error(start, end, n, mode):
    with pytest.raises(ValueError):
        lr_schedule(start, end, n, mode)
