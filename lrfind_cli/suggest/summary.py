"""Everything a result reports about suggestions, for one or several range tests of one setup, as one `Summary`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .classic import METHODS, choose
from .confidence import Confidence, confidence
from .reading import Curve, Reading, Readings, read_repeats
from .rules import SCHEDULES, Context, Suggestion, combine, rule, trained_shape


@dataclass(frozen=True)
class Summary:
    """What a result reports about suggestions (RangeTestResult's fields of the same names; see `summarize`).

    `zero_lag`: per step of the curve it was read on, the zero-lag curve the rule read (the one curve `best`,
    the `minimum` method and the plot use); `readings`: every curve as read.
    """

    suggestions: dict[str, float | None]
    method: str
    suggested_lr: float | None
    schedule: str
    lr_range: list[float] | None
    schedules: dict[str, Suggestion]
    confidence: Confidence
    zero_lag: list[float] = field(default_factory=list)
    readings: Readings | None = field(default=None, repr=False, compare=False)

    def fields(self) -> dict:
        """The RangeTestResult fields, by name: a result is built with `**summary.fields()`."""
        return {"suggestions": dict(self.suggestions), "method": self.method, "suggested_lr": self.suggested_lr,
                "schedule": self.schedule, "lr_range": self.lr_range, "schedules": dict(self.schedules),
                "confidence": self.confidence, "zero_lag": list(self.zero_lag)}


def summarize(curves: Sequence[Curve], method: str = "auto", schedule: str = "onecycle",
              statuses: Sequence[str | None] | None = None, warm_start: bool | None = None,
              end_lr: float | None = None) -> Summary:
    """Everything a result reports about suggestions, for one or several range tests of one setup.

    Each curve is (lrs, smoothed, raw-or-None), read once (`read_repeats`); `statuses` are the sweeps'
    statuses when known (they decide the `blew_up` flag), and `end_lr` their planned end (flag `extended`
    for a curve that goes past it). `warm_start` says whether the model started from trained weights
    (`Context`): only then is a curve that did not fall beyond noise but rose read as a trained model's
    (flag pretrained). The Summary:
      suggestions   every method's lr: "onecycle" and "constant" (the rule under each schedule, combined
                    over the curves by `combine`), "finetune" (the fine-tuning rate of a trained model's
                    flat-then-rising curve, `rules.trained_shape`; None for any other) and the classic
                    steepest / valley / minimum, read on the zero-lag curve the rule reads (None where no
                    curve fell beyond noise, where it never diverged, or outside the swept lrs)
      method        the method behind suggested_lr: the rule's ("onecycle", "constant" or "finetune") when
                    `method` is "auto", else `method`
      schedule      the schedule suggested_lr is for (`method` when that names a schedule)
      suggested_lr  that method's lr (None when it has none, and whenever the rule has none)
      lr_range      [low, high] for cyclic schedules, from the rule under `schedule` (None for "finetune")
      schedules     for each schedule, its `Suggestion`
      confidence    the `Confidence` record (see `confidence.confidence`)
      zero_lag      the curve the rule read (see `Summary`)
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; choose from {', '.join(SCHEDULES)}")
    if method in SCHEDULES:
        schedule = method  # asking for a schedule's rule by name means that schedule
    readings = read_repeats(curves, statuses)
    curve = readings.rule_reading or readings.runs[0]
    context = Context(schedule, warm_start)
    schedules = {s: combine(readings, s) for s in SCHEDULES}
    chosen = rule(readings, context)
    suggestions: dict[str, float | None] = {s: schedules[s].lr for s in SCHEDULES}
    suggestions["finetune"] = combine(readings, "finetune").lr if trained_shape(readings, context) else None
    suggestions.update(classic_methods(curve) if any(r.fell for r in readings.runs) and curve.onset is not None
                       else dict.fromkeys(METHODS))  # no fall beyond noise, or no divergence: what they find is noise or end_lr
    if method == "auto":
        name, lr = chosen.method, chosen.lr
    else:
        name, lr = choose(method, suggestions)
        if schedules[schedule].lr is None:
            lr = None  # the rule has no answer (no_divergence, flat_curve, ...): a classic method's pick is no better
    own = schedules[schedule].lr_range
    lr_range = list(own) if own is not None and name != "finetune" else None
    quality = confidence(readings, context, schedules[schedule].spread_decades, statuses, end_lr)
    return Summary(suggestions, name, lr, schedule, lr_range, schedules, quality, curve.z.tolist(), readings)


def classic_methods(curve: Reading) -> dict[str, float | None]:
    """The classic methods (steepest, valley, minimum/10) on the zero-lag curve the rule reads, gated by its noise.

    A value outside the swept lrs (minimum/10 of a minimum in the first decade) is a number the sweep never
    measured: None.
    """
    found = {name: fn(curve.x, curve.z, curve.sigma) for name, fn in METHODS.items()}
    inside = lambda lr: lr is not None and curve.first_lr <= lr <= curve.last_lr  # noqa: E731
    return {name: lr if inside(lr) else None for name, lr in found.items()}


def listed(suggestions: dict[str, float | None]) -> dict[str, float | None]:
    """The methods a person is shown: every one, except the fine-tuning rate when there is none.

    `finetune` exists only for a trained model's curve (flag pretrained); listing it as "-" on
    every other run would read as a method that failed.
    """
    return {name: lr for name, lr in suggestions.items() if lr is not None or name != "finetune"}


def lowest(lrs: Sequence[float], values: Sequence[float | None]) -> tuple[float, float] | None:
    """(lr, value) at the lowest finite value of a curve (ties: the lower lr), or None when it has none."""
    points = [(float(v), float(lr)) for lr, v in zip(lrs, values) if v is not None and np.isfinite(v)]
    if not points:
        return None
    value, lr = min(points, key=lambda p: (p[0], p[1]))
    return lr, value
