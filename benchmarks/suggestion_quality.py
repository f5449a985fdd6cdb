"""How well do learning-rate suggestions train? Regret of each suggestion method against a grid of trained runs.

Not a test. Run from the repository root:

    .venv/bin/python benchmarks/suggestion_quality.py --quick            # 3 tasks, a few minutes
    .venv/bin/python benchmarks/suggestion_quality.py                    # all tasks (<= ~20 min on 2 cores)
    .venv/bin/python benchmarks/suggestion_quality.py --write docs/suggestion-quality.md
    .venv/bin/python benchmarks/suggestion_quality.py --jobs 2           # train grid points in 2 processes

For every small task (MLPs, a small CNN, a tiny ResNet; SGD+momentum, Adam, AdamW, RMSprop; cross-entropy
and MSE; batch sizes 16..128) it trains a fresh model at every learning rate of a quarter-decade grid under
two protocols -- a constant lr, and torch.optim.lr_scheduler.OneCycleLR with that max_lr -- for a short fixed
budget of steps, several seeds each, and records the loss on a held-out split. A diverged run (non-finite
loss) or one ending worse than the untrained model scores the untrained model's validation loss.

It then runs lrfind's `range_test` (1e-7 .. 10, 100 steps, the defaults) several times per task (different
model seed and data order) and scores every suggestion method by

    regret = val(suggested lr) / best - 1

where val() is the median over seeds of the grid's validation loss, interpolated linearly in log10(lr),
and best is the grid's lowest median. A suggestion outside the grid gets the value at the grid's nearest
edge (the grid spans far enough that this edge is already poor; the number of such cases is printed); no
suggestion at all counts as infinite regret. Spread is the standard deviation of log10(suggestion) across
the range-test seeds of one task, averaged over tasks. "x3" rows combine three range tests of a task in
two ways: "median" takes the median of the three per-run suggestions in log space; "mean curve" applies
the method once to the step-by-step mean of the three curves, which is what `sweep.repeats: 3` does
(`suggest.recommend_repeats`).

Grid results and range-test curves are cached under benchmarks/.cache/ (one JSON per task), so scoring a
new rule re-uses them and takes a second. scikit-learn's bundled datasets (digits, breast cancer,
diabetes) are used when installed (`pip install -e '.[bench]'`); without it those tasks are replaced by
synthetic stand-ins of the same shape.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lrfind_cli import suggest  # noqa: E402
from lrfind_cli.data import SyntheticImages, SyntheticTabular  # noqa: E402

CACHE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".cache")
CACHE_VERSION = 1
PROTOCOLS = ("constant", "onecycle")
RT_START, RT_END, RT_ITERS = 1e-7, 10.0, 100
REPEATS = 3


# ---------------------------------------------------------------- tasks


@dataclass
class Task:
    name: str
    describe: str
    data: Callable[[], tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]
    build: Callable[[], nn.Module]
    optimizer: str
    opt_kwargs: dict
    loss: str  # "ce" | "mse"
    batch_size: int
    steps: int
    grid: tuple[float, float]  # log10 bounds, quarter-decade points
    quick: bool = False
    extra: dict = field(default_factory=dict)

    def grid_lrs(self) -> list[float]:
        lo, hi = self.grid
        return [float(10 ** (lo + 0.25 * k)) for k in range(int(round((hi - lo) / 0.25)) + 1)]

    def loss_fn(self):
        return nn.CrossEntropyLoss() if self.loss == "ce" else nn.MSELoss()

    def make_optimizer(self, params, lr: float) -> torch.optim.Optimizer:
        cls = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "rmsprop": torch.optim.RMSprop}
        return cls[self.optimizer](params, lr=lr, **self.opt_kwargs)

    def key(self) -> str:
        text = json.dumps([CACHE_VERSION, self.describe, self.optimizer, self.opt_kwargs, self.loss, self.batch_size, self.steps,
                           self.extra], sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:10]


def _split(x: torch.Tensor, y: torch.Tensor, seed: int = 0, val_fraction: float = 0.25):
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    n_val = int(len(x) * val_fraction)
    return x[perm[n_val:]], y[perm[n_val:]], x[perm[:n_val]], y[perm[:n_val]]


def _standardise(xt, xv):
    mean, std = xt.mean(0, keepdim=True), xt.std(0, keepdim=True)
    std = torch.where(std < 1e-3, torch.ones_like(std), std)  # constant columns (digits' border pixels) stay as they are
    return (xt - mean) / std, (xv - mean) / std


def _sklearn(name: str):
    try:
        from sklearn import datasets
    except ImportError:
        return None
    x, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y)


def _teacher_classes(n: int, features: int, classes: int, seed: int):
    """Labels from a random teacher network with a little label noise: a stand-in for a small real set."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=gen)
    w1 = torch.randn(features, 32, generator=gen)
    w2 = torch.randn(32, classes, generator=gen)
    logits = torch.tanh(x @ w1 / features**0.5) @ w2 * 2.0
    y = (logits + 0.5 * torch.randn(n, classes, generator=gen)).argmax(1)
    return x, y


def digits_data():
    got = _sklearn("digits")
    x, y = got if got is not None else _teacher_classes(1797, 64, 10, 11)
    xt, yt, xv, yv = _split(x, y.long())
    xt, xv = _standardise(xt, xv)
    return xt, yt, xv, yv


def cancer_data():
    got = _sklearn("breast_cancer")
    x, y = got if got is not None else _teacher_classes(569, 30, 2, 12)
    xt, yt, xv, yv = _split(x, y.long())
    xt, xv = _standardise(xt, xv)
    return xt, yt, xv, yv


def diabetes_data():
    got = _sklearn("diabetes")
    if got is not None:
        x, y = got
    else:
        ds = SyntheticTabular(num_samples=442, num_features=10, noise=0.5, seed=13)
        x, y = ds.x, ds.y.squeeze(1)
    y = y.float().unsqueeze(1)
    xt, yt, xv, yv = _split(x, y)
    xt, xv = _standardise(xt, xv)
    mean, std = yt.mean(), yt.std()
    return xt, (yt - mean) / std, xv, (yv - mean) / std


def tabular_data():
    ds = SyntheticTabular(num_samples=4096, num_features=16, noise=0.1, seed=0)
    return _split(ds.x, ds.y)


def blobs_data():
    x, y = _teacher_classes(6000, 20, 5, 21)
    xt, yt, xv, yv = _split(x, y)
    return xt, yt, xv, yv


def images_data(channels: int, noise: float):
    def load():
        ds = SyntheticImages(num_samples=3000, num_classes=10, channels=channels, height=16, width=16, noise=noise, seed=3)
        xt, yt, xv, yv = _split(ds.data, ds.targets.long())
        mean, std = xt.mean(), xt.std()
        return (xt - mean) / std, yt, (xv - mean) / std, yv

    return load


def mlp(sizes: list[int]) -> Callable[[], nn.Module]:
    def build():
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-2], sizes[1:-1]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(sizes[-2], sizes[-1]))
        return nn.Sequential(*layers)

    return build


def small_cnn(channels: int = 3, classes: int = 10) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(channels, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 4 * 4, classes),
    )


class Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.skip = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                                                                     nn.BatchNorm2d(cout))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.skip(x))


def tiny_resnet(channels: int = 1, classes: int = 10) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(channels, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        Block(16, 16, 1), Block(16, 32, 2),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32 * 4, classes),
    )


SK = "sklearn" if _sklearn("digits") is not None else "synthetic stand-in"
TASKS = [
    Task("digits-mlp-sgd", f"digits ({SK}) MLP 64-128-10, SGD m=0.9, CE, batch 32", digits_data, mlp([64, 128, 10]),
         "sgd", {"momentum": 0.9}, "ce", 32, 300, (-4.0, 1.0), quick=True, extra={"sk": SK}),
    Task("diabetes-mlp-adamw", f"diabetes ({SK}) MLP 10-64-64-1, AdamW wd=0.01, MSE, batch 16", diabetes_data, mlp([10, 64, 64, 1]),
         "adamw", {"weight_decay": 0.01}, "mse", 16, 300, (-5.0, 0.0), quick=True, extra={"sk": SK}),
    Task("tabular-mlp-rmsprop", "SyntheticTabular MLP 16-64-64-1, RMSprop, MSE, batch 64", tabular_data, mlp([16, 64, 64, 1]),
         "rmsprop", {}, "mse", 64, 300, (-5.5, -0.5), quick=True),
    Task("cancer-mlp-adam", f"breast cancer ({SK}) MLP 30-32-2, Adam, CE, batch 16", cancer_data, mlp([30, 32, 2]),
         "adam", {}, "ce", 16, 200, (-5.0, 0.0), extra={"sk": SK}),
    Task("blobs-mlp-sgd-b128", "teacher-net classes MLP 20-128-128-5, SGD m=0.9 wd=5e-4, CE, batch 128", blobs_data,
         mlp([20, 128, 128, 5]), "sgd", {"momentum": 0.9, "weight_decay": 5e-4}, "ce", 128, 300, (-3.5, 1.5)),
    Task("images-cnn-sgd", "SyntheticImages 3x16x16 noise 6 small CNN, SGD m=0.9, CE, batch 64", images_data(3, 6.0), lambda: small_cnn(3),
         "sgd", {"momentum": 0.9}, "ce", 64, 250, (-3.5, 1.0)),
    Task("images-resnet-adam", "SyntheticImages 1x16x16 noise 4 tiny ResNet (BN), Adam, CE, batch 32", images_data(1, 4.0),
         lambda: tiny_resnet(1), "adam", {}, "ce", 32, 200, (-4.5, -0.5)),
]


# ---------------------------------------------------------------- training and range tests

_DATA: dict[str, tuple] = {}


def task_data(task: Task):
    if task.name not in _DATA:
        _DATA[task.name] = task.data()
    return _DATA[task.name]


def _batches(n: int, batch_size: int, count: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    out: list[torch.Tensor] = []
    while len(out) < count:
        perm = torch.randperm(n, generator=gen)
        out += [perm[i : i + batch_size] for i in range(0, n - batch_size + 1, batch_size)]
    return out[:count]


def train_run(task: Task, lr: float, protocol: str, seed: int) -> float:
    """Validation loss after `task.steps` steps at `lr` (constant) or one-cycle with max_lr=lr."""
    xt, yt, xv, yv = task_data(task)
    torch.manual_seed(seed)
    model = task.build()
    loss_fn = task.loss_fn()
    with torch.no_grad():
        model.eval()
        init = float(loss_fn(model(xv), yv))
    model.train()
    opt = task.make_optimizer(model.parameters(), lr)
    sched = None
    if protocol == "onecycle":
        cycle = task.optimizer != "rmsprop"  # plain RMSprop has no momentum to cycle
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=task.steps, cycle_momentum=cycle)
    for idx in _batches(len(xt), task.batch_size, task.steps, seed + 7919):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(xt[idx]), yt[idx])
        if not torch.isfinite(loss) or float(loss.detach()) > 1e4 * max(init, 1e-3):
            return init
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
    model.eval()
    with torch.no_grad():
        val = float(loss_fn(model(xv), yv))
    return val if math.isfinite(val) and val < init else init


def range_curve(task: Task, seed: int) -> dict:
    from lrfind_cli import range_test

    xt, yt, _, _ = task_data(task)
    torch.manual_seed(seed)
    model = task.build()
    opt = task.make_optimizer(model.parameters(), RT_START)
    batches = [(xt[idx], yt[idx]) for idx in _batches(len(xt), task.batch_size, RT_ITERS, seed + 104729)]
    result = range_test(model, opt, batches, task.loss_fn(), start_lr=RT_START, end_lr=RT_END, num_iter=RT_ITERS)
    clean = [None if not math.isfinite(v) else v for v in result.losses]
    smooth = [None if not math.isfinite(v) else v for v in result.smoothed]
    return {"seed": seed, "lrs": result.lrs, "losses": clean, "smoothed": smooth, "status": result.status}


def _grid_job(args):
    name, lr, protocol, seed = args
    torch.set_num_threads(1)
    task = next(t for t in TASKS if t.name == name)
    return args, train_run(task, lr, protocol, seed)


def load_cache(task: Task) -> dict:
    path = os.path.join(CACHE_DIR, f"{task.name}-{task.key()}.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return {"task": task.name, "describe": task.describe, "grid": {p: {} for p in PROTOCOLS}, "curves": {}}


def save_cache(task: Task, cache: dict) -> None:
    os.makedirs(CACHE_DIR, exist_ok=True)
    path = os.path.join(CACHE_DIR, f"{task.name}-{task.key()}.json")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(cache, f)
    os.replace(tmp, path)


def measure(task: Task, grid_seeds: list[int], rt_seeds: list[int], jobs: int) -> dict:
    cache = load_cache(task)
    todo = [(task.name, lr, p, s) for p in PROTOCOLS for lr in task.grid_lrs() for s in grid_seeds
            if str(s) not in cache["grid"][p].get(f"{lr:.6g}", {})]
    started = time.perf_counter()
    if todo:
        if jobs > 1:
            import multiprocessing as mp

            with mp.get_context("fork").Pool(jobs) as pool:
                results = pool.map(_grid_job, todo, chunksize=4)
        else:
            results = [_grid_job(a) for a in todo]
        for (_, lr, p, s), val in results:
            cache["grid"][p].setdefault(f"{lr:.6g}", {})[str(s)] = val
    missing = [s for s in rt_seeds if str(s) not in cache["curves"]]
    for s in missing:
        if str(s) not in cache["curves"]:
            cache["curves"][str(s)] = range_curve(task, s)
    if todo or missing:
        cache["seconds"] = cache.get("seconds", 0.0) + time.perf_counter() - started
        save_cache(task, cache)
    print(f"  {task.name}: {len(todo)} grid runs, {len(rt_seeds)} range tests ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    return cache


# ---------------------------------------------------------------- suggestion methods


def _arr(values) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def tlf_steepest(lrs, smoothed, raw):
    """torch-lr-finder: EMA f=0.05 of raw losses, np.gradient BY INDEX over [10:-5], argmin."""
    y = _arr(raw)
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
    x, y = np.asarray(lrs, dtype=float)[10:-1], _arr(smoothed)[10:-1]
    keep = np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(y) < 2:
        return None
    return float(x[int(np.argmin(np.gradient(y, x)))])


def fastai_valley(lrs, smoothed, raw):
    return suggest.valley(lrs, _arr(smoothed))


def fastai_minimum(lrs, smoothed, raw):
    return suggest.minimum(lrs, _arr(smoothed))


def lrfind_steepest(lrs, smoothed, raw):
    return suggest.steepest(lrs, _arr(smoothed), suggest.noise_level(_arr(raw)))


def lrfind_auto(lrs, smoothed, raw):
    return suggest.choose("auto", suggest.suggest_all(lrs, _arr(smoothed), _arr(raw)))[1]


def recommender(schedule: str):
    def method(lrs, smoothed, raw):
        return suggest.recommend(lrs, _arr(smoothed), _arr(raw), schedule=schedule)["lr"]

    # several runs: exactly what `sweep.repeats` does (the mean curve, with its fallbacks)
    method.combine = lambda curves: suggest.recommend_repeats(curves, schedule)["lr"]
    return method


METHODS: dict[str, Callable] = {
    "torch-lr-finder steepest (index)": tlf_steepest,
    "lightning steepest (d/d lr)": lightning,
    "fastai valley": fastai_valley,
    "fastai minimum/10": fastai_minimum,
    "lrfind steepest (log lr)": lrfind_steepest,
    "lrfind 0.1 auto (median of steepest, valley, minimum)": lrfind_auto,
}
if hasattr(suggest, "recommend"):
    METHODS["recommend(schedule=constant)"] = recommender("constant")
    METHODS["recommend(schedule=onecycle)"] = recommender("onecycle")


# ---------------------------------------------------------------- scoring


def val_curve(cache: dict, protocol: str) -> tuple[np.ndarray, np.ndarray]:
    grid = cache["grid"][protocol]
    lrs = sorted(grid, key=float)
    u = np.log10([float(lr) for lr in lrs])
    med = np.array([np.median(list(grid[lr].values())) for lr in lrs])
    return u, med


def regret(cache: dict, protocol: str, lr: float | None) -> tuple[float, bool]:
    """(regret, outside the grid) of training at `lr`; no suggestion is infinite regret."""
    if lr is None or not math.isfinite(lr) or lr <= 0:
        return math.inf, False
    u, med = val_curve(cache, protocol)
    x = math.log10(lr)
    return float(np.interp(x, u, med) / med.min() - 1.0), not (u[0] <= x <= u[-1])


def _curve(c: dict) -> tuple:
    return c["lrs"], _arr(c["smoothed"]), _arr(c["losses"])


def score(caches: dict[str, dict], rt_seeds: list[int]) -> dict:
    rows: dict[str, dict] = {}
    groups = [rt_seeds[i : i + REPEATS] for i in range(0, len(rt_seeds) - REPEATS + 1, REPEATS)]
    for name, fn in METHODS.items():
        for label, combos in (("single", [[s] for s in rt_seeds]), (f"x{REPEATS} median", groups), (f"x{REPEATS} mean curve", groups)):
            if label != "single" and not groups:
                continue
            row = {p: [] for p in PROTOCOLS}
            outside, missing, spreads = 0, 0, []
            for task, cache in caches.items():
                per_run = {}
                for s in rt_seeds:
                    c = cache["curves"][str(s)]
                    per_run[s] = fn(c["lrs"], c["smoothed"], c["losses"])
                values = []
                for combo in combos:
                    if label.endswith("mean curve") and hasattr(fn, "combine"):
                        lr = fn.combine([_curve(cache["curves"][str(s)]) for s in combo])
                    elif label.endswith("mean curve"):
                        averaged = suggest.mean_curve([_curve(cache["curves"][str(s)]) for s in combo])
                        lr = fn(*averaged) if averaged is not None else None
                    else:
                        found = [math.log10(per_run[s]) for s in combo if per_run[s] is not None and per_run[s] > 0]
                        lr = 10 ** float(np.median(found)) if found else None
                    values.append(lr)
                    for p in PROTOCOLS:
                        r, out = regret(cache, p, lr)
                        row[p].append(r)
                        outside += out
                    missing += lr is None
                logs = [math.log10(v) for v in values if v is not None]
                if len(logs) >= 2:
                    spreads.append(float(np.std(logs, ddof=1)))
                del task
            entry = {"spread": float(np.mean(spreads)) if spreads else math.nan, "outside": outside // len(PROTOCOLS),
                     "missing": missing, "n": len(row[PROTOCOLS[0]])}
            for p in PROTOCOLS:
                arr = np.array(row[p])
                entry[p] = {"median": float(np.median(arr)), "within10": float(np.mean(arr <= 0.10))}
            rows[f"{name} [{label}]"] = entry
    return rows


def task_summary(caches: dict[str, dict]) -> list[str]:
    lines = ["| task | best constant lr | best one-cycle lr | best val (const / 1cyc) | untrained val |", "|---|---|---|---|---|"]
    for name, cache in caches.items():
        cells = []
        vals = []
        for p in PROTOCOLS:
            u, med = val_curve(cache, p)
            i = int(np.argmin(med))
            cells.append(f"{10 ** u[i]:.3g}")
            vals.append(f"{med[i]:.4g}")
        init = max(max(v.values()) for v in cache["grid"]["constant"].values())
        lines.append(f"| {name} | {cells[0]} | {cells[1]} | {' / '.join(vals)} | {init:.4g} |")
    return lines


def per_task(caches: dict[str, dict], rt_seeds: list[int]) -> list[str]:
    """Median regret per task of a few methods (single range tests): where each one wins and loses."""
    baselines = ("fastai valley", "fastai minimum/10")
    shown = [(name, p) for p in PROTOCOLS for name in (*baselines, f"recommend(schedule={p})") if name in METHODS]
    lines = ["| task | " + " | ".join(f"{n} @ {p}" for n, p in shown) + " |", "|---|" + "---|" * len(shown)]
    for task, cache in caches.items():
        cells = []
        for name, p in shown:
            rs = [regret(cache, p, METHODS[name](c["lrs"], c["smoothed"], c["losses"]))[0]
                  for c in (cache["curves"][str(s)] for s in rt_seeds)]
            cells.append(f"{float(np.median(rs)):.2f}")
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    return lines


def table(rows: dict) -> list[str]:
    head = ("| method | constant: median regret | constant: within 10% | one-cycle: median regret | one-cycle: within 10% "
            "| spread (decades) | no answer | outside grid |")
    lines = [head, "|---|---|---|---|---|---|---|---|"]
    for name, e in rows.items():
        def fmt(x):
            return "inf" if math.isinf(x) else f"{x:.3f}"
        lines.append(f"| {name} | {fmt(e['constant']['median'])} | {e['constant']['within10']:.0%} | {fmt(e['onecycle']['median'])} "
                     f"| {e['onecycle']['within10']:.0%} | {e['spread']:.2f} | {e['missing']}/{e['n']} | {e['outside']} |")
    return lines


BASELINES = ("torch-lr-finder", "lightning", "fastai")  # the existing finders' methods (lrfind's own older ones are not)


def verdict(rows: dict) -> list[str]:
    """The issue's targets, checked on this run's rows: lrfind's rule against every baseline method, per schedule.

    Single range tests are compared with single range tests. lrfind with 3 repeats (its mean curve,
    as `sweep.repeats: 3` does) is compared with every baseline combined either way.
    """
    lines = []
    for schedule in PROTOCOLS:
        ours = f"recommend(schedule={schedule})"
        repeated = (f"x{REPEATS} median", f"x{REPEATS} mean curve")
        for mine_label, their_labels in (("single", ("single",)), (f"x{REPEATS} mean curve", repeated)):
            mine = rows[f"{ours} [{mine_label}]"][schedule]
            ends = tuple(f"[{t}]" for t in their_labels)
            others = {n: e[schedule] for n, e in rows.items() if n.startswith(BASELINES) and n.endswith(ends)}
            best_median = min(others.items(), key=lambda kv: kv[1]["median"])
            best_share = max(others.items(), key=lambda kv: kv[1]["within10"])
            ok = mine["median"] <= best_median[1]["median"] and mine["within10"] >= best_share[1]["within10"]
            lines.append(f"- {schedule} protocol, lrfind {mine_label}: median regret {mine['median']:.3f}, "
                         f"within 10% {mine['within10']:.0%}. "
                         f"Best baseline: median {best_median[1]['median']:.3f} ({best_median[0]}), within 10% "
                         f"{best_share[1]['within10']:.0%} ({best_share[0]}). "
                         f"{'At least as good on both.' if ok else '**Not** as good on both.'}")
        spread = rows[f"{ours} [x{REPEATS} mean curve]"]["spread"]
        others = {n: e["spread"] for n, e in rows.items() if n.startswith(BASELINES) and f"[x{REPEATS}" in n}
        lowest = min(others.items(), key=lambda kv: kv[1])
        lines.append(f"- {schedule}: spread of the suggestion with {REPEATS} repeats: lrfind {spread:.2f} decades, lowest baseline "
                     f"{lowest[1]:.2f} ({lowest[0]}). {'Smaller.' if spread < lowest[1] else '**Not** smaller.'}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 tasks, 2 grid seeds, 6 range tests per task (a few minutes)")
    ap.add_argument("--jobs", type=int, default=1, help="processes for the grid (default 1)")
    ap.add_argument("--tasks", default="", help="comma-separated task names (default: all, or the quick set)")
    ap.add_argument("--write", default="", help="write the markdown report to this path")
    args = ap.parse_args()
    torch.set_num_threads(1)
    grid_seeds = [0, 1] if args.quick else [0, 1, 2]
    rt_seeds = list(range(100, 106)) if args.quick else list(range(100, 112))
    tasks = [t for t in TASKS if (t.quick or not args.quick)]
    if args.tasks:
        wanted = set(args.tasks.split(","))
        tasks = [t for t in TASKS if t.name in wanted]
    started = time.perf_counter()
    print(f"measuring {len(tasks)} tasks (cache: {CACHE_DIR})", file=sys.stderr)
    caches = {t.name: measure(t, grid_seeds, rt_seeds, args.jobs) for t in tasks}
    elapsed = time.perf_counter() - started
    rows = score(caches, rt_seeds)
    out = ["## Tasks", "", *[f"- `{t.name}`: {t.describe}; {t.steps} steps; grid 10^{t.grid[0]:g} .. 10^{t.grid[1]:g}" for t in tasks], "",
           *task_summary(caches), "", "## Suggestion quality", "", *table(rows), "", "## Targets", "", *verdict(rows), "",
           "## Median regret per task (single range tests)", "", *per_task(caches, rt_seeds)]
    print("\n".join(out))
    if args.write:
        cmd = "python benchmarks/suggestion_quality.py " + " ".join(a for a in sys.argv[1:])
        machine = f"{platform.platform()}, {os.cpu_count()} CPUs, torch {torch.__version__}, python {platform.python_version()}"
        uncached = sum(c.get("seconds", 0) for c in caches.values())
        head = ["# Suggestion quality", "", "Generated by `benchmarks/suggestion_quality.py` (see its docstring for the method).", "",
                f"- Command: `{cmd}`", f"- Machine: {machine}",
                f"- Measuring time: {elapsed:.0f} s this run; {uncached:.0f} s without the cache (--jobs 2, shared machine)",
                f"- Grid seeds {grid_seeds}; range-test seeds {rt_seeds[0]}..{rt_seeds[-1]}; range test {RT_START:g}..{RT_END:g}, "
                f"{RT_ITERS} steps, smoothing 0.98", ""]
        with open(args.write, "w") as f:
            f.write("\n".join(head + out) + "\n")


if __name__ == "__main__":
    main()
