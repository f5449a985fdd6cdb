"""The stored ground truth: grid trainings, Prodigy runs and range-test curves per task, as JSON in the repository.

One file per task, `benchmarks/ground_truth/<task>.json`:

    {"task", "family", "half", "describe", "key", "steps", "batch_size", "optimizer", "loss",
     "untrained": {seed: validation loss of the untrained model},
     "grid": {"constant"|"onecycle": {lr: {seed: validation loss}}},
     "prodigy": {"constant"|"onecycle": {seed: validation loss}},
     "curves": {seed: {"lrs", "losses", "smoothed", "status"}},
     "seconds": compute time}

Raw measurements only, no rule's output, so any rule is scored from these files in seconds. A grid run
trains a fresh model (seed s) for `task.steps` steps at a constant lr, or under OneCycleLR with max_lr=lr,
and records the validation loss; a diverged run (non-finite, or a training loss 1e4 times the untrained
validation loss) or one ending worse than the untrained model records the untrained loss. A grid whose
best median is at an edge is widened by half a decade on that side until it is not (at most 3 times).
Range tests are lrfind's `range_test` at its defaults (1e-7 .. 10, 100 steps) from a model built with
torch.manual_seed(seed), on batches drawn with seed + 104729.
"""

from __future__ import annotations

import math
import os
import sys
import time

import numpy as np
import torch

from lrfind_cli import range_test

from .store import JsonStore, lr_key
from .tasks import BY_NAME, Task

HERE = os.path.dirname(os.path.abspath(__file__))
STORE = os.path.join(os.path.dirname(HERE), "ground_truth")
PROTOCOLS = ("constant", "onecycle")
RT_START, RT_END, RT_ITERS = 1e-7, 10.0, 100
GRID_SEEDS = (0, 1, 2)  # the grid seeds of a full computation; a first pass may use (0, 1) and add 2 later
RT_SEEDS = tuple(range(100, 112))
MAX_WIDENINGS = 3

_DATA: dict[str, tuple] = {}


def task_data(task: Task):
    if task.name not in _DATA:
        _DATA[task.name] = task.data()
    return _DATA[task.name]


def batches(n: int, batch_size: int, count: int, seed: int) -> list[torch.Tensor]:
    """`count` index batches of shuffled epochs (the last partial batch of an epoch dropped)."""
    gen = torch.Generator().manual_seed(seed)
    out: list[torch.Tensor] = []
    size = min(batch_size, n)
    while len(out) < count:
        perm = torch.randperm(n, generator=gen)
        out += [perm[i : i + size] for i in range(0, n - size + 1, size)]
    return out[:count]


def _val(model, loss_fn, xv, yv) -> float:
    model.eval()
    with torch.no_grad():
        return float(loss_fn(model(xv), yv))


def train_run(task: Task, lr: float, protocol: str, seed: int, optimizer: str = "task") -> tuple[float, float]:
    """(validation loss after training, untrained validation loss) for one grid point or one Prodigy run."""
    xt, yt, xv, yv = task_data(task)
    torch.manual_seed(seed)
    model = task.build()
    loss_fn = task.loss_fn()
    init = _val(model, loss_fn, xv, yv)
    model.train()
    if optimizer == "prodigy":
        from prodigyopt import Prodigy

        opt = Prodigy(model.parameters(), lr=lr)  # its defaults otherwise; lr is its multiplier (1.0)
        cycle = True  # Prodigy has Adam's betas
    else:
        opt = task.make_optimizer(model.parameters(), lr)
        cycle = task.cycles_momentum()
    sched = None
    if protocol == "onecycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=task.steps, cycle_momentum=cycle)
    for idx in batches(len(xt), task.batch_size, task.steps, seed + 7919):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(xt[idx]), yt[idx])
        if not torch.isfinite(loss) or float(loss.detach()) > 1e4 * max(init, 1e-3):
            return init, init
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
    val = _val(model, loss_fn, xv, yv)
    return (val if math.isfinite(val) and val < init else init), init


def range_curve(task: Task, seed: int) -> dict:
    xt, yt, _, _ = task_data(task)
    torch.manual_seed(seed)
    model = task.build()
    opt = task.make_optimizer(model.parameters(), RT_START)
    data = [(xt[idx], yt[idx]) for idx in batches(len(xt), task.batch_size, RT_ITERS, seed + 104729)]
    result = range_test(model, opt, data, task.loss_fn(), start_lr=RT_START, end_lr=RT_END, num_iter=RT_ITERS)
    clean = [None if not math.isfinite(v) else v for v in result.losses]
    smooth = [None if not math.isfinite(v) else v for v in result.smoothed]
    return {"lrs": result.lrs, "losses": clean, "smoothed": smooth, "status": result.status}


_STORE = JsonStore(STORE)
path_of = _STORE.path_of
load = _STORE.load  # the stored ground truth of a task, or None when there is none


def empty(task: Task) -> dict:
    return {"task": task.name, "family": task.family, "half": task.half, "describe": task.describe, "key": task.key(),
            "steps": task.steps, "batch_size": task.batch_size, "optimizer": task.optimizer, "loss": task.loss,
            "untrained": {}, "grid": {p: {} for p in PROTOCOLS}, "prodigy": {p: {} for p in PROTOCOLS}, "curves": {}, "seconds": 0.0,
            "complete": False}


def save(gt: dict) -> None:
    _STORE.save(gt["task"], gt)


def _job(args):
    name, kind, lr, protocol, seed = args
    torch.set_num_threads(1)
    task = BY_NAME[name]
    if kind == "curve":
        return args, range_curve(task, seed)
    return args, train_run(task, lr, protocol, seed, optimizer=kind)


def _run(jobs: list[tuple], processes: int, on_result=None, every: int = 8) -> list:
    """Run the jobs (in `processes` forked workers); `on_result(done_so_far)` is called every `every` results (saving)."""
    out: list = []
    if processes > 1 and len(jobs) > 1:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(processes) as pool:
            for item in pool.imap_unordered(_job, jobs, chunksize=1):
                out.append(item)
                if on_result is not None and len(out) % every == 0:
                    on_result(out)
    else:
        for job in jobs:
            out.append(_job(job))
            if on_result is not None and len(out) % every == 0:
                on_result(out)
    return out


def grid_median(gt: dict, protocol: str) -> tuple[np.ndarray, np.ndarray]:
    """(log10 lrs, median validation loss over seeds) of a protocol's grid, lrs ascending."""
    grid = gt["grid"][protocol]
    lrs = sorted(grid, key=float)
    return np.log10([float(lr) for lr in lrs]), np.array([np.median(list(grid[lr].values())) for lr in lrs])


def _widen(gt: dict) -> list[float]:
    """Half a decade of new lrs beyond an edge where a protocol's best median sits, else []."""
    new: set[float] = set()
    for p in PROTOCOLS:
        u, med = grid_median(gt, p)
        i = int(np.argmin(med))
        if i == 0:
            new.update(10 ** (u[0] - 0.25 * k) for k in (1, 2))
        elif i == len(u) - 1:
            new.update(10 ** (u[-1] + 0.25 * k) for k in (1, 2))
    return sorted(new)


def compute(task: Task, processes: int = 1, seeds: tuple[int, ...] = GRID_SEEDS, log=sys.stderr) -> dict:
    """Measure what is missing of a task's ground truth and store it (resumable: saved every few runs).

    `seeds` are the grid seeds wanted (Prodigy runs use the same); running again with more seeds adds
    only the missing runs.
    """
    gt = load(task.name)
    if gt is None or gt.get("key") != task.key():
        gt = empty(task)
    started = time.perf_counter()

    def record(results) -> None:
        nonlocal started
        for (_, kind, lr, p, s), out in results:
            if kind == "curve":
                gt["curves"][str(s)] = out
            elif kind == "prodigy":
                gt["prodigy"][p][str(s)] = out[0]
            else:
                gt["grid"][p].setdefault(lr_key(lr), {})[str(s)] = out[0]
                gt["untrained"][str(s)] = out[1]
        gt["seconds"] += time.perf_counter() - started
        started = time.perf_counter()
        save(gt)

    lrs = sorted({float(lr) for p in PROTOCOLS for lr in gt["grid"][p]} | set(task.grid_lrs()))
    # "complete" means one full pass is stored; adding a seed to a complete task keeps it usable meanwhile
    gt["complete"] = bool(gt.get("complete"))
    for round_ in range(MAX_WIDENINGS + 1):
        todo = [(task.name, "task", lr, p, s) for p in PROTOCOLS for lr in lrs for s in seeds
                if str(s) not in gt["grid"][p].get(lr_key(lr), {})]
        if todo:
            record(_run(todo, processes, on_result=lambda done: record(done[-8:])))
        wider = _widen(gt)
        if not wider or round_ == MAX_WIDENINGS:
            break
        print(f"  {task.name}: best at a grid edge, adding {', '.join(f'{v:.3g}' for v in wider)}", file=log)
        lrs = sorted(set(lrs) | set(wider))
    todo = [(task.name, "prodigy", 1.0, p, s) for p in PROTOCOLS for s in seeds if str(s) not in gt["prodigy"][p]]
    todo += [(task.name, "curve", 0.0, "", s) for s in RT_SEEDS if str(s) not in gt["curves"]]
    record(_run(todo, processes, on_result=lambda done: record(done[-8:])))
    gt["complete"] = True
    save(gt)
    print(f"  {task.name}: done, {gt['seconds']:.0f} s in all", file=log)
    return gt


def missing_seeds(task: Task, seeds: tuple[int, ...]) -> bool:
    """True when the stored grid lacks one of `seeds` somewhere."""
    gt = load(task.name)
    return gt is None or any(str(s) not in runs for p in PROTOCOLS for runs in gt["grid"][p].values() for s in seeds)


def stale(task: Task) -> str | None:
    """Why the stored ground truth of a task cannot be used (missing, incomplete, another definition), else None."""
    gt = load(task.name)
    if gt is None:
        return "not computed"
    if gt.get("key") != task.key():
        return "computed for another definition of the task"
    if not gt.get("complete"):
        return "incomplete"
    return None


def main(argv: list[str] | None = None) -> None:
    """Compute missing ground truth: `python -m benchmarks.quality.ground_truth [--half design] [--tasks a,b] [--jobs 2]`."""
    import argparse

    from .tasks import tasks_in

    ap = argparse.ArgumentParser(description="compute the stored ground truth of the suggestion-quality benchmark")
    ap.add_argument("--half", default="both", choices=("design", "test", "both"))
    ap.add_argument("--tasks", default="", help="comma-separated task names (default: every task of --half)")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--force", action="store_true", help="discard what is stored and recompute")
    ap.add_argument("--seeds", default=",".join(map(str, GRID_SEEDS)), help="grid and Prodigy seeds (default 0,1,2)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    tasks = [BY_NAME[n] for n in args.tasks.split(",")] if args.tasks else tasks_in(args.half)
    for task in tasks:
        if args.force and os.path.exists(path_of(task.name)):
            os.remove(path_of(task.name))
        seeds = tuple(int(v) for v in args.seeds.split(","))
        if stale(task) is None and not missing_seeds(task, seeds):
            continue
        compute(task, args.jobs, seeds)


if __name__ == "__main__":
    main()
