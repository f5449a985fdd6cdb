"""Suggestions: which learning rate a range-test curve points to, and how far to trust it.

Pure functions over arrays (numpy only), in four layers:
  curve       finite prefix, batch noise, zero-lag smoothing, landmarks, the noise gate
  classic     the classic methods (steepest, valley, minimum/10)
  rules       the schedule-aware rule (`recommend`, `recommend_repeats`), anchored on the onset of divergence
  confidence  flags and notes;  summary: everything a result reports (`summarize`)
"""

from .classic import METHODS, choose, minimum, steepest, suggest_all, valley
from .confidence import FLAG_NOTES, LOW_CONFIDENCE, NOISY_MARGIN, SPREAD_WARNING, confidence
from .curve import MIN_POINTS, RULE_MIN_POINTS, curve_shape, finite_prefix, noise_level, zero_lag
from .rules import (
    BASE_FACTOR,
    CONSTANT_DECADES,
    CONSTANT_FACTOR,
    FINETUNE_DECADES,
    KNEE_FRACTION,
    ONECYCLE_DECADES,
    RISE_FRACTION,
    SCHEDULE_NAMES,
    SCHEDULES,
    Curve,
    log_median,
    mean_curve,
    recommend,
    recommend_repeats,
)
from .summary import listed, summarize

__all__ = [
    "BASE_FACTOR", "CONSTANT_DECADES", "CONSTANT_FACTOR", "Curve", "FINETUNE_DECADES", "FLAG_NOTES", "KNEE_FRACTION",
    "LOW_CONFIDENCE", "METHODS", "MIN_POINTS", "NOISY_MARGIN", "ONECYCLE_DECADES", "RISE_FRACTION", "RULE_MIN_POINTS",
    "SCHEDULES", "SCHEDULE_NAMES", "SPREAD_WARNING", "choose", "confidence", "curve_shape", "finite_prefix",
    "log_median", "mean_curve", "minimum", "noise_level", "recommend", "recommend_repeats", "steepest", "suggest_all",
    "listed", "summarize", "valley", "zero_lag",
]
