"""Several range tests of one setup (sweep.repeats), combined into one result."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from .plan import TrainPlan
from .results import RangeTestResult, Repeat
from .suggest import summarize

_STATUS_ORDER = ("interrupted", "diverged", "completed")  # the combined status is the first of these any run has


def combine(runs: Sequence[tuple[int, RangeTestResult]], method: str, schedule: str,
            warm_start: bool | None = None, plan: TrainPlan | None = None, momentum_free: bool = False) -> RangeTestResult:
    """One result from several range tests (each with its data-order seed) that differ only in data order.

    The suggestions, lr_range and confidence come from the finished runs' curves together
    (`suggest.summarize`: the schedule-aware rule reads their step-by-step mean curve, and `confidence`
    measures the spread of the per-run answers); the history and best point shown on top are the
    first run's, the stop reason names every run's, and `repeats` keeps every run. With one run, that run is returned unchanged.
    `warm_start` is the model's, `plan` and `momentum_free` the planned training's (see `suggest.summarize`). When a
    repeat was interrupted the result is too, and has no suggestion (`RangeTestResult.withdrawn`).
    """
    if not runs:
        raise ValueError("combine needs at least one range test")
    if len(runs) == 1:
        return runs[0][1]
    results = [r for _, r in runs]
    # an interrupted repeat's curve stops wherever the interrupt came: judged as a whole curve it
    # would look flat or undiverged, so it counts only when no repeat finished
    finished = [r for r in results if r.status != "interrupted"] or results
    summary = summarize([r.measured_curve for r in finished], method, schedule, [r.status for r in finished], warm_start,
                        results[0].end_lr, plan, momentum_free)
    first = results[0]
    status = next(s for s in _STATUS_ORDER if any(r.status == s for r in results))
    stops = "; ".join(f"repeat {i + 1}: {r.stop_reason}" for i, r in enumerate(results))
    combined = dataclasses.replace(
        first,
        status=status,
        stop_reason=stops,
        **summary.fields(),  # suggestions, method, suggested_lr, schedule, lr_range, schedules, confidence, zero_lag
        duration_s=sum(r.duration_s for r in results),
        repeats=[Repeat(seed, r) for seed, r in runs],
        memory=results[-1].memory,  # the peaks so far: the last repeat's
        extra=dict(first.extra),
    )
    if status == "interrupted":
        return combined.withdrawn()  # a partial set of repeats gives no answer
    combined.note_skipped()
    return combined
