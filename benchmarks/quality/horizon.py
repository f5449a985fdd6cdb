"""The horizon ground truth: every task trained at several lengths under every schedule, stored as JSON in the repository.

Users train 10 to 1000 times longer than a range test, so an answer is judged against trainings of the
length it is for. One file per task, `benchmarks/horizon/<task>.json`:

    {"task", "family", "half", "round", "data": "fixed" | "fresh", "train_size" (null for fresh data),
     "batch_size", "optimizer", "opt_kwargs", "loss", "key", "lengths",
     "untrained": {seed: validation loss of the untrained model},
     "runs": {length: {schedule: {lr: {seed: validation loss}}}},
     "prodigy": {length: {schedule: {seed: validation loss}}},
     "curves": {seed: {"lrs", "losses", "smoothed", "status", ...}},
     "seconds": compute time, "complete": bool}

Schedules (batched.ARM_SCHEDULES): constant; onecycle as torch's OneCycleLR runs it by default
(momentum or beta1 cycled 0.95 -> 0.85 -> 0.95; for Adagrad, which has neither, cycle_momentum=False);
onecycle_nocycle (cycle_momentum=False) for the optimizers set up without momentum that OneCycleLR
would give some (plain SGD, RMSprop); cosine (5% linear warm-up, half cosine to 0); wsd (5% warm-up,
linear decay to 0 over the last 20%). Each is lrfind_cli.plan's schedule of that name.

Lengths LENGTHS = 100 .. 3200 optimizer steps (1.5 decades; the longest 32x the range test's 100 steps).
At the shortest length every schedule is trained on the task's whole starting grid (tasks.GRIDS, one
decade lower at the bottom: longer runs want lower rates); each longer length on WINDOW around the best
lr the previous length found for that schedule. A grid whose best median sits at an edge is widened by
half a decade at a time (at most MAX_WIDENINGS). Seeds: SEEDS, each its own initialisation and data
order (fixed data: shuffled epochs, the last partial batch dropped, as ground_truth.batches; fresh
data: new draws). A diverged run, or one ending no better than untrained, scores the untrained loss.

Raw measurements only, so any rule is scored from these files in seconds.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from .batched import ARM_SCHEDULES, Arm, train_arms
from .fresh_tasks import FRESH_TASKS
from .ground_truth import RT_END, RT_ITERS, RT_SEEDS, RT_START
from .ground_truth import batches as index_batches
from .store import JsonStore, lr_key
from .tasks import BY_NAME, Task

HERE = os.path.dirname(os.path.abspath(__file__))
STORE = os.path.join(os.path.dirname(HERE), "horizon")
VERSION = 1
LENGTHS = (100, 320, 1000, 3200)
SEEDS = (0, 1, 2)
WINDOW = (-1.5, 0.5)  # decades around the previous length's best lr (longer runs want lower rates)
MAX_WIDENINGS = 3
STEP = 0.25  # decades between grid points
RT_BATCHES = 400  # batches offered to a range test (it uses RT_ITERS of them, more if the sweep goes on past end_lr)

# Tasks of rounds 1-5 measured at every length: those whose training step cost at most 3 ms on the machine that
# computed their short ground truth (its `seconds` over the steps it trained), chosen by cost alone, before any
# horizon result existed. The dearer ones (most ResNets and 16x16 CNNs, a few transformers) would take hours each
# on two CPU cores; round 6 (fresh data) brings its own CNNs, ResNets, transformers and RNNs.
FIXED_NAMES = (
    "digits-cnn-rmsprop-b16", "images-cnn-adagrad-b32", "images-cnn-momentum-b16", "digits-cnn-adam-b64", "fakedata-cnn-rmsprop-b64",
    "digits-cnn-momentum-b128",
    "ratings-mf-momentum-b128", "ratings-mf-huber-adagrad-b64", "bag-multilabel-bce-rmsprop-b32", "bag-embbag-adamw-b32",
    "bag-multilabel-bce-adam-b64", "ratings-mf-huber-rmsprop-b256", "ratings-mf-adamw-b64", "bag-embbag-adam-b256",
    "bag-embbag-rmsprop-b64", "ratings-mf-smoothl1-nesterov", "bag-embbag-momentum-b128",
    "teacher-linear-huber-sgd-b32", "teacher-linear-mse-nesterov-b64", "cancer-logreg-bce-adagrad-b16", "digits-logreg-adam-b64",
    "wine-logreg-rmsprop-b32", "iris-logreg-nesterov-b16", "iris-logreg-adamw-b32", "teacher-linear-mse-rmsprop-b128",
    "iris-logreg-adam-b8", "teacher-linear-huber-adam", "cancer-logreg-bce-rmsprop",
    "teacher-mlp-noisy-sgd-b16", "tabular-mlp-rmsprop-b128", "tabular-mlp-huber-adamw-b8", "wine-mlp-momentum-b32",
    "teacher-mlp-regression-adam-b16", "diabetes-mlp-adam-b32", "teacher-mlp-noisy-sgd-b64", "cancer-mlp-momentum-b8",
    "cancer-mlp-plain-sgd-b64", "blobs-mlp-sgd-b128", "teacher-mlp-huber-momentum-b256", "teacher-mlp-adam-b256",
    "wine-mlp-nesterov-b16", "diabetes-mlp-huber-rmsprop-b64", "iris-mlp-adam-b32", "wine-mlp-rmsprop-b8", "digits-mlp-adagrad-b64",
    "cancer-mlp-rmsprop-b32", "diabetes-mlp-adagrad-b16", "teacher-mlp-adagrad-b32", "diabetes-mlp-huber-momentum-b64",
    "teacher-mlp-deep-adamw-b128", "tabular-mlp-adamw-b32", "digits-mlp-rmsprop-b32", "iris-mlp-momentum-b8",
    "teacher-mlp-regression-sgd-b512", "digits-mlp-adam-b64", "digits-mlp-nesterov-b128", "digits-mlp-plain-sgd-b8",
    "tabular-mlp-rmsprop", "iris-mlp-adamw-b16", "wine-mlp-adagrad", "diabetes-mlp-huber-rmsprop", "digits-mlp-sgd",
    "diabetes-mlp-adamw", "wine-mlp-adam-b64", "iris-mlp-nesterov-b8", "cancer-mlp-adam",
    "seq-lstm-lm-momentum-b32", "memory-lstm-mse-adam-b32", "memory-lstm-huber-momentum-b64", "memory-gru-mse-adam-b32",
    "tokens-lstm-adagrad-b16",
    "seq-transformer-lm-nesterov-b32", "digits-transformer-adamw-b32", "tokens-transformer-adam-b64", "seq-transformer-lm-adam-b64",
)


def horizon_tasks() -> list[Task]:
    """Every task of the horizon benchmark: the fixed-data tasks of FIXED_NAMES, then round 6's fresh-data tasks."""
    return [BY_NAME[n] for n in FIXED_NAMES] + list(FRESH_TASKS)


def by_name(name: str) -> Task:
    for task in horizon_tasks():
        if task.name == name:
            return task
    raise KeyError(name)


# cost of a training step relative to a small MLP's, for the order tasks are computed in (cheap first), by family
_COST = {"linear": 0.3, "mlp": 1.0, "embedding": 1.5, "cnn": 4.0, "rnn": 5.0, "transformer": 5.0, "resnet": 12.0}


def cost_order(tasks: Sequence[Task]) -> list[Task]:
    """Tasks in the order to compute them: cheapest family first, so a partial run still covers most tasks."""
    return sorted(tasks, key=lambda t: (_COST[t.family], t.batch_size, t.name))


def schedules_for(task: Task) -> tuple[str, ...]:
    """The schedules a task is trained under: every plan schedule, and uncycled one-cycle where cycling adds momentum."""
    momentum_free = task.optimizer in ("sgd", "rmsprop") and not task.opt_kwargs.get("momentum")
    return tuple(s for s in ARM_SCHEDULES if s != "onecycle_nocycle" or momentum_free)


def key(task: Task) -> str:
    """A hash of what defines the task's trainings here; a stored file with another key is stale."""
    text = json.dumps([VERSION, task.describe, task.optimizer, task.opt_kwargs, task.loss, task.batch_size, LENGTHS, SEEDS,
                       task.fresh is not None], sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:10]


_STORE = JsonStore(STORE)
path_of = _STORE.path_of
load = _STORE.load  # a task's stored horizon ground truth, or None


def save(gt: dict) -> None:
    _STORE.save(gt["task"], gt)


def empty(task: Task) -> dict:
    data = task.data()
    return {"task": task.name, "family": task.family, "half": task.half, "round": task.round,
            "data": "fresh" if task.fresh is not None else "fixed", "train_size": None if task.fresh is not None else len(data[0]),
            "batch_size": task.batch_size, "optimizer": task.optimizer, "opt_kwargs": task.opt_kwargs, "loss": task.loss,
            "describe": task.describe, "key": key(task), "lengths": list(LENGTHS), "schedules": list(schedules_for(task)),
            "untrained": {}, "runs": {str(n): {s: {} for s in schedules_for(task)} for n in LENGTHS},
            "prodigy": {}, "curves": {}, "seconds": 0.0, "complete": False}


def median_grid(runs: dict[str, dict[str, float]]) -> tuple[np.ndarray, np.ndarray]:
    """(log10 lrs ascending, median validation loss over seeds) of one schedule's grid at one length."""
    lrs = sorted(runs, key=float)
    return np.log10([float(v) for v in lrs]), np.array([np.median(list(runs[v].values())) for v in lrs])


def _points(lo: float, hi: float) -> list[float]:
    """Quarter-decade lrs from 10**lo to 10**hi (both included, rounded to the quarter-decade lattice)."""
    a, b = round(lo / STEP), round(hi / STEP)
    return [float(10 ** (k * STEP)) for k in range(a, b + 1)]


def first_grid(task: Task) -> list[float]:
    lo, hi = task.grid
    return _points(lo - 1.0, hi)


def window(gt: dict, schedule: str, length: int) -> list[float]:
    """The lrs to train `schedule` on at `length`: WINDOW around the previous length's best, or the first grid."""
    index = LENGTHS.index(length)
    if index == 0:
        return first_grid(by_name(gt["task"]))
    u, med = median_grid(gt["runs"][str(LENGTHS[index - 1])][schedule])
    best = float(u[int(np.argmin(med))])
    return _points(best + WINDOW[0], best + WINDOW[1])


def widening(runs: dict[str, dict[str, float]]) -> list[float]:
    """Half a decade of new lrs beyond the edge where the grid's best median sits, else []."""
    u, med = median_grid(runs)
    i = int(np.argmin(med))
    if i == 0:
        return _points(u[0] - 0.5, u[0] - STEP)
    if i == len(u) - 1:
        return _points(u[-1] + STEP, u[-1] + 0.5)
    return []


def data_batches(task: Task):
    """(seed, steps) -> one (x, y) per step: shuffled epochs of the fixed set, or fresh draws."""
    if task.fresh is not None:
        def fresh(seed: int, steps: int) -> Iterator:
            return task.fresh.batches(task.batch_size, seed)

        return fresh
    xt, yt, _, _ = task.data()

    def fixed(seed: int, steps: int) -> Iterator:
        for idx in index_batches(len(xt), task.batch_size, steps, seed + 7919):
            yield xt[idx], yt[idx]

    return fixed


def train(task: Task, length: int, arms: Sequence[Arm]) -> tuple[np.ndarray, np.ndarray]:
    """Validation losses (len(SEEDS), len(arms)) and the untrained losses of `arms` trained `length` steps."""
    _, _, xv, yv = task.data()
    return train_arms(task.build, task.loss_fn(), task.optimizer, task.opt_kwargs, arms, SEEDS, length, data_batches(task), (xv, yv))


def compute(task: Task, log=sys.stderr) -> dict:
    """Measure what is missing of a task's horizon ground truth, length by length, and store it (resumable)."""
    gt = load(task.name)
    if gt is None or gt.get("key") != key(task):
        gt = empty(task)
    for length in LENGTHS:
        runs = gt["runs"][str(length)]
        wanted = {s: window(gt, s, length) for s in gt["schedules"]}
        for attempt in range(MAX_WIDENINGS + 1):
            arms = [Arm(s, lr) for s, lrs in wanted.items() for lr in lrs if lr_key(lr) not in runs[s]]
            if arms:
                started = time.perf_counter()
                val, untrained = train(task, length, arms)
                for j, arm in enumerate(arms):
                    runs[arm.schedule][lr_key(arm.lr)] = {str(s): float(val[i, j]) for i, s in enumerate(SEEDS)}
                gt["untrained"] = {str(s): float(untrained[i]) for i, s in enumerate(SEEDS)}
                gt["seconds"] += time.perf_counter() - started
                save(gt)
            if attempt == MAX_WIDENINGS:
                break
            wanted = {s: widening(runs[s]) for s in gt["schedules"]}
            if not any(wanted.values()):
                break
        print(f"  {task.name}: length {length} done ({gt['seconds']:.0f} s so far)", file=log, flush=True)
    gt["complete"] = True
    save(gt)
    return gt


def compute_prodigy(task: Task, log=sys.stderr) -> dict:
    """Prodigy at its defaults (lr multiplier 1.0) at every length, under every schedule but uncycled one-cycle."""
    gt = load(task.name)
    if gt is None or not gt.get("complete"):
        raise RuntimeError(f"{task.name}: compute the grid first")
    for length in LENGTHS:
        done = gt["prodigy"].setdefault(str(length), {})
        arms = [Arm(s, 1.0) for s in gt["schedules"] if s != "onecycle_nocycle" and s not in done]
        if not arms:
            continue
        _, _, xv, yv = task.data()
        started = time.perf_counter()
        val, _ = train_arms(task.build, task.loss_fn(), "prodigy", {}, arms, SEEDS, length, data_batches(task), (xv, yv))
        for j, arm in enumerate(arms):
            done[arm.schedule] = {str(s): float(val[i, j]) for i, s in enumerate(SEEDS)}
        gt["seconds"] += time.perf_counter() - started
        save(gt)
    print(f"  {task.name}: prodigy done", file=log, flush=True)
    return gt


def range_curve(task: Task, seed: int) -> dict:
    """lrfind's range_test at its defaults on the task, from a model built with torch.manual_seed(seed).

    Batches: fixed data as ground_truth.range_curve draws them (its first RT_ITERS are the same), with more
    after them for a sweep that goes on; fresh data from the source, with a stream of its own.
    """
    from lrfind_cli import range_test

    torch.manual_seed(seed)
    model = task.build()
    opt = task.make_optimizer(model.parameters(), RT_START)
    if task.fresh is not None:
        stream = task.fresh.batches(task.batch_size, seed + 104729)
        data = [next(stream) for _ in range(RT_BATCHES)]
    else:
        xt, yt, _, _ = task.data()
        data = [(xt[idx], yt[idx]) for idx in index_batches(len(xt), task.batch_size, RT_BATCHES, seed + 104729)]
    result = range_test(model, opt, data, task.loss_fn(), start_lr=RT_START, end_lr=RT_END, num_iter=RT_ITERS)
    clean = [None if not math.isfinite(v) else v for v in result.losses]
    smooth = [None if not math.isfinite(v) else v for v in result.smoothed]
    return {"lrs": result.lrs, "losses": clean, "smoothed": smooth, "status": result.status, "stop_reason": result.stop_reason}


def compute_curves(task: Task, log=sys.stderr) -> dict:
    """The range-test curves of RT_SEEDS, recorded with the lrfind version that made them (recomputed when it changes)."""
    from lrfind_cli import __version__
    from lrfind_cli.engine.config import EXTEND_DECADES

    gt = load(task.name)
    if gt is None:
        raise RuntimeError(f"{task.name}: compute the grid first")
    started = time.perf_counter()
    gt["curves"] = {str(s): range_curve(task, s) for s in RT_SEEDS}
    gt["curves_by"] = {"lrfind": __version__, "start_lr": RT_START, "end_lr": RT_END, "num_iter": RT_ITERS,
                       "extend_decades": EXTEND_DECADES}
    gt["seconds"] += time.perf_counter() - started
    save(gt)
    print(f"  {task.name}: curves done", file=log, flush=True)
    return gt


def stale(task: Task) -> str | None:
    gt = load(task.name)
    if gt is None:
        return "not computed"
    if gt.get("key") != key(task):
        return "computed for another definition of the task"
    if not gt.get("complete"):
        return "incomplete"
    return None


def _job(args: tuple[str, str]) -> str:
    """Compute one part of one task; a failure is reported with the task's name and leaves the other tasks running."""
    name, part = args
    torch.set_num_threads(1)
    try:
        {"grid": compute, "prodigy": compute_prodigy, "curves": compute_curves}[part](by_name(name))
    except Exception as exc:  # noqa: BLE001 - one task's failure must not stop a run of hours; it stays incomplete
        import traceback

        traceback.print_exc()
        return f"{name} FAILED ({type(exc).__name__}: {exc})"
    return name


def main(argv: list[str] | None = None) -> None:
    """`python -m benchmarks.quality.horizon [--half design] [--tasks a,b] [--jobs 2]`: compute what is missing."""
    import argparse

    ap = argparse.ArgumentParser(description="compute the horizon ground truth (trainings at every length and schedule)")
    ap.add_argument("--half", default="both", choices=("design", "test", "both"))
    ap.add_argument("--tasks", default="", help="comma-separated task names (default: every task of --half)")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--part", default="grid", choices=("grid", "prodigy", "curves"),
                    help="grid: the trainings (what is missing); prodigy: Prodigy's runs; curves: the range tests (recomputed)")
    args = ap.parse_args(argv)
    names = args.tasks.split(",") if args.tasks else [t.name for t in cost_order(horizon_tasks()) if args.half in ("both", t.half)]
    if args.part == "grid":
        todo = [n for n in names if stale(by_name(n)) is not None]
    else:
        todo = [n for n in names if stale(by_name(n)) is None]
    print(f"horizon ground truth ({args.part}): {len(todo)} of {len(names)} tasks to compute", file=sys.stderr, flush=True)
    jobs = [(n, args.part) for n in todo]
    if args.jobs > 1 and len(jobs) > 1:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(args.jobs, maxtasksperchild=1) as pool:
            for name in pool.imap_unordered(_job, jobs, chunksize=1):
                print(f"{name}: {args.part} complete", file=sys.stderr, flush=True)
    else:
        for job in jobs:
            print(f"{_job(job)}: {args.part} complete", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
