"""How the learning rate to train with moves with the length of the training: the length law.

The rule's distances below the onset of divergence (`rules.DECADES`) place the answer for a training as
long as the range test (SWEEP_STEPS optimizer steps). A longer training wants a lower rate, for two
reasons the horizon benchmark (benchmarks/horizon_quality.py) separates:

- more steps on data it has not seen: the noise of a high rate costs more over a long run than the
  faster start gains (Bjorck et al., ICLR 2025, arXiv 2409.19913: lr* ~ D^-beta; Schaipp et al., ICML 2025,
  arXiv 2501.18965); FRESH_SLOPE decades of lr per decade of steps;
- many passes over a fixed set: once the run has seen its data REPEAT_PASSES times, a lower rate is what
  keeps it from fitting the noise of the training set, and the best rate falls about as fast as the
  length grows (lr x steps nearly constant: REPEAT_SLOPE decades per decade).

So the answer for a run of `steps` steps sits `length_decades(steps, steps_per_pass)` decades below the
one for SWEEP_STEPS: a line in log(steps) with slope FRESH_SLOPE up to the step where the run has seen
its data REPEAT_PASSES times, and REPEAT_SLOPE beyond it. Without a length (`steps` None) the rule
assumes DEFAULT_STEPS and says so. The three constants are fitted on the design half of the horizon
benchmark (benchmarks/quality/horizon_fit.py: 100 to 3200 steps, fixed and fresh data) and reported on
its test half; their values and uncertainty are in docs/suggestion-quality.md.
"""

from __future__ import annotations

import math

SWEEP_STEPS = 100  # the training length the schedule distances are fitted for: the range test's own (num_iter's default)
DEFAULT_STEPS = 1000  # the length assumed when the plan gives none: ten range tests, inside the benchmark's 100-3200
FRESH_SLOPE = 0.1  # decades of lr per decade of steps while the run sees data it has seen fewer than REPEAT_PASSES times
REPEAT_SLOPE = 1.0  # decades of lr per decade of steps beyond that
REPEAT_PASSES = 5.0  # passes over a fixed training set after which the second slope applies


def length_decades(steps: float, steps_per_pass: float | None, fresh_slope: float = FRESH_SLOPE,
                   repeat_slope: float = REPEAT_SLOPE, repeat_passes: float = REPEAT_PASSES) -> float:
    """Decades below the answer for a SWEEP_STEPS-step training at which the answer for `steps` steps lies.

    `steps_per_pass`: optimizer steps in one pass over the training data (None for a stream: never repeated).
    Negative for a training shorter than the range test. Raises ValueError for steps or steps_per_pass <= 0.
    """
    if not steps > 0:
        raise ValueError(f"steps must be positive, got {steps}")
    if steps_per_pass is not None and not steps_per_pass > 0:
        raise ValueError(f"steps_per_pass must be positive, got {steps_per_pass}")
    kink = math.inf if steps_per_pass is None else math.log10(repeat_passes * steps_per_pass)

    def g(u: float) -> float:
        return fresh_slope * min(u, kink) + repeat_slope * max(u - kink, 0.0)

    return g(math.log10(steps)) - g(math.log10(SWEEP_STEPS))


def slope(steps: float, steps_per_pass: float | None) -> float:
    """How far the answer moves per decade of length at `steps`: -(decades of lr per decade of steps)."""
    repeating = steps_per_pass is not None and steps >= REPEAT_PASSES * steps_per_pass
    return -(REPEAT_SLOPE if repeating else FRESH_SLOPE)
