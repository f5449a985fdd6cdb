"""A range-test curve read once into a `Reading`: its finite prefix, zero-lag curve, noise, fall, onset and landmarks.

Every method, the rule and the confidence flags take a `Reading` (or the `Readings` of several range tests of
one setup), so a curve is smoothed, measured and searched for its landmarks exactly once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .curve import RULE_MIN_POINTS, LevelChange, Window, around, finite_prefix, head_size, level_change, noise_level, valley, zero_lag

# The knee of the fall, a landmark of the plot and of result.json: where this fraction of the drop is done.
KNEE_FRACTION = 0.75

Curve = tuple[Sequence[float], Sequence[float], "Sequence[float] | None"]  # (lrs, smoothed, raw-or-None)


@dataclass(frozen=True)
class Landmarks:
    """Where the fall of a curve begins, is steepest and is mostly done: indices into its finite prefix.

    start     the loss has fallen by 10% of its total drop (learning begins)
    steepest  the steepest fall of the zero-lag curve in log(lr), between `start` and the minimum
    knee      KNEE_FRACTION of the drop is done: the upper end of the productive descent
    """

    start: int
    steepest: int
    knee: int


@dataclass(frozen=True, eq=False)
class Reading:
    """One range-test curve as every suggestion reads it (made by `read_curve`; arrays are never modified).

    x, y      the finite prefix: lrs (> 0) and the raw losses before the first non-finite one (the smoothed
              losses stand in for raw ones when none were given: `from_raw` False)
    z         `zero_lag(x, y)`: the centred re-smoothing the rule reads, without the EMA's lag
    sigma     the batch noise of one step (`noise_level(y)`), in loss units
    m         the index of the lowest point of z;  bottom: the window of its valley (`curve.valley`)
    fall      how far the level fell from the head to the valley, against noise (`level_change`)
    onset     the index where divergence starts (`divergence_onset`); the last point when none passes the noise
              gate but the sweep stopped because its loss diverged (`read_curve`'s `diverged`: the rise came in
              the last steps, too few for a window); None when the loss never rose
    landmarks start, steepest and knee of the fall, None unless the curve fell (`fell`)

    Below RULE_MIN_POINTS finite points (`too_short`) only x, y and z are read: fall is empty, onset and
    landmarks None.
    """

    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    sigma: float
    m: int
    bottom: Window
    fall: LevelChange
    onset: int | None
    landmarks: Landmarks | None
    from_raw: bool

    @property
    def n(self) -> int:
        return len(self.y)

    @property
    def too_short(self) -> bool:
        """Fewer than RULE_MIN_POINTS finite losses: too few to place a learning rate."""
        return self.n < RULE_MIN_POINTS

    @property
    def fell(self) -> bool:
        """The loss fell from its head to its valley by more than batch noise allows, to a lowest point past the head.

        A lowest point inside the head (the first tenth) is no fall: a curve that rises from its first step
        has its valley there, below the head's median, without having fallen at all.
        """
        return not self.too_short and fell_beyond_noise(self.fall, self.m, self.n)

    @property
    def rises_early(self) -> bool:
        """It did not fall, and rose within its first quarter (or two heads): no flat stretch before the rise."""
        return not self.fell and self.onset is not None and self.onset < max(2 * head_size(self.n), self.n // 4)

    @property
    def readable(self) -> bool:
        """The rule can read it: it fell beyond noise, or it stayed flat and then rose (a trained model's shape)."""
        return not self.too_short and (self.fell or (self.onset is not None and not self.rises_early))

    def lr(self, i: int | None) -> float | None:
        """The lr of point i of the finite prefix (None for None)."""
        return None if i is None else float(self.x[i])

    @property
    def first_lr(self) -> float:
        return float(self.x[0]) if self.n else 0.0

    @property
    def last_lr(self) -> float:
        """The highest lr measured with a finite loss (0 when there is none)."""
        return float(self.x[-1]) if self.n else 0.0

    @property
    def onset_lr(self) -> float | None:
        return self.lr(self.onset)

    @property
    def minimum_lr(self) -> float:
        """The lr at the lowest point of the zero-lag curve."""
        return float(self.x[self.m])

    @property
    def steepest_lr(self) -> float | None:
        return self.lr(self.landmarks.steepest) if self.landmarks else None

    @property
    def lowest(self) -> float:
        """The lowest value of the zero-lag curve (the loss at `minimum_lr`)."""
        return float(self.z[self.m])

    def below_onset(self, decades: float) -> float | None:
        """The lr `decades` below the onset of divergence; None without an onset (the edge of stability is unknown:
        nothing is read off the last lr) or when it lies below the first lr (the sweep began past it)."""
        onset = self.onset_lr
        if onset is None or onset / 10**decades < self.first_lr * (1 - 1e-9):
            return None
        return float(max(onset / 10**decades, self.first_lr))


def read_curve(lrs: Sequence[float], smoothed: Sequence[float] | None, raw: Sequence[float] | None = None,
               diverged: bool = False) -> Reading:
    """Read one range-test curve once: the `Reading` every method, the rule and the confidence use.

    `lrs[i]` produced `raw[i]` (the raw losses; pass them whenever you have them: noise is measured on
    them and the zero-lag curve is read from them) and `smoothed[i]` (the EMA, read in their place when
    `raw` is None). Non-finite losses end the curve. `diverged`: the sweep's stop rule ended it because
    the loss diverged (status "diverged"), so divergence had begun by its last finite point. Never raises
    on odd curves: short, flat, NaN at step 0, negative losses all give a Reading whose properties say
    what it is.
    """
    from_raw = raw is not None
    x, y = finite_prefix(lrs, raw if from_raw else smoothed)
    n = len(y)
    _, z = zero_lag(x, y)
    m = int(np.argmin(z)) if n else 0
    if n < RULE_MIN_POINTS:
        empty = LevelChange(change=0.0, needed=float("inf"), head=0)
        return Reading(x, y, z, noise_level(y), m, (0, n), empty, None, None, from_raw)
    sigma = noise_level(y)
    bottom = valley(z, m)
    fall = level_change(y, bottom, +1, sigma=sigma)
    onset = divergence_onset(y, m, bottom, sigma)
    if onset is None and diverged and m < n - 1:
        onset = n - 1  # the stop rule saw it diverge in the last steps, before a window of them could
    landmarks = find_landmarks(x, z, m) if fell_beyond_noise(fall, m, n) else None
    return Reading(x, y, z, sigma, m, bottom, fall, onset, landmarks, from_raw)


def fell_beyond_noise(fall: LevelChange, m: int, n: int) -> bool:
    """The fall passed the noise gate and the lowest point m of a curve of n points lies past its head."""
    return fall.significant and m >= head_size(n)


def divergence_onset(y: np.ndarray, m: int, bottom: Window, sigma: float) -> int | None:
    """The index where the loss starts to diverge: the first point after the zero-lag minimum m whose
    window lies above the valley `bottom` by more than noise (`level_change`); None if none does.

    This is the edge of stability as the sweep sees it: from here on the learning rate is too large
    for the loss to hold its level. On a flat curve (a trained model) the valley is the flat level,
    so this is where the loss starts to rise above it.
    """
    n = len(y)
    for i in range(m + 1, n):
        if level_change(y, around(i, n), -1, reference=bottom, sigma=sigma).significant:
            return i
    return None


def find_landmarks(x: np.ndarray, z: np.ndarray, m: int) -> Landmarks | None:
    """start, steepest and knee of the fall of the zero-lag curve z down to its minimum m (None when it has no drop).

    The drop is measured from the median of the first 5% of z (at least 3 points) to z[m]; a point is
    "at a level" when it is the first at or below it.
    """
    n = len(z)
    first = float(np.median(z[: max(3, n // 20)]))
    drop = first - float(z[m])
    if m == 0 or drop <= 0:
        return None

    def below(level: float) -> int:
        return int(np.argmax(z[: m + 1] <= level))

    start = below(first - 0.1 * drop)
    grad = np.gradient(z, np.log(x))
    return Landmarks(start=start, steepest=int(np.argmin(grad[start : m + 1])) + start,
                     knee=below(first - KNEE_FRACTION * drop))


def mean_curve(curves: Sequence[Curve]) -> Curve | None:
    """The step-by-step mean of several range tests of one schedule, over the steps all of them reached.

    Returns (lrs, smoothed, raw-or-None), raw None unless every curve has raw losses; None when the
    curves did not follow the same learning rates (then they cannot be averaged).
    """
    n = min(min(len(lrs), len(smoothed)) for lrs, smoothed, _ in curves)
    lrs = np.asarray(curves[0][0][:n], dtype=float)
    if n == 0 or any(not np.allclose(np.asarray(c[0][:n], dtype=float), lrs, rtol=1e-9) for c in curves):
        return None

    def mean(rows) -> np.ndarray:
        return np.mean([[np.nan if v is None else float(v) for v in row[:n]] for row in rows], axis=0)

    raws = [raw for _, _, raw in curves]
    raw = mean(raws) if all(r is not None and len(r) >= n for r in raws) else None
    return lrs, mean([smoothed for _, smoothed, _ in curves]), raw


@dataclass(frozen=True, eq=False)
class Readings:
    """Several range tests of one setup (sweep.repeats), each read once, and the curve the rule reads for all of them.

    `runs`: every range test's own Reading. `mean`: the Reading of the step-by-step mean (`mean_curve`) of
    the runs that got as far as the runs' median minimum (a run stopped early, by a NaN or an interrupt,
    would cut the mean short of the others' knee); None for a single run, when no run is readable, or
    when the runs cannot be averaged.
    """

    runs: tuple[Reading, ...]
    mean: Reading | None = None

    @property
    def rule_reading(self) -> Reading | None:
        """The curve the rule reads: the single run's, else the mean's (None: it answers from the runs' median)."""
        return self.runs[0] if len(self.runs) == 1 else self.mean


def read_repeats(curves: Sequence[Curve], statuses: Sequence[str | None] | None = None) -> Readings:
    """Read every curve once, and their mean over the runs that reached the typical minimum (see `Readings`).

    `statuses`: the sweeps' statuses, when known ("diverged": see `read_curve`; the mean curve diverged
    when every run in it did, at the same step). Averaging N curves divides the batch noise by about
    sqrt(N) before the landmarks are read, which halves the spread of the answer in the quality benchmark
    against taking the median of the per-run answers.
    """
    diverged = [s == "diverged" for s in statuses] if statuses is not None else [False] * len(curves)
    runs = tuple(read_curve(*curve, diverged=d) for curve, d in zip(curves, diverged))
    answered = [r for r in runs if r.readable]
    if len(runs) == 1 or not answered:
        return Readings(runs)
    typical_minimum = float(np.median([r.minimum_lr for r in answered]))
    complete = [i for i, r in enumerate(runs) if r.last_lr >= typical_minimum]
    averaged = mean_curve([curves[i] for i in complete]) if len(complete) > 1 else None
    if averaged is None:
        return Readings(runs)
    together = all(diverged[i] and len(curves[i][0]) == len(averaged[0]) for i in complete)
    return Readings(runs, read_curve(*averaged, diverged=together))
