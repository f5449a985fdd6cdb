"""The markdown summary of a run for CI pages: appended to $GITHUB_STEP_SUMMARY or to `--summary FILE`."""

from __future__ import annotations

import os
from pathlib import Path

from .results import RangeTestResult
from .suggest import listed

ENV_VAR = "GITHUB_STEP_SUMMARY"
_WHAT_FOR = {"onecycle": "the max_lr of a one-cycle schedule", "cosine": "the peak of a warm-up + cosine schedule",
             "constant": "a constant learning rate", "wsd": "the plateau of a warm-up-stable-decay schedule"}


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
        *([f"| training it is for | {_cell(training_text(result.train))} |"] if result.train else []),
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


def training_text(train: dict) -> str:
    """The training an answer is for, in words: its length (assumed or given), passes, and momentum cycling.

    `train` is result.json's `train` block (`suggest.summary.training`); "" when it is empty (an older result).
    """
    if not train:
        return ""
    steps = f"{train['steps']} optimizer steps"
    if train.get("assumed"):
        steps += " (assumed: set train.steps or train.epochs)"
    passes = train.get("passes")
    data = "; the data is a stream" if train.get("steps_per_pass") is None else f", {passes:.3g} passes over the data"
    onecycle = train.get("schedule") == "onecycle"
    cycled = "; with OneCycleLR's momentum cycling" if onecycle and train.get("momentum_cycled") else ""
    return f"{steps}{data}{cycled}"


def cycling_note(result: RangeTestResult) -> str | None:
    """For a one-cycle answer for an optimizer set up without momentum: what OneCycleLR's cycling does, and the answer
    without it (None otherwise)."""
    train = result.train
    if result.method != "onecycle" or not train.get("momentum_cycled") or result.suggested_lr is None:
        return None
    from .suggest import CYCLED_DECADES

    without = result.suggested_lr * 10**CYCLED_DECADES
    return (f"OneCycleLR's cycle_momentum (on by default) gives this optimizer momentum 0.85-0.95 it was swept without; "
            f"suggested_lr is for that. To train without it, pass OneCycleLR(..., cycle_momentum=False) and use "
            f"{without:.4g} (lrfind: train.cycle_momentum: false)")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
