"""Everything a result reports about suggestions, for one or several range tests of one setup."""

from __future__ import annotations

from collections.abc import Sequence

from .classic import METHODS, choose, suggest_all
from .confidence import confidence
from .rules import SCHEDULES, Curve, log_median, recommend_repeats, shape_of


def summarize(curves: Sequence[Curve], method: str = "auto", schedule: str = "onecycle",
              statuses: Sequence[str] | None = None, warm_start: bool | None = None) -> dict:
    """Everything a result reports about suggestions, for one or several range tests of one setup.

    The keys are RangeTestResult's field names, so a result is built with `**summarize(...)`.

    Each curve is (lrs, smoothed, raw-or-None); `statuses` are the sweeps' statuses when known (they
    decide the `blew_up` flag). `warm_start` says whether the model started from trained weights: a
    curve that did not fall beyond noise but rose is a trained model's (method finetune, flag
    pretrained) unless `warm_start` is False, when it is an untrained model's whose fall the noise
    hid (the schedule's rule, flag noisy); None (unknown) reads it as a trained model's. Returns:
      suggestions   every method's lr: "onecycle" and "constant" (the `recommend` rule under each
                    schedule, combined over the curves by `recommend_repeats`), "finetune" (the
                    rule's fine-tuning lr, FINETUNE_DECADES below the onset, when no curve fell beyond
                    noise but one rose, unless warm_start is False: a trained model) and
                    the classic steepest / valley / minimum (log-space median of the per-curve answers)
      method        the method behind suggested_lr: the schedule's name when `method` is "auto", or
                    "finetune" when no curve fell beyond batch noise before rising (flag pretrained)
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
    rules = {s: recommend_repeats(curves, s) for s in SCHEDULES}
    shapes = [shape_of(lrs, smoothed, raw) for lrs, smoothed, raw in curves]
    fell = any(shape is not None and shape["fell"] for shape in shapes)
    suggestions: dict[str, float | None] = {s: rules[s]["lr"] for s in SCHEDULES}
    # no curve fell beyond noise but one rose: a trained model's curve, read from where it rises; a
    # model known to start untrained has learnt something all the same, below the noise
    suggestions["finetune"] = recommend_repeats(curves, "finetune")["lr"] if not fell and warm_start is not False else None
    for name in METHODS:
        found = [s[name] for s in per_curve if s[name] is not None]
        # where no curve fell beyond the noise gate, what a classic method finds is noise too
        suggestions[name] = log_median(found) if found and fell else None
    if method == "auto":
        chosen, lr = schedule, rules[schedule]["lr"]
        if suggestions["finetune"] is not None:
            chosen, lr = "finetune", suggestions["finetune"]
    else:
        chosen, lr = choose(method, suggestions)
        if rules[schedule]["lr"] is None:
            lr = None  # no curve fell clearly (flat_curve, too_few_points): a classic method's pick is noise
    quality = confidence(curves, schedule, rules[schedule], statuses, warm_start)
    schedules = {s: {"suggested_lr": rules[s]["lr"], "lr_range": rules[s]["lr_range"]} for s in SCHEDULES}
    return {"suggestions": suggestions, "method": chosen, "suggested_lr": lr, "schedule": schedule,
            "lr_range": rules[schedule]["lr_range"] if chosen != "finetune" else None, "schedules": schedules,
            "confidence": quality}


def listed(suggestions: dict[str, float | None]) -> dict[str, float | None]:
    """The methods a person is shown: every one, except the fine-tuning rate when there is none.

    `finetune` exists only for a trained model's curve (flag pretrained); listing it as "-" on
    every other run would read as a method that failed.
    """
    return {name: lr for name, lr in suggestions.items() if lr is not None or name != "finetune"}
