"""Fitting lrfind's answer for the planned training on the design half of the horizon benchmark, and scoring rules.

lrfind's rule answers `onset / 10**d`: d decades below the onset of divergence the range test measured.
For the training it is for, d is

    d = DECADES[schedule] (+ CYCLED_DECADES for a momentum-free optimizer under OneCycleLR's momentum cycling)
        + length_decades(steps, steps per pass)

with the length law of lrfind_cli/suggest/horizon.py: FRESH_SLOPE decades per decade of steps beyond the
range test's length while the run sees data it has not seen REPEAT_PASSES times, REPEAT_SLOPE per decade
after. `fit` chooses every constant on the ground truths it is given (the design half), by the median
regret of single range tests, averaged over the (schedule, length) buckets so each bucket counts alike:
the law's three constants on a grid, each schedule's distance (quarter decades) refitted for every
candidate law, then the cycling offset. Regrets come from a table per range test and training, so a
candidate is scored in milliseconds (`Table`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from lrfind_cli.plan import TrainPlan
from lrfind_cli.suggest import Context as RuleContext
from lrfind_cli.suggest import horizon as law
from lrfind_cli.suggest import read_curve, rules

from .horizon_score import Context, contexts, curve, grid
from .methods import arr

PLAN_SCHEDULE = {"constant": "constant", "onecycle": "onecycle", "onecycle_nocycle": "onecycle", "cosine": "cosine", "wsd": "wsd"}
D_GRID = np.arange(-1.0, 5.0 + 1e-9, 1 / 16)  # decades below the onset at which each table row holds a regret


@dataclass(frozen=True)
class Law:
    """The constants `fit` chooses (their meaning: lrfind_cli/suggest/horizon.py and rules.py)."""

    decades: dict[str, float]  # per plan schedule: onecycle, constant, cosine, wsd
    cycled: float  # extra decades for a momentum-free optimizer under one-cycle with momentum cycling
    fresh_slope: float
    repeat_slope: float
    repeat_passes: float

    def offset(self, ctx: Context, steps_per_pass: float | None) -> float:
        d = self.decades[PLAN_SCHEDULE[ctx.schedule]]
        if ctx.schedule == "onecycle" and ctx.momentum_free:
            d += self.cycled
        return d + law.length_decades(ctx.steps, steps_per_pass, self.fresh_slope, self.repeat_slope, self.repeat_passes)


def shipped() -> Law:
    """The constants lrfind ships (lrfind_cli/suggest/rules.py and horizon.py)."""
    decades = {s: d for s, d in rules.DECADES.items() if s in rules.SCHEDULES}
    return Law(decades, rules.CYCLED_DECADES, law.FRESH_SLOPE, law.REPEAT_SLOPE, law.REPEAT_PASSES)


def plan_of(ctx: Context, steps_per_pass: float | None) -> TrainPlan:
    """The TrainPlan a user would write for this training (lrfind fills steps_per_pass in from the data)."""
    return TrainPlan(PLAN_SCHEDULE[ctx.schedule], steps=ctx.steps, cycle_momentum=ctx.schedule != "onecycle_nocycle",
                     steps_per_pass=steps_per_pass)


def steps_per_pass(gt: dict) -> float | None:
    return None if gt["train_size"] is None else gt["train_size"] / gt["batch_size"]


def lrfind_rule(c, ctx: Context) -> float | None:
    """lrfind's shipped rule for the planned training, as the package computes it (not the fit's emulation)."""
    plan = plan_of(ctx, None if ctx.passes is None else ctx.steps / ctx.passes)
    reading = read_curve(c[0], c[1], c[2])
    return rules.rule(reading, RuleContext(plan.schedule, False, plan, ctx.momentum_free)).lr


def previous_rule(c, ctx: Context) -> float | None:
    """lrfind 0.1's rule: one-cycle max_lr = onset / 10**0.75 (also what its users ran cosine and wsd with), constant
    onset / 10**1.25, whatever the length."""
    reading = read_curve(c[0], c[1], c[2])
    return reading.below_onset(1.25 if ctx.schedule == "constant" else 0.75) if reading.readable else None


@dataclass
class Table:
    """For every (task, training, range test) row: its onset (log10), training and a regret per offset in D_GRID."""

    regret: np.ndarray  # (rows, len(D_GRID)); rows without an answer hold inf
    task: np.ndarray  # row -> task index
    contexts: list[Context]
    per_pass: list[float | None]
    bucket: np.ndarray  # row -> index into buckets
    buckets: list[tuple[str, int]]
    names: list[str]


def table(gts: dict[str, dict], seeds: Sequence[int]) -> Table:
    names = list(gts)
    onsets = {}
    for name in names:
        for s in seeds:
            reading = read_curve(*curve(gts[name], s))
            onsets[name, s] = math.log10(reading.onset_lr) if reading.readable and reading.onset_lr is not None else None
    rows, task, ctxs, per_pass, bucket_of = [], [], [], [], []
    buckets: list[tuple[str, int]] = []
    for t, name in enumerate(names):
        gt = gts[name]
        for ctx in contexts(gt):
            u, med = grid(gt, ctx)
            key = (ctx.schedule, ctx.steps)
            if key not in buckets:
                buckets.append(key)
            for s in seeds:
                a = onsets[name, s]
                rows.append(np.interp(a - D_GRID, u, med) / med.min() - 1.0 if a is not None else np.full(len(D_GRID), np.inf))
                task.append(t)
                ctxs.append(ctx)
                per_pass.append(steps_per_pass(gt))
                bucket_of.append(buckets.index(key))
    return Table(np.array(rows), np.array(task), ctxs, per_pass, np.array(bucket_of), buckets, names)


def regrets_at(tab: Table, offsets: np.ndarray) -> np.ndarray:
    """Each row's regret when answered `offsets[row]` decades below its onset (linear between D_GRID points)."""
    pos = np.clip((offsets - D_GRID[0]) / (D_GRID[1] - D_GRID[0]), 0, len(D_GRID) - 1 - 1e-9)
    i = pos.astype(int)
    f = pos - i
    r = tab.regret[np.arange(len(i)), i], tab.regret[np.arange(len(i)), i + 1]
    with np.errstate(invalid="ignore"):
        return np.where(np.isinf(r[0]), np.inf, r[0] * (1 - f) + r[1] * f)


def objective(tab: Table, offsets: np.ndarray, rows: np.ndarray | None = None) -> float:
    """Mean over (schedule, length) buckets of the median regret of the bucket's rows (all rows, or `rows` only)."""
    r = regrets_at(tab, offsets)
    keep = np.ones(len(r), bool) if rows is None else rows
    meds = [np.median(r[keep & (tab.bucket == b)]) for b in range(len(tab.buckets)) if (keep & (tab.bucket == b)).any()]
    return float(np.mean(meds))


def offsets_of(tab: Table, fitted: Law) -> np.ndarray:
    return np.array([fitted.offset(c, p) for c, p in zip(tab.contexts, tab.per_pass)])


LAW_GRID = {"fresh_slope": (0.0, 0.1, 0.2, 0.3, 0.4), "repeat_slope": (0.5, 0.625, 0.75, 0.875, 1.0),
            "repeat_passes": (1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0)}
DECADE_GRID = tuple(k / 4 for k in range(0, 13))  # 0 .. 3 decades, quarter-decade steps, as the earlier distances
CYCLED_GRID = tuple(k / 8 for k in range(0, 13))  # 0 .. 1.5 decades


def fit(gts: dict[str, dict], seeds: Sequence[int] | None = None, tab: Table | None = None) -> Law:
    """The constants with the lowest mean bucket median regret on `gts` (the design half), as the module says."""
    from .horizon_score import RT_SEEDS

    tab = tab if tab is not None else table(gts, seeds or RT_SEEDS)
    best: tuple[float, Law] | None = None
    start = Law({s: 1.0 for s in ("onecycle", "constant", "cosine", "wsd")}, 0.0, 0.0, 1.0, 1.0)
    for fresh, repeat, passes in itertools.product(*LAW_GRID.values()):
        candidate = _fit_distances(tab, replace(start, fresh_slope=fresh, repeat_slope=repeat, repeat_passes=passes))
        score = objective(tab, offsets_of(tab, candidate))
        if best is None or score < best[0] - 1e-12:
            best = (score, candidate)
    return _fit_cycled(tab, best[1])


def _fit_distances(tab: Table, base: Law) -> Law:
    """Each schedule's distance on DECADE_GRID, the others held (rows of momentum-free cycled one-cycle left out)."""
    decades = dict(base.decades)
    length = np.array([law.length_decades(c.steps, p, base.fresh_slope, base.repeat_slope, base.repeat_passes)
                       for c, p in zip(tab.contexts, tab.per_pass)])
    for schedule in decades:
        rows = np.array([PLAN_SCHEDULE[c.schedule] == schedule and not (c.schedule == "onecycle" and c.momentum_free)
                         for c in tab.contexts])
        if rows.any():
            decades[schedule] = min(DECADE_GRID, key=lambda d: objective(tab, d + length, rows))
    return replace(base, decades=decades)


def _fit_cycled(tab: Table, base: Law) -> Law:
    rows = np.array([c.schedule == "onecycle" and c.momentum_free for c in tab.contexts])
    if not rows.any():
        return base
    return min((replace(base, cycled=c) for c in CYCLED_GRID), key=lambda f: objective(tab, offsets_of(tab, f), rows))


def bootstrap(gts: dict[str, dict], draws: int = 40, seed: int = 0) -> list[Law]:
    """The fit on `draws` resamples of the tasks (with replacement): how far the constants move with the tasks drawn."""
    from .horizon_score import RT_SEEDS

    tab = table(gts, RT_SEEDS)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(draws):
        pick = rng.integers(0, len(tab.names), len(tab.names))
        rows = np.concatenate([np.flatnonzero(tab.task == t) for t in pick])
        sub = Table(tab.regret[rows], tab.task[rows], [tab.contexts[i] for i in rows], [tab.per_pass[i] for i in rows],
                    tab.bucket[rows], tab.buckets, tab.names)
        out.append(fit({}, tab=sub))
    return out


def describe(fitted: Law, draws: list[Law] | None = None) -> list[str]:
    """Markdown lines: the fitted constants (and their 5-95% range over bootstrap draws)."""
    def spread(get) -> str:
        if not draws:
            return ""
        values = [get(d) for d in draws]
        return f" (5-95% over {len(values)} resamples of the tasks: {np.percentile(values, 5):.3g} .. {np.percentile(values, 95):.3g})"

    lines = [f"- `{s}`: {d:.2f} decades below the onset at the range test's length{spread(lambda f, s=s: f.decades[s])}"
             for s, d in fitted.decades.items()]
    lines += [f"- momentum cycling on an optimizer without momentum (one-cycle): {fitted.cycled:.3g} decades more"
              f"{spread(lambda f: f.cycled)}",
              f"- slope while the run sees new data: {fitted.fresh_slope:.3g} decades of lr per decade of steps"
              f"{spread(lambda f: f.fresh_slope)}",
              f"- slope once it has seen its data {fitted.repeat_passes:g} times: {fitted.repeat_slope:.3g}"
              f"{spread(lambda f: f.repeat_slope)}",
              f"- passes after which the second slope applies: {fitted.repeat_passes:g}{spread(lambda f: f.repeat_passes)}"]
    return lines


__all__ = ["Law", "Table", "bootstrap", "describe", "fit", "lrfind_rule", "objective", "previous_rule", "shipped", "table", "arr"]
