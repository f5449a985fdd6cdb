"""Markdown tables of the benchmark: tasks, the split, method tables per half, leave-one-family-out, verify."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from . import ground_truth
from .ground_truth import PROTOCOLS
from .tasks import BY_NAME, FAMILIES


def _f(x: float, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return "inf" if math.isinf(x) else f"{x:.{digits}f}"


def _pct(x: float) -> str:
    return "-" if x is None or math.isnan(x) else f"{x:.0%}"


def split_table(names: list[str]) -> list[str]:
    """Tasks per family and half; the test half also per round (tasks were added in rounds, see tasks.py)."""
    counts = Counter((BY_NAME[n].family, BY_NAME[n].half) for n in names)
    rounds = Counter((BY_NAME[n].family, BY_NAME[n].round) for n in names if BY_NAME[n].half == "test")
    numbers = sorted({BY_NAME[n].round for n in names})
    lines = ["| family | design | test | " + " | ".join(f"test, round {r}" for r in numbers) + " |", "|---" * (3 + len(numbers)) + "|"]
    for fam in FAMILIES:
        d, t = counts.get((fam, "design"), 0), counts.get((fam, "test"), 0)
        if d or t:
            lines.append(f"| {fam} | {d} | {t} | " + " | ".join(str(rounds.get((fam, r), 0)) for r in numbers) + " |")
    total = Counter(BY_NAME[n].half for n in names)
    by_round = Counter(BY_NAME[n].round for n in names if BY_NAME[n].half == "test")
    lines.append(f"| **all** | {total.get('design', 0)} | {total.get('test', 0)} | "
                 + " | ".join(str(by_round.get(r, 0)) for r in numbers) + " |")
    one_sided = [fam for fam in FAMILIES if (counts.get((fam, "design"), 0) == 0) != (counts.get((fam, "test"), 0) == 0)]
    if one_sided:
        lines += ["", "Families in one half only: " + ", ".join(
            f"{fam} ({'design' if counts.get((fam, 'design'), 0) else 'test'})" for fam in one_sided) + "."]
    return lines


def task_table(gts: dict[str, dict]) -> list[str]:
    lines = ["| task | family | half | round | setup | steps | grid (log10) | best lr constant | best lr one-cycle "
             "| best val (const / 1cyc) | untrained val | Prodigy val (const / 1cyc) | grid seeds |", "|---" * 13 + "|"]
    for name, gt in gts.items():
        best, vals, prodigy = [], [], []
        for p in PROTOCOLS:
            u, med = ground_truth.grid_median(gt, p)
            i = int(np.argmin(med))
            edge = " (edge)" if i in (0, len(u) - 1) else ""
            beyond = " (above the range test's end)" if 10 ** u[i] > ground_truth.RT_END else ""
            best.append(f"{10 ** u[i]:.3g}{edge}{beyond}")
            vals.append(f"{med[i]:.4g}")
            prodigy.append(f"{np.median(list(gt['prodigy'][p].values())):.4g}")
        u, _ = ground_truth.grid_median(gt, "constant")
        untrained = np.median(list(gt["untrained"].values()))
        lines.append(f"| {name} | {gt['family']} | {gt['half']} | {BY_NAME[name].round} | {gt['describe']} | {gt['steps']} "
                     f"| {u[0]:.2f} .. {u[-1]:.2f} | {best[0]} | {best[1]} | {' / '.join(vals)} | {untrained:.4g} | {' / '.join(prodigy)} "
                     f"| {min(len(v) for p in PROTOCOLS for v in gt['grid'][p].values())} |")
    return lines


def method_table(rows: dict) -> list[str]:
    lines = ["| method | constant: median regret | constant: within 10% | constant: regret p25-p75 | constant: spread (dec.) "
             "| one-cycle: median regret | one-cycle: within 10% | one-cycle: regret p25-p75 | one-cycle: spread (dec.) "
             "| no answer | outside grid |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, e in rows.items():
        cells = []
        for p in PROTOCOLS:
            s = e[p]
            cells += [_f(s["median"]), _pct(s["within10"]), f"{_f(s['p25'], 2)}-{_f(s['p75'], 2)}", _f(s["spread"], 2)]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {e['missing']}/{e['n']} | {e['outside']} |")
    return lines


def lofo_table(results: dict[str, dict]) -> list[str]:
    """results: {rule label: leave_one_family_out(...) output}."""
    lines = ["| rule | held-out family | tasks | constant: median regret | constant: within 10% | one-cycle: median regret "
             "| one-cycle: within 10% |", "|---|---|---|---|---|---|---|"]
    for label, res in results.items():
        for fam, e in res["families"].items():
            lines.append(f"| {label} | {fam} | {e['tasks']} | {_f(e['constant']['median'])} | {_pct(e['constant']['within10'])} "
                         f"| {_f(e['onecycle']['median'])} | {_pct(e['onecycle']['within10'])} |")
        for which in ("pooled", "in_sample"):
            e = res[which]
            title = "**all held-out (pooled)**" if which == "pooled" else "in-sample (fitted on all, scored on all)"
            lines.append(f"| {label} | {title} | | {_f(e['constant']['median'])} | {_pct(e['constant']['within10'])} "
                         f"| {_f(e['onecycle']['median'])} | {_pct(e['onecycle']['within10'])} |")
    return lines


def verify_table(result: dict) -> list[str]:
    lines = ["| protocol | candidates (k x step) | picked by | regret without: median / within 10% | with verify: median / within 10% "
             "| runs better / worse | mean move (decades) | extra steps / range-test steps |", "|---|---|---|---|---|---|---|---|"]
    for p in PROTOCOLS:
        e = result[p]
        for (k, step, crit), s in e["with"].items():
            lines.append(f"| {p} | {k} x {step:g} dec. | {crit} loss | {_f(e['without']['median'])} / {_pct(e['without']['within10'])} "
                         f"| {_f(s['median'])} / {_pct(s['within10'])} | {_pct(e['better'][(k, step, crit)])} / "
                         f"{_pct(e['worse'][(k, step, crit)])} | {_f(e['moved'][(k, step, crit)], 2)} | {_f(e['cost'][(k, step)], 2)} |")
    return lines


def per_task_table(table: dict[str, dict], names: list[str]) -> list[str]:
    cols = [(n, p) for p in PROTOCOLS for n in (*names, "Prodigy")]
    lines = ["| task | family | " + " | ".join(f"{n} @ {p}" for n, p in cols) + " |", "|---|---|" + "---|" * len(cols)]
    for task, row in table.items():
        lines.append(f"| {task} | {BY_NAME[task].family} | " + " | ".join(f"{row[c]:.2f}" for c in cols) + " |")
    return lines


def ceiling_tables(spread: dict[str, dict], oracle: dict[str, dict], features: dict[str, dict], shifted: dict[float, dict]) -> list[str]:
    """The tables of `ceiling`: landmarks' spread, the regret of a miss, the oracle distance, features under leave-one-family-out."""
    lines = ["| landmark | constant: median distance above the best lr (dec.) | constant: spread across tasks (MAD, dec.) "
             "| one-cycle: median distance (dec.) | one-cycle: spread (MAD, dec.) | tasks |", "|---|---|---|---|---|---|"]
    for name, e in spread.items():
        lines.append(f"| {name} | {_f(e['constant']['distance'], 2)} | {_f(e['constant']['spread'], 2)} "
                     f"| {_f(e['onecycle']['distance'], 2)} | {_f(e['onecycle']['spread'], 2)} | {e['constant']['tasks']} |")
    lines += ["", "| answer | constant: median regret | constant: within 10% | one-cycle: median regret | one-cycle: within 10% |",
              "|---|---|---|---|---|"]
    for shift, e in shifted.items():
        lines.append(f"| every task at its best lr x 10^{shift:+g} | {_f(e['constant']['median'])} | {_pct(e['constant']['within10'])} "
                     f"| {_f(e['onecycle']['median'])} | {_pct(e['onecycle']['within10'])} |")
    const, cycle = oracle["constant"], oracle["onecycle"]
    lines.append(f"| each task's own best distance below the onset (single range tests) | {_f(const['median'])} "
                 f"| {_pct(const['within10'])} | {_f(cycle['median'])} | {_pct(cycle['within10'])} |")
    lines += ["", "| predictor of the distance below the onset | constant: median error, leave-one-family-out (dec.) "
              "| one-cycle: median error (dec.) | tasks |", "|---|---|---|---|"]
    for name, e in features.items():
        lines.append(f"| {name} | {_f(e['constant']['error'], 2)} | {_f(e['onecycle']['error'], 2)} | {e['constant']['tasks']} |")
    return lines
