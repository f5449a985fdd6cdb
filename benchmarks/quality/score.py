"""Scoring from the stored ground truth: regret of each method, rule and Prodigy per half, and leave-one-family-out.

    regret = val(lr) / best - 1

val() is the median over grid seeds of the validation loss, interpolated linearly in log10(lr); best
is the grid's lowest median for that protocol. A suggestion outside the grid gets the value at the
grid's nearest edge (counted as "outside"); no suggestion at all is infinite regret. A Prodigy run's
regret is its own validation loss over the same best, minus 1.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from lrfind_cli import suggest

from . import ground_truth
from .ground_truth import PROTOCOLS, RT_SEEDS
from .methods import CLASSIC, METHODS, RULES, Rule, arr
from .tasks import TASKS, tasks_in

REPEATS = 3

Suggester = Callable[[tuple, str], "float | None"]  # (curve, protocol) -> lr


def load_half(which: str) -> tuple[dict[str, dict], dict[str, str]]:
    """The usable ground truths of one half ({task: json}) and why the others are left out ({task: reason}).

    Only the files of the asked half are read: `--half design` never opens a test task.
    """
    found, missing = {}, {}
    for task in tasks_in(which):
        reason = ground_truth.stale(task)
        if reason is None:
            found[task.name] = ground_truth.load(task.name)
        else:
            missing[task.name] = reason
    return found, missing


def curve(gt: dict, seed: int) -> tuple:
    c = gt["curves"][str(seed)]
    return c["lrs"], arr(c["smoothed"]), arr(c["losses"])


def regret(gt: dict, protocol: str, lr: float | None) -> tuple[float, bool]:
    """(regret, outside the grid) of training at `lr` under `protocol`; no suggestion is infinite regret."""
    if lr is None or not math.isfinite(lr) or lr <= 0:
        return math.inf, False
    u, med = ground_truth.grid_median(gt, protocol)
    x = math.log10(lr)
    return float(np.interp(x, u, med) / med.min() - 1.0), not (u[0] <= x <= u[-1])


def best_lr(gt: dict, protocol: str) -> float:
    u, med = ground_truth.grid_median(gt, protocol)
    return float(10 ** u[int(np.argmin(med))])


def regrets_of(rule: Rule, gts: dict[str, dict], protocol: str, seeds: Sequence[int] = RT_SEEDS) -> list[float]:
    """Regret of a schedule-aware rule at `protocol`, one value per task and single range test."""
    return [regret(gt, protocol, rule(*curve(gt, s), protocol))[0] for gt in gts.values() for s in seeds]


def _suggesters() -> dict[str, tuple[Suggester, Callable | None]]:
    """Every scored name -> (suggest from one curve at a protocol, combine several curves at a protocol or None)."""
    out: dict[str, tuple[Suggester, Callable | None]] = {}
    for name, fn in METHODS.items():
        out[name] = ((lambda c, p, fn=fn: fn(*c)), None)
    for name, rule in RULES.items():
        out[name] = ((lambda c, p, rule=rule: rule(*c, p)), getattr(rule, "combine", None))
    return out


def _combined(single: Suggester, combine: Callable | None, curves: list[tuple], protocol: str, how: str) -> float | None:
    if how == "median":
        found = [single(c, protocol) for c in curves]
        logs = [math.log10(v) for v in found if v is not None and v > 0]
        return 10 ** float(np.median(logs)) if logs else None
    if combine is not None:
        return combine(curves, protocol)
    averaged = suggest.mean_curve(curves)
    return single(averaged, protocol) if averaged is not None else None


def summarise(values: list[float]) -> dict:
    a = np.array(values, dtype=float)
    if len(a) == 0:
        return {"median": math.nan, "within10": math.nan, "p25": math.nan, "p75": math.nan, "n": 0}
    # "nearest": no interpolation between an infinite regret (no answer) and a finite one
    return {"median": float(np.median(a)), "within10": float(np.mean(a <= 0.10)), "p25": float(np.percentile(a, 25, method="nearest")),
            "p75": float(np.percentile(a, 75, method="nearest")), "n": len(a)}


def score(gts: dict[str, dict], seeds: Sequence[int] = RT_SEEDS, names: Sequence[str] | None = None) -> dict[str, dict]:
    """One row per method/rule and way of combining range tests, plus Prodigy: per protocol the regret summary.

    Rows: "[single]" (each range test alone), "[x3 median]" (median of three runs' answers, in log space),
    "[x3 mean curve]" (the answer read from the mean of three curves; a rule's own `.combine` if it has one).
    Each entry also has "spread" per protocol: the standard deviation of log10(suggestion) across one
    task's range tests (single runs) or groups, averaged over tasks; "missing" and "outside" counts.
    """
    rows: dict[str, dict] = {}
    groups = [list(seeds[i : i + REPEATS]) for i in range(0, len(seeds) - REPEATS + 1, REPEATS)]
    for name, (single, combine) in _suggesters().items():
        if names is not None and name not in names:
            continue
        for label, combos, how in (("single", [[s] for s in seeds], None), (f"x{REPEATS} median", groups, "median"),
                                   (f"x{REPEATS} mean curve", groups, "mean")):
            per = {p: [] for p in PROTOCOLS}
            spreads = {p: [] for p in PROTOCOLS}
            outside = missing = 0
            for gt in gts.values():
                for p in PROTOCOLS:
                    found = []
                    for combo in combos:
                        curves = [curve(gt, s) for s in combo]
                        lr = single(curves[0], p) if how is None else _combined(single, combine, curves, p, how)
                        r, out = regret(gt, p, lr)
                        per[p].append(r)
                        outside += out
                        missing += lr is None
                        if lr is not None and lr > 0:
                            found.append(math.log10(lr))
                    if len(found) >= 2:
                        spreads[p].append(float(np.std(found, ddof=1)))
            entry = {p: summarise(per[p]) for p in PROTOCOLS}
            for p in PROTOCOLS:
                entry[p]["spread"] = float(np.mean(spreads[p])) if spreads[p] else math.nan
            entry.update(missing=missing, outside=outside, n=len(per[PROTOCOLS[0]]) * len(PROTOCOLS))
            rows[f"{name} [{label}]"] = entry
    rows["Prodigy (lr 1.0, no search)"] = prodigy_row(gts)
    return rows


def prodigy_row(gts: dict[str, dict]) -> dict:
    """Prodigy at its defaults (lr=1.0), under each protocol, against the same grid best: one regret per task and seed."""
    entry: dict = {}
    for p in PROTOCOLS:
        values = []
        for gt in gts.values():
            best = float(ground_truth.grid_median(gt, p)[1].min())
            values += [v / best - 1.0 for v in gt["prodigy"][p].values()]
        entry[p] = summarise(values)
        entry[p]["spread"] = math.nan
    entry.update(missing=0, outside=0, n=sum(len(gt["prodigy"][p]) for gt in gts.values() for p in PROTOCOLS))
    return entry


def per_task(gts: dict[str, dict], names: Sequence[str], seeds: Sequence[int] = RT_SEEDS) -> dict[str, dict]:
    """Median regret over single range tests of each named method/rule, per task and protocol."""
    suggesters = _suggesters()
    out: dict[str, dict] = {}
    for task, gt in gts.items():
        out[task] = {}
        for name in names:
            single, _ = suggesters[name]
            for p in PROTOCOLS:
                out[task][(name, p)] = float(np.median([regret(gt, p, single(curve(gt, s), p))[0] for s in seeds]))
        for p in PROTOCOLS:
            best = float(ground_truth.grid_median(gt, p)[1].min())
            out[task][("Prodigy", p)] = float(np.median([v / best - 1 for v in gt["prodigy"][p].values()]))
    return out


def leave_one_family_out(fit: Callable[[dict[str, dict]], Rule], gts: dict[str, dict],
                         seeds: Sequence[int] = RT_SEEDS) -> dict:
    """Fit a rule on every family of `gts` but one, score it on the held-out family; repeat for each family.

    `fit(train_ground_truths) -> rule` is the rule's whole fitting procedure (choose its constants on
    what it is given, nothing else); the rule is `(lrs, smoothed, raw, schedule) -> lr | None`. Pass the
    design half only (`load_half("design")[0]`) to keep the test half unseen. Returns
    {"families": {family: {protocol: summary, "tasks": n}}, "pooled": {protocol: summary over every
    held-out range test}, "in_sample": {protocol: summary of the rule fitted on all of gts, scored on gts}}.
    """
    families = sorted({gt["family"] for gt in gts.values()})
    out: dict = {"families": {}, "pooled": {}, "in_sample": {}}
    pooled: dict[str, list[float]] = {p: [] for p in PROTOCOLS}
    for family in families:
        train = {n: g for n, g in gts.items() if g["family"] != family}
        held = {n: g for n, g in gts.items() if g["family"] == family}
        if not train:
            continue
        rule = fit(train)
        entry: dict = {"tasks": len(held)}
        for p in PROTOCOLS:
            values = regrets_of(rule, held, p, seeds)
            pooled[p] += values
            entry[p] = summarise(values)
        out["families"][family] = entry
    whole = fit(gts)
    for p in PROTOCOLS:
        out["pooled"][p] = summarise(pooled[p])
        out["in_sample"][p] = summarise(regrets_of(whole, gts, p, seeds))
    return out


def verdict(rows: dict, rule: str = "lrfind (current rule)") -> list[str]:
    """Issue 12's targets on these rows: median regret <= 0.10, at least as good as the best classic method on
    both median and share within 10% (single range tests against single range tests), and ahead of Prodigy."""
    lines = []
    for p in PROTOCOLS:
        mine = rows[f"{rule} [single]"][p]
        others = {n: rows[f"{n} [single]"][p] for n in CLASSIC if f"{n} [single]" in rows}
        best_median = min(others.items(), key=lambda kv: kv[1]["median"])
        best_share = max(others.items(), key=lambda kv: kv[1]["within10"])
        prodigy = rows["Prodigy (lr 1.0, no search)"][p]
        checks = [
            ("median <= 0.10", mine["median"] <= 0.10),
            ("median <= best classic", mine["median"] <= best_median[1]["median"]),
            ("within 10% >= best classic", mine["within10"] >= best_share[1]["within10"]),
            ("median < Prodigy", mine["median"] < prodigy["median"]),
        ]
        failed = [c for c, ok in checks if not ok]
        lines.append(f"- {p}: {rule} median regret {mine['median']:.3f}, within 10% {mine['within10']:.0%}; best classic median "
                     f"{best_median[1]['median']:.3f} ({best_median[0]}), best classic within 10% {best_share[1]['within10']:.0%} "
                     f"({best_share[0]}); Prodigy median {prodigy['median']:.3f}. "
                     + ("All targets met." if not failed else "**Not met:** " + ", ".join(failed) + "."))
    return lines


def all_tasks_known() -> list[str]:
    return [t.name for t in TASKS]


def score_rule(rule: Rule, half: str = "design", seeds: Sequence[int] = RT_SEEDS) -> dict:
    """A rule's regret summary per protocol on one half's single range tests (default: the design half only).

        from benchmarks.quality.score import score_rule
        score_rule(my_rule)  # {"constant": {"median", "within10", "p25", "p75", "n"}, "onecycle": {...}, "tasks": n}
    """
    gts, _ = load_half(half)
    out: dict = {p: summarise(regrets_of(rule, gts, p, seeds)) for p in PROTOCOLS}
    out["tasks"] = len(gts)
    return out
