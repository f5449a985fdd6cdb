"""How far to trust a recommendation: flags for curves that are short, flat, noisy, unfinished or past divergence."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .curve import RULE_MIN_POINTS, around, head_size, level_change, window_half_width
from .reading import Reading, Readings
from .rules import Context, JsonView, distance

# a fall that passes the noise gate (`curve.level_change`) by less than this factor makes a curve `noisy`
NOISY_MARGIN = 2.0
SPREAD_WARNING = 0.5  # decades (a factor of about 3): repeats disagreeing more make the result `unstable`
FLAG_NOTES = {  # what each flag means for the user, and what to try
    "too_few_points": f"fewer than {RULE_MIN_POINTS} finite losses were measured, too few to place a learning rate; "
                      "raise sweep.num_iter (or lower sweep.start_lr if the loss became non-finite early)",
    "flat_curve": "the loss never fell by more than batch noise allows; widen sweep.start_lr..sweep.end_lr, "
                  "raise sweep.num_iter or data.batch_size",
    "began_past_edge": "the loss rose from the start of the sweep, or started to diverge too close to sweep.start_lr "
                       "for the answer to lie in the swept range: the sweep began past the learning rate to use, and "
                       "no answer is read off its first point; lower sweep.start_lr",
    "no_divergence": "the loss never started to rise after its minimum, even past sweep.end_lr, so the edge of "
                     "stability is unknown and no answer is read off the last learning rate; raise sweep.end_lr",
    "noisy": "batch-to-batch noise is large against the fall of the loss; raise data.batch_size or sweep.num_iter, "
             "or sweep.repeats (a model that starts from trained weights: say so with model.trained: true)",
    "unstable": f"repeats disagree by more than {SPREAD_WARNING} decades; raise sweep.num_iter or sweep.repeats",
    "pretrained": "the model starts trained and its loss did not fall beyond batch noise before it rose, as a trained "
                  "model's does: suggested_lr is read from where the loss starts to rise and is never above the "
                  "fine-tuning rate a decade below it (method finetune where the schedule's own answer for the planned "
                  "training is higher; where it is lower, as for a constant rate or a long training, it stays); "
                  "suggest.method: onecycle gives the one-cycle rule's rate instead",
    "blew_up": "the loss ended well above its best without reaching the stop threshold: the sweep went past the "
               "divergence point (lower sweep.diverge_threshold to stop sooner)",
    "extended": "the loss had not started to diverge by sweep.end_lr, so the sweep went on past it at the same rate "
                "(sweep.extended_steps in result.json; at most 2 decades or sweep.num_iter more steps); raise "
                "sweep.end_lr to sweep that range as planned",
    "interrupted": "the sweep was interrupted: a partial curve gives no suggestion (its history is kept); run it to "
                   "the end",
    "skipped_steps": "the GradScaler (fp16) skipped {count} steps (inf/NaN gradients: the optimizer did not step, so their "
                     "lr was never applied); they are marked in history.skipped and left out of the suggestion",
}
# flags that say there is no answer, or that it may be wrong; the others describe the curve
LOW_CONFIDENCE = ("too_few_points", "flat_curve", "began_past_edge", "no_divergence", "noisy", "unstable", "interrupted")
# the flags of a curve that gives no answer, in the order diagnosis.no_suggestion explains them
NO_ANSWER = ("interrupted", "too_few_points", "began_past_edge", "flat_curve", "no_divergence")


@dataclass(frozen=True)
class Confidence(JsonView):
    """How far to trust a recommendation: the repeats' spread and the flags their curves show (see `confidence`)."""

    spread_decades: float | None = None
    flags: tuple[str, ...] = ()
    repeats: int = 1
    skipped_steps: int = 0  # steps the GradScaler skipped (flag skipped_steps, set by the engine), counted in its note

    @property
    def notes(self) -> list[str]:
        """What each flag means and what to try (FLAG_NOTES), in the flags' order."""
        return [FLAG_NOTES[f].format(count=self.skipped_steps) if f == "skipped_steps" else FLAG_NOTES[f] for f in self.flags]

    @property
    def low(self) -> list[str]:
        """The flags that say the answer may be wrong (LOW_CONFIDENCE)."""
        return [f for f in self.flags if f in LOW_CONFIDENCE]

    def to_json(self) -> dict:
        """result.json's `confidence` block: {"spread_decades", "flags", "notes", "repeats"}, and "skipped_steps" when some were."""
        doc = {"spread_decades": self.spread_decades, "flags": list(self.flags), "notes": self.notes, "repeats": self.repeats}
        return doc | ({"skipped_steps": self.skipped_steps} if self.skipped_steps else {})

    @classmethod
    def from_json(cls, doc: dict | None) -> Confidence:
        """The record of a result.json `confidence` block (missing keys take their defaults)."""
        doc = doc or {}
        return cls(doc.get("spread_decades"), tuple(doc.get("flags") or ()), doc.get("repeats") or 1, doc.get("skipped_steps") or 0)


def ended_high(reading: Reading) -> float | None:
    """The loss at the end over its best, when the curve ended well above its best; else None.

    "Well above": the level of the last points is back above where the curve started, or at more
    than twice its best (positive losses), and the rise from the lowest window to the last one
    passes `level_change`. (inf for a best at or below zero.)
    """
    y, n = reading.y, reading.n
    best, start = reading.lowest, float(np.median(y[: head_size(n)]))
    rise = level_change(y, around(n - 1, n), -1, reference=reading.bottom, sigma=reading.sigma)
    end = float(np.median(y[max(0, n - 1 - window_half_width(n)) :]))
    high = end >= start or (best > 0 and end >= 2.0 * best)
    if not (high and rise.significant):
        return None
    return end / best if best > 0 else math.inf


def curve_flags(reading: Reading, decades: float, status: str | None = None, warm_start: bool | None = None,
                end_lr: float | None = None) -> set[str]:
    """The flags one curve shows (see `confidence`), for an answer `decades` below the onset of divergence;
    `status` is the sweep's, `warm_start` the model's and `end_lr` the sweep's planned end, when known."""
    if reading.too_short:
        return {"too_few_points"}
    flags: set[str] = set()
    if status == "completed" and reading.from_raw and ended_high(reading) is not None:
        flags.add("blew_up")
    if end_lr is not None and reading.last_lr > end_lr * (1 + 1e-9):
        flags.add("extended")
    if reading.rises_early:
        return flags | {"began_past_edge"}
    if not reading.readable:
        return flags | {"flat_curve"}
    if not reading.fell:
        # flat, then rising: a trained model's curve, or an untrained one's whose fall the noise hid
        flags.add("pretrained" if warm_start is True else "noisy")
    elif reading.fall.change < NOISY_MARGIN * reading.fall.needed:
        flags.add("noisy")
    if reading.onset is None:
        flags.add("no_divergence")
    elif reading.below_onset(decades) is None:
        flags.add("began_past_edge")
    return flags


def confidence(readings: Readings, context: Context, spread_decades: float | None,
               statuses: Sequence[str | None] | None = None, end_lr: float | None = None) -> Confidence:
    """How far to trust the recommendation for `context` from one or several range tests of the same setup.

    `spread_decades` is the standard deviation of log10 of the per-run answers (`Suggestion.spread_decades`;
    None with fewer than two); `statuses` the sweeps' statuses and `end_lr` their planned end, when known.
    Flags (sorted, each at most once; a flag applies when any run shows it):
      too_few_points  fewer than RULE_MIN_POINTS finite losses (no answer)
      flat_curve      the loss neither fell nor rose beyond batch noise (no answer)
      began_past_edge the loss rose from the start (no flat stretch before the rise), or the answer would lie
                      below the first lr: the sweep began past the edge (no answer; lower start_lr)
      no_divergence   the loss never rose beyond noise after its minimum, so the edge of stability is
                      unknown (no answer; raise end_lr)
      pretrained      a model said to be trained (`context.warm_start`) whose loss did not fall beyond noise,
                      but rose: read for fine-tuning; `noisy` instead for any other model (its fall was hidden)
      noisy           the fall passes the noise gate by less than NOISY_MARGIN times what it needs
      unstable        the repeats' recommendations spread more than SPREAD_WARNING decades
      blew_up         a sweep that completed (the stop rule never fired) ended well above its best (`ended_high`)
      extended        the curve goes on past end_lr: the sweep had not diverged there and went on
    """
    statuses = list(statuses) if statuses is not None else [None] * len(readings.runs)
    decades = distance(readings, context)
    flags: set[str] = set()
    for reading, status in zip(readings.runs, statuses):
        flags |= curve_flags(reading, decades, status, context.warm_start, end_lr)
    if spread_decades is not None and spread_decades > SPREAD_WARNING:
        flags.add("unstable")
    return Confidence(spread_decades, tuple(sorted(flags)), len(readings.runs))


def withheld(repeats: int = 1) -> Confidence:
    """The Confidence of an interrupted sweep, which gives no suggestion: the flag `interrupted` alone."""
    return Confidence(None, ("interrupted",), repeats)
