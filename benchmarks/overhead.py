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

A second table gives each contender's peak memory, the largest over its repetitions: on the device
(torch.cuda.max_memory_allocated, reset before each run) and on the host (the process's peak resident
set, VmHWM, reset before each run through /proc/self/clear_refs on Linux; "n/a" where that is not possible).
On CUDA a ~100M-parameter transformer in bf16 (`--transformer-steps`) shows a model whose step dominates.
`--dry-run` runs every task at toy sizes on the CPU, one repetition each, to check the script itself.
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
from lrfind_cli.data import SyntheticImages, SyntheticSequences  # noqa: E402
from lrfind_cli.engine import to_device  # noqa: E402
from lrfind_cli.models import TinyCausalLM  # noqa: E402

START_LR, END_LR = 1e-5, 1e-2  # no divergence: every contender runs all steps


@dataclass
class Task:
    name: str
    steps: int
    build_model: object
    dataset: object
    batch_size: int
    precision: str = "fp32"
    own_loss: bool = False  # the model returns its loss from a dict batch (model(**batch)["loss"]); else cross-entropy


def mlp_task(steps: int) -> Task:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(8192, 64, generator=gen)
    y = (x @ torch.randn(64, 10, generator=gen)).argmax(1)

    def build():
        return torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256), torch.nn.ReLU(),
                                   torch.nn.Linear(256, 10))

    return Task("MLP 64-256-256-10, batch 64", steps, build, torch.utils.data.TensorDataset(x, y), 64)


def resnet_task(steps: int, batch: int, name: str = "resnet18", precision: str = "fp32", size: int = 32) -> Task:
    import torchvision

    def build():
        return torchvision.models.get_model(name, num_classes=10)

    data = SyntheticImages(num_samples=batch * 8, height=size, width=size)
    return Task(f"{name} 3x{size}x{size}, batch {batch}, {precision}", steps, build, data, batch, precision)


def transformer_task(steps: int, batch: int = 16, seq: int = 256, dim: int = 768, depth: int = 12, vocab: int = 8192) -> Task:
    """A decoder-only transformer in bf16 whose step dominates: at the defaults 98M parameters (12 blocks of width 768,
    as GPT-2 small, with an 8192-token vocabulary), 4096 tokens per step."""

    def build():
        return TinyCausalLM(vocab_size=vocab, dim=dim, depth=depth, heads=max(dim // 64, 1), max_len=seq)

    millions = sum(p.numel() for p in build().parameters()) / 1e6
    data = SyntheticSequences(num_samples=batch * 8, seq_len=seq, vocab_size=vocab)
    return Task(f"transformer {millions:.3g}M params, {batch}x{seq} tokens, bf16", steps, build, data, batch, "bf16", own_loss=True)


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
            batch = next(batches)
        except StopIteration:
            batches = iter(loader_cache[task.name])
            batch = next(batches)
        batch = to_device(batch, device)  # non-blocking copies of every tensor in the batch
        for group in opt.param_groups:
            group["lr"] = float(lrs[i])
        opt.zero_grad(set_to_none=True)
        with autocast(device, task.precision):
            loss = model(**batch)["loss"] if task.own_loss else loss_fn(model(batch[0]), batch[1])
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
    loss_fn = None if task.own_loss else torch.nn.CrossEntropyLoss()
    result = range_test(model, opt, loader_cache[task.name], loss_fn, start_lr=START_LR, end_lr=END_LR,
                        num_iter=task.steps, precision=task.precision, extend_decades=0)  # the bare loop's steps exactly
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


def host_peak_resettable() -> bool:
    """Reset the process's peak resident set (Linux: VmHWM, through /proc/self/clear_refs); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def host_peak_bytes() -> int | None:
    """The process's peak resident set since the last reset (VmHWM), None where /proc is not there."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def with_peaks(run, task: Task, device: torch.device, channels_last: bool) -> tuple[float, int | None, int | None]:
    """(seconds, peak device bytes or None, peak host bytes or None) of one run of a contender."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
    host = host_peak_resettable()
    seconds = run(task, device, channels_last)
    peak_device = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    return seconds, peak_device, host_peak_bytes() if host else None


def measure(task: Task, device: torch.device, reps: int, channels_last: bool) -> tuple[dict[str, list[float]], dict[str, tuple]]:
    """Wall times of every contender's repetitions, and each contender's largest (device, host) peaks over them."""
    loader_cache[task.name] = loader(task, device)
    contenders = {"bare loop": run_bare, "lrfind range_test": run_lrfind}
    try:
        import torch_lr_finder  # noqa: F401

        if task.precision == "fp32" and not task.own_loss:
            contenders["torch-lr-finder"] = run_torch_lr_finder
    except ImportError:
        pass
    names = list(contenders)
    for name in names:  # warm-up: allocator, cuDNN autotune, first-call costs
        contenders[name](task, device, channels_last)
    times: dict[str, list[float]] = {n: [] for n in names}
    peaks: dict[str, tuple] = {n: (None, None) for n in names}
    for rep in range(reps):
        order = names[rep % len(names):] + names[: rep % len(names)]
        for name in order:
            seconds, peak_device, peak_host = with_peaks(contenders[name], task, device, channels_last)
            times[name].append(seconds)
            peaks[name] = tuple(_larger(old, new) for old, new in zip(peaks[name], (peak_device, peak_host)))
    return times, peaks


def _larger(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)


def memory_rows(task: Task, peaks: dict[str, tuple]) -> list[str]:
    """Rows of the memory table: each contender's peaks in MiB and against the bare loop's."""
    def shown(value, base):
        if value is None:
            return "n/a", "n/a"
        extra = "n/a" if base is None else f"{(value - base) / 2**20:+.0f}"
        return f"{value / 2**20:.0f}", extra

    base_device, base_host = peaks["bare loop"]
    rows = []
    for name, (device_peak, host_peak) in peaks.items():
        cells = [*shown(device_peak, base_device), *shown(host_peak, base_host)]
        rows.append(f"| {task.name} | {name} | " + " | ".join(cells) + " |")
    return rows


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


def tasks_for(args, device: torch.device) -> list[Task]:
    """The tasks of this run: the MLP and ResNet-18 everywhere; ResNet-50 and the transformer (both bf16) on CUDA; toys with --dry-run."""
    if args.dry_run:
        return [mlp_task(20), resnet_task(3, 4, size=8), resnet_task(3, 4, name="resnet50", precision="bf16", size=8),
                transformer_task(3, batch=2, seq=16, dim=32, depth=2, vocab=64)]
    tasks = [mlp_task(args.mlp_steps), resnet_task(args.resnet_steps, 256 if device.type == "cuda" else 32)]
    if device.type == "cuda":
        tasks.append(resnet_task(args.resnet_steps, 128, name="resnet50", precision="bf16"))
        if args.transformer_steps:
            tasks.append(transformer_task(args.transformer_steps))
    return tasks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--reps", type=int, default=11, help="repetitions of the compute-bound tasks")
    parser.add_argument("--mlp-reps", type=int, default=31, help="repetitions of the overhead-bound task (cheap, noisier)")
    parser.add_argument("--mlp-steps", type=int, default=300)
    parser.add_argument("--resnet-steps", type=int, default=30)
    parser.add_argument("--transformer-steps", type=int, default=100, help="steps of the ~100M-parameter transformer (CUDA; 0: skip)")
    parser.add_argument("--breakdown-reps", type=int, default=5, help="repetitions of the cost breakdown (0: skip it)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's); 1 steadies a busy machine")
    parser.add_argument("--dry-run", action="store_true", help="every task at toy sizes on the CPU, one repetition: checks the script")
    parser.add_argument("--write", help="append the tables to this markdown file")
    args = parser.parse_args()
    if args.dry_run:
        args.device, args.reps, args.mlp_reps, args.breakdown_reps = "cpu", 1, 1, 1
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
    lines = [f"### {device.type.upper()}: {machine(device)}", "",
             f"`{' '.join(['python'] + sys.argv)}` — medians of {args.mlp_reps} (MLP) and {args.reps} (the others) "
             "interleaved repetitions", "",
             "| task | steps | contender | median s | ratio to bare loop (medians) | fastest s | ratio (fastest) |",
             "|---|---|---|---|---|---|---|"]
    memory = ["", "Peak memory of each contender (the largest over its repetitions) and its difference from the bare loop's:", "",
              "| task | contender | peak device MiB | vs bare loop | peak host MiB | vs bare loop |", "|---|---|---|---|---|---|"]
    tasks = tasks_for(args, device)
    for task in tasks:
        reps = args.mlp_reps if task.name.startswith("MLP") else args.reps
        times, peaks = measure(task, device, reps, channels_last=cuda and "resnet" in task.name)
        base, base_min = statistics.median(times["bare loop"]), min(times["bare loop"])
        for name, t in times.items():
            med, low = statistics.median(t), min(t)
            lines.append(f"| {task.name} | {task.steps} | {name} | {med:.3f} | {med / base:.3f} | {low:.3f} | {low / base_min:.3f} |")
        memory += memory_rows(task, peaks)
        print("\n".join(lines[-len(times):]), flush=True)
    lines += memory
    if args.breakdown_reps:
        lines += ["", f"Where the time goes (medians of {args.breakdown_reps} interleaved runs; lrfind's from its result's "
                  "`timing` block, startup_s being this benchmark process's age at the snapshot):", "",
                  "| task | contender | total s | snapshot / restore / suggest s | first step s | steady step ms | startup s | "
                  "steady / bare loop's |", "|---|---|---|---|---|---|---|---|"]
        for task in tasks:
            lines += breakdown(task, device, args.breakdown_reps, channels_last=cuda and "resnet" in task.name)
            print("\n".join(lines[-2:]), flush=True)
    if not cuda and not args.dry_run:
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
