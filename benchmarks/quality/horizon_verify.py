"""suggest.verify on the horizon benchmark: what it costs, and what it gains at each length and schedule.

For the first VERIFY_SEEDS range tests of every task and each schedule, the candidates lrfind's verify
trains: `bracket(the rule's answer for a training of NUM_STEPS, CANDIDATES, SPACING)`, each trained for
NUM_STEPS (sweep.num_iter's default) from the range test's own start (the model of its seed, its
batches) under the schedule as PyTorch runs it (OneCycleLR's momentum cycling included), with the
batched trainer (batched.py, whose updates match torch.optim's; tests/test_batched_training.py).
Each candidate is scored as verify scores it: the mean of its last tenth of training losses (verify
without sweep.val) or its validation loss (with sweep.val; here the task's validation set). Then
`verify.choose` (the parabola's vertex in log-lr) and `verify.for_planned_training` (the length law
from NUM_STEPS to each length) give the answer, scored like any other at every length.

Stored: benchmarks/horizon_verify/<task>.json, {"key", "runs": {seed: {schedule: {"candidates", "train",
"val"}}}}; the key names the rule's constants, since the candidates bracket its answer.
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
import torch

from lrfind_cli.plan import TrainPlan
from lrfind_cli.verify import bracket, choose, for_planned_training

from . import horizon, horizon_fit
from .batched import Arm, run_arms
from .ground_truth import batches as index_batches
from .horizon_score import Context, contexts, curve, regret
from .store import JsonStore

STORE = JsonStore(os.path.join(os.path.dirname(horizon.STORE), "horizon_verify"))
VERIFY_SEEDS = (100, 101, 102, 103)  # the first four range tests of each task
NUM_STEPS, CANDIDATES, SPACING = 100, 3, 0.5  # suggest.verify's defaults (num_steps: sweep.num_iter's default)
TAIL = max(1, NUM_STEPS // 10)


def key() -> str:
    law = horizon_fit.shipped()
    return json.dumps([law.decades, law.cycled, law.fresh_slope, law.repeat_slope, law.repeat_passes, NUM_STEPS, CANDIDATES,
                       SPACING], sort_keys=True)


def _at_verify_length(ctx: Context) -> Context:
    return Context(ctx.schedule, NUM_STEPS, None if ctx.passes is None else ctx.passes * NUM_STEPS / ctx.steps, ctx.optimizer,
                   ctx.momentum_free, ctx.batch_size)


def _curve_batches(task, seed: int):
    """The range test's batches for `seed` (ground truth's range_curve draws them alike), endlessly."""
    if task.fresh is not None:
        return lambda s, steps: task.fresh.batches(task.batch_size, s + 104729)
    xt, yt, _, _ = task.data()

    def fixed(s: int, steps: int):
        for idx in index_batches(len(xt), task.batch_size, steps, s + 104729):
            yield xt[idx], yt[idx]

    return fixed


def compute(name: str) -> dict:
    """Train and store what is missing for one task (its ground truth must be complete, with curves)."""
    task = horizon.by_name(name)
    gt = horizon.load(name)
    stored = STORE.load(name)
    if stored is None or stored.get("key") != key():
        stored = {"task": name, "key": key(), "runs": {}}
    first = {c.schedule: c for c in contexts(gt) if c.steps == gt["lengths"][0]}
    _, _, xv, yv = task.data()
    started = time.perf_counter()
    for seed in VERIFY_SEEDS:
        if str(seed) in stored["runs"]:
            continue
        c = curve(gt, seed)
        arms, rows = [], {}
        for schedule, ctx in first.items():
            lr = horizon_fit.lrfind_rule(c, _at_verify_length(ctx))
            if lr is None:
                rows[schedule] = None
                continue
            cands = bracket(lr, CANDIDATES, SPACING)
            rows[schedule] = (len(arms), cands)
            arms += [Arm(schedule, v) for v in cands]
        out: dict = {}
        if arms:
            trained = run_arms(task.build, task.loss_fn(), task.optimizer, task.opt_kwargs, arms, [seed], NUM_STEPS,
                               _curve_batches(task, seed), (xv, yv), tail=TAIL)
        for schedule, row in rows.items():
            if row is None:
                out[schedule] = None
                continue
            j, cands = row
            out[schedule] = {"candidates": cands, "train": [float(v) for v in trained.train_tail[0, j : j + CANDIDATES]],
                             "val": [float(v) for v in trained.val[0, j : j + CANDIDATES]]}
        stored["runs"][str(seed)] = out
    stored["seconds"] = stored.get("seconds", 0.0) + time.perf_counter() - started
    STORE.save(name, stored)
    return stored


def answers(gt: dict, runs: dict, by: str) -> dict[tuple[str, int], list[float]]:
    """Regret of verify's answer ("train" or "val" scores) at every (schedule, length), per range test."""
    out: dict[tuple[str, int], list[float]] = {}
    per_pass = horizon_fit.steps_per_pass(gt)
    for ctx in contexts(gt):
        for seed in VERIFY_SEEDS:
            row = runs["runs"].get(str(seed), {}).get(ctx.schedule)
            lr = None
            if row is not None:
                vertex = choose(row["candidates"], [np.inf if v is None else v for v in row[by]])
                plan = TrainPlan(horizon_fit.PLAN_SCHEDULE[ctx.schedule], steps=ctx.steps, steps_per_pass=per_pass)
                lr = None if vertex is None else for_planned_training(vertex, NUM_STEPS, plan)
            out.setdefault((ctx.schedule, ctx.steps), []).append(regret(gt, ctx, lr)[0])
    return out


def rule_on_verify_seeds(gt: dict) -> dict[tuple[str, int], list[float]]:
    """The rule's own regret on the same range tests, for the side-by-side comparison."""
    out: dict[tuple[str, int], list[float]] = {}
    for ctx in contexts(gt):
        for seed in VERIFY_SEEDS:
            out.setdefault((ctx.schedule, ctx.steps), []).append(regret(gt, ctx, horizon_fit.lrfind_rule(curve(gt, seed), ctx))[0])
    return out


def _job(name: str) -> str:
    torch.set_num_threads(1)
    try:
        compute(name)
    except Exception as exc:  # noqa: BLE001 - one task's failure must not stop the others; it is reported
        return f"{name} FAILED ({type(exc).__name__}: {exc})"
    return name


def main(argv: list[str] | None = None) -> None:
    """`python -m benchmarks.quality.horizon_verify [--half design] [--jobs 2]`: train verify's candidates where missing."""
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--half", default="both", choices=("design", "test", "both"))
    ap.add_argument("--jobs", type=int, default=1)
    args = ap.parse_args(argv)
    names = [t.name for t in horizon.cost_order(horizon.horizon_tasks()) if args.half in ("both", t.half)
             and horizon.stale(t) is None and (horizon.load(t.name) or {}).get("curves")]
    todo = [n for n in names if (STORE.load(n) or {}).get("key") != key()
            or len((STORE.load(n) or {}).get("runs", {})) < len(VERIFY_SEEDS)]
    print(f"verify runs: {len(todo)} of {len(names)} tasks to compute", file=sys.stderr, flush=True)
    if args.jobs > 1 and len(todo) > 1:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(args.jobs, maxtasksperchild=1) as pool:
            for done in pool.imap_unordered(_job, todo, chunksize=1):
                print(done, file=sys.stderr, flush=True)
    else:
        for name in todo:
            print(_job(name), file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
