"""The suggestion methods the benchmark scores: the classic finders' rules, lrfind's older ones, and schedule-aware rules.

Two kinds, both pure functions of one range-test curve (lrs, smoothed, raw losses; None for a missing loss):

- a *method* `(lrs, smoothed, raw) -> lr | None` gives one lr, scored under both training protocols;
- a *rule* `(lrs, smoothed, raw, schedule) -> lr | None` gives the lr for `schedule` ("constant" or
  "onecycle") and is scored under that protocol.

To score a new rule, add one line to RULES (or pass `--rule module:function` to suggestion_quality.py).
A rule may carry `.combine(curves, schedule) -> lr | None` for several range tests of a task (what
`sweep.repeats` does); without one, it is applied to the step-by-step mean curve.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from lrfind_cli import suggest

Method = Callable[..., "float | None"]
Rule = Callable[..., "float | None"]


def arr(values) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def tlf_steepest(lrs, smoothed, raw):
    """torch-lr-finder: EMA f=0.05 of raw losses, np.gradient BY INDEX over [10:-5], argmin."""
    y = arr(raw)
    s = np.empty_like(y)
    for i, v in enumerate(y):
        s[i] = v if i == 0 else 0.05 * v + 0.95 * s[i - 1]
    x = np.asarray(lrs, dtype=float)[10:-5]
    s = s[10:-5]
    if len(s) < 2 or not np.isfinite(s).any():
        return None
    g = np.gradient(s)
    g[~np.isfinite(g)] = np.inf
    return float(x[int(np.argmin(g))])


def lightning(lrs, smoothed, raw):
    """Lightning: gradient with respect to the (linear) lr over [10:-1], finite values only, argmin."""
    x, y = np.asarray(lrs, dtype=float)[10:-1], arr(smoothed)[10:-1]
    keep = np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(y) < 2:
        return None
    return float(x[int(np.argmin(np.gradient(y, x)))])


def _fastai_window(lrs, smoothed, num_it: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """What fastai's lr_find hands its suggestion functions: the recorded (smoothed) losses without the first
    num_it // 10 and the last 5 points, cut at the first NaN. It never refuses a curve."""
    x = np.asarray(lrs, dtype=float)[num_it // 10 : -5]
    y = arr(smoothed)[num_it // 10 : -5]
    bad = ~np.isfinite(y)
    if bad.any():
        x, y = x[: int(np.argmax(bad))], y[: int(np.argmax(bad))]
    return x, y


def fastai_valley(lrs, smoothed, raw):
    """fastai's `valley`: a third plus a sixth of the way into the longest decreasing subsequence of the window."""
    x, y = _fastai_window(lrs, smoothed)
    n = len(y)
    if n < 2:
        return None
    length = np.ones(n, dtype=int)
    for i in range(1, n):
        earlier = y[:i] > y[i]
        if earlier.any():
            length[i] = length[:i][earlier].max() + 1
    end = int(np.argmax(length))  # the first point with the longest run, as fastai's loop finds it
    start = end - int(length[end])
    sections = (end - start) / 3
    return float(x[max(start + int(sections) + int(sections / 2), 0)])


def fastai_minimum(lrs, smoothed, raw):
    """fastai's `minimum`: a tenth of the lr at the lowest smoothed loss of the window."""
    x, y = _fastai_window(lrs, smoothed)
    return float(x[int(np.argmin(y))] / 10.0) if len(y) else None


def lrfind_steepest(lrs, smoothed, raw):
    return suggest.steepest(lrs, arr(smoothed), suggest.noise_level(arr(raw)))


def lrfind_auto(lrs, smoothed, raw):
    return suggest.choose("auto", suggest.suggest_all(lrs, arr(smoothed), arr(raw)))[1]


METHODS: dict[str, Method] = {
    "torch-lr-finder steepest (index)": tlf_steepest,
    "lightning steepest (d/d lr)": lightning,
    "fastai valley": fastai_valley,
    "fastai minimum/10": fastai_minimum,
    "lrfind steepest (log lr)": lrfind_steepest,
    "lrfind 0.1 auto (median of steepest, valley, minimum)": lrfind_auto,
}
# the existing finders' methods, the ones a new rule has to beat (lrfind's own older ones are not among them)
CLASSIC = ("torch-lr-finder steepest (index)", "lightning steepest (d/d lr)", "fastai valley", "fastai minimum/10")


def current_rule(lrs, smoothed, raw, schedule):
    """lrfind's rule as it is in lrfind_cli/suggest/rules.py: `recommend(..., schedule)`."""
    return suggest.recommend(lrs, arr(smoothed), arr(raw), schedule=schedule).lr


# several runs: exactly what `sweep.repeats` does (the mean curve, with its fallbacks)
current_rule.combine = lambda curves, schedule: suggest.recommend_repeats(curves, schedule).lr


def onset_rule(decades: dict[str, float]) -> Rule:
    """lrfind's rule with other distances: the lr `decades[schedule]` below the onset of divergence."""
    def rule(lrs, smoothed, raw, schedule):
        reading = suggest.read_curve(lrs, arr(smoothed), arr(raw))
        return reading.below_onset(decades[schedule]) if reading.readable else None

    return rule


CENTRE_WEIGHT = 0.25  # the candidate's weight, chosen from 0, 1/4, 1/2, 3/4 on the design half (rounds 1-3)


def centre_rule(decades: dict[str, float], weight: float = CENTRE_WEIGHT) -> Rule:
    """A candidate rule, tried and not shipped: `decades[schedule]` below a centre between two landmarks.

    The centre lies `weight` of the way (in log lr) from the onset of divergence towards the steepest
    fall, 10 ** ((1 - w) log10(onset) + w log10(steepest)); the onset alone when the curve did not fall.
    The idea: the onset alone answers too high when the descent is long and shallow. On the design half
    (rounds 1-3, 37 tasks) it beat the onset rule (median regret 0.087 vs 0.105 constant, 0.084 vs 0.085
    one-cycle; leave-one-family-out 0.087 / 0.084 vs 0.144 / 0.093), but not on the fresh test tasks of
    round 3 (0.204 vs 0.150 constant, 0.110 vs 0.115 one-cycle): see docs/suggestion-quality.md.
    """
    def rule(lrs, smoothed, raw, schedule):
        reading = suggest.read_curve(lrs, arr(smoothed), arr(raw))
        onset = reading.onset_lr
        if not reading.readable or onset is None:
            return None
        steepest = reading.steepest_lr if reading.steepest_lr is not None else onset
        centre = 10 ** ((1 - weight) * np.log10(onset) + weight * np.log10(steepest)) / 10 ** decades[schedule]
        return float(centre) if centre >= reading.first_lr else None  # never below the swept range, as the shipped rule

    return rule


RULES: dict[str, Rule] = {
    "lrfind (current rule)": current_rule,
    # the same rule with the distances shipped until round 4 (chosen on round 1's 15 design tasks)
    "previous rule (distances 1.0 / 1.5, until round 4)": onset_rule({"onecycle": 1.0, "constant": 1.5}),
    # tried in the session of 2026-11-30 and not shipped (see centre_rule): kept so the comparison can be re-run
    "candidate: centre rule (not shipped)": centre_rule({"constant": 1.25, "onecycle": 1.0}),
}


def fitted_minimum_divisor(train: dict[str, dict]) -> Rule:
    """An example of a rule with a tunable constant and its fitting procedure, for `leave_one_family_out`.

    The lr at fastai's lowest smoothed loss divided by c, with c (per schedule) chosen from
    10**(0, 1/8, ..., 2) to minimise the median regret of single range tests over the `train` ground
    truths. It shows the interface: fit(train ground truths) -> rule.
    """
    from .score import regrets_of

    constants = [10 ** (k / 8) for k in range(17)]
    chosen = {}
    for schedule in ("constant", "onecycle"):
        def score(c, schedule=schedule):
            def rule(lrs, smoothed, raw, sched, c=c):
                m = fastai_minimum(lrs, smoothed, raw)
                return None if m is None else m * 10 / c

            return float(np.median(regrets_of(rule, train, schedule)))

        chosen[schedule] = min(constants, key=score)

    def rule(lrs, smoothed, raw, schedule):
        m = fastai_minimum(lrs, smoothed, raw)
        return None if m is None else m * 10 / chosen[schedule]

    rule.constants = chosen
    return rule


def fixed(rule: Rule) -> Callable[[dict[str, dict]], Rule]:
    """The 'fitting procedure' of a rule with no constants to fit: returns it unchanged."""
    return lambda train: rule


def _fit_distances(make: Callable[[dict[str, float]], Rule], train: dict[str, dict]) -> dict[str, float]:
    """Per schedule, the distance of 0, 1/4, ..., 5/2 decades with the lowest median regret of single range tests
    over `train` (ties: the smaller distance)."""
    from .score import regrets_of

    grid = [k / 4 for k in range(11)]
    chosen = {}
    for schedule in ("constant", "onecycle"):
        def median_regret(d, schedule=schedule):
            return float(np.median(regrets_of(make({schedule: d}), train, schedule)))

        chosen[schedule] = min(grid, key=median_regret)
    return chosen


def fitted_onset_rule(train: dict[str, dict]) -> Rule:
    """lrfind's rule refitted on `train` exactly as its constants were chosen, for `leave_one_family_out`.

    Per schedule, the distance below the onset of divergence (`_fit_distances`). Shipped:
    ONECYCLE_DECADES and CONSTANT_DECADES in lrfind_cli/suggest/rules.py, chosen this way on the
    design half: 1.0 / 1.5 on round 1's 15 design tasks (shipped until round 4), 1.0 / 1.25 on rounds
    1-3 (37 tasks), 0.75 / 1.25 on rounds 1-4 (48 tasks; shipped since, with round 5 as its hold-out).
    On those 48 tasks the new pair's median regret is 0.095 / 0.126 against 0.097 / 0.141: a small
    gain, uncertain (leaving out one task can flip its sign; resampling the tasks, 300 draws, puts 90%
    of it in -0.07..0.055 one-cycle and -0.05..0.075 constant), but both old distances sat 0.16
    decades below the median task's best, under both schedules.
    """
    chosen = _fit_distances(onset_rule, train)
    rule = onset_rule(chosen)
    rule.constants = chosen
    return rule


def fitted_centre_rule(train: dict[str, dict]) -> Rule:
    """The candidate centre rule (`centre_rule`) with its two distances refitted on `train` (`_fit_distances`)."""
    chosen = _fit_distances(centre_rule, train)
    rule = centre_rule(chosen)
    rule.constants = chosen
    return rule
