"""The classic suggestion methods (steepest, valley, minimum/10): pure functions from (lrs, smoothed losses) to an lr or None."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .curve import MIN_POINTS, MIN_RELATIVE_DROP, noise_level


def _usable(lrs: Sequence[float], losses: Sequence[float], min_drop: float | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """The finite prefix of the curve, or None when it is too short or never fell.

    "Fell" means the lowest point is more than `min_drop` below the first (the raw losses'
    noise level, when known; at least 1e-5 of the curve's scale), else more than 1% of the
    curve's scale below it.
    """
    x = np.asarray(lrs, dtype=float)
    y = np.asarray(losses, dtype=float)
    finite = np.isfinite(y) & np.isfinite(x) & (x > 0)
    cut = len(y) if finite.all() else int(np.argmin(finite))
    x, y = x[:cut], y[:cut]
    if len(y) < MIN_POINTS:
        return None
    # The fall is measured from the highest point before the minimum, not from the first point,
    # which is one batch's loss and may happen to be low.
    drop = y[: int(np.argmin(y)) + 1].max() - y.min()
    scale = max(abs(y[0]), abs(y.min()), 1e-12)
    # float32 losses carry ~1e-7 relative rounding: a fall below 1e-5 of the scale is no fall.
    min_drop = MIN_RELATIVE_DROP * scale if min_drop is None else max(min_drop, 1e-5 * scale)
    if drop <= min_drop:
        return None
    return x, y


def steepest(lrs: Sequence[float], losses: Sequence[float], min_drop: float | None = None) -> float | None:
    """The lr of steepest descent of the loss with respect to log(lr), before the minimum.

    The derivative is taken in log-lr space (not by index and not in linear lr, whose tiny
    spacing at small lrs amplifies noise; see Lightning issue #21141). The first tenth of the
    points is skipped and the search ends at the minimum, so the rise after divergence never wins.
    """
    curve = _usable(lrs, losses, min_drop)
    if curve is None:
        return None
    x, y = curve
    grad = np.gradient(y, np.log(x))
    start = max(1, len(y) // 10)
    end = int(np.argmin(y)) + 1
    if end - start < 2:
        start = 0
    window = grad[start:end]
    if len(window) == 0:
        return None
    i = start + int(np.argmin(window))
    return float(x[i]) if grad[i] < 0 else None


def valley(lrs: Sequence[float], losses: Sequence[float], min_drop: float | None = None) -> float | None:
    """fastai's valley: about halfway into the longest strictly decreasing run of the curve.

    Follows fastai (`valley` in fastai/callback/schedule.py, from ESRI): the longest strictly
    decreasing subsequence (not necessarily contiguous) ending at each point; its end is the point
    with the longest one, its start that end minus the length, and the answer lies a third plus a
    sixth of the way in. As in fastai, the first tenth and the last five points are left out when
    the curve is long enough to spare them.
    """
    curve = _usable(lrs, losses, min_drop)
    if curve is None:
        return None
    x, y = curve
    if len(y) >= 20:
        x, y = x[len(x) // 10 : -5], y[len(y) // 10 : -5]
    n = len(y)
    length = np.ones(n, dtype=int)
    for i in range(1, n):
        earlier = y[:i] > y[i]
        if earlier.any():
            length[i] = length[:i][earlier].max() + 1
    end = int(np.argmax(length))
    start = end - int(length[end])
    if end - start < 2:
        return None
    sections = (end - start) / 3
    # start is -1 when the run begins at index 0; never let that wrap around to the last point
    i = max(start + int(sections) + int(sections / 2), 0)
    return float(x[i])


def minimum(lrs: Sequence[float], losses: Sequence[float], min_drop: float | None = None) -> float | None:
    """One tenth of the lr at the lowest loss (the rule of thumb from fastai)."""
    curve = _usable(lrs, losses, min_drop)
    if curve is None:
        return None
    x, y = curve
    return float(x[int(np.argmin(y))] / 10.0)


METHODS: dict[str, Callable[..., float | None]] = {
    "steepest": steepest,
    "valley": valley,
    "minimum": minimum,
}


def suggest_all(lrs: Sequence[float], losses: Sequence[float], raw: Sequence[float] | None = None) -> dict[str, float | None]:
    """Every method's suggestion for one (smoothed) curve.

    With the raw losses, a curve counts as falling only when it falls by more than their noise
    level, so batch noise at learning rates too small to learn anything yields no suggestion.
    """
    min_drop = noise_level(raw) if raw is not None else None
    return {name: fn(lrs, losses, min_drop) for name, fn in METHODS.items()}


def choose(method: str, suggestions: dict[str, float | None]) -> tuple[str, float | None]:
    """The method that provides `suggested_lr`, and its value.

    `auto` takes the median of the methods that gave an answer (of two, the lower, as the safer
    choice), so one method misled by an odd curve cannot decide alone.
    """
    if method != "auto":
        if method not in suggestions:
            raise ValueError(f"unknown suggestion method {method!r}; choose from auto, {', '.join(METHODS)}")
        return method, suggestions[method]
    found = sorted((lr, name) for name, lr in suggestions.items() if lr is not None)
    if not found:
        return "auto", None
    lr, name = found[(len(found) - 1) // 2]
    return name, lr
