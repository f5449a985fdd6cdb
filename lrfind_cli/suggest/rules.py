"""The schedule-aware rule: `Reading (+ Context) -> Suggestion`, the learning rate to train with read off a curve."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..plan import SCHEDULES, TrainPlan
from . import horizon
from .reading import Curve, Reading, Readings, read_curve, read_repeats

# The rule anchors on the onset of divergence: the first lr after the loss's lowest point at which
# the loss is back above its valley by more than batch noise (`reading.divergence_onset`). That is
# the edge of stability the sweep measured: the lr at which training stops making progress and
# starts to blow up. Training wants a rate some distance below that edge, measured where the loss
# starts rising (zero-lag and noise-gated), which is read more reliably than the bottom of a flat
# valley. How far below depends on the training the answer is for: its schedule (DECADES, for a
# training as long as the range test), the momentum OneCycleLR gives an optimizer set up without any
# (CYCLED_DECADES), and its length (suggest.horizon). Every constant below is fitted on the design
# half of the horizon benchmark (benchmarks/quality/horizon_fit.py: trainings of 100 to 3200 steps under
# each schedule; the distances on a quarter-decade grid, the lowest mean over (schedule, length) of the
# median regret of single range tests) and reported on its test half (docs/suggestion-quality.md).
DECADES = {
    "onecycle": 0.75,  # OneCycleLR's max_lr: its warm-up and annealing make the top of a cycle safe
    "constant": 1.25,  # a rate held for the whole run stays further from the edge (Smith's base_lr: max_lr / 3 to / 4)
    "cosine": 0.75,  # the warm-up + cosine peak: a short top, then a long decay
    "wsd": 1.0,  # the warm-up-stable-decay plateau: held for most of the run, as a constant rate is, then decayed
    # A trained model's rate (fine-tuning: flat, then rising) = onset / 10: the highest rate that keeps the trained
    # weights, a decade below where the loss starts to rise (shared/cases/17: 10x higher damages them). Not fitted
    # on the benchmark, whose models all start untrained; a bound, not moved by the length law (`rule`).
    "finetune": 1.0,
}
ONECYCLE_DECADES, CONSTANT_DECADES, FINETUNE_DECADES = DECADES["onecycle"], DECADES["constant"], DECADES["finetune"]
CONSTANT_FACTOR = 10 ** (CONSTANT_DECADES - ONECYCLE_DECADES)  # one-cycle max_lr over the constant lr
# OneCycleLR's cycle_momentum (on by default) writes momentum 0.95 -> 0.85 -> 0.95 into SGD or RMSprop set up with
# none: at the peak each step moves about 1 / (1 - 0.85) = 6.7 times as far (0.82 decades), so the max_lr for that
# training is lower than the sweep, run without momentum, shows. Fitted on the design half's plain SGD and RMSprop
# tasks, trained both ways.
CYCLED_DECADES = 0.75
BASE_FACTOR = 3.0  # lr_range's low end: Smith's base_lr = max_lr / 3 to / 4 (arXiv 1506.01186), unless the steepest fall is lower
SCHEDULE_NAMES = {"onecycle": "one-cycle max_lr", "cosine": "warm-up + cosine peak lr", "constant": "constant lr",  # for people
                  "wsd": "warm-up-stable-decay plateau lr", "finetune": "fine-tuning lr", "verify": "verified lr"}


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
    """What the answer is for, beyond the curve.

    schedule       the schedule the training runs (SCHEDULES)
    warm_start     True when the model holds trained weights (a flat-then-rising curve is then a trained model's, and
                   the answer is never above the fine-tuning rate); False or None (nobody said) when it starts
                   untrained, and such a curve is an untrained model's whose fall the batch noise hid
    plan           the training's length, passes over the data and momentum cycling (lrfind_cli.plan.TrainPlan); its
                   schedule is ignored here (`schedule` is the one answered). None, or no steps: horizon.DEFAULT_STEPS
    momentum_free  the optimizer has a momentum and was set up at 0 (plain SGD, RMSprop): OneCycleLR's cycling gives
                   it one, so a one-cycle answer with plan.cycle_momentum lies CYCLED_DECADES lower
    """

    schedule: str = "onecycle"
    warm_start: bool | None = None
    plan: TrainPlan | None = None
    momentum_free: bool = False

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; choose from {', '.join(SCHEDULES)}")

    @property
    def steps(self) -> int:
        """The planned length in optimizer steps (horizon.DEFAULT_STEPS when the plan gives none)."""
        return self.plan.steps if self.plan is not None and self.plan.steps is not None else horizon.DEFAULT_STEPS

    @property
    def assumed(self) -> bool:
        """True when the length is horizon.DEFAULT_STEPS because the plan gave none."""
        return self.plan is None or self.plan.steps is None

    @property
    def steps_per_pass(self) -> float | None:
        """Optimizer steps in one pass over the data (None: a stream, or no plan)."""
        return self.plan.steps_per_pass if self.plan is not None else None

    def cycled(self, method: str) -> bool:
        """Whether `method`'s training gets momentum it was not swept with (one-cycle with cycle_momentum)."""
        return method == "onecycle" and self.momentum_free and (self.plan is None or self.plan.cycle_momentum)

    def extra_decades(self, method: str) -> float:
        """Decades below the answer for a range-test-long training (DECADES) that this training's answer lies:
        the length law and, for cycled one-cycle, CYCLED_DECADES. 0 for fine-tuning: its rate is the highest that
        keeps trained weights, a bound on the answer whatever the length (`rule`)."""
        if method == "finetune":
            return 0.0
        return horizon.length_decades(self.steps, self.steps_per_pass) + (CYCLED_DECADES if self.cycled(method) else 0.0)

    def per_decade(self) -> float:
        """How far log10 of the answer moves per decade of planned steps, at this length (horizon.slope)."""
        return horizon.slope(self.steps, self.steps_per_pass)


@dataclass(frozen=True)
class Suggestion(JsonView):
    """One answer of the rule: the lr to train with, and the cyclic range around it.

    lr             None when the curve gives no answer
    lr_range       (base_lr, max_lr) for one-cycle, a cyclic schedule: from the steepest fall (or max_lr / BASE_FACTOR,
                   if lower) up to max_lr; None for other schedules and without an answer
    method         the rule behind it: a schedule of SCHEDULES or "finetune" (its distance below the onset, DECADES)
    runs           with several range tests, each one's own lr (None where one gave none); empty for one
    spread_decades the standard deviation of log10 of those lrs (None with fewer than two answers)
    steps          the training length (optimizer steps) the answer is for; None for fine-tuning's bound (no length law)
    per_decade     how far log10(lr) moves per decade of that length (negative: longer wants lower); None with steps
    """

    lr: float | None
    lr_range: tuple[float, float] | None
    method: str
    runs: tuple[float | None, ...] = ()
    spread_decades: float | None = None
    steps: int | None = None
    per_decade: float | None = None

    def to_json(self) -> dict:
        """The entry result.json's `schedules` holds: {"suggested_lr", "lr_range", "steps", "per_decade_of_steps"}."""
        return {"suggested_lr": self.lr, "lr_range": list(self.lr_range) if self.lr_range is not None else None,
                "steps": self.steps, "per_decade_of_steps": self.per_decade}

    @classmethod
    def from_json(cls, method: str, doc: dict | None) -> Suggestion:
        """The record of a result.json `schedules` entry (`method` is its key)."""
        doc = doc or {}
        lr_range = doc.get("lr_range")
        return cls(doc.get("suggested_lr"), tuple(lr_range) if lr_range else None, method, steps=doc.get("steps"),
                   per_decade=doc.get("per_decade_of_steps"))


def answer(reading: Reading | None, method: str = "onecycle", context: Context | None = None) -> Suggestion:
    """The rule on one reading: `DECADES[method]` below the onset of divergence, then `context.extra_decades(method)`
    lower for the training it is for (default Context(): horizon.DEFAULT_STEPS, no passes known).

    No answer when the curve is not readable (`Reading.readable`), when the loss never started to diverge
    (flag no_divergence: the edge of stability is unknown, and no answer is read off the last lr), or when
    the answer for a range-test-long training lies below the first lr (flag began_past_edge: the sweep began
    past it). The length law may take the answer for a long training below the swept range: that part is
    not read off the curve. lr_range, for one-cycle only (a cyclic schedule): base_lr .. max_lr.
    """
    if method not in DECADES:
        raise ValueError(f"unknown schedule {method!r}; choose from {', '.join(DECADES)}")
    context = context if context is not None else Context()
    lr = _for_training(reading, method, context) if reading is not None and reading.readable else None
    if lr is None:
        return Suggestion(None, None, method)
    steps, per_decade = (None, None) if method == "finetune" else (context.steps, context.per_decade())
    if method != "onecycle":
        return Suggestion(float(lr), None, method, steps=steps, per_decade=per_decade)  # lr_range: cyclic schedules only
    steepest = reading.steepest_lr if reading.steepest_lr is not None else lr
    low = min(max(min(steepest, lr / BASE_FACTOR), reading.first_lr), lr)
    return Suggestion(float(lr), (float(low), float(lr)), method, steps=steps, per_decade=per_decade)


def _for_training(reading: Reading, method: str, context: Context) -> float | None:
    """DECADES[method] below the onset (None past the swept range's start: began_past_edge), then the training's own
    extra decades lower."""
    short = reading.below_onset(DECADES[method])
    return None if short is None else short / 10 ** context.extra_decades(method)


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

    The schedule's rule for the planned training (`combine`). For a trained model's flat-then-rising curve
    (`trained_shape`) it is never above the fine-tuning rate, FINETUNE_DECADES below the onset (the highest rate
    that keeps trained weights, whatever the length): where the schedule's own answer is not lower, that rate is
    the answer (method "finetune"); a lower one (a constant rate, a longer training) stays.
    """
    readings = curves if isinstance(curves, Readings) else Readings((curves,))
    own = combine(readings, context.schedule, context)
    if not trained_shape(readings, context):
        return own
    finetune = combine(readings, "finetune", context)
    if finetune.lr is None:
        return finetune  # the fine-tuning rate lies below the swept range: no answer (began_past_edge)
    if own.lr is None or own.lr < finetune.lr * (1 - 1e-12):  # the schedule's own rule when it lies lower
        return own
    return finetune


def combine(readings: Readings, method: str, context: Context | None = None) -> Suggestion:
    """`answer` over several range tests of the same setup: read on their mean curve (`Readings.mean`).

    When the mean gives no answer (the runs could not be averaged), the log-space median of the runs'
    own answers (and of their ranges) instead. `runs` and `spread_decades` say how far single range
    tests disagree.
    """
    singles = [answer(r, method, context) for r in readings.runs]
    found = [s for s in singles if s.lr is not None]
    runs = tuple(s.lr for s in singles)
    spread = float(np.std(np.log10([s.lr for s in found]), ddof=1)) if len(found) >= 2 else None
    if not found:
        return Suggestion(None, None, method, runs, None)
    together = answer(readings.rule_reading, method, context)
    if together.lr is None:  # no mean curve to read: the median of the runs' own answers
        ranges = [s.lr_range for s in found if s.lr_range is not None]
        together = Suggestion(log_median([s.lr for s in found]),
                              (log_median([r[0] for r in ranges]), log_median([r[1] for r in ranges])) if ranges else None, method,
                              steps=found[0].steps, per_decade=found[0].per_decade)
    return Suggestion(together.lr, together.lr_range, method, runs, spread, together.steps, together.per_decade)


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
