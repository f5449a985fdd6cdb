"""The verification stage measured on the benchmark: its cost in training steps and its gain in regret, for a pluggable rule.

For a task, a range-test seed s and a schedule, the rule's answer lr0 is read from curve s; the candidates
are `bracket(lr0, k, step)`; `lrfind_cli.verify.verify_candidates` trains each for `num_steps`
(the task's steps / 4) from the model the range test started from (torch.manual_seed(s); the range
test's own first batches), under the schedule, and picks the lowest final loss: the mean of the last
training losses ("train"), or the validation split's loss ("val", as with `sweep.val`). The chosen lr
is scored like any suggestion.

Each candidate's result depends only on (task, seed, schedule, num_steps, lr), never on the rule, so
runs are cached per candidate lr in `benchmarks/verify_runs/<task>.json`, apart from the ground
truth: a new rule trains only the candidates not seen before.
"""

from __future__ import annotations

import itertools
import math
import os
import sys
from collections.abc import Sequence

import numpy as np
import torch

from lrfind_cli.verify import bracket, verify_candidates

from . import ground_truth
from .ground_truth import PROTOCOLS, RT_SEEDS, batches, lr_key, task_data
from .methods import Rule
from .score import curve, regret, summarise
from .store import JsonStore
from .tasks import BY_NAME

STORE = os.path.join(os.path.dirname(ground_truth.STORE), "verify_runs")
VERIFY_SEEDS = RT_SEEDS[:2]  # the first two range tests of each task (CPU time on the shared machine)
# (k, step in decades): the brackets measured. Three candidates half a decade apart span the typical miss of a
# rule (0.5 decades); more brackets can be added here, their runs are cached per candidate lr.
CONFIGS = ((3, 0.5),)


def num_steps(task_steps: int) -> int:
    return max(10, task_steps // 4)


_STORE = JsonStore(STORE, sort_keys=True)


def load_runs(name: str, key: str) -> dict:
    runs = _STORE.load(name)
    if runs is not None and runs.get("key") == key:
        return runs
    return {"task": name, "key": key, "runs": {}}


def save_runs(runs: dict) -> None:
    _STORE.save(runs["task"], runs)


def _run_key(seed: int, schedule: str, steps: int) -> str:
    return f"{seed}/{schedule}/{steps}"


def measure_candidates(name: str, seed: int, schedule: str, lrs: list[float]) -> dict[str, dict]:
    """Train the candidates from the range test's starting point; {lr_key: {"train", "val", "steps"}}."""
    torch.set_num_threads(1)
    task = BY_NAME[name]
    xt, yt, xv, yv = task_data(task)
    steps = num_steps(task.steps)
    torch.manual_seed(seed)
    model = task.build()
    optimizer = task.make_optimizer(model.parameters(), lrs[0])
    data = [(xt[idx], yt[idx]) for idx in batches(len(xt), task.batch_size, steps, seed + 104729)]
    loss_fn = task.loss_fn()
    out = {}
    for lr in lrs:  # one candidate per call: the val-picked and train-picked results both come from it
        result = verify_candidates(model, optimizer, data, loss_fn, [lr], num_steps=steps, schedule=schedule,
                                   val_fn=lambda m: loss_fn(m(xv), yv))
        out[lr_key(lr)] = {"train": _finite(result.train_losses[0]), "val": _finite(result.val_losses[0]),
                           "steps": result.steps_trained}
    return out


def _finite(v: float) -> float | None:
    return v if math.isfinite(v) else None


def _job(args):
    name, seed, schedule, lrs = args
    return args, measure_candidates(name, seed, schedule, lrs)


def _candidates(rule: Rule, gt: dict, seed: int, schedule: str) -> tuple[float | None, list[float]]:
    lr0 = rule(*curve(gt, seed), schedule)
    if lr0 is None or not (lr0 > 0 and math.isfinite(lr0)):
        return None, []
    lrs = {lr_key(v): v for k, step in CONFIGS for v in bracket(lr0, k, step)}
    return lr0, sorted(lrs.values())


def ensure(rule: Rule, gts: dict[str, dict], processes: int = 1, log=sys.stderr) -> dict[str, dict]:
    """Train every candidate the rule needs that is not cached yet; return {task: runs}."""
    all_runs = {name: load_runs(name, BY_NAME[name].key()) for name in gts}
    todo = _missing(rule, gts, all_runs)
    if todo:
        print(f"verify: training {sum(len(t[3]) for t in todo)} candidates in {len(todo)} groups", file=log)

        def record(results) -> None:
            for (name, seed, p, _), measured in results:
                steps = num_steps(gts[name]["steps"])
                all_runs[name]["runs"].setdefault(_run_key(seed, p, steps), {}).update(measured)
            for name in {r[0][0] for r in results}:
                save_runs(all_runs[name])

        _train(todo, processes, record)
    return all_runs


def _missing(rule: Rule, gts: dict[str, dict], all_runs: dict[str, dict]) -> list[tuple]:
    """(task, seed, protocol, candidate lrs not cached yet) for every group the rule needs."""
    todo = []
    for name, gt in gts.items():
        steps = num_steps(gt["steps"])
        for seed, p in itertools.product(VERIFY_SEEDS, PROTOCOLS):
            _, lrs = _candidates(rule, gt, seed, p)
            have = all_runs[name]["runs"].get(_run_key(seed, p, steps), {})
            need = [v for v in lrs if lr_key(v) not in have]
            if need:
                todo.append((name, seed, p, need))
    return todo


def _train(todo: list[tuple], processes: int, record) -> None:
    """Run the groups, in `processes` forked workers when more than one; `record` saves each batch of 8 as it comes."""
    if processes <= 1:
        for job in todo:
            record([_job(job)])
        return
    import multiprocessing as mp

    with mp.get_context("fork").Pool(processes) as pool:
        batch = []
        for item in pool.imap_unordered(_job, todo, chunksize=1):
            batch.append(item)
            if len(batch) == 8:
                record(batch)
                batch = []
        record(batch)


def evaluate(rule: Rule, gts: dict[str, dict], all_runs: dict[str, dict], seeds: Sequence[int] = VERIFY_SEEDS) -> dict:
    """Per protocol: regret without verify, with verify per (k, step, criterion), and the cost.

    Cost is the extra training steps over the range test's own steps (the length of its curve).
    """
    out: dict = {}
    for p in PROTOCOLS:
        base: list[float] = []
        with_verify: dict[tuple, list[float]] = {(k, step, crit): [] for k, step in CONFIGS for crit in ("train", "val")}
        cost: dict[tuple, list[float]] = {(k, step): [] for k, step in CONFIGS}
        moved: dict[tuple, list[float]] = {key: [] for key in with_verify}
        for name, gt in gts.items():
            runs = all_runs[name]["runs"]
            steps = num_steps(gt["steps"])
            for seed in seeds:
                lr0, _ = _candidates(rule, gt, seed, p)
                r0 = regret(gt, p, lr0)[0]
                base.append(r0)
                rt_steps = len(gt["curves"][str(seed)]["lrs"])
                for k, step in CONFIGS:
                    if lr0 is None:
                        for crit in ("train", "val"):
                            with_verify[(k, step, crit)].append(math.inf)
                        continue
                    cands = bracket(lr0, k, step)
                    measured = [runs[_run_key(seed, p, steps)][lr_key(v)] for v in cands]
                    cost[(k, step)].append(sum(m["steps"] for m in measured) / rt_steps)
                    for crit in ("train", "val"):
                        losses = [m[crit] if m[crit] is not None else math.inf for m in measured]
                        i = int(np.argmin(losses)) if any(math.isfinite(v) for v in losses) else None
                        chosen = cands[i] if i is not None else None
                        with_verify[(k, step, crit)].append(regret(gt, p, chosen)[0])
                        if chosen is not None:
                            moved[(k, step, crit)].append(math.log10(chosen / lr0))
        out[p] = {"without": summarise(base), "with": {key: summarise(v) for key, v in with_verify.items()},
                  "cost": {key: float(np.mean(v)) if v else math.nan for key, v in cost.items()},
                  "moved": {key: float(np.mean(np.abs(v))) if v else math.nan for key, v in moved.items()},
                  "better": {key: float(np.mean(np.array(v) < np.array(base) - 1e-12)) for key, v in with_verify.items()},
                  "worse": {key: float(np.mean(np.array(v) > np.array(base) + 1e-12)) for key, v in with_verify.items()}}
    return out
