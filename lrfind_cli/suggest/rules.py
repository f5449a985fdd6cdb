"""The schedule-aware rule: the learning rate to train with, read from the shape of one or several range-test curves."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .curve import RULE_MIN_POINTS, curve_shape, divergence_onset, fall_of, finite_prefix, head_size, read

# The rule anchors on the onset of divergence: the first lr after the loss's lowest point at which
# the loss is back above its valley by more than batch noise (`curve.divergence_onset`). That is
# the edge of stability the sweep measured: the lr at which training stops making progress and
# starts to blow up. Training wants a rate a fixed distance below that edge, as fastai's
# minimum/10 has it, but measured where the loss starts rising (zero-lag and noise-gated), which
# is read more reliably than the bottom of a flat valley. The two distances are the ones with the
# lowest median regret of single range tests on the design half of benchmarks/suggestion_quality.py,
# on a quarter-decade grid of offsets (`methods.fitted_onset_rule`; the test half is not read). On
# round 1's 15 design tasks that was 1.0 / 1.5; on the 48 design tasks of rounds 1-4 it is 0.75 /
# 1.25: both answers a quarter decade higher (the older ones sat 0.16 decades below the median
# task's best under both schedules). Round 5 was defined before the change, as its fresh hold-out:
# there it beat the old pair (0.123 / 0.034 median regret against 0.167 / 0.105); on the whole test
# half (63 tasks) it is level for constant and behind for one-cycle (0.112 against 0.096), a gap the
# benchmark's task-to-task spread cannot resolve (README, "How good is it?").
ONECYCLE_DECADES = 0.75  # one-cycle max_lr = onset / 10**0.75 (/5.6): warm-up and annealing make the top of a cycle safe
# constant lr = onset / 10**1.25 (/18): a rate held for a whole run must stay further from the edge; half a
# decade below max_lr, which is where Smith puts base_lr (max_lr / 3 to / 4, arXiv 1506.01186)
CONSTANT_DECADES = 1.25
CONSTANT_FACTOR = 10 ** (CONSTANT_DECADES - ONECYCLE_DECADES)  # one-cycle max_lr over the constant lr (about 3.2)
# A trained model's rate (fine-tuning: flat, then rising) = onset / 10: the highest rate that keeps the trained
# weights, a decade below where the loss starts to rise (shared/cases/17: 10x higher damages them). Not fitted
# on the benchmark, whose models all start untrained.
FINETUNE_DECADES = 1.0
DECADES = {"onecycle": ONECYCLE_DECADES, "constant": CONSTANT_DECADES, "finetune": FINETUNE_DECADES}
BASE_FACTOR = 3.0  # lr_range's low end: Smith's base_lr = max_lr / 3 to / 4 (arXiv 1506.01186), unless the steepest fall is lower
KNEE_FRACTION = 0.75  # landmarks for the plot and result.json: the knee is where this fraction of the drop is done
RISE_FRACTION = 0.5
SCHEDULES = ("onecycle", "constant")
SCHEDULE_NAMES = {"onecycle": "one-cycle max_lr", "constant": "constant lr", "finetune": "fine-tuning lr",  # for people
                  "verify": "verified lr"}

Curve = tuple[Sequence[float], Sequence[float], "Sequence[float] | None"]


def shape_of(lrs: Sequence[float], smoothed: Sequence[float], raw: Sequence[float] | None = None) -> dict | None:
    """What the rule reads off one curve, or None below RULE_MIN_POINTS finite points or on a flat curve.

    A dict with `fell` (the fall passed the noise gate), `fall` (its `LevelChange`), `onset` (the
    lr where divergence starts, None when it never does), `i_onset`, `lrs` (the finite prefix), and
    the landmarks of `curve_shape` (`start`, `steepest`, `knee`, `minimum`, each None when the curve
    did not fall beyond noise). A curve that neither fell nor rose beyond noise is flat: None; so
    is one that did not fall and rose within its first quarter (it was never flat, so the whole
    sweep may lie past the edge of stability).
    """
    curve = read(lrs, raw if raw is not None else smoothed)
    if curve is None or len(curve.y) < RULE_MIN_POINTS:
        return None
    x, n = curve.x, len(curve.y)
    fall, onset = fall_of(curve), divergence_onset(curve)
    if not fall.significant and (onset is None or onset < max(2 * head_size(n), n // 4)):
        return None  # flat, or rising from its first points (no flat stretch: the sweep began past the edge)
    landmarks = curve_shape(lrs, smoothed, raw, knee_fraction=KNEE_FRACTION, rise_fraction=RISE_FRACTION) if fall.significant else None
    keys = ("start", "steepest", "knee", "minimum")
    found = {k: (landmarks[k] if landmarks else None) for k in keys}
    if found["minimum"] is None:
        found["minimum"] = float(x[curve.m])
    return {**found, "fell": fall.significant, "fall": fall, "i_onset": onset,
            "onset": float(x[onset]) if onset is not None else None, "divergence": float(x[onset]) if onset is not None else None,
            "lrs": x}


def anchor_of(shape: dict) -> float:
    """What the rule measures from: the onset of divergence, or the last lr measured when the curve never diverged."""
    return shape["onset"] if shape["onset"] is not None else float(shape["lrs"][-1])


def below_onset(shape: dict, decades: float) -> float:
    """The lr `decades` below the onset of divergence (the last lr measured when there is none), within the swept lrs."""
    x = shape["lrs"]
    anchor = anchor_of(shape)
    return float(min(max(anchor / 10**decades, float(x[0])), float(x[-1])))


def recommend(lrs: Sequence[float], smoothed: Sequence[float], raw: Sequence[float] | None = None,
              schedule: str = "onecycle") -> dict:
    """The learning rate to train with under `schedule` ("onecycle", "constant" or "finetune"), from the curve's shape.

    Returns {"lr": float | None, "lr_range": [low, high] | None, "schedule": str, "shape": dict | None}.
    `lr` is the one-cycle max_lr, 10**ONECYCLE_DECADES below the onset of divergence
    (schedule="onecycle"), the constant lr, 10**CONSTANT_DECADES below it (schedule="constant"), or
    a trained model's fine-tuning lr, 10**FINETUNE_DECADES below it (schedule="finetune").
    A curve that fell but never diverged anchors on the last lr measured instead (flag
    no_divergence: the answer is then a lower bound). `lr_range` is Smith's base_lr .. max_lr for a
    cyclic schedule: from the steepest fall (or max_lr / BASE_FACTOR, if that is lower) up to the
    one-cycle max_lr. Both stay within the swept lrs. `shape` holds the landmarks (lrs only; see
    `shape_of`). Pass the raw losses whenever you have them: the curve is then read on a zero-lag
    re-smoothing of them, and noise is measured on them. All None when the curve has fewer than
    RULE_MIN_POINTS finite points or neither fell nor rose beyond batch noise.
    """
    if schedule not in DECADES:
        raise ValueError(f"unknown schedule {schedule!r}; choose from {', '.join(DECADES)}")
    shape = shape_of(lrs, smoothed, raw)
    if shape is None:
        return {"lr": None, "lr_range": None, "schedule": schedule, "shape": None}
    x = shape["lrs"]
    low = float(x[0])
    top = below_onset(shape, ONECYCLE_DECADES)
    lr = below_onset(shape, DECADES[schedule])
    steepest = shape["steepest"] if shape["steepest"] is not None else top
    lr_range = [max(min(steepest, top / BASE_FACTOR), low), top]
    public = {k: shape[k] for k in ("start", "steepest", "knee", "minimum", "divergence", "fell")}
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
