"""Scoring against the horizon ground truth: the regret of an answer for the training it is for (length, schedule).

    regret = val(lr) / best - 1

at one length and schedule: val() is the median over seeds of the validation loss, interpolated linearly
in log10(lr) over that length's grid; best is the grid's lowest median. An answer outside the grid gets
the value at its nearest edge (and counts as "outside"); no answer is an infinite regret. Prodigy's
regret is the median over seeds of its own validation loss over the same best, minus 1.

A rule here is `(curve, context) -> lr | None`: the curve is one range test (lrs, smoothed, raw losses),
the `Context` the training the answer is for (length, schedule, passes over the data, optimizer).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from . import horizon
from .ground_truth import RT_SEEDS
from .methods import arr, fastai_minimum, fastai_valley, tlf_steepest
from .score import summarise

Curve = tuple  # (lrs, smoothed, raw)


@dataclass(frozen=True)
class Context:
    """The training an answer is scored for.

    schedule       one of batched.ARM_SCHEDULES (onecycle: OneCycleLR's defaults, momentum cycled where it can be)
    steps          optimizer steps of the training
    passes         passes over the training set (steps x batch / train size); None for fresh data
    optimizer      the task's optimizer name; momentum_free: set up without momentum that OneCycleLR would add
    """

    schedule: str
    steps: int
    passes: float | None
    optimizer: str
    momentum_free: bool
    batch_size: int


Rule = Callable[[Curve, Context], "float | None"]


def load(which: str = "design", data: str | None = None) -> dict[str, dict]:
    """The complete horizon ground truths (with range-test curves) of one half ("design", "test", "both"), optionally
    only fixed or fresh data."""
    out = {}
    for task in horizon.horizon_tasks():
        if which != "both" and task.half != which:
            continue
        gt = horizon.load(task.name)
        if gt is None or not gt.get("complete") or not gt.get("curves") or gt.get("key") != horizon.key(task):
            continue
        if data is not None and gt["data"] != data:
            continue
        out[task.name] = gt
    return out


def contexts(gt: dict) -> list[Context]:
    """Every (length, schedule) the task was trained at, as Contexts."""
    free = gt["optimizer"] in ("sgd", "rmsprop") and not gt["opt_kwargs"].get("momentum")
    out = []
    for length in gt["lengths"]:
        passes = None if gt["train_size"] is None else length * gt["batch_size"] / gt["train_size"]
        for schedule in gt["schedules"]:
            out.append(Context(schedule, length, passes, gt["optimizer"], free, gt["batch_size"]))
    return out


def curve(gt: dict, seed: int) -> Curve:
    c = gt["curves"][str(seed)]
    return c["lrs"], arr(c["smoothed"]), arr(c["losses"])


def grid(gt: dict, ctx: Context) -> tuple[np.ndarray, np.ndarray]:
    return horizon.median_grid(gt["runs"][str(ctx.steps)][ctx.schedule])


def regret(gt: dict, ctx: Context, lr: float | None) -> tuple[float, bool]:
    """(regret, outside the grid) of training at `lr` for `ctx`; no answer is an infinite regret."""
    if lr is None or not math.isfinite(lr) or lr <= 0:
        return math.inf, False
    u, med = grid(gt, ctx)
    x = math.log10(lr)
    return float(np.interp(x, u, med) / med.min() - 1.0), not (u[0] <= x <= u[-1])


def best_log_lr(gt: dict, ctx: Context) -> float:
    u, med = grid(gt, ctx)
    return float(u[int(np.argmin(med))])


def prodigy_regret(gt: dict, ctx: Context) -> float | None:
    """Prodigy's regret at its defaults for ctx (None where it was not run: uncycled one-cycle)."""
    runs = gt.get("prodigy", {}).get(str(ctx.steps), {}).get(ctx.schedule)
    if not runs:
        return None
    return float(np.median(list(runs.values())) / grid(gt, ctx)[1].min() - 1.0)


def regrets(rule: Rule, gts: dict[str, dict], seeds: Sequence[int] = RT_SEEDS) -> dict[tuple[str, int], list[float]]:
    """Regret of every single range test of every task, per (schedule, length)."""
    out: dict[tuple[str, int], list[float]] = {}
    for gt in gts.values():
        curves = [curve(gt, s) for s in seeds]
        for ctx in contexts(gt):
            out.setdefault((ctx.schedule, ctx.steps), []).extend(regret(gt, ctx, rule(c, ctx))[0] for c in curves)
    return out


def prodigy_regrets(gts: dict[str, dict]) -> dict[tuple[str, int], list[float]]:
    out: dict[tuple[str, int], list[float]] = {}
    for gt in gts.values():
        for ctx in contexts(gt):
            r = prodigy_regret(gt, ctx)
            if r is not None:
                out.setdefault((ctx.schedule, ctx.steps), []).append(r)
    return out


def summary(values: dict[tuple[str, int], list[float]]) -> dict[tuple[str, int], dict]:
    return {k: summarise(v) for k, v in values.items()}


# ---------------------------------------------------------------- baselines


def classic(method: Callable) -> Rule:
    """A classic finder's method: one lr from the curve, the same for every training."""
    return lambda c, ctx: method(*c)


CLASSIC: dict[str, Rule] = {
    "fastai minimum/10": classic(fastai_minimum),
    "fastai valley": classic(fastai_valley),
    "torch-lr-finder steepest": classic(tlf_steepest),
}


def lookup_table(train: dict[str, dict]) -> Rule:
    """The per-optimizer lookup table (no range test): the log-median best lr of `train`'s tasks with the same
    optimizer, schedule and length (falling back to every optimizer's where `train` has none of it)."""
    table: dict[tuple, list[float]] = {}
    for gt in train.values():
        for ctx in contexts(gt):
            best = best_log_lr(gt, ctx)
            table.setdefault((ctx.optimizer, ctx.schedule, ctx.steps), []).append(best)
            table.setdefault(("*", ctx.schedule, ctx.steps), []).append(best)

    def rule(c, ctx: Context) -> float:
        found = table.get((ctx.optimizer, ctx.schedule, ctx.steps)) or table[("*", ctx.schedule, ctx.steps)]
        return float(10 ** np.median(found))

    return rule


def lengths_of(gts: dict[str, dict]) -> list[int]:
    return sorted({n for gt in gts.values() for n in gt["lengths"]})


def schedules_of(gts: Iterable[dict]) -> list[str]:
    from .batched import ARM_SCHEDULES

    found = {s for gt in gts for s in gt["schedules"]}
    return [s for s in ARM_SCHEDULES if s in found]
