"""The schedule-aware rule: the learning rate to train with, read from the shape of one or several range-test curves."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .curve import RULE_MIN_POINTS, curve_shape, finite_prefix, rise_start

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
SCHEDULE_NAMES = {"onecycle": "one-cycle max_lr", "constant": "constant lr", "finetune": "fine-tuning lr"}  # for people


def shape_of(lrs: Sequence[float], smoothed: Sequence[float], raw: Sequence[float] | None = None) -> dict | None:
    """`curve_shape` with the rule's knee and divergence fractions, or None below RULE_MIN_POINTS finite points."""
    source = raw if raw is not None else smoothed
    if len(finite_prefix(lrs, source)[1]) < RULE_MIN_POINTS:
        return None
    return curve_shape(lrs, smoothed, raw, knee_fraction=KNEE_FRACTION, rise_fraction=RISE_FRACTION)


def finetune(lrs: Sequence[float], raw: Sequence[float] | None) -> float | None:
    """For a curve that stays flat and then rises (a trained model): the highest lr before the rise.

    The rise is where the loss leaves its starting level by more than noise for good
    (`curve.rise_start`); the answer is the lr LAG_STEPS steps before it, since the loss trails the
    lr that damaged it. None without raw losses, below RULE_MIN_POINTS points, or with no such rise.
    """
    if raw is None or len(finite_prefix(lrs, raw)[1]) < RULE_MIN_POINTS:
        return None
    r = rise_start(lrs, raw)
    if r is None:
        return None
    x, _ = finite_prefix(lrs, raw)
    return float(x[max(r - LAG_STEPS, 0)])


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
    shape = shape_of(lrs, smoothed, raw)
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
    x, _ = finite_prefix(lrs, raw if raw is not None else smoothed)
    return float(x[-1]) if len(x) else 0.0


def log_median(values: Sequence[float]) -> float:
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
        combined = {"lr": log_median([a["lr"] for a in found]),
                    "lr_range": [log_median([a["lr_range"][0] for a in found]), log_median([a["lr_range"][1] for a in found])]}
    return {"lr": float(combined["lr"]), "lr_range": [float(v) for v in combined["lr_range"]], "schedule": schedule,
            "runs": runs, "spread_decades": spread}
