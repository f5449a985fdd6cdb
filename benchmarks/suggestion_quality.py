"""How well do learning-rate suggestions train? Regret of each method against stored grids of trained runs, per half.

Not a test. Run from the repository root (scikit-learn and prodigyopt only to recompute: `pip install -e '.[bench]'`):

    python benchmarks/suggestion_quality.py                          # score every task from the stored JSON (seconds)
    python benchmarks/suggestion_quality.py --half design            # the design half only: no test-half number is read
    python benchmarks/suggestion_quality.py --write docs/suggestion-quality-short.md
    python benchmarks/suggestion_quality.py --recompute digits-mlp-sgd --jobs 2   # rebuild one task's ground truth
    python benchmarks/suggestion_quality.py --compute-missing --jobs 2           # compute tasks not stored yet
    python benchmarks/suggestion_quality.py --half design --rule mymodule:my_rule --no-verify

The tasks (benchmarks/quality/tasks.py) span MLPs, linear models, CNNs, ResNets with BatchNorm, small
transformers, LSTM/GRU and embedding models; SGD (plain, momentum, Nesterov), Adam, AdamW, RMSprop and
Adagrad; cross-entropy, MSE, Huber/SmoothL1 and BCE-with-logits; batch sizes 8 to 512. Each has a family
and a half: design or test, by the parity of the last hex digit of sha256(task name), fixed in the code
before any tuning. Tune on the design half only (`--half design`, or `score.load_half("design")`).

The ground truth (benchmarks/ground_truth/<task>.json, see quality/ground_truth.py) holds each task's grid
of validation losses (constant lr, and OneCycleLR with max_lr=lr; quarter-decade lrs, 3 seeds), the
untrained loss, Prodigy's runs and 12 range-test curves from lrfind's `range_test` at its defaults.
Scoring (quality/score.py): regret = val(lr) / best - 1, val interpolated in log10(lr) over the grid's
median. The verification stage (lrfind_cli/verify.py) is measured for the current rule on 4 range tests
per task (quality/verify_runs.py; its runs cached in benchmarks/verify_runs/).

A rule is `(lrs, smoothed, raw, schedule) -> lr | None`; to score a new one, add a line to RULES in
benchmarks/quality/methods.py or pass `--rule module:function`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from benchmarks.quality import ceiling, ground_truth, report, score, verify_runs  # noqa: E402
from benchmarks.quality.ground_truth import RT_END, RT_ITERS, RT_SEEDS, RT_START  # noqa: E402
from benchmarks.quality.methods import (  # noqa: E402
    CLASSIC,
    RULES,
    current_rule,
    fitted_centre_rule,
    fitted_minimum_divisor,
    fitted_onset_rule,
    fixed,
)
from benchmarks.quality.tasks import BY_NAME, TASKS  # noqa: E402


def _load_rule(spec: str):
    module, _, attr = spec.partition(":")
    if not attr:
        raise SystemExit(f"--rule wants module:function, got {spec!r}")
    return getattr(importlib.import_module(module), attr)


def seed_counts(gts: dict) -> str:
    """'3 for every task', or how many tasks have how many grid seeds."""
    counts = {}
    for gt in gts.values():
        n = min(len(v) for p in gt["grid"].values() for v in p.values())
        counts[n] = counts.get(n, 0) + 1
    if len(counts) == 1:
        return f"{next(iter(counts))} for every task"
    return ", ".join(f"{n} for {k} tasks" for n, k in sorted(counts.items()))


def main() -> None:
    args = _arguments()
    torch.set_num_threads(1)
    for spec in args.rule:
        RULES[spec] = _load_rule(spec)
    started = time.perf_counter()
    _compute(args)
    halves = ("design", "test") if args.half == "both" else (args.half,)
    loaded = {h: score.load_half(h) for h in halves}
    everything = {n: g for h in halves for n, g in loaded[h][0].items()}
    missing = {n: why for h in halves for n, why in loaded[h][1].items()}
    if not everything:
        raise SystemExit("no stored ground truth to score; run with --compute-missing")
    out = _split_and_tasks(everything, missing)
    halves_scored = {h: loaded[h][0] for h in halves if loaded[h][0]}
    out += _quality_sections(halves_scored)
    if "design" in halves_scored:
        out += _lofo_section(halves_scored["design"])
        out += _ceiling_section(halves_scored["design"])
    if not args.no_verify:
        out += _verify_section(args, halves_scored)
    out += _per_task_sections(halves_scored)
    print("\n".join(out))
    if args.write:
        _write(args, out, everything, time.perf_counter() - started)


def _arguments() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--half", default="both", choices=("design", "test", "both"), help="which tasks to read and score (default both)")
    ap.add_argument("--recompute", default="", help="comma-separated task names whose ground truth is rebuilt first")
    ap.add_argument("--compute-missing", action="store_true", help="compute the ground truth of tasks not stored yet")
    ap.add_argument("--jobs", type=int, default=1, help="processes for computing (default 1)")
    ap.add_argument("--rule", action="append", default=[], help="module:function, a rule to score besides RULES (repeatable)")
    ap.add_argument("--no-verify", action="store_true", help="skip the verification-stage measurement")
    ap.add_argument("--verify-rule", default="lrfind (current rule)", help="name of the rule whose answers verify checks")
    ap.add_argument("--write", default="", help="write the markdown report to this path")
    return ap.parse_args()


def _compute(args: argparse.Namespace) -> None:
    """Rebuild the ground truth of --recompute tasks, and compute missing ones with --compute-missing."""
    for name in filter(None, args.recompute.split(",")):
        if name not in BY_NAME:
            raise SystemExit(f"unknown task {name!r}; tasks: {', '.join(BY_NAME)}")
        if os.path.exists(ground_truth.path_of(name)):
            os.remove(ground_truth.path_of(name))
        ground_truth.compute(BY_NAME[name], args.jobs)
    if args.compute_missing:
        for task in score.tasks_in(args.half):
            if ground_truth.stale(task) is not None:
                ground_truth.compute(task, args.jobs)


def _split_and_tasks(everything: dict[str, dict], missing: dict[str, str]) -> list[str]:
    out = ["## Split", "",
           "`half(name)`: design when the last hex digit of sha256(task name) is even, else test (benchmarks/quality/tasks.py). "
           "Fixed before any tuning; constants are to be chosen on the design half only.", "",
           *report.split_table([t.name for t in TASKS]), "",
           "## Tasks", "", *report.task_table(everything), ""]
    if missing:
        out += ["Not scored (no usable ground truth): " + ", ".join(f"`{n}` ({why})" for n, why in missing.items()) + ".", ""]
    return out


ROUND_NOTES = {
    1: "the first 34 tasks' test half: read once, in the session that fixed the rule's constants",
    2: "added later, defined before any of their results were seen; scored once with the rule as shipped, "
       "whose constants were fixed before these tasks existed",
    3: "added after round 2 was read, defined before any of their results were seen; scored once with the rule as "
       "shipped (fixed before they existed) and with the candidate centre rule (fixed on the design half before "
       "they were read)",
    4: "added after round 3 was read, defined (and committed) before any of their results existed; scored once with "
       "the previous rule (its distances fixed on round 1). After that reading the distances were refitted on the "
       "design half of rounds 1-4 (the current rule): rounds 1-4's test tasks were not used to choose them, but the "
       "decision to refit came after reading them",
    5: "added with the refit, defined (and committed) before any of their results existed: the fresh hold-out for the "
       "current rule and the previous one",
}


def _quality_sections(halves: dict[str, dict[str, dict]]) -> list[str]:
    out: list[str] = []
    for h, gts in halves.items():
        out += _quality_section(f"{h} half", gts)
        rounds = sorted({BY_NAME[n].round for n in gts})
        if h == "test" and len(rounds) > 1:
            for r in rounds:
                part = {n: g for n, g in gts.items() if BY_NAME[n].round == r}
                out += _quality_section(f"test half, round {r} only ({ROUND_NOTES[r]})", part)
    return out


def _quality_section(title: str, gts: dict[str, dict]) -> list[str]:
    rows = score.score(gts)
    out = [f"## Suggestion quality: {title}", "", f"{len(gts)} tasks, {len(RT_SEEDS)} range tests each.", "",
           *report.method_table(rows), "", "Targets of issue 12 here:", ""]
    for name in RULES:
        out += score.verdict(rows, name)
    return out + [""]


def _lofo_section(design: dict[str, dict]) -> list[str]:
    lofo = {"fastai minimum / c (c fitted per schedule)": score.leave_one_family_out(fitted_minimum_divisor, design),
            "lrfind (current rule, both distances refitted per fold)": score.leave_one_family_out(fitted_onset_rule, design),
            "candidate: centre rule (both distances refitted per fold)": score.leave_one_family_out(fitted_centre_rule, design)}
    for name in RULES:
        lofo[f"{name} (no constants fitted here)"] = score.leave_one_family_out(fixed(RULES[name]), design)
    return ["## Leave one family out (design half)", "",
            "`score.leave_one_family_out(fit, design)`: for each family of the design half, `fit` gets the other "
            "families' ground truth and returns a rule, which is scored on the held-out family's single range tests. "
            "The first rule is an example of the interface (fastai's minimum divided by a constant chosen on the "
            "training families). The next two are lrfind's rule (the onset of divergence) and the candidate centre "
            "rule (a quarter of the way from the onset towards the steepest fall; tried, not shipped), each with its "
            "two constants (decades below the anchor, per schedule) chosen on the training families exactly as the "
            "shipped ones were chosen on a design half (`methods.fitted_onset_rule`, `methods.fitted_centre_rule`): "
            "the held-out score estimates how the rule does on a kind of model it was not fitted on. A rule without "
            "constants scores the same as in-sample.", "",
            *report.lofo_table(lofo), ""]


def _ceiling_section(design: dict[str, dict]) -> list[str]:
    read = ceiling.readings(design)
    return ["## What one range-test curve can tell (design half)", "",
            "`benchmarks/quality/ceiling.py`, on the design half only. A rule of lrfind's kind answers a landmark of the "
            "curve divided by 10^d. The first table gives, per landmark, how far above each task's best lr it sits "
            "(the landmark is the median over the task's range tests) and how much that distance varies from task to "
            "task (median absolute deviation): one fixed d misses a typical task by about that spread. The second "
            "turns a miss into regret: every task answered at its own best lr shifted by a fixed number of decades, "
            "and, last, every task given its own best distance below the onset (what batch noise alone costs). The "
            "third asks whether anything the rule could read (a property of the curve or of the spec) predicts a "
            "task's distance below the onset: a least-absolute-deviation line on each feature, fitted on all "
            "families but one and scored on the held-out one, against one fitted distance under the same folds. "
            "A feature helps only if its error is clearly below the first row's.", "",
            *report.ceiling_tables(ceiling.anchor_spread(design, read), ceiling.oracle_distance(design),
                                   ceiling.feature_lofo(design, read), ceiling.shifted_regret(design)), ""]


def _verify_section(args: argparse.Namespace, halves: dict[str, dict[str, dict]]) -> list[str]:
    rule = RULES.get(args.verify_rule, current_rule)
    out = ["## Verification stage (lrfind_cli/verify.py)", "",
            f"For `{args.verify_rule}`, on range tests {verify_runs.VERIFY_SEEDS[0]}..{verify_runs.VERIFY_SEEDS[-1]} of each "
            "task: candidates `bracket(lr, k, step)` around its answer, each trained for the task's steps / 4 from the "
            "range test's starting model under the protocol's schedule, the lowest final loss chosen (mean of the last "
            "tenth of the training losses, or the validation split's loss). Cost: candidates' training steps over the "
            "range test's steps.", ""]
    for h, gts in halves.items():
        runs = verify_runs.ensure(rule, gts, args.jobs)
        out += [f"### {h} half", "", *report.verify_table(verify_runs.evaluate(rule, gts, runs)), ""]
    return out


def _per_task_sections(halves: dict[str, dict[str, dict]]) -> list[str]:
    out: list[str] = []
    rule_names = list(RULES)
    for h, gts in halves.items():
        out += [f"## Median regret per task, {h} half (single range tests)", "",
                *report.per_task_table(score.per_task(gts, [*CLASSIC[2:], *rule_names]), [*CLASSIC[2:], *rule_names]), ""]
    return out


def _write(args: argparse.Namespace, out: list[str], everything: dict[str, dict], elapsed: float) -> None:
    cmd = "python benchmarks/suggestion_quality.py " + " ".join(sys.argv[1:])
    machine = f"{platform.platform()}, {os.cpu_count()} CPUs, torch {torch.__version__}, python {platform.python_version()}"
    compute = sum(g.get("seconds", 0.0) for g in everything.values())
    head = ["# Suggestion quality", "",
            "Generated by `benchmarks/suggestion_quality.py` from the ground truth stored in `benchmarks/ground_truth/` "
            "(method: the docstrings of `benchmarks/suggestion_quality.py` and `benchmarks/quality/`).", "",
            f"- Command: `{cmd}`", f"- Machine: {machine}",
            f"- This run: {elapsed:.0f} s. Computing the stored ground truth took {compute / 60:.0f} min of process time "
            "(`python -m benchmarks.quality.ground_truth --jobs 2`, 2 shared cores, niced)",
            f"- Grid seeds per task (and Prodigy runs): {seed_counts(everything)}",
            f"- Range-test seeds {RT_SEEDS[0]}..{RT_SEEDS[-1]}; range test {RT_START:g}..{RT_END:g}, "
            f"{RT_ITERS} steps, smoothing 0.98 (lrfind's defaults)",
            "- Regret = val(lr) / best - 1 (val: median over grid seeds, interpolated in log10 lr; best: the grid's lowest "
            "median). Within 10%: share of runs with regret <= 0.10. Spread: standard deviation of log10(suggestion) "
            "across a task's range tests, averaged over tasks. Prodigy: `prodigyopt.Prodigy(lr=1.0)` at its defaults, "
            "constant or under OneCycleLR(max_lr=1.0), no lr search.", "",
            "To score a new rule on the design half only (no test-half file is read): add it to `RULES` in "
            "`benchmarks/quality/methods.py` (a function `(lrs, smoothed, raw, schedule) -> lr | None`) and run "
            "`python benchmarks/suggestion_quality.py --half design --no-verify`, or from Python "
            "`benchmarks.quality.score.score_rule(rule, 'design')`; for its leave-one-family-out estimate, "
            "`score.leave_one_family_out(fit, score.load_half('design')[0])` with `fit(train_ground_truths) -> rule`.", ""]
    with open(args.write, "w") as f:
        f.write("\n".join(head + out) + "\n")


if __name__ == "__main__":
    main()
