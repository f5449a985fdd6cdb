"""Everything a result reports about suggestions, for one or several range tests of one setup, as one `Summary`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .classic import METHODS, choose, suggest_all
from .confidence import Confidence, confidence
from .reading import Curve, Readings, read_repeats
from .rules import SCHEDULES, Context, Suggestion, combine, log_median, rule


@dataclass(frozen=True)
class Summary:
    """What a result reports about suggestions (RangeTestResult's fields of the same names; see `summarize`)."""

    suggestions: dict[str, float | None]
    method: str
    suggested_lr: float | None
    schedule: str
    lr_range: list[float] | None
    schedules: dict[str, Suggestion]
    confidence: Confidence
    readings: Readings | None = field(default=None, repr=False, compare=False)

    def fields(self) -> dict:
        """The RangeTestResult fields, by name: a result is built with `**summary.fields()`."""
        return {"suggestions": dict(self.suggestions), "method": self.method, "suggested_lr": self.suggested_lr,
                "schedule": self.schedule, "lr_range": self.lr_range, "schedules": dict(self.schedules),
                "confidence": self.confidence}


def summarize(curves: Sequence[Curve], method: str = "auto", schedule: str = "onecycle",
              statuses: Sequence[str | None] | None = None, warm_start: bool | None = None) -> Summary:
    """Everything a result reports about suggestions, for one or several range tests of one setup.

    Each curve is (lrs, smoothed, raw-or-None), read once (`read_repeats`); `statuses` are the sweeps'
    statuses when known (they decide the `blew_up` flag). `warm_start` says whether the model started
    from trained weights: a curve that did not fall beyond noise but rose is a trained model's (method
    finetune, flag pretrained) unless `warm_start` is False, when it is an untrained model's whose fall
    the noise hid (the schedule's rule, flag noisy); None (unknown) reads it as a trained model's. The Summary:
      suggestions   every method's lr: "onecycle" and "constant" (the rule under each schedule, combined
                    over the curves by `combine`), "finetune" (the rule's fine-tuning lr, FINETUNE_DECADES
                    below the onset, when no curve fell beyond noise but one rose, unless warm_start is
                    False: a trained model) and the classic steepest / valley / minimum (log-space median
                    of the per-curve answers)
      method        the method behind suggested_lr: the schedule's name when `method` is "auto", or
                    "finetune" when no curve fell beyond batch noise before rising (flag pretrained)
      schedule      the schedule suggested_lr is for (`method` when that names a schedule)
      suggested_lr  that method's lr (None when it has none)
      lr_range      [low, high] for cyclic schedules, from the rule under `schedule`
      schedules     for each schedule, its `Suggestion`
      confidence    the `Confidence` record (see `confidence.confidence`)
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; choose from {', '.join(SCHEDULES)}")
    if method in SCHEDULES:
        schedule = method  # asking for a schedule's rule by name means that schedule
    readings = read_repeats(curves)
    schedules = {s: combine(readings, s) for s in SCHEDULES}
    chosen = rule(readings, Context(schedule, warm_start))
    fell = any(r.fell for r in readings.runs)
    suggestions: dict[str, float | None] = {s: schedules[s].lr for s in SCHEDULES}
    suggestions["finetune"] = chosen.lr if chosen.method == "finetune" else None
    per_curve = [suggest_all(lrs, smoothed, raw) for lrs, smoothed, raw in curves]
    for name in METHODS:
        found = [s[name] for s in per_curve if s[name] is not None]
        # where no curve fell beyond the noise gate, what a classic method finds is noise too
        suggestions[name] = log_median(found) if found and fell else None
    if method == "auto":
        name, lr = chosen.method, chosen.lr
    else:
        name, lr = choose(method, suggestions)
        if schedules[schedule].lr is None:
            lr = None  # no curve fell clearly (flat_curve, too_few_points): a classic method's pick is noise
    lr_range = list(schedules[schedule].lr_range) if schedules[schedule].lr_range is not None and name != "finetune" else None
    quality = confidence(readings, schedules[schedule].spread_decades, statuses, warm_start)
    return Summary(suggestions, name, lr, schedule, lr_range, schedules, quality, readings)


def listed(suggestions: dict[str, float | None]) -> dict[str, float | None]:
    """The methods a person is shown: every one, except the fine-tuning rate when there is none.

    `finetune` exists only for a trained model's curve (flag pretrained); listing it as "-" on
    every other run would read as a method that failed.
    """
    return {name: lr for name, lr in suggestions.items() if lr is not None or name != "finetune"}
