"""The one output sink of the command line: data on stdout, everything else on stderr, in human, json or quiet mode."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import Ending, short_message

HUMAN, JSON, QUIET = "human", "json", "quiet"


@dataclass
class Output:
    """Where and how a command prints. `mode` is resolved once from --json / -q; `main` is False on torchrun's other ranks.

    stdout carries the data only (the summary, result.json, the bare lr, a table, names); lines for the
    user (progress, warnings, errors) go to stderr, plain and never wrapped. A new format is one method here.
    """

    mode: str = HUMAN
    main: bool = True
    _console: Any = field(default=None, repr=False)
    _snapshot_said: tuple[int, str] | None = field(default=None, repr=False)

    @classmethod
    def resolve(cls, json_out: bool = False, quiet: bool = False, main: bool = True, verbose: bool = False) -> Output:
        """The mode of a command: json, quiet or human; under torchrun the other ranks are quiet unless -v."""
        if not main and not verbose:
            return cls(QUIET, main)
        return cls(JSON if json_out else QUIET if quiet else HUMAN, main)

    @property
    def live(self) -> bool:
        """Whether progress (the live table, the first line before torch loads) is shown."""
        return self.mode == HUMAN

    @property
    def console(self):
        """The rich Console on stderr, made once (the live table draws on it)."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=True)
        return self._console

    # ---- stderr: lines for the user ----

    def say(self, text: str) -> None:
        """One plain line on stderr: no markup, no highlighting, never wrapped; under torchrun it names the rank."""
        if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:
            text = f"[rank {os.environ.get('RANK', '?')}] {text}"
        self.console.print(text, highlight=False, markup=False, soft_wrap=True)

    def warning(self, text: str) -> None:
        self.say(f"warning: {text}")

    def python_warning(self, message, category, filename, lineno, file=None, line=None) -> None:
        """A library's warning on one line, not its source excerpt (installed as warnings.showwarning)."""
        self.warning(f"{category.__name__}: {short_message(message)} ({filename}:{lineno})")

    def snapshot(self, nbytes: int, mode: str) -> None:
        """The size of the snapshot about to be taken, once per run (again only if a grid variant's differs)."""
        if (nbytes, mode) == self._snapshot_said:
            return
        self._snapshot_said = (nbytes, mode)
        from rich.filesize import decimal

        where = "a temporary file" if mode == "disk" else "CPU memory"
        self.say(f"snapshot: {decimal(nbytes)} of model and optimizer state into {where} (sweep.snapshot: {mode})")

    def error(self, ending: Ending) -> None:
        for line in ending.lines:
            self.say(line)

    def first_line(self, spec_path: Path) -> Callable[[], None] | None:
        """What to say before torch loads (seconds on a small machine), so the screen is not blank; None when silent."""
        if not self.live:
            return None
        return lambda: self.say(f"{spec_path}: loading torch to check names and build the run")

    # ---- stdout: data ----

    def data(self, text: str) -> None:
        sys.stdout.write(text)

    def outcome(self, outcome) -> None:
        """A finished run on rank 0: result.json (json), the bare lr (quiet) or the summary (human); then its notes."""
        if not self.main:
            return
        result = outcome.result
        if self.mode == JSON:
            self.data(outcome.json_text)
        elif self.mode == QUIET:
            if result.suggested_lr is not None:
                self.data(f"{result.suggested_lr!r}\n")
        else:
            self.data(human_summary(outcome))
        quality = result.confidence
        for flag, note in zip(quality.flags, quality.notes):
            # without an answer its one reason is said instead (diagnosis); steps the GradScaler skipped are said either way
            if result.suggested_lr is not None or flag == "skipped_steps":
                self.warning(f"{'low confidence' if flag in quality.low else 'note'} ({flag}): {note}")

    def partial(self, outcome) -> None:
        """An interrupted run's partial result.json on stdout (json mode, rank 0)."""
        if self.mode == JSON and self.main:
            self.data(outcome.json_text)

    def markdown(self, option: Path | None, outcome, loaded) -> None:
        """Append the markdown summary for CI (rank 0 only; --summary FILE, else $GITHUB_STEP_SUMMARY when set).

        A summary that cannot be written is a warning, not a failed run.
        """
        from .runner import title_of
        from .summary import append_summary, markdown_summary, summary_path

        path = summary_path(option)
        if path is None or not self.main:
            return
        text = markdown_summary(outcome.result, title_of(loaded), outcome.out_dir, len(outcome.document.get("runs") or []))
        try:
            append_summary(path, text)
        except OSError as exc:
            self.warning(f"cannot append the summary to {path}: {exc.strerror or exc}; check --summary or $GITHUB_STEP_SUMMARY")

    def names(self, names: list[str]) -> None:
        self.data("".join(f"{name}\n" for name in names))

    def compare(self, rows: list[dict[str, Any]]) -> None:
        """The compare table: JSON rows, or one aligned line per result."""
        if self.mode == JSON:
            self.data(json.dumps(rows, indent=2) + "\n")
            return
        width = max(len(r["result"]) for r in rows)
        lines = [f"{'result':<{width}}  {'suggested_lr':>12}  {'method':<9} {'best loss':>10}  {'at lr':>9}  status\n"]
        for r in rows:
            lr = "-" if r["suggested_lr"] is None else f"{r['suggested_lr']:.4g}"
            best = "-" if r["best_loss"] is None else f"{r['best_loss']:.4g}"
            at = "-" if r["best_lr"] is None else f"{r['best_lr']:.3g}"
            lines.append(f"{r['result']:<{width}}  {lr:>12}  {r['method']:<9} {best:>10}  {at:>9}  {r['status']}\n")
        self.data("".join(lines))


def human_summary(outcome) -> str:
    """The summary `lrfind run` prints on stdout: the suggestion, every method, repeats, the grid and where the files are."""
    from .suggest import SCHEDULE_NAMES, listed
    from .summary import cycling_note, training_text

    result = outcome.result
    shown = "none" if result.suggested_lr is None else format(result.suggested_lr, ".4g")
    lines = [f"suggested_lr: {shown} ({SCHEDULE_NAMES.get(result.method, result.method)})"]
    if result.train and result.method != "finetune":
        moves = result.schedules.get(result.schedule)
        per = "" if moves is None or moves.per_decade is None else f"; {moves.per_decade:+.2g} decades per decade of length"
        lines.append(f"for: {training_text(result.train)}{per}")
    note = cycling_note(result)
    if note:
        lines.append(f"note: {note}")
    if result.lr_range:
        lines.append(f"lr_range: {result.lr_range[0]:.4g} .. {result.lr_range[1]:.4g} (base_lr .. max_lr for a cyclic schedule)")
    lines += [f"  {name:<9} {'-' if lr is None else format(lr, '.4g')}" for name, lr in listed(result.suggestions).items()]
    quality = result.confidence
    if quality.repeats > 1:
        spread = quality.spread_decades
        lines.append(f"repeats: {quality.repeats}, spread of the suggestion {'-' if spread is None else f'{spread:.2f} decades'}")
    if result.best["lr"] is not None:
        lines.append(f"best loss {result.best['loss']:.4g} at lr {result.best['lr']:.4g} (the zero-lag curve's lowest point)")
    lines.append(f"{result.status}: {result.stop_reason}")
    lines += _grid_lines(outcome.document)
    lines.append(f"outputs: {outcome.out_dir}/ (result.json, history.csv, lr_find.png)")
    return "".join(f"{line}\n" for line in lines)


def _grid_lines(document: dict[str, Any]) -> list[str]:
    runs = document.get("runs")
    if not runs:
        return []
    best = document["best_run"]
    lines = [f"grid: {len(runs)} runs; on top: run {best['index'] + 1} ({best['criterion']})"]
    for i, run in enumerate(runs):
        lr = "-" if run["suggested_lr"] is None else format(run["suggested_lr"], ".4g")
        label = ", ".join(f"{k}={v}" for k, v in run["overrides"].items())
        lines.append(f"  run {i + 1}: {label:<40} suggested_lr {lr:<10} {run['status']}")
    return lines
