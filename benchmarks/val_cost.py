"""Cost of validation-loss mode: sweep time with `sweep.val` at its defaults against the same sweep without it.

Not a test. Run from the repository root:  .venv/bin/python benchmarks/val_cost.py [SPEC] [--reps N]
Both variants run in this one process, interleaved; the figure is the ratio of median sweep times
(result.duration_s, which excludes building and writing), and of the fastest runs, which other work
on a shared machine disturbs less.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lrfind_cli.runner import run_spec  # noqa: E402
from lrfind_cli.spec import load_spec  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", nargs="?", default="configs/resnet.yaml")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--num-iter", type=int, default=60)
    args = parser.parse_args()
    times: dict[str, list[float]] = {"without val": [], "with val (defaults)": []}
    with tempfile.TemporaryDirectory() as out:
        base = [f"sweep.num_iter={args.num_iter}", "device=cpu", f"output.dir={out}", "sweep.end_lr=0.05"]
        variants = {"without val": base, "with val (defaults)": base + ["sweep.val={}"]}
        for rep in range(args.reps):
            names = list(variants) if rep % 2 == 0 else list(reversed(variants))
            for name in names:
                outcome = run_spec(load_spec(args.spec, variants[name]))
                times[name].append(outcome.result.duration_s)
    plain = statistics.median(times["without val"])
    val = statistics.median(times["with val (defaults)"])
    fast_plain, fast_val = min(times["without val"]), min(times["with val (defaults)"])
    print(f"{args.spec}, {args.num_iter} steps, median of {args.reps}: without val {plain:.2f} s, "
          f"with val (every 10, 2 batches) {val:.2f} s, overhead {100 * (val / plain - 1):.1f}%; "
          f"fastest runs {fast_plain:.2f} s and {fast_val:.2f} s, overhead {100 * (fast_val / fast_plain - 1):.1f}%")


if __name__ == "__main__":
    main()
