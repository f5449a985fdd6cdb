"""Why a run gave no usable suggestion, and what to try, on one line."""

from __future__ import annotations

import math

from .results import RangeTestResult


def no_suggestion(result: RangeTestResult, precision: str) -> str:
    """Why there is no suggestion, and what to try, on one line."""
    if result.losses and not any(math.isfinite(loss) for loss in result.losses):
        # The sweep stops at the first non-finite loss: here that was step 0, before anything was measured.
        fp = f", or use precision: fp32 instead of {precision}" if precision != "fp32" else ""
        return (f"no usable suggestion: the loss was non-finite ({result.losses[0]}) from the first step, at lr "
                f"{result.lrs[0]:.3g}, so nothing was measured; lower sweep.start_lr, check the data for NaN or infinite "
                f"inputs and for labels the loss cannot take (e.g. out of range), or load a model.checkpoint that is not "
                f"already broken{fp}")
    from .suggest import FLAG_NOTES, NO_ANSWER

    flags = result.confidence.flags
    # the message says what the flag in result.json says (too few points, a rise from the start, no fall, no divergence)
    why = FLAG_NOTES[next((flag for flag in NO_ANSWER if flag in flags), "flat_curve")]
    return f"no usable suggestion after {result.num_steps} steps ({result.stop_reason}): {why}"
