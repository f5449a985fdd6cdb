"""The README's numbers, measured: install time and size, `lrfind --help`, a spec typo, the main job.

    python benchmarks/readme_timings.py                  # --help, a typo, validate, the main job (configs/resnet.yaml)
    python benchmarks/readme_timings.py --install cpu    # + a fresh venv with CPU-only torch wheels (network)
    python benchmarks/readme_timings.py --install default --skip-main   # + the default (CUDA on Linux) wheels
    python benchmarks/readme_timings.py --install cpu --torch-wheel torch-2.13.0+cpu-...whl --skip-main
                                                         # CPU-only from a wheel on disk (no download.pytorch.org)

Prints a markdown table and the machine's load (1-minute load average before and after each part, and the
CPU count), because on a shared machine the load decides the main job's time more than anything else.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def load() -> str:
    return f"{os.getloadavg()[0]:.1f}"


def timed(cmd: list[str], cwd: Path = REPO, env: dict | None = None) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    return time.perf_counter() - start, proc


def median_of(cmd: list[str], runs: int = 5) -> float:
    timed(cmd)  # one warm-up: file caches
    return statistics.median(timed(cmd)[0] for _ in range(runs))


def du(path: Path) -> float:
    """Size on disk in GB."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink()) / 1e9


def install(kind: str, rows: list[tuple[str, str]], torch_wheel: str | None = None) -> None:
    """A fresh venv with `pip install -e .` (after CPU-only torch wheels for kind == 'cpu'): wall time and size.

    With `torch_wheel` (a CPU-only torch wheel on disk), that wheel and the torchvision release made for it
    are installed instead of reaching download.pytorch.org.
    """
    venv = Path(tempfile.mkdtemp(prefix="lrfind-venv-"))
    pip = [str(venv / "bin" / "pip"), "install", "--quiet", "--no-cache-dir"]
    before = load()
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    if kind == "cpu" and torch_wheel:
        version = Path(torch_wheel).name.split("-")[1].split("+")[0]  # torch 2.X.Y goes with torchvision 0.(X+15).Y
        minor = int(version.split(".")[1])
        subprocess.run([*pip, torch_wheel, f"torchvision==0.{minor + 15}.*"], check=True)
    elif kind == "cpu":
        subprocess.run([*pip, "torch", "torchvision", "--index-url", CPU_INDEX], check=True)
    subprocess.run([*pip, "-e", str(REPO)], check=True)
    took = time.perf_counter() - start
    source = f" ({Path(torch_wheel).name} from disk)" if torch_wheel and kind == "cpu" else ""
    rows.append((f"install ({kind} wheels{source}): `pip install -e .` in a fresh venv, no pip cache",
                 f"{took:.0f} s, venv {du(venv):.2f} GB (load {before} -> {load()})"))
    shutil.rmtree(venv, ignore_errors=True)


def main_job(rows: list[tuple[str, str]]) -> None:
    """`lrfind run configs/resnet.yaml` as the README runs it: wall time, and the sweep's own duration_s."""
    out = Path(tempfile.mkdtemp(prefix="lrfind-main-"))
    before = load()
    took, proc = timed([sys.executable, "-m", "lrfind_cli", "run", "configs/resnet.yaml", "--out", str(out), "-q"])
    if proc.returncode not in (0, 3):
        raise SystemExit(f"main job failed ({proc.returncode}): {proc.stderr[-500:]}")
    doc = json.loads((out / "result.json").read_text())
    rows.append(("main job: `lrfind run configs/resnet.yaml` (wall, whole process)",
                 f"{took:.0f} s, of which sweep {doc['duration_s']:.0f} s, {doc['num_steps']} steps on {doc['device']} "
                 f"(load {before} -> {load()})"))
    shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--install", choices=["cpu", "default"], action="append", default=[])
    parser.add_argument("--skip-main", action="store_true", help="do not run the main job (minutes on a CPU)")
    parser.add_argument("--skip-cli", action="store_true", help="do not time --help, the typo and validate")
    parser.add_argument("--torch-wheel", help="a CPU-only torch wheel on disk for --install cpu")
    args = parser.parse_args()
    rows: list[tuple[str, str]] = []
    typo = Path(tempfile.mkdtemp()) / "typo.yaml"
    typo.write_text("model: {name: resnet18}\nsweep: {num_iters: 50}\n")
    commands = [("`lrfind --help`", ["--help"]), ("`lrfind run` of a spec with a typo (exit 2)", ["run", str(typo)]),
                ("`lrfind validate` of a spec with a typo (exit 2; imports torch to check the rest)", ["validate", str(typo)]),
                ("`lrfind validate configs/resnet.yaml` (imports torch)", ["validate", "configs/resnet.yaml"])]
    for label, cmd in [] if args.skip_cli else commands:
        before = load()
        rows.append((label + ", median of 5", f"{median_of([sys.executable, '-m', 'lrfind_cli', *cmd]):.2f} s "
                     f"(load {before} -> {load()})"))
    if not args.skip_main:
        main_job(rows)
    for kind in args.install:
        install(kind, rows, args.torch_wheel)
    print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, {time.strftime('%Y-%m-%d %H:%M')}\n")
    print("| what | measured |\n|---|---|")
    for what, value in rows:
        print(f"| {what} | {value} |")


if __name__ == "__main__":
    main()
