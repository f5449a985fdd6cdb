"""How far to trust a recommendation: flags for curves that are short, flat, noisy, unfinished or past divergence."""

from __future__ import annotations

from collections.abc import Sequence

from .curve import RULE_MIN_POINTS, ended_high, finite_prefix, read
from .rules import Curve, recommend_repeats, shape_of

# a fall that passes the noise gate (`curve.level_change`) by less than this factor makes a curve `noisy`
NOISY_MARGIN = 2.0
SPREAD_WARNING = 0.5  # decades (a factor of about 3): repeats disagreeing more make the result `unstable`
FLAG_NOTES = {  # what each flag means for the user, and what to try
    "too_few_points": f"fewer than {RULE_MIN_POINTS} finite losses were measured, too few to place a learning rate; "
                      "raise sweep.num_iter (or lower sweep.start_lr if the loss became non-finite early)",
    "flat_curve": "the loss never fell by more than batch noise allows; widen sweep.start_lr..sweep.end_lr, "
                  "raise sweep.num_iter or data.batch_size",
    "no_divergence": "the loss never rose after its minimum, so the top of the good range is unknown; raise sweep.end_lr",
    "noisy": "batch-to-batch noise is large against the fall of the loss; raise data.batch_size or sweep.num_iter, "
             "or sweep.repeats",
    "unstable": f"repeats disagree by more than {SPREAD_WARNING} decades; raise sweep.num_iter or sweep.repeats",
    "pretrained": "the loss did not fall beyond batch noise before it rose, as a trained model's does: suggested_lr "
                  "(method finetune) is read from where it starts to rise; for a model that is not trained, the sweep "
                  "was too short or too noisy for it to learn: raise sweep.num_iter or data.batch_size",
    "blew_up": "the loss ended well above its best without reaching the stop threshold: the sweep went past the "
               "divergence point (lower sweep.diverge_threshold to stop sooner)",
}
# flags that say the answer may be wrong; the others describe the curve
LOW_CONFIDENCE = ("too_few_points", "flat_curve", "no_divergence", "noisy", "unstable")


def curve_flags(lrs: Sequence[float], smoothed: Sequence[float], raw: Sequence[float] | None, status: str | None = None,
                warm_start: bool | None = None) -> set[str]:
    """The flags one curve shows (see `confidence`); `status` is the sweep's and `warm_start` the model's, when known."""
    source = raw if raw is not None else smoothed
    if len(finite_prefix(lrs, source)[1]) < RULE_MIN_POINTS:
        return {"too_few_points"}
    flags: set[str] = set()
    if status == "completed" and raw is not None and ended_high(read(lrs, raw)) is not None:
        flags.add("blew_up")
    shape = shape_of(lrs, smoothed, raw)
    if shape is None:
        return flags | {"flat_curve"}
    if not shape["fell"]:
        # flat, then rising: a trained model's curve, or an untrained one's whose fall the noise hid
        flags.add("noisy" if warm_start is False else "pretrained")
    elif shape["fall"].change < NOISY_MARGIN * shape["fall"].needed:
        flags.add("noisy")
    if shape["onset"] is None:
        flags.add("no_divergence")
    return flags


def confidence(curves: Sequence[Curve], schedule: str = "onecycle", combined: dict | None = None,
               statuses: Sequence[str] | None = None, warm_start: bool | None = None) -> dict:
    """How far to trust the recommendation from one or several range tests of the same setup.

    Each curve is (lrs, smoothed, raw-or-None); `statuses` the sweeps' statuses, when known. Returns
    {"spread_decades": float | None, "flags": [...], "notes": [...], "repeats": int}:
    spread_decades is the standard deviation of log10 of the per-run `recommend` lrs (None with
    fewer than two answers). Flags (sorted, each at most once; a flag applies when any run shows it):
      too_few_points  fewer than RULE_MIN_POINTS finite losses
      flat_curve      the loss neither fell nor rose beyond batch noise (no recommendation)
      pretrained      the loss did not fall beyond noise, but rose: a trained model's curve (method finetune);
                      `noisy` instead when `warm_start` is False (the model started untrained)
      no_divergence   the loss never rose beyond noise after its minimum before the sweep ended, so
                      the edge of stability is unknown: try a larger end_lr
      noisy           the fall passes the noise gate by less than NOISY_MARGIN times what it needs
      unstable        the repeats' recommendations spread more than SPREAD_WARNING decades
      blew_up         a sweep that completed (the stop rule never fired) ended well above its best
                      (`curve.ended_high`)
    `notes` explains each flag, with what to try (FLAG_NOTES). `combined` is `recommend_repeats`'s
    answer for these curves, when the caller has it already.
    """
    statuses = list(statuses) if statuses is not None else [None] * len(curves)
    flags: set[str] = set()
    for (lrs, smoothed, raw), status in zip(curves, statuses):
        flags |= curve_flags(lrs, smoothed, raw, status, warm_start)
    spread = (combined or recommend_repeats(curves, schedule))["spread_decades"]
    if spread is not None and spread > SPREAD_WARNING:
        flags.add("unstable")
    ordered = sorted(flags)
    return {"spread_decades": spread, "flags": ordered, "notes": [FLAG_NOTES[f] for f in ordered], "repeats": len(curves)}
