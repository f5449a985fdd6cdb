"""How good is the answer for the training it is for? Regret per length and schedule against the horizon ground truth.

Not a test. Run from the repository root; scoring reads the stored JSON in minutes:

    python benchmarks/horizon_quality.py --write docs/suggestion-quality.md   # the report (both halves)
    python benchmarks/horizon_quality.py --half design                        # the design half only: no test-half file is read
    python -m benchmarks.quality.horizon --half design --jobs 2               # compute missing ground truth (hours on 2 cores)
    python -m benchmarks.quality.horizon_verify --jobs 2                      # verify's candidate trainings (minutes)

The ground truth (benchmarks/quality/horizon.py, stored in benchmarks/horizon/): every task trained at
100, 320, 1000 and 3200 steps under constant, OneCycleLR (PyTorch's defaults; and with cycle_momentum=False
for optimizers set up without momentum), warm-up + cosine and warm-up-stable-decay, on quarter-decade lr
grids, 3 seeds; Prodigy at its defaults at every length and schedule; 12 range tests per task with
lrfind's defaults. Tasks: the fixed-data tasks of rounds 1-5 (benchmarks/quality/tasks.py) cheap enough
to train at every length, and round 6, whose data is drawn fresh at every step (fresh_tasks.py). Halves
by the hash of the task name, fixed before any tuning; lrfind's constants are fitted on the design half
only (benchmarks/quality/horizon_fit.py), and the test half is read for the report.
"""

from __future__ import annotations

import argparse
import collections
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.quality import horizon, horizon_fit, horizon_score, horizon_verify  # noqa: E402
from benchmarks.quality.report import _f, _pct  # noqa: E402
from benchmarks.quality.score import summarise  # noqa: E402

TARGET_MEDIAN, TARGET_WITHIN = 0.10, 0.5
LRFIND = "lrfind (for the planned training)"
PRODIGY = "Prodigy (its defaults, no lr to choose)"
LOOKUP = "lookup table (design-half median per optimizer)"
BASELINES = (*horizon_score.CLASSIC, PRODIGY, LOOKUP)


def rules(design: dict[str, dict]) -> dict[str, horizon_score.Rule]:
    """Every answer scored: lrfind's rule for the planned training, lrfind 0.1's (no length), the classic methods, and
    the per-optimizer lookup table fitted on the design half."""
    return {
        LRFIND: horizon_fit.lrfind_rule,
        "lrfind 0.1 (no length; its one-cycle answer for cosine and wsd)": horizon_fit.previous_rule,
        **horizon_score.CLASSIC,
        LOOKUP: horizon_score.lookup_table(design),
    }


def tables(gts: dict[str, dict], scored: dict[str, horizon_score.Rule]) -> dict[str, dict]:
    """{method: {(schedule, length): summary}}, Prodigy's included."""
    out = {name: horizon_score.summary(horizon_score.regrets(rule, gts)) for name, rule in scored.items()}
    out[PRODIGY] = horizon_score.summary(horizon_score.prodigy_regrets(gts))
    return out


def method_tables(title: str, gts: dict[str, dict], per_method: dict[str, dict]) -> list[str]:
    """One table per schedule: a row per method, a column per length, each cell median regret / share within 10%."""
    if not gts:
        return []
    lengths = horizon_score.lengths_of(gts)
    fresh = sum(g["data"] == "fresh" for g in gts.values())
    out = [f"### {title}", "", f"{len(gts)} tasks ({len(gts) - fresh} on fixed data, {fresh} on fresh data), "
           f"{len(horizon_score.RT_SEEDS)} range tests each. A cell: median regret / share of range tests within 10% of the best.", ""]
    for schedule in horizon_score.schedules_of(gts.values()):
        out += [f"**{schedule}**", "", "| method | " + " | ".join(f"{n} steps" for n in lengths) + " |", "|---" * (1 + len(lengths)) + "|"]
        for name, table in per_method.items():
            cells = []
            for n in lengths:
                s = table.get((schedule, n))
                cells.append("-" if s is None or s["n"] == 0 else f"{_f(s['median'])} / {_pct(s['within10'])}")
            bold = "**" if name == LRFIND else ""
            out.append(f"| {bold}{name}{bold} | " + " | ".join(cells) + " |")
        out.append("")
    return out


def verdict(per_method: dict[str, dict]) -> list[str]:
    """The issue's targets per (schedule, length) bucket: median <= 0.10, >= 50% within 10%, and ahead of every
    baseline (classic methods, Prodigy, the lookup table) on both measures."""
    lines = ["| schedule | steps | lrfind median / within 10% | median <= 0.10 | within 10% >= 50% | ahead of every baseline "
             "(both measures) | best baseline (median / within 10%) |", "|---|---|---|---|---|---|---|"]
    for key in sorted(per_method[LRFIND], key=lambda k: (k[0], k[1])):
        mine = per_method[LRFIND][key]
        others = {n: per_method[n][key] for n in BASELINES if key in per_method.get(n, {}) and per_method[n][key]["n"]}
        best = min(others.items(), key=lambda kv: kv[1]["median"]) if others else None
        ahead = all(mine["median"] < o["median"] and mine["within10"] > o["within10"] for o in others.values())
        ok = {"median": mine["median"] <= TARGET_MEDIAN, "within": mine["within10"] >= TARGET_WITHIN, "ahead": ahead}
        lines.append(f"| {key[0]} | {key[1]} | {_f(mine['median'])} / {_pct(mine['within10'])} | "
                     + " | ".join("yes" if ok[k] else "**no**" for k in ("median", "within", "ahead")) + " | "
                     + (f"{best[0]}: {_f(best[1]['median'])} / {_pct(best[1]['within10'])}" if best else "-") + " |")
    return lines


def lofo(design: dict[str, dict]) -> list[str]:
    """Leave one family out on the design half: the whole fit on the other families, scored on the held-out one."""
    tab = horizon_fit.table(design, horizon_score.RT_SEEDS)
    families = sorted({g["family"] for g in design.values()})
    pooled = np.full(len(tab.task), np.nan)
    for family in families:
        held = np.array([design[tab.names[t]]["family"] == family for t in tab.task])
        train = horizon_fit.Table(tab.regret[~held], tab.task[~held], [c for c, h in zip(tab.contexts, held) if not h],
                                  [p for p, h in zip(tab.per_pass, held) if not h], tab.bucket[~held], tab.buckets, tab.names)
        fitted = horizon_fit.fit({}, tab=train)
        pooled[held] = horizon_fit.regrets_at(tab, horizon_fit.offsets_of(tab, fitted))[held]
    in_sample = horizon_fit.regrets_at(tab, horizon_fit.offsets_of(tab, horizon_fit.fit({}, tab=tab)))
    lines = ["| schedule | steps | held-out family (fit on the others) | fitted on all design tasks |", "|---|---|---|---|"]
    for b, key in enumerate(tab.buckets):
        rows = tab.bucket == b
        a, s = summarise(list(pooled[rows])), summarise(list(in_sample[rows]))
        lines.append(f"| {key[0]} | {key[1]} | {_f(a['median'])} / {_pct(a['within10'])} | {_f(s['median'])} / {_pct(s['within10'])} |")
    return lines


def best_lr_moves(gts: dict[str, dict]) -> list[str]:
    """How each task's best lr moves from the shortest length, in decades (median and quartiles over tasks)."""
    later = horizon.LENGTHS[1:]
    lines = ["| data | schedule | " + " | ".join(f"{n} steps" for n in later) + " |", "|---" * (2 + len(later)) + "|"]
    for data in ("fixed", "fresh"):
        for schedule in horizon_score.schedules_of(gts.values()):
            moves = collections.defaultdict(list)
            for gt in gts.values():
                if gt["data"] != data or schedule not in gt["schedules"]:
                    continue
                ctxs = {c.steps: c for c in horizon_score.contexts(gt) if c.schedule == schedule}
                first = horizon_score.best_log_lr(gt, ctxs[horizon.LENGTHS[0]])
                for n in horizon.LENGTHS[1:]:
                    moves[n].append(horizon_score.best_log_lr(gt, ctxs[n]) - first)
            if moves:
                cells = [f"{np.median(moves[n]):+.2f} ({np.percentile(moves[n], 25):+.2f} .. {np.percentile(moves[n], 75):+.2f})"
                         for n in horizon.LENGTHS[1:]]
                lines.append(f"| {data} | {schedule} | " + " | ".join(cells) + " |")
    return lines


def verify_section(gts: dict[str, dict], title: str) -> list[str]:
    """Verify's gain per (schedule, length) on its range tests, against the rule on the same ones."""
    rows = collections.defaultdict(lambda: collections.defaultdict(list))
    missing = 0
    for name, gt in gts.items():
        runs = horizon_verify.STORE.load(name)
        if runs is None or runs.get("key") != horizon_verify.key():
            missing += 1
            continue
        for label, found in (("rule", horizon_verify.rule_on_verify_seeds(gt)), ("verify (training loss)",
                             horizon_verify.answers(gt, runs, "train")), ("verify (sweep.val)", horizon_verify.answers(gt, runs, "val"))):
            for key, values in found.items():
                rows[key][label] += values
    if not rows:
        return []
    cost = horizon_verify.CANDIDATES * horizon_verify.NUM_STEPS / 100
    seeds = horizon_verify.VERIFY_SEEDS
    out = [f"### {title}", "", f"Range tests {seeds[0]}..{seeds[-1]} of {len(gts) - missing} tasks; "
           f"{horizon_verify.CANDIDATES} candidates {horizon_verify.SPACING} decades apart, {horizon_verify.NUM_STEPS} steps each: "
           f"{cost:.1f}x the sweep's steps. A cell: median regret / within 10%.", "",
           "| schedule | steps | verify's cost (its steps / the training's) | the rule | verify (training loss) | verify (sweep.val) |",
           "|---|---|---|---|---|---|"]
    extra = horizon_verify.CANDIDATES * horizon_verify.NUM_STEPS
    for key in sorted(rows):
        cells = [summarise(rows[key][label]) for label in ("rule", "verify (training loss)", "verify (sweep.val)")]
        out.append(f"| {key[0]} | {key[1]} | {extra / key[1]:.2f}x | "
                   + " | ".join(f"{_f(c['median'])} / {_pct(c['within10'])}" for c in cells) + " |")
    return out + [""]


def missing_tasks(halves: dict[str, dict[str, dict]]) -> list[str]:
    """The benchmark's tasks of each half read here whose ground truth (grid and range tests) is not complete: left out
    of every table, named so a partial run is never read as the whole benchmark."""
    lines = []
    for half, gts in halves.items():
        absent = [t.name for t in horizon.cost_order(horizon.horizon_tasks()) if t.half == half and t.name not in gts]
        total = len(absent) + len(gts)
        lines.append(f"- {half} half: {len(gts)} of its {total} tasks complete"
                     + (f"; not yet computed, so left out: {', '.join(absent)}" if absent else "") + ".")
    return lines


def split_table(gts: dict[str, dict]) -> list[str]:
    counts = collections.Counter((g["family"], g["data"], g["half"]) for g in gts.values())
    families = sorted({g["family"] for g in gts.values()})
    lines = ["| family | design, fixed | design, fresh | test, fixed | test, fresh |", "|---|---|---|---|---|"]
    cells = [(h, d) for h in ("design", "test") for d in ("fixed", "fresh")]
    for fam in families:
        lines.append(f"| {fam} | " + " | ".join(str(counts.get((fam, d, h), 0)) for h, d in cells) + " |")
    total = collections.Counter((g["data"], g["half"]) for g in gts.values())
    lines.append("| **all** | " + " | ".join(str(total.get((d, h), 0)) for h, d in cells) + " |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--half", default="both", choices=("design", "test", "both"))
    ap.add_argument("--draws", type=int, default=40, help="bootstrap resamples of the design tasks for the law's uncertainty")
    ap.add_argument("--write", default="", help="write the markdown report to this path")
    args = ap.parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()
    design = horizon_score.load("design")
    fitted = horizon_fit.fit(design)
    shipped = horizon_fit.shipped()
    scored = rules(design)
    halves = {"design": design} if args.half == "design" else {"design": design, "test": horizon_score.load("test")}
    if args.half == "test":
        halves.pop("design")
    everything = {n: g for gts in halves.values() for n, g in gts.items()}
    out = ["## Tasks", "", *split_table(everything), "", *missing_tasks(halves), "",
           "## How the best learning rate moves with the length (design half)", "",
           "Each task's best lr at a length minus its best lr at 100 steps, in decades: median (quartiles) over tasks.", "",
           *best_lr_moves(design), "",
           "## The length law and the distances, fitted on the design half", "",
           "`horizon_fit.fit` on the design half (the constants lrfind ships are below; a difference means the ground "
           "truth changed after they were fitted):", "", *horizon_fit.describe(fitted, horizon_fit.bootstrap(design, args.draws)), "",
           "Shipped (`lrfind_cli/suggest/rules.py`, `horizon.py`):", "", *horizon_fit.describe(shipped), "",
           "Leave one family out (design half): the whole fit on the other families, scored on the held-out family.", "",
           *lofo(design), ""]
    for half, gts in halves.items():
        per_method = tables(gts, scored)
        out += [f"## {half.capitalize()} half", ""]
        if half == "test":
            out += ["### Targets (test half)", "", *verdict(per_method), ""]
        out += method_tables(f"{half} half, all tasks", gts, per_method)
        for data in ("fixed", "fresh"):
            part = {n: g for n, g in gts.items() if g["data"] == data}
            out += method_tables(f"{half} half, {data} data", part, tables(part, scored))
        out += verify_section(gts, f"Verification, {half} half")
    print("\n".join(out))
    if args.write:
        _write(args.write, out, time.perf_counter() - started)


def _write(path: str, out: list[str], elapsed: float) -> None:
    cmd = "python benchmarks/horizon_quality.py " + " ".join(sys.argv[1:])
    machine = f"{platform.platform()}, {os.cpu_count()} CPUs, torch {torch.__version__}, python {platform.python_version()}"
    stored = [horizon.load(t.name) for t in horizon.horizon_tasks()]
    compute = sum(g.get("seconds", 0.0) for g in stored if g)
    head = ["# Suggestion quality for the training you will run", "",
            "Generated by `benchmarks/horizon_quality.py` from the ground truth stored in `benchmarks/horizon/` (method: the "
            "docstrings of `benchmarks/horizon_quality.py` and `benchmarks/quality/horizon*.py`).", "",
            f"- Command: `{cmd}`", f"- Machine: {machine}",
            f"- This run: {elapsed:.0f} s. The stored ground truth took {compute / 3600:.1f} h of process time "
            "(`python -m benchmarks.quality.horizon --jobs 2`: batched trainings, 2 shared cores)",
            "- Regret = val(lr) / best - 1 at that length and schedule (val: median over 3 seeds, interpolated in log10 lr; "
            "best: the grid's lowest median). Within 10%: share of range tests with regret <= 0.10. No answer is an "
            "infinite regret. Prodigy: `prodigyopt.Prodigy(lr=1.0)` at its defaults under the same schedule, no lr search.",
            "- Schedules: `onecycle` is OneCycleLR with PyTorch's defaults (momentum or beta1 cycled), `onecycle_nocycle` "
            "the same with cycle_momentum=False for the optimizers set up without momentum (plain SGD, RMSprop); "
            "`cosine` 5% linear warm-up and a half cosine to 0; `wsd` 5% warm-up, a plateau, a linear decay to 0 over "
            "the last 20%.",
            "- The short-horizon benchmark of rounds 1-5 (121 tasks at 100-300 steps, one-cycle and constant only) stays in "
            "[suggestion-quality-short.md](suggestion-quality-short.md) (`benchmarks/suggestion_quality.py`).", ""]
    with open(path, "w") as f:
        f.write("\n".join(head + out) + "\n")


if __name__ == "__main__":
    main()
