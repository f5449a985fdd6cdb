"""Suggestion methods: pure functions from (lrs, smoothed losses) arrays to a learning rate or None."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

MIN_POINTS = 5
# Without raw losses to measure the noise, the curve must fall by this fraction of its scale.
MIN_RELATIVE_DROP = 0.01


def noise_level(raw: Sequence[float]) -> float:
    """The batch-to-batch noise of raw losses: a robust standard deviation of one step.

    1.4826 * median |l[i+1] - l[i]| estimates the standard deviation of the difference of two
    independent draws; dividing by sqrt(2) gives that of one draw. The trend between two
    neighbouring steps is small next to the noise, so it barely enters the estimate.
    """
    y = np.asarray(raw, dtype=float)
    finite = np.isfinite(y)
    y = y[: len(y) if finite.all() else int(np.argmin(finite))]
    if len(y) < 3:
        return 0.0
    return float(1.4826 * np.median(np.abs(np.diff(y))) / np.sqrt(2.0))


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


# ---------------------------------------------------------------- schedule-aware recommendation
#
# The suggestions above read one feature of the EMA-smoothed curve. `recommend` reads the curve's
# shape instead, on a zero-lag re-smoothing of the raw losses (the whole curve is known once the
# sweep is over, so a centred window can be used and the EMA's lag disappears):
#
#   start      the loss has fallen by 10% of its total drop: learning begins
#   steepest   the steepest fall in log(lr), before the minimum
#   knee       the fall is 75% done: the upper end of the productive descent
#   minimum    the lowest loss
#   divergence after the minimum, the loss is back up by half the drop (None if it never is)
#
# A loss seen at step i was produced by the lrs of the last several steps (momentum and Adam's
# moments average about ten steps, and an instability needs a few steps to grow), so every feature
# sits a few steps to the right of the lr that caused it. `recommend` reads the lr LAG_STEPS steps
# before the knee: the highest lr at which the descent was still productive. That is the one-cycle
# max_lr (warm-up and annealing make the top of the cycle safe); a constant lr, which must stay
# stable for the whole run, is CONSTANT_FACTOR lower, but never below where the loss started to fall.

Curve = tuple[Sequence[float], Sequence[float], "Sequence[float] | None"]

KNEE_FRACTION = 0.75  # the knee: this fraction of the total drop is done
LAG_STEPS = 5  # how many steps a feature of the loss trails the lr that caused it
CONSTANT_FACTOR = 3.0  # constant lr = one-cycle max_lr / this (Smith: base_lr = max_lr / 3 to / 4)
RISE_FRACTION = 0.5  # divergence: the loss is back up by this fraction of the drop
SCHEDULES = ("onecycle", "constant")
SCHEDULE_NAMES = {"onecycle": "one-cycle max_lr", "constant": "constant lr"}  # what each rule's lr is, for people


def _finite(lrs: Sequence[float], losses: Sequence[float] | None) -> tuple[np.ndarray, np.ndarray]:
    """The prefix of (lrs, losses) before the first non-finite loss or non-positive lr."""
    x = np.asarray(lrs, dtype=float)
    y = np.asarray(losses, dtype=float) if losses is not None else np.full(len(x), np.nan)
    n = min(len(x), len(y))
    x, y = x[:n], y[:n]
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0)
    cut = n if ok.all() else int(np.argmin(ok))
    return x[:cut], y[:cut]


def zero_lag(lrs: Sequence[float], losses: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """A centred, robust re-smoothing of the raw losses over their finite prefix: (lrs, smoothed).

    A running median (half-width n/50, at least 1 point) removes outlier batches, then a local
    linear fit with triangular weights (half-width n/25, at least 2 points) in log(lr) smooths what
    is left. Both windows are centred, so unlike an EMA the result does not trail the raw curve,
    and the local linear fit keeps the ends unbiased. Windows are in points, so they span the same
    fraction of any sweep.
    """
    x, y = _finite(lrs, losses)
    n = len(y)
    if n < 3:
        return x, y.copy()
    u = np.log(x)
    k, h = max(1, n // 50), max(2, n // 25)
    return x, _local_linear(u, _running_median(y, k), h)


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


def curve_shape(lrs: Sequence[float], smoothed: Sequence[float], raw: Sequence[float] | None = None) -> dict | None:
    """The landmarks of a range-test curve, or None when it is too short or never fell.

    Read on `zero_lag(raw)` when the raw losses are given (recommended), else on `smoothed`.
    Returns a dict of lrs (`start`, `steepest`, `knee`, `minimum`, `divergence` or None) and of
    indices into the finite prefix (`i_start`, ...), plus `drop` (first minus lowest loss),
    `noise` (raw batch noise, 0 without raw) and `points` (length of the finite prefix).
    """
    source = raw if raw is not None and len(_finite(lrs, raw)[1]) >= MIN_POINTS else smoothed
    x, z = zero_lag(lrs, source) if source is raw else _finite(lrs, smoothed)
    n = len(z)
    if n < MIN_POINTS:
        return None
    noise = noise_level(raw) if raw is not None else 0.0
    head = max(3, n // 20)
    first = float(np.median(z[:head]))
    m = int(np.argmin(z))
    drop = first - float(z[m])
    scale = max(abs(first), abs(float(z[m])), 1e-12)
    # the fall must beat the batch noise (averaged over the smoothing window) and float rounding;
    # without raw losses, 1% of the scale, as for the other methods
    min_drop = max(2.0 * noise / np.sqrt(max(2, n // 25)), 1e-5 * scale) if raw is not None else MIN_RELATIVE_DROP * scale
    if drop <= min_drop or m == 0:
        return None
    below = lambda level: int(np.argmax(z[: m + 1] <= level))  # noqa: E731  first point at or below `level`
    i_start = below(first - 0.1 * drop)
    i_knee = below(first - KNEE_FRACTION * drop)
    grad = np.gradient(z, np.log(x))
    i_steep = int(np.argmin(grad[i_start : m + 1])) + i_start
    rise = np.nonzero(z[m:] >= z[m] + RISE_FRACTION * drop)[0]
    i_div = m + int(rise[0]) if len(rise) else None
    return {
        "start": float(x[i_start]), "steepest": float(x[i_steep]), "knee": float(x[i_knee]), "minimum": float(x[m]),
        "divergence": float(x[i_div]) if i_div is not None else None,
        "i_start": i_start, "i_steepest": i_steep, "i_knee": i_knee, "i_minimum": m, "i_divergence": i_div,
        "drop": drop, "noise": noise, "points": n, "lrs": x,
    }


def recommend(lrs: Sequence[float], smoothed: Sequence[float], raw: Sequence[float] | None = None,
              schedule: str = "onecycle") -> dict:
    """The learning rate to train with under `schedule` ("onecycle" or "constant"), from the curve's shape.

    Returns {"lr": float | None, "lr_range": [low, high] | None, "schedule": str, "shape": dict | None}.
    `lr` is the one-cycle max_lr (schedule="onecycle") or the constant lr (schedule="constant");
    `lr_range` is Smith's base_lr .. max_lr for a cyclic schedule: from where the loss falls fastest
    (or max_lr / CONSTANT_FACTOR, if that is lower) up to the one-cycle max_lr. `shape` holds
    the landmarks from `curve_shape` (lrs only). Pass the raw losses whenever you have them: the
    landmarks are then read on a zero-lag re-smoothing of them instead of the lagging EMA.
    All None when the curve is too short, never fell clearly, or is flat.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; choose from {', '.join(SCHEDULES)}")
    shape = curve_shape(lrs, smoothed, raw)
    if shape is None:
        return {"lr": None, "lr_range": None, "schedule": schedule, "shape": None}
    x = shape["lrs"]
    top = float(x[max(shape["i_knee"] - LAG_STEPS, 0)])
    top = max(top, shape["start"])  # a descent shorter than the lag: never below where learning began
    constant = max(top / CONSTANT_FACTOR, min(shape["start"], top))
    lr = top if schedule == "onecycle" else constant
    # a cyclic schedule swings from a rate safe to hold (the steepest fall, or Smith's base_lr =
    # max_lr / 3 if that is lower) up to max_lr; the range therefore never collapses to one point
    # (never below the first lr measured)
    lr_range = [max(min(shape["steepest"], top / CONSTANT_FACTOR), float(x[0])), top]
    public = {k: v for k, v in shape.items() if k in ("start", "steepest", "knee", "minimum", "divergence")}
    return {"lr": float(lr), "lr_range": [float(v) for v in lr_range], "schedule": schedule, "shape": public}


def mean_curve(curves: Sequence[Curve]) -> Curve | None:
    """The step-by-step mean of several range tests of one schedule, over the steps all of them reached.

    Returns (lrs, smoothed, raw-or-None), raw None unless every curve has raw losses; None when the
    curves did not follow the same learning rates (then they cannot be averaged).
    """
    n = min(min(len(lrs), len(smoothed)) for lrs, smoothed, _ in curves)
    lrs = np.asarray(curves[0][0][:n], dtype=float)
    if n == 0 or any(not np.allclose(np.asarray(c[0][:n], dtype=float), lrs, rtol=1e-9) for c in curves):
        return None

    def mean(rows) -> np.ndarray:
        return np.mean([[np.nan if v is None else float(v) for v in row[:n]] for row in rows], axis=0)

    raws = [raw for _, _, raw in curves]
    raw = mean(raws) if all(r is not None and len(r) >= n for r in raws) else None
    return lrs, mean([smoothed for _, smoothed, _ in curves]), raw


def _last_lr(curve: Curve) -> float:
    """The highest lr a curve measured a finite loss at (0 when it has none)."""
    lrs, smoothed, raw = curve
    x, _ = _finite(lrs, raw if raw is not None else smoothed)
    return float(x[-1]) if len(x) else 0.0


def _log_median(values: Sequence[float]) -> float:
    """The median of positive values in log space (the geometric middle of learning rates)."""
    return float(10 ** np.median(np.log10(values)))


def recommend_repeats(curves: Sequence[Curve], schedule: str = "onecycle") -> dict:
    """`recommend` over several range tests of the same setup (e.g. different data order), combined.

    Each curve is (lrs, smoothed, raw-or-None). The answer is read on their step-by-step mean
    (`mean_curve`): averaging N curves divides the batch noise by about sqrt(N) before the landmarks
    are read, which halves the spread of the answer in the quality benchmark against taking the
    median of the per-run answers (the fallback when the mean curve gives none). Runs whose curve
    ends before the runs' median minimum are left out of the mean. `runs` lists every
    run's own lr (None where a run gave none) and `spread_decades` their standard deviation in
    log10 (None with fewer than two answers): how far single range tests disagree.
    """
    answers = [recommend(lrs, smoothed, raw, schedule) for lrs, smoothed, raw in curves]
    found = [a for a in answers if a["lr"] is not None]
    runs = [a["lr"] for a in answers]
    spread = float(np.std(np.log10([a["lr"] for a in found]), ddof=1)) if len(found) >= 2 else None
    if not found:
        return {"lr": None, "lr_range": None, "schedule": schedule, "runs": runs, "spread_decades": None}
    # A run that stopped before the typical minimum (an early NaN, an interrupt) would cut the mean
    # short of the others' knee: average only the runs that got that far.
    typical_minimum = float(np.median([a["shape"]["minimum"] for a in found]))
    complete = [c for c in curves if _last_lr(c) >= typical_minimum]
    averaged = mean_curve(complete) if len(complete) > 1 else None
    combined = recommend(*averaged, schedule) if averaged is not None else answers[0] if len(curves) == 1 else None
    if combined is None or combined["lr"] is None:
        # no mean curve to read: the median of the runs' own answers instead
        combined = {"lr": _log_median([a["lr"] for a in found]),
                    "lr_range": [_log_median([a["lr_range"][0] for a in found]), _log_median([a["lr_range"][1] for a in found])]}
    return {"lr": float(combined["lr"]), "lr_range": [float(v) for v in combined["lr_range"]], "schedule": schedule,
            "runs": runs, "spread_decades": spread}


NOISY_RATIO = 0.5  # raw batch noise above this fraction of the total drop makes a curve `noisy`
SPREAD_WARNING = 0.5  # decades (a factor of about 3): repeats disagreeing more make the result `unstable`
FLAG_NOTES = {  # what each flag means for the user, and what to try
    "too_few_points": "fewer than 5 finite losses were measured; raise sweep.num_iter or lower sweep.start_lr",
    "flat_curve": "the loss never fell clearly; widen sweep.start_lr..sweep.end_lr or raise sweep.num_iter",
    "no_divergence": "the loss never rose after its minimum, so the top of the good range is unknown; raise sweep.end_lr",
    "noisy": "batch-to-batch noise is large against the fall of the loss; raise data.batch_size or sweep.num_iter, "
             "or sweep.repeats",
    "unstable": f"repeats disagree by more than {SPREAD_WARNING} decades; raise sweep.num_iter or sweep.repeats",
}


def confidence(curves: Sequence[Curve], schedule: str = "onecycle", combined: dict | None = None) -> dict:
    """How far to trust the recommendation from one or several range tests of the same setup.

    Each curve is (lrs, smoothed, raw-or-None). Returns {"spread_decades": float | None, "flags": [...],
    "notes": [...], "repeats": int}:
    spread_decades is the standard deviation of log10 of the per-run `recommend` lrs (None with
    fewer than two answers). Flags (sorted, each at most once; a flag applies when any run shows it):
      too_few_points  fewer than MIN_POINTS finite losses
      flat_curve      the loss never fell clearly (no recommendation)
      no_divergence   the loss never rose clearly after its minimum before the sweep ended, so
                      the upper end of the good region is unknown: try a larger end_lr
      noisy           the raw batch noise exceeds NOISY_RATIO of the total drop
      unstable        the repeats' recommendations spread more than SPREAD_WARNING decades
    `notes` explains each flag, with what to try (FLAG_NOTES). `combined` is `recommend_repeats`'s
    answer for these curves, when the caller has it already.
    """
    flags: set[str] = set()
    for lrs, smoothed, raw in curves:
        source = raw if raw is not None else smoothed
        if len(_finite(lrs, source)[1]) < MIN_POINTS:
            flags.add("too_few_points")
            continue
        shape = curve_shape(lrs, smoothed, raw)
        if shape is None:
            flags.add("flat_curve")
            continue
        if shape["divergence"] is None:
            flags.add("no_divergence")
        if shape["noise"] > NOISY_RATIO * shape["drop"]:
            flags.add("noisy")
    spread = (combined or recommend_repeats(curves, schedule))["spread_decades"]
    if spread is not None and spread > SPREAD_WARNING:
        flags.add("unstable")
    return {"spread_decades": spread, "flags": sorted(flags), "notes": [FLAG_NOTES[f] for f in sorted(flags)],
            "repeats": len(curves)}


def summarize(curves: Sequence[Curve], method: str = "auto", schedule: str = "onecycle") -> dict:
    """Everything a result reports about suggestions, for one or several range tests of one setup.

    The keys are RangeTestResult's field names, so a result is built with `**summarize(...)`.

    Each curve is (lrs, smoothed, raw-or-None). Returns:
      suggestions   every method's lr: "onecycle" and "constant" (the `recommend` rule under each
                    schedule, combined over the curves by `recommend_repeats`) and the classic
                    steepest / valley / minimum (log-space median of the per-curve answers)
      method        the method behind suggested_lr: the schedule's name when `method` is "auto"
      schedule      the schedule suggested_lr is for (`method` when that names a schedule)
      suggested_lr  that method's lr (None when it has none)
      lr_range      [low, high] for cyclic schedules, from the rule under `schedule`
      schedules     for each schedule, {"suggested_lr", "lr_range"}: what the rule says under both
      confidence    {"spread_decades", "flags", "notes", "repeats"} (see `confidence`)
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; choose from {', '.join(SCHEDULES)}")
    if method in SCHEDULES:
        schedule = method  # asking for a schedule's rule by name means that schedule
    per_curve = [suggest_all(lrs, smoothed, raw) for lrs, smoothed, raw in curves]
    suggestions: dict[str, float | None] = {}
    for name in METHODS:
        found = [s[name] for s in per_curve if s[name] is not None]
        suggestions[name] = _log_median(found) if found else None
    rules = {s: recommend_repeats(curves, s) for s in SCHEDULES}
    suggestions = {s: rules[s]["lr"] for s in SCHEDULES} | suggestions
    if method == "auto":
        chosen, lr = schedule, rules[schedule]["lr"]
    else:
        chosen, lr = choose(method, suggestions)
        if rules[schedule]["lr"] is None:
            lr = None  # no curve fell clearly (flat_curve, too_few_points): a classic method's pick is noise
    quality = confidence(curves, schedule, rules[schedule])
    schedules = {s: {"suggested_lr": rules[s]["lr"], "lr_range": rules[s]["lr_range"]} for s in SCHEDULES}
    return {"suggestions": suggestions, "method": chosen, "suggested_lr": lr, "schedule": schedule,
            "lr_range": rules[schedule]["lr_range"], "schedules": schedules, "confidence": quality}
