"""The numerics of a range-test curve: its finite prefix, batch noise, zero-lag smoothing, windows, and level changes against noise."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MIN_POINTS = 5  # the classic methods need this many finite points
# The schedule-aware rule measures noise over windows of n/25 points and a head of n/10: below 20
# points a step spans so much of the range that its answer can be decades off (shared/cases/06: 8
# and 12 steps gave answers 2-3 decades below the 100-step one).
RULE_MIN_POINTS = 20
# Without raw losses to measure the noise, the curve must fall by this fraction of its scale.
MIN_RELATIVE_DROP = 0.01
# A fall (or rise) counts when it exceeds FALL_MARGIN standard errors on top of the largest of the
# curve's windows that pure noise would produce (see `level_change`).
FALL_MARGIN = 3.0
TRIM_KEEP = 0.8  # noise_level keeps the lowest 80% of |second differences|
TRIMMED_ABS_MEAN = 0.5586  # E[|Z| ; |Z| < q] / 0.8 for Z ~ N(0, 1), q its 80th percentile in absolute value
# median of n draws has a standard error of sqrt(pi/2) * sigma / sqrt(n) for Gaussian noise
MEDIAN_SE = math.sqrt(math.pi / 2)


def finite_prefix(lrs: Sequence[float], losses: Sequence[float] | None) -> tuple[np.ndarray, np.ndarray]:
    """The prefix of (lrs, losses) before the first non-finite loss or non-positive lr."""
    x = np.asarray(lrs, dtype=float)
    y = np.asarray(losses, dtype=float) if losses is not None else np.full(len(x), np.nan)
    n = min(len(x), len(y))
    x, y = x[:n], y[:n]
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0)
    cut = n if ok.all() else int(np.argmin(ok))
    return x[:cut], y[:cut]


def noise_level(raw: Sequence[float]) -> float:
    """The batch-to-batch noise of raw losses: a robust standard deviation of one step.

    From second differences, l[i+1] - 2 l[i] + l[i-1], which cancel any locally linear trend (the
    fall of the loss itself) and, for independent batch noise of standard deviation s, are normal
    with standard deviation sqrt(6) s. Their absolute values are averaged over the lowest 80%
    (the top fifth, where divergence and outlier batches sit, is dropped); for a normal variable
    that trimmed mean is 0.5586 times its standard deviation (sqrt(2/pi) (1 - exp(-q^2/2)) / 0.8 with
    q = 1.2816, the 80th percentile of |N(0, 1)|). A trimmed mean varies less from sweep to sweep
    than a median, so a short curve's noise is not underestimated by chance as often.
    """
    y = np.asarray(raw, dtype=float)
    finite = np.isfinite(y)
    y = y[: len(y) if finite.all() else int(np.argmin(finite))]
    if len(y) < 3:
        return 0.0
    spread = np.sort(np.abs(np.diff(y, 2)))
    kept = spread[: max(1, int(np.ceil(TRIM_KEEP * len(spread))))]
    return float(kept.mean() / TRIMMED_ABS_MEAN / np.sqrt(6.0))


def zero_lag(lrs: Sequence[float], losses: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """A centred, robust re-smoothing of the raw losses over their finite prefix: (lrs, smoothed).

    A running median (half-width n/50, at least 1 point) removes outlier batches, then a local
    linear fit with triangular weights (half-width n/25, at least 2 points) in log(lr) smooths what
    is left. Both windows are centred, so unlike an EMA the result does not trail the raw curve,
    and the local linear fit keeps the ends unbiased. Windows are in points, so they span the same
    fraction of any sweep.
    """
    x, y = finite_prefix(lrs, losses)
    n = len(y)
    if n < 3:
        return x, y.copy()
    u = np.log(x)
    k, h = max(1, n // 50), window_half_width(n)
    return x, _local_linear(u, _running_median(y, k), h)


def window_half_width(n: int) -> int:
    """Half-width, in points, of the zero-lag fit's window for a curve of n points."""
    return max(2, n // 25)


MEDIAN_CHUNK = 2_000_000  # values per np.median call in _running_median (~16 MB): memory stays linear in n


def _running_median(y: np.ndarray, k: int) -> np.ndarray:
    """Median over i-r..i+r with r = min(k, i, n-1-i): symmetric windows that shrink at the ends."""
    n = len(y)
    out = np.empty(n)
    if n > 2 * k:
        windows = np.lib.stride_tricks.sliding_window_view(y, 2 * k + 1)
        rows = max(1, MEDIAN_CHUNK // (2 * k + 1))  # np.median copies its input: bound that copy
        for start in range(0, len(windows), rows):
            end = min(start + rows, len(windows))
            out[k + start : k + end] = np.median(windows[start:end], axis=1)
    for i in (*range(min(k, n)), *range(max(n - k, k), n)):
        r = min(k, i, n - 1 - i)
        out[i] = np.median(y[i - r : i + r + 1])
    return out


def _local_linear(u: np.ndarray, y: np.ndarray, h: int) -> np.ndarray:
    """A weighted linear fit of y against u around every point, weights 1 - |j - i| / (h + 1) within h points.

    The weighted sums come from convolutions with the triangular kernel; near the ends the kernel
    simply runs out of points, as a clipped window would.
    """
    kernel = 1.0 - np.abs(np.arange(-h, h + 1)) / (h + 1)

    def wsum(values: np.ndarray) -> np.ndarray:
        return np.convolve(values, kernel)[h : h + len(values)]  # centred, for any length

    s0, s1, s2 = wsum(np.ones_like(u)), wsum(u), wsum(u * u)
    t0, t1 = wsum(y), wsum(u * y)
    mu, my = s1 / s0, t0 / s0
    var = s2 - s1 * mu
    cov = t1 - s1 * my
    safe = var > 1e-12 * np.maximum(s2, 1e-300)
    slope = np.where(safe, cov / np.where(safe, var, 1.0), 0.0)
    return my + slope * (u - mu)


@dataclass(frozen=True)
class LevelChange:
    """How far a curve's level moved from its start, against what batch noise alone could do.

    `change` is in loss units (positive: the level went down for a fall, up for a rise), `needed`
    the smallest change that counts; `head` the number of leading points the start level is read on.
    """

    change: float
    needed: float
    head: int

    @property
    def significant(self) -> bool:
        return self.change > self.needed


def head_size(n: int) -> int:
    """How many leading points the starting level is read on: a tenth of the curve, at least 5."""
    return max(5, n // 10)


Window = tuple[int, int]  # [lo, hi) indices into a curve


def around(i: int, n: int) -> Window:
    """The zero-lag fit's window around point i of a curve of n points."""
    h = window_half_width(n)
    return max(0, i - h), min(n, i + h + 1)


def head_window(n: int) -> Window:
    return 0, min(head_size(n), n)


def valley(z: np.ndarray, m: int) -> Window:
    """The points around the minimum m of the zero-lag curve z that lie below the middle of its fall.

    At least the zero-lag window around m: on a wide valley more points measure its level, so a
    real fall is told from noise with fewer steps; on noise the valley stays narrow.
    """
    n = len(z)
    first = float(np.median(z[: max(3, n // 20)]))
    middle = z[m] + 0.5 * (first - z[m])
    lo, hi = m, m
    while lo > 0 and z[lo - 1] <= middle:
        lo -= 1
    while hi < n - 1 and z[hi + 1] <= middle:
        hi += 1
    wlo, whi = around(m, n)
    return min(lo, wlo), max(hi + 1, whi)


def level_change(raw: np.ndarray, window: Window, direction: int, reference: Window | None = None,
                 sigma: float | None = None) -> LevelChange:
    """The change of the raw losses' level between a reference window and `window`, against noise.

    Levels are medians of the raw losses in each window (a median, so one or two unusually high
    batches cannot fake a change); the reference is the curve's head (its first `head_size(n)`
    points) unless given. The difference is compared with its standard error,
    sqrt(pi/2) * sigma * sqrt(1/n_reference + 1/n_window), sigma being the batch noise
    (`noise_level`, or `sigma` when the caller has it). The change must exceed FALL_MARGIN standard
    errors plus sqrt(2 ln m), the expected largest of m standard normals: the window was picked as
    the lowest (or highest) of the curve's m = n / (zero-lag window) disjoint windows, and pure
    noise makes the extreme one stand out by about that much. On flat Gaussian and heavy-tailed
    (Student t, 3 dof) noise, with or without a first batch ten noise levels high, this let through
    none of the sweeps of 20 to 1000 points sampled in tests/test_suggestion_cases.py.
    A change below 1e-5 of the loss scale never counts (float32 rounding).
    `direction` is +1 for a fall (reference minus window) and -1 for a rise.
    """
    n = len(raw)
    ref = raw[slice(*(reference or head_window(n)))]
    there = raw[slice(*window)]
    ref_level, level = float(np.median(ref)), float(np.median(there))
    sigma = noise_level(raw) if sigma is None else sigma
    standard_error = MEDIAN_SE * sigma * math.sqrt(1.0 / len(ref) + 1.0 / len(there))
    selection = math.sqrt(2.0 * math.log(max(1.0, n / (2 * window_half_width(n) + 1))))
    scale = max(abs(ref_level), abs(level), 1e-12)
    needed = max((FALL_MARGIN + selection) * standard_error, 1e-5 * scale)
    return LevelChange(change=direction * (ref_level - level), needed=needed, head=len(ref))
