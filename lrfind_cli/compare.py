"""`lrfind compare`: saved result.json files read back as one curve and one row per run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import Problem, SpecError, short_message
from .results import RESULT_JSON, RangeTestResult


def compare_results(paths: list[Path], out: Path | None = None) -> list[dict[str, Any]]:
    """Read the results and return one table row per run; with `out`, overlay their curves in a plot written there.

    SpecError (nothing written) for an `out` that is a directory or one of the results read.
    """
    curves, rows = read_results(paths)
    if out is not None:
        from .plot import save_plot

        _check_plot_path(out, paths)
        out.parent.mkdir(parents=True, exist_ok=True)
        save_plot(curves, out, "lrfind compare")
    return rows


def _check_plot_path(out: Path, paths: list[Path]) -> None:
    if out.is_dir():
        raise SpecError(Problem(f"--out {out}", "is a directory", "give the path of the PNG to write, e.g. compare.png"))
    inputs = {(p / RESULT_JSON if p.is_dir() else p).resolve() for p in paths}
    if out.resolve() in inputs:
        raise SpecError(Problem(f"--out {out}", "is one of the results being compared", "give another path for the plot"))


def read_results(paths: list[Path]) -> tuple[list[tuple[str, RangeTestResult]], list[dict[str, Any]]]:
    """(label, result) curves and table rows, in the order given; a grid result gives one of each per run."""
    curves, rows = [], []
    for given in paths:
        for label, result, entry in _entries(given):
            curves.append((label, result))
            rows.append({"result": label, "status": result.status, "suggested_lr": result.suggested_lr, "method": result.method,
                         "best_loss": result.best["loss"], "best_lr": result.best["lr"], "num_steps": result.num_steps,
                         "global_batch_size": entry.get("global_batch_size")})
    return curves, rows


def _entries(given: Path) -> list[tuple[str, RangeTestResult, dict[str, Any]]]:
    """(label, result, its document) for each run in one result file (a file or the directory holding it)."""
    path = given / RESULT_JSON if given.is_dir() else given
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        # a grid result holds one run per variant, each with its own batch size: each is compared on its own
        runs = [{**doc, **run} for run in doc.get("runs") or []]
        entries = [(f"{given} [{', '.join(f'{k}={v}' for k, v in run['overrides'].items())}]", RangeTestResult.from_dict(run), run)
                   for run in runs]
        return entries or [(str(given), RangeTestResult.from_dict(doc), doc)]
    except FileNotFoundError:
        raise SpecError(Problem(str(path), "no such result file", "pass result.json files or their directories")) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SpecError(Problem(str(path), f"not an lrfind result.json ({short_message(exc)})",
                                "pass files written by `lrfind run`")) from None
