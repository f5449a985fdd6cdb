"""Reading a range-test curve: its finite prefix, batch noise, zero-lag smoothing, and whether it fell or rose beyond noise."""

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


def curve_shape(lrs: Sequence[float], smoothed: Sequence[float], raw: Sequence[float] | None = None,
                knee_fraction: float = 0.75, rise_fraction: float = 0.5) -> dict | None:
    """The landmarks of a range-test curve, or None when it is too short or never fell beyond noise.

    Read on `zero_lag(raw)` when the raw losses are given (recommended), else on `smoothed`:
      start      the loss has fallen by 10% of its total drop: learning begins
      steepest   the steepest fall in log(lr), before the minimum
      knee       the fall is `knee_fraction` done: the upper end of the productive descent
      minimum    the lowest loss
      divergence after the minimum, the loss is back up by `rise_fraction` of the drop (None if never)
    Returns a dict of those lrs and of indices into the finite prefix (`i_start`, ...), plus `drop`
    (first minus lowest loss), `noise` (raw batch noise, 0 without raw), `points` (length of the
    finite prefix), `lrs` (the finite prefix's lrs) and `fall` (the `LevelChange` it passed). With raw losses the fall must pass
    `level_change`; with the smoothed curve alone, it must exceed 1% of the loss scale.
    """
    use_raw = raw is not None and len(finite_prefix(lrs, raw)[1]) >= MIN_POINTS
    x, z = zero_lag(lrs, raw) if use_raw else finite_prefix(lrs, smoothed)
    n = len(z)
    if n < MIN_POINTS:
        return None
    m = int(np.argmin(z))
    first = float(np.median(z[: max(3, n // 20)]))
    drop = first - float(z[m])
    if use_raw:
        fall = level_change(finite_prefix(lrs, raw)[1], valley(z, m), +1)
    else:
        fall = LevelChange(change=drop, needed=MIN_RELATIVE_DROP * max(abs(first), abs(float(z[m])), 1e-12), head=0)
    if not fall.significant or m == 0 or drop <= 0:
        return None
    below = lambda level: int(np.argmax(z[: m + 1] <= level))  # noqa: E731  first point at or below `level`
    i_start = below(first - 0.1 * drop)
    i_knee = below(first - knee_fraction * drop)
    grad = np.gradient(z, np.log(x))
    i_steep = int(np.argmin(grad[i_start : m + 1])) + i_start
    rise = np.nonzero(z[m:] >= z[m] + rise_fraction * drop)[0]
    i_div = m + int(rise[0]) if len(rise) else None
    return {
        "start": float(x[i_start]), "steepest": float(x[i_steep]), "knee": float(x[i_knee]), "minimum": float(x[m]),
        "divergence": float(x[i_div]) if i_div is not None else None,
        "i_start": i_start, "i_steepest": i_steep, "i_knee": i_knee, "i_minimum": m, "i_divergence": i_div,
        "drop": drop, "noise": noise_level(raw) if raw is not None else 0.0, "points": n, "lrs": x, "fall": fall,
    }


@dataclass(frozen=True)
class Reading:
    """One curve as the rule reads it: its finite prefix `x`/`y`, the zero-lag curve `z`, its lowest
    point `m`, the batch noise `sigma`, and the window of its valley (`valley`)."""

    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    m: int
    sigma: float
    bottom: Window


def read(lrs: Sequence[float], raw: Sequence[float]) -> Reading | None:
    """The `Reading` of a curve of raw losses, or None below MIN_POINTS finite points."""
    x, y = finite_prefix(lrs, raw)
    if len(y) < MIN_POINTS:
        return None
    _, z = zero_lag(lrs, raw)
    m = int(np.argmin(z))
    return Reading(x=x, y=y, z=z, m=m, sigma=noise_level(y), bottom=valley(z, m))


def fall_of(curve: Reading) -> LevelChange:
    """How far the loss fell from its head to its valley, against noise (`level_change`)."""
    return level_change(curve.y, curve.bottom, +1, sigma=curve.sigma)


def divergence_onset(curve: Reading) -> int | None:
    """The index where the loss starts to diverge: the first point after the zero-lag minimum whose
    window lies above the valley's level by more than noise (`level_change`); None if none does.

    This is the edge of stability as the sweep sees it: from here on the learning rate is too large
    for the loss to hold its level. On a flat curve (a trained model) the valley is the flat level,
    so this is where the loss starts to rise above it.
    """
    n = len(curve.y)
    for i in range(curve.m + 1, n):
        if level_change(curve.y, around(i, n), -1, reference=curve.bottom, sigma=curve.sigma).significant:
            return i
    return None


def ended_high(curve: Reading) -> float | None:
    """The loss at the end over its best, when the curve ended well above its best; else None.

    "Well above": the level of the last points is back above where the curve started, or at more
    than twice its best (positive losses), and the rise from the lowest window to the last one
    passes `level_change`. (inf for a best at or below zero.)
    """
    y, n = curve.y, len(curve.y)
    best, start = float(curve.z[curve.m]), float(np.median(y[: head_size(n)]))
    rise = level_change(y, around(n - 1, n), -1, reference=curve.bottom, sigma=curve.sigma)
    end = float(np.median(y[max(0, n - 1 - window_half_width(n)) :]))
    high = end >= start or (best > 0 and end >= 2.0 * best)
    if not (high and rise.significant):
        return None
    return end / best if best > 0 else math.inf
