"""How much a rule that reads one range-test curve can know: where each task's best lr sits against the curve.

A rule of lrfind's kind answers `anchor / 10**d`: a landmark of the curve, a fixed distance below it.
It is right on a task when that task's best lr really is `d` decades below the landmark. So the
question "can a better rule exist?" is measurable on the design half, without trying rules:

- `anchor_spread`: per landmark, the distance log10(landmark) - log10(best lr) on each task (the
  landmark taken as the median over the task's range tests) and its spread across tasks (the median
  absolute deviation from the median, in decades). A rule with one distance per schedule misses
  by about that spread on a typical task, whatever the distance.
- `oracle_distance`: each task given its own best distance below the onset (from an eighth-decade
  grid, the same for all of the task's range tests): the regret left is what range-test noise
  alone costs, the floor under any rule on that landmark.
- `feature_lofo`: whether a property of the curve or of the setup predicts a task's distance. For
  each feature, a least-absolute-deviation line distance ~ a + b * feature is fitted on all families
  but one and scored on the held-out family; the median absolute error of the predicted distance
  (decades) is compared with a single fitted distance (b = 0) under the same folds.

Read the design half only (`score.load_half("design")`); the test half stays unseen.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from lrfind_cli.suggest import read_curve

from . import score
from .ground_truth import PROTOCOLS, RT_SEEDS
from .methods import fastai_minimum, fastai_valley
from .tasks import BY_NAME

ADAPTIVE = ("adam", "adamw", "rmsprop", "adagrad")
DISTANCES = np.arange(0.0, 3.0001, 0.125)  # the oracle's distances below the onset, in decades


def _log(v: float | None) -> float:
    return math.log10(v) if v else math.nan


def _reading(lrs, smoothed, raw, task) -> dict | None:
    """The landmarks (log10 lr) and features of one range test, or None when the rule has no answer."""
    curve = read_curve(lrs, smoothed, raw)
    onset = curve.onset_lr
    if not curve.readable or onset is None:
        return None
    start = float(np.median(curve.y[: max(1, len(curve.y) // 10)]))
    lowest = curve.lowest
    knee = curve.lr(curve.landmarks.knee) if curve.landmarks else None
    return {
        "landmarks": {
            "onset of divergence": _log(onset),
            "steepest fall": _log(curve.steepest_lr or onset),
            "knee": _log(knee or onset),
            "minimum (zero-lag)": _log(curve.minimum_lr),
            "fastai minimum (x10, undivided)": _log(10 * (fastai_minimum(lrs, smoothed, raw) or math.nan)),
            "fastai valley": _log(fastai_valley(lrs, smoothed, raw)),
        },
        "features": {
            "onset - steepest (decades)": _log(onset) - _log(curve.steepest_lr or onset),
            "onset - minimum (decades)": _log(onset) - _log(curve.minimum_lr),
            "relative depth of the fall": (start - lowest) / abs(start) if start else math.nan,
            "log10 noise / start loss": math.log10(curve.sigma / abs(start) + 1e-12) if start else math.nan,
            "last lr - onset (decades)": math.log10(curve.last_lr) - _log(onset),
            "fell beyond noise (0/1)": float(curve.fell),
            "adaptive optimizer (0/1)": float(task.optimizer in ADAPTIVE),
            "log2 batch size": math.log2(task.batch_size),
            "training steps": float(task.steps),
        },
    }


def readings(gts: dict[str, dict]) -> dict[str, list[dict]]:
    """Per task, the readings of its range tests that gave an answer (a task with none is left out)."""
    out = {}
    for name, gt in gts.items():
        found = [_reading(*score.curve(gt, s), BY_NAME[name]) for s in RT_SEEDS]
        found = [r for r in found if r is not None]
        if found:
            out[name] = found
    return out


def _median_of(rows: list[dict], group: str, key: str) -> float:
    values = [r[group][key] for r in rows if math.isfinite(r[group][key])]
    return float(np.median(values)) if values else math.nan


def _mad(values: np.ndarray) -> float:
    v = values[np.isfinite(values)]
    return float(np.median(np.abs(v - np.median(v)))) if len(v) else math.nan


def anchor_spread(gts: dict[str, dict], read_: dict[str, list[dict]] | None = None) -> dict[str, dict]:
    """{landmark: {protocol: {"distance": median decades above the best lr, "spread": MAD across tasks, "tasks": n}}}."""
    read_ = read_ if read_ is not None else readings(gts)
    names = next(iter(read_.values()))[0]["landmarks"].keys()
    out: dict[str, dict] = {}
    for landmark in names:
        out[landmark] = {}
        for p in PROTOCOLS:
            d = np.array([_median_of(rows, "landmarks", landmark) - math.log10(score.best_lr(gts[t], p)) for t, rows in read_.items()])
            out[landmark][p] = {"distance": float(np.nanmedian(d)), "spread": _mad(d), "tasks": int(np.isfinite(d).sum())}
    return out


def oracle_distance(gts: dict[str, dict]) -> dict[str, dict]:
    """{protocol: summary of single range tests' regret} when every task gets its own best distance below the onset."""
    out = {}
    for p in PROTOCOLS:
        values: list[float] = []
        for gt in gts.values():
            anchors = []
            for s in RT_SEEDS:
                curve = read_curve(*score.curve(gt, s))
                anchors.append(curve.onset_lr if curve.readable else None)

            def regrets(d: float, gt=gt, anchors=anchors, p=p) -> list[float]:
                return [score.regret(gt, p, a / 10**d if a else None)[0] for a in anchors]

            best = min(DISTANCES, key=lambda d: float(np.median(regrets(d))))
            values += regrets(best)
        out[p] = score.summarise(values)
    return out


def _lad_line(x: np.ndarray, y: np.ndarray, iterations: int = 50) -> tuple[float, float]:
    """(a, b) of the least-absolute-deviation line y ~ a + b x, by iteratively reweighted least squares."""
    design = np.c_[np.ones_like(x), x]
    coef = np.linalg.lstsq(design, y, rcond=None)[0]
    for _ in range(iterations):
        w = np.sqrt(1.0 / np.maximum(np.abs(y - design @ coef), 1e-3))
        coef = np.linalg.lstsq(design * w[:, None], y * w, rcond=None)[0]
    return float(coef[0]), float(coef[1])


def feature_lofo(gts: dict[str, dict], read_: dict[str, list[dict]] | None = None) -> dict[str, dict]:
    """{feature (or "none: one distance"): {protocol: leave-one-family-out median |error| of the predicted distance}}.

    The distance predicted is log10(onset) - log10(best lr) of each task; see the module docstring.
    """
    read_ = read_ if read_ is not None else readings(gts)
    tasks = list(read_)
    families = np.array([gts[t]["family"] for t in tasks])
    onset = np.array([_median_of(read_[t], "landmarks", "onset of divergence") for t in tasks])
    features = next(iter(read_.values()))[0]["features"].keys()
    columns: dict[str, np.ndarray] = {"none: one distance": np.zeros(len(tasks))}
    columns.update({f: np.array([_median_of(read_[t], "features", f) for t in tasks]) for f in features})
    out: dict[str, dict] = {}
    for label, x in columns.items():
        out[label] = {}
        for p in PROTOCOLS:
            y = onset - np.log10([score.best_lr(gts[t], p) for t in tasks])
            ok = np.isfinite(x) & np.isfinite(y)
            errors: list[float] = []
            for fam in np.unique(families[ok]):
                train, held = ok & (families != fam), ok & (families == fam)
                fit: Callable[[np.ndarray], np.ndarray]
                if np.ptp(x[train]) == 0:
                    centre = float(np.median(y[train]))
                    fit = lambda v, c=centre: np.full_like(v, c)  # noqa: E731 (a constant: no slope to fit)
                else:
                    a, b = _lad_line(x[train], y[train])
                    fit = lambda v, a=a, b=b: a + b * v  # noqa: E731
                errors += list(np.abs(y[held] - fit(x[held])))
            out[label][p] = {"error": float(np.median(errors)), "tasks": int(ok.sum())}
    return out


def shifted_regret(gts: dict[str, dict], shifts: tuple[float, ...] = (-0.5, -0.25, 0.25, 0.5)) -> dict[float, dict]:
    """{shift: {protocol: summary}}: the regret of answering every task at its best lr times 10**shift.

    How a miss in decades turns into regret on these tasks: a rule whose typical miss is s decades
    scores about the regret of a shift of s.
    """
    return {shift: {p: score.summarise([score.regret(gt, p, score.best_lr(gt, p) * 10**shift)[0] for gt in gts.values()])
                    for p in PROTOCOLS} for shift in shifts}
