"""The markdown summary of a run for CI pages: appended to $GITHUB_STEP_SUMMARY or to `--summary FILE`."""

from __future__ import annotations

import os
from pathlib import Path

from .results import RangeTestResult
from .suggest import listed

ENV_VAR = "GITHUB_STEP_SUMMARY"
_WHAT_FOR = {"onecycle": "the max_lr of a one-cycle schedule", "constant": "a constant learning rate"}


def summary_path(option: Path | None) -> Path | None:
    """Where to append the summary: --summary FILE, else $GITHUB_STEP_SUMMARY when set, else nowhere."""
    if option is not None:
        return option
    env = os.environ.get(ENV_VAR, "")
    return Path(env) if env else None


def markdown_summary(result: RangeTestResult, title: str, out_dir: Path, runs: int = 1) -> str:
    """Suggested lr, range, schedule, confidence flags, every method's value and where the outputs are."""
    lr = "none" if result.suggested_lr is None else f"`{result.suggested_lr:.4g}`"
    lines = [f"### lrfind: {title}", "", f"**Suggested learning rate: {lr}** ({_purpose(result)})", "",
             "| | |", "|---|---|"]
    if result.lr_range:
        lines.append(f"| lr range (base_lr .. max_lr) | `{result.lr_range[0]:.4g}` .. `{result.lr_range[1]:.4g}` |")
    flags = result.confidence.flags
    lines += [
        f"| schedule | {result.schedule} |",
        f"| status | {result.status}: {_cell(result.stop_reason)} |",
        f"| steps | {result.num_steps} of {result.num_iter}, lr {result.start_lr:.3g} .. {result.end_lr:.3g} ({result.mode}) |",
        f"| low-confidence flags | {', '.join(flags) if flags else 'none'} |",
    ]
    if runs > 1:
        lines.append(f"| grid | {runs} runs; the best one is shown |")
    lines += [f"| outputs | `{out_dir}/` (result.json, history.csv, lr_find.png) |", "", "| method | suggested lr |",
              "|---|---|"]
    for name, value in listed(result.suggestions).items():
        chosen = " (chosen)" if name == result.method and value is not None else ""
        lines.append(f"| {name}{chosen} | {'-' if value is None else f'{value:.4g}'} |")
    return "\n".join(lines) + "\n\n"


def append_summary(path: Path, text: str) -> None:
    """Append (GitHub collects every step's additions into one page)."""
    with path.open("a", encoding="utf-8") as fh:
        fh.write(text)


def _purpose(result: RangeTestResult) -> str:
    if result.suggested_lr is None:
        return "no usable suggestion; see the status below"
    return _WHAT_FOR.get(result.method, f"method {result.method}")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
