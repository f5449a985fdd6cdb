"""Overhead of lrfind's range_test against a bare PyTorch loop doing the same steps (and torch-lr-finder).

Not a test. Run from the repository root:

    .venv/bin/python benchmarks/overhead.py                  # CPU, prints the table
    .venv/bin/python benchmarks/overhead.py --device cuda    # on a GPU
    .venv/bin/python benchmarks/overhead.py --write docs/benchmarks.md

All contenders run in this one process, interleaved (the order rotates every repetition), each from
a fresh model built with the same seed, on the same loader and the same exponential schedule over a
range that does not diverge, so every contender does exactly `steps` optimizer steps. The figure is
the median wall time per contender and its ratio to the bare loop's median; the fastest repetition
and its ratio are shown too, as they are less disturbed by other work on a shared machine.
torch-lr-finder runs when installed (`pip install -e '.[bench]'`); its progress bar goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lrfind_cli import lr_schedule, range_test  # noqa: E402
from lrfind_cli.data import SyntheticImages  # noqa: E402

START_LR, END_LR = 1e-5, 1e-2  # no divergence: every contender runs all steps


@dataclass
class Task:
    name: str
    steps: int
    build_model: object
    dataset: object
    batch_size: int
    precision: str = "fp32"


def mlp_task(steps: int) -> Task:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(8192, 64, generator=gen)
    y = (x @ torch.randn(64, 10, generator=gen)).argmax(1)

    def build():
        return torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256), torch.nn.ReLU(),
                                   torch.nn.Linear(256, 10))

    return Task("MLP 64-256-256-10, batch 64", steps, build, torch.utils.data.TensorDataset(x, y), 64)


def resnet_task(steps: int, batch: int, name: str = "resnet18", precision: str = "fp32") -> Task:
    import torchvision

    def build():
        return torchvision.models.get_model(name, num_classes=10)

    return Task(f"{name} 3x32x32, batch {batch}, {precision}", steps, build, SyntheticImages(num_samples=batch * 8), batch, precision)


def loader(task: Task, device: torch.device):
    return torch.utils.data.DataLoader(task.dataset, batch_size=task.batch_size, shuffle=True, drop_last=True,
                                       pin_memory=device.type == "cuda", generator=torch.Generator().manual_seed(0))


def fresh(task: Task, device: torch.device, channels_last: bool):
    torch.manual_seed(0)
    model = task.build_model().to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model, torch.optim.SGD(model.parameters(), lr=START_LR, momentum=0.9)


def autocast(device: torch.device, precision: str):
    from contextlib import nullcontext

    return nullcontext() if precision == "fp32" else torch.autocast(device.type, dtype=torch.bfloat16)


def run_bare(task: Task, device: torch.device, channels_last: bool, first_step: list | None = None) -> float:
    """What a careful user writes by hand: same schedule, losses kept on the device, one sync at the end.

    With `first_step` (a list), also waits for the device after step 0 and appends that step's seconds.
    """
    model, opt = fresh(task, device, channels_last)
    loss_fn = torch.nn.CrossEntropyLoss()
    lrs = lr_schedule(START_LR, END_LR, task.steps)
    losses = torch.empty(task.steps, device=device)
    sync(device)
    t0 = time.perf_counter()
    batches = iter(())
    model.train()
    for i in range(task.steps):
        try:
            x, y = next(batches)
        except StopIteration:
            batches = iter(loader_cache[task.name])
            x, y = next(batches)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        for group in opt.param_groups:
            group["lr"] = float(lrs[i])
        opt.zero_grad(set_to_none=True)
        with autocast(device, task.precision):
            loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        losses[i] = loss.detach()
        if i == 0 and first_step is not None:
            sync(device)
            first_step.append(time.perf_counter() - t0)
    losses.tolist()
    sync(device)
    return time.perf_counter() - t0


def run_lrfind(task: Task, device: torch.device, channels_last: bool, timings: list | None = None) -> float:
    model, opt = fresh(task, device, channels_last)
    sync(device)
    t0 = time.perf_counter()
    result = range_test(model, opt, loader_cache[task.name], torch.nn.CrossEntropyLoss(), start_lr=START_LR, end_lr=END_LR,
                        num_iter=task.steps, precision=task.precision)
    sync(device)
    elapsed = time.perf_counter() - t0
    assert result.num_steps == task.steps, result.stop_reason
    if timings is not None:
        timings.append(result.timing)
    return elapsed


def run_torch_lr_finder(task: Task, device: torch.device, channels_last: bool) -> float:
    from torch_lr_finder import LRFinder

    model, opt = fresh(task, device, channels_last)
    sync(device)
    t0 = time.perf_counter()
    finder = LRFinder(model, opt, torch.nn.CrossEntropyLoss(), device=device)
    finder.range_test(loader_cache[task.name], start_lr=START_LR, end_lr=END_LR, num_iter=task.steps, diverge_th=1e12)
    finder.reset()
    sync(device)
    return time.perf_counter() - t0


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


loader_cache: dict = {}


def measure(task: Task, device: torch.device, reps: int, channels_last: bool) -> dict[str, list[float]]:
    loader_cache[task.name] = loader(task, device)
    contenders = {"bare loop": run_bare, "lrfind range_test": run_lrfind}
    try:
        import torch_lr_finder  # noqa: F401

        if task.precision == "fp32":
            contenders["torch-lr-finder"] = run_torch_lr_finder
    except ImportError:
        pass
    names = list(contenders)
    for name in names:  # warm-up: allocator, cuDNN autotune, first-call costs
        contenders[name](task, device, channels_last)
    times: dict[str, list[float]] = {n: [] for n in names}
    for rep in range(reps):
        order = names[rep % len(names):] + names[: rep % len(names)]
        for name in order:
            times[name].append(contenders[name](task, device, channels_last))
    return times


def breakdown(task: Task, device: torch.device, reps: int, channels_last: bool) -> list[str]:
    """Rows of the cost table: where each contender's time goes, medians of `reps` interleaved runs.

    The bare loop waits for the device once more, after step 0, to time it; its steady step is the mean
    of the later steps. lrfind's figures are its result's `timing` block (steady_step_s: the median time
    per step between two reads of the losses).
    """
    loader_cache.setdefault(task.name, loader(task, device))
    firsts: list[float] = []
    timings: list = []
    bare, sweep = [], []
    for rep in range(reps):
        runs = [lambda: bare.append(run_bare(task, device, channels_last, firsts)),
                lambda: sweep.append(run_lrfind(task, device, channels_last, timings))]
        for run in runs[rep % 2:] + runs[:rep % 2]:
            run()
    med = statistics.median
    first = med(firsts)
    steady = med((total - f) / (task.steps - 1) for total, f in zip(bare, firsts))
    rows = [f"| {task.name} | bare loop | {med(bare):.3f} | - | {first:.4f} | {steady * 1e3:.2f} | - | 1.000 |"]
    lr_first = med(t.first_step_s for t in timings)
    lr_steady = med(t.steady_step_s for t in timings)
    fixed = " / ".join(f"{med(getattr(t, name) for t in timings):.4f}" for name in ("snapshot_s", "restore_s", "suggest_s"))
    rows.append(f"| {task.name} | lrfind range_test | {med(sweep):.3f} | {fixed} | {lr_first:.4f} | {lr_steady * 1e3:.2f} | "
                f"{med(t.startup_s or 0 for t in timings):.1f} | {lr_steady / steady:.3f} |")
    return rows


def process_overhead(reps: int) -> tuple[float, float, float]:
    """Medians of `lrfind run configs/tiny.yaml --json`: wall time minus its sweep, the sweep, and its timing.startup_s."""
    extra, sweep, startup = [], [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "lrfind_cli", "run", "configs/tiny.yaml", "--json", "--out",
                              "lrfind-out/bench-tiny"], capture_output=True, text=True, check=True)
        wall = time.perf_counter() - t0
        doc = json.loads(out.stdout)
        extra.append(wall - doc["duration_s"])
        sweep.append(doc["duration_s"])
        startup.append(doc["timing"]["startup_s"] or 0.0)
    return statistics.median(extra), statistics.median(sweep), statistics.median(startup)


def startup(reps: int) -> list[tuple[str, float]]:
    """Median wall time of the commands that should not wait for torch: --help, --version, validate."""
    commands = [["--help"], ["--version"], ["validate", "configs/resnet.yaml"]]
    found = []
    for args in commands:
        walls = []
        for _ in range(reps):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "lrfind_cli", *args], capture_output=True, check=True)
            walls.append(time.perf_counter() - t0)
        found.append(("lrfind " + " ".join(args), statistics.median(walls)))
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch"], check=True)
    found.append(("python -c 'import torch' (for scale)", time.perf_counter() - t0))
    return found


def machine(device: torch.device) -> str:
    cpu = platform.processor() or platform.machine()
    text = f"{os.cpu_count()} CPU cores ({cpu}), torch {torch.__version__}, threads {torch.get_num_threads()}"
    if device.type == "cuda":
        text += f", GPU {torch.cuda.get_device_name(device)}"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--reps", type=int, default=11, help="repetitions of the compute-bound task")
    parser.add_argument("--mlp-reps", type=int, default=31, help="repetitions of the overhead-bound task (cheap, noisier)")
    parser.add_argument("--mlp-steps", type=int, default=300)
    parser.add_argument("--resnet-steps", type=int, default=30)
    parser.add_argument("--breakdown-reps", type=int, default=5, help="repetitions of the cost breakdown (0: skip it)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's); 1 steadies a busy machine")
    parser.add_argument("--write", help="append the table to this markdown file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
    tasks = [mlp_task(args.mlp_steps), resnet_task(args.resnet_steps, 256 if cuda else 32)]
    if cuda:
        tasks.append(resnet_task(args.resnet_steps, 128, name="resnet50", precision="bf16"))
    lines = [f"### {device.type.upper()}: {machine(device)}", "",
             f"`{' '.join(['python'] + sys.argv)}` — medians of {args.mlp_reps} (MLP) and {args.reps} (ResNet) "
             "interleaved repetitions", "",
             "| task | steps | contender | median s | ratio to bare loop (medians) | fastest s | ratio (fastest) |",
             "|---|---|---|---|---|---|---|"]
    for task in tasks:
        reps = args.mlp_reps if task.name.startswith("MLP") else args.reps
        times = measure(task, device, reps, channels_last=cuda and "resnet" in task.name)
        base, base_min = statistics.median(times["bare loop"]), min(times["bare loop"])
        for name, t in times.items():
            med, low = statistics.median(t), min(t)
            lines.append(f"| {task.name} | {task.steps} | {name} | {med:.3f} | {med / base:.3f} | {low:.3f} | {low / base_min:.3f} |")
        print("\n".join(lines[-len(times):]), flush=True)
    if args.breakdown_reps:
        lines += ["", f"Where the time goes (medians of {args.breakdown_reps} interleaved runs; lrfind's from its result's "
                  "`timing` block, startup_s being this benchmark process's age at the snapshot):", "",
                  "| task | contender | total s | snapshot / restore / suggest s | first step s | steady step ms | startup s | "
                  "steady / bare loop's |", "|---|---|---|---|---|---|---|---|"]
        for task in tasks:
            lines += breakdown(task, device, args.breakdown_reps, channels_last=cuda and "resnet" in task.name)
            print("\n".join(lines[-2:]), flush=True)
    if not cuda:
        extra, sweep, startup_s = process_overhead(3)
        lines += ["", f"Whole process, `lrfind run configs/tiny.yaml --json`: {extra:.2f} s outside the sweep "
                  f"(imports, building, plotting, writing) around a {sweep:.2f} s sweep; timing.startup_s (process "
                  f"start to the snapshot) {startup_s:.2f} s.", "",
                  "| command | wall s (median of 5) |", "|---|---|"]
        lines += [f"| `{name}` | {wall:.2f} |" for name, wall in startup(5)]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        with open(args.write, "a", encoding="utf-8") as fh:
            fh.write("\n" + text)


if __name__ == "__main__":
    main()
