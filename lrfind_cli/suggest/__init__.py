"""Suggestions: which learning rate a range-test curve points to, and how far to trust it.

Pure functions over arrays (numpy only), in layers:
  curve       the numerics: finite prefix, batch noise, zero-lag smoothing, level changes against noise
  reading     a curve read once (`read_curve` -> `Reading`; several range tests: `read_repeats` -> `Readings`)
  classic     the classic methods (steepest, valley, minimum/10)
  rules       the schedule-aware rule: `rule(Reading(s), Context) -> Suggestion`, anchored on the onset of divergence
  confidence  flags and notes (`Confidence`);  summary: everything a result reports (`summarize` -> `Summary`)
"""

from .classic import METHODS, choose, minimum, steepest, suggest_all, valley
from .confidence import (
    FLAG_NOTES,
    LOW_CONFIDENCE,
    NO_ANSWER,
    NOISY_MARGIN,
    SPREAD_WARNING,
    Confidence,
    confidence,
    curve_flags,
    withheld,
)
from .curve import MIN_POINTS, RULE_MIN_POINTS, finite_prefix, noise_level, zero_lag
from .reading import KNEE_FRACTION, Curve, Landmarks, Reading, Readings, mean_curve, read_curve, read_repeats
from .rules import (
    BASE_FACTOR,
    CONSTANT_DECADES,
    CONSTANT_FACTOR,
    FINETUNE_DECADES,
    ONECYCLE_DECADES,
    SCHEDULE_NAMES,
    SCHEDULES,
    Context,
    Suggestion,
    answer,
    combine,
    log_median,
    recommend,
    recommend_repeats,
    rule,
)
from .summary import Summary, listed, lowest, summarize

__all__ = [
    "BASE_FACTOR", "CONSTANT_DECADES", "CONSTANT_FACTOR", "Confidence", "Context", "Curve", "FINETUNE_DECADES",
    "FLAG_NOTES", "KNEE_FRACTION", "LOW_CONFIDENCE", "Landmarks", "METHODS", "MIN_POINTS", "NOISY_MARGIN", "NO_ANSWER",
    "ONECYCLE_DECADES", "RULE_MIN_POINTS", "Reading", "Readings", "SCHEDULES", "SCHEDULE_NAMES", "SPREAD_WARNING",
    "Suggestion", "Summary", "answer", "choose", "combine", "confidence", "curve_flags", "finite_prefix", "listed",
    "log_median", "lowest", "mean_curve", "minimum", "noise_level", "read_curve", "read_repeats", "recommend",
    "recommend_repeats", "rule", "steepest", "suggest_all", "summarize", "valley", "withheld", "zero_lag",
]
