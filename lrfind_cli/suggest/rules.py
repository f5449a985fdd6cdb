"""The schedule-aware rule: `Reading (+ Context) -> Suggestion`, the learning rate to train with read off a curve."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .reading import Curve, Reading, Readings, read_curve, read_repeats

# The rule anchors on the onset of divergence: the first lr after the loss's lowest point at which
# the loss is back above its valley by more than batch noise (`reading.divergence_onset`). That is
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
SCHEDULES = ("onecycle", "constant")
SCHEDULE_NAMES = {"onecycle": "one-cycle max_lr", "constant": "constant lr", "finetune": "fine-tuning lr",  # for people
                  "verify": "verified lr"}


class JsonView:
    """Read access by result.json's key names (`record["flags"]`, `record.get("suggested_lr")`) on a typed record.

    The Python API handed these blocks out as dicts; code written against that keeps working.
    """

    def to_json(self) -> dict:
        raise NotImplementedError

    def __getitem__(self, key: str):
        return self.to_json()[key]

    def get(self, key: str, default=None):
        return self.to_json().get(key, default)


@dataclass(frozen=True)
class Context:
    """What the answer is for, beyond the curve: the schedule the training runs and whether the model starts trained.

    `warm_start`: True when the model holds trained weights (a flat-then-rising curve is then a trained
    model's, and the answer is never above the fine-tuning rate); False or None (nobody said) when it
    starts untrained, and such a curve is an untrained model's whose fall the batch noise hid.
    """

    schedule: str = "onecycle"
    warm_start: bool | None = None

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; choose from {', '.join(SCHEDULES)}")


@dataclass(frozen=True)
class Suggestion(JsonView):
    """One answer of the rule: the lr to train with, and the cyclic range around it.

    lr             None when the curve gives no answer
    lr_range       (base_lr, max_lr) for a cyclic schedule: from the steepest fall (or max_lr / BASE_FACTOR, if
                   lower) up to the one-cycle max_lr; None without an answer
    method         the rule behind it: "onecycle", "constant" or "finetune" (its distance below the onset, DECADES)
    runs           with several range tests, each one's own lr (None where one gave none); empty for one
    spread_decades the standard deviation of log10 of those lrs (None with fewer than two answers)
    """

    lr: float | None
    lr_range: tuple[float, float] | None
    method: str
    runs: tuple[float | None, ...] = ()
    spread_decades: float | None = None

    def to_json(self) -> dict:
        """The entry result.json's `schedules` holds: {"suggested_lr", "lr_range"}."""
        return {"suggested_lr": self.lr, "lr_range": list(self.lr_range) if self.lr_range is not None else None}

    @classmethod
    def from_json(cls, method: str, doc: dict | None) -> Suggestion:
        """The record of a result.json `schedules` entry (`method` is its key)."""
        doc = doc or {}
        lr_range = doc.get("lr_range")
        return cls(doc.get("suggested_lr"), tuple(lr_range) if lr_range else None, method)


def answer(reading: Reading | None, method: str = "onecycle") -> Suggestion:
    """The rule on one reading: `DECADES[method]` below the onset of divergence (see `Suggestion`).

    No answer when the curve is not readable (`Reading.readable`), when the loss never started to diverge
    (flag no_divergence: the edge of stability is unknown, and no answer is read off the last lr), or when
    the answer lies below the first lr (flag began_past_edge: the sweep began past it).
    """
    if method not in DECADES:
        raise ValueError(f"unknown schedule {method!r}; choose from {', '.join(DECADES)}")
    lr = reading.below_onset(DECADES[method]) if reading is not None and reading.readable else None
    if lr is None:
        return Suggestion(None, None, method)
    top = reading.onset_lr / 10**ONECYCLE_DECADES  # the one-cycle max_lr; never below lr, since no distance is shorter
    steepest = reading.steepest_lr if reading.steepest_lr is not None else top
    low = max(min(steepest, top / BASE_FACTOR), reading.first_lr)
    return Suggestion(lr, (float(low), float(top)), method)


def trained_shape(readings: Readings, context: Context) -> bool:
    """A model the caller says is trained (`context.warm_start` True) whose loss did not fall beyond noise in any
    run, and rose in one: the curve a trained model gives, read for fine-tuning."""
    return context.warm_start is True and not any(r.fell for r in readings.runs) and any(r.readable for r in readings.runs)


def distance(readings: Readings, context: Context) -> float:
    """How many decades below the onset the answer for `context` lies (`rule`)."""
    own = DECADES[context.schedule]
    return max(own, FINETUNE_DECADES) if trained_shape(readings, context) else own


def rule(curves: Reading | Readings, context: Context) -> Suggestion:
    """The learning rate for `context.schedule` from one curve's Reading or several range tests' Readings.

    The schedule's rule (`combine`). For a trained model's flat-then-rising curve (`trained_shape`) it is never
    above the fine-tuning rate, FINETUNE_DECADES below the onset (the highest rate that keeps trained weights):
    under one-cycle that rate is the answer (method "finetune"); a constant rate's own rule lies lower and stays.
    """
    readings = curves if isinstance(curves, Readings) else Readings((curves,))
    own = combine(readings, context.schedule)
    if not trained_shape(readings, context):
        return own
    finetune = combine(readings, "finetune")
    if finetune.lr is None:
        return finetune  # the fine-tuning rate lies below the swept range: no answer (began_past_edge)
    if own.lr is None or own.lr <= finetune.lr:
        return own
    return finetune


def combine(readings: Readings, method: str) -> Suggestion:
    """`answer` over several range tests of the same setup: read on their mean curve (`Readings.mean`).

    When the mean gives no answer (the runs could not be averaged), the log-space median of the runs'
    own answers (and of their ranges) instead. `runs` and `spread_decades` say how far single range
    tests disagree.
    """
    singles = [answer(r, method) for r in readings.runs]
    found = [s for s in singles if s.lr is not None]
    runs = tuple(s.lr for s in singles)
    spread = float(np.std(np.log10([s.lr for s in found]), ddof=1)) if len(found) >= 2 else None
    if not found:
        return Suggestion(None, None, method, runs, None)
    together = answer(readings.rule_reading, method)
    if together.lr is None:  # no mean curve to read: the median of the runs' own answers
        together = Suggestion(log_median([s.lr for s in found]),
                              (log_median([s.lr_range[0] for s in found]), log_median([s.lr_range[1] for s in found])), method)
    return Suggestion(together.lr, together.lr_range, method, runs, spread)


def log_median(values: Sequence[float]) -> float:
    """The median of positive values in log space (the geometric middle of learning rates)."""
    return float(10 ** np.median(np.log10(values)))


def recommend(lrs: Sequence[float], smoothed: Sequence[float], raw: Sequence[float] | None = None,
              schedule: str = "onecycle") -> Suggestion:
    """The rule's answer under `schedule` ("onecycle", "constant" or "finetune") for one curve (`answer` of `read_curve`).

    `lr` is the one-cycle max_lr, 10**ONECYCLE_DECADES below the onset of divergence
    (schedule="onecycle"), the constant lr, 10**CONSTANT_DECADES below it (schedule="constant"), or
    a trained model's fine-tuning lr, 10**FINETUNE_DECADES below it (schedule="finetune"); both lr and
    lr_range stay within the swept lrs. Pass the raw losses whenever you have them: the curve is then
    read on a zero-lag re-smoothing of them, and noise is measured on them. No answer when the curve
    has fewer than RULE_MIN_POINTS finite points or neither fell nor rose beyond batch noise.
    """
    if schedule not in DECADES:
        raise ValueError(f"unknown schedule {schedule!r}; choose from {', '.join(DECADES)}")
    return answer(read_curve(lrs, smoothed, raw), schedule)


def recommend_repeats(curves: Sequence[Curve], schedule: str = "onecycle") -> Suggestion:
    """`recommend` over several range tests of the same setup (e.g. different data order), combined (`combine`).

    Each curve is (lrs, smoothed, raw-or-None).
    """
    return combine(read_repeats(curves), schedule)
