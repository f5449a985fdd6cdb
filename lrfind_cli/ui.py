"""What the user sees while a sweep runs: a live rich table with a progress bar, on stderr only."""

from __future__ import annotations

import time
from collections import deque

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table


class LiveReporter:
    """Receives StepInfo through `on_step`; shows a live table on a terminal and plain lines elsewhere."""

    def __init__(self, console: Console, title: str, num_iter: int, rows: int = 12):
        self.console = console
        self.title = title
        self.base_title = title
        self.variant = ""  # " · run 2/3: label" while a grid runs
        self.header_due = False  # plain text: print the title before the next step (a new run or repeat began)
        self.num_iter = num_iter
        self.rows: deque = deque(maxlen=rows)
        self.live: Live | None = None
        self.started = False
        # "eta" is the time to the last step; a sweep that diverges ends sooner
        self.progress = Progress(TextColumn("[bold]sweep"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                 TextColumn("eta"), TimeRemainingColumn(), console=console)
        self.task = self.progress.add_task("sweep", total=num_iter)
        # Without a terminal (CI) print every tenth step as plain text instead of redrawing.
        self.every = max(1, num_iter // 10)
        self.began = time.monotonic()  # when the current sweep's first step was reported (for the plain-text eta)

    def __enter__(self) -> LiveReporter:
        return self

    def _start(self) -> None:
        """Begin drawing at the first step, so errors while building come first and alone."""
        self.started = True
        if self.console.is_terminal:
            # the table is built when rich redraws (8 times a second), not at every step: building it costs
            # about 0.1 ms, as much as a small model's step (benchmarks/overhead.py)
            self.live = Live(get_renderable=self._render, console=self.console, refresh_per_second=8, transient=False)
            self.live.__enter__()
        else:
            self.console.print(f"{self.title}: {self.num_iter} steps", highlight=False, soft_wrap=True)

    def __exit__(self, *exc) -> None:
        if self.live is not None:
            self.live.refresh()
            self.live.__exit__(*exc)
            self.live = None

    def on_variant(self, index: int, count: int, label: str) -> None:
        """A new run of a grid begins: name it in the title, start its rows and progress afresh."""
        if count == 1:
            return
        self.variant = f" · run {index + 1}/{count}: {label}"
        self._restart(self.base_title + self.variant)

    def on_repeat(self, index: int, count: int) -> None:
        """A new repeat (sweep.repeats) begins: show its number in the title, start rows and progress afresh."""
        if count == 1:
            return
        self._restart(f"{self.base_title}{self.variant} · repeat {index + 1}/{count}")

    def _restart(self, title: str) -> None:
        """A new sweep: its title, empty rows, progress from zero; in plain text its header comes with its first step."""
        self.title = title
        self.rows.clear()
        self.progress.reset(self.task, total=self.num_iter)
        self.header_due = self.started
        self.began = time.monotonic()

    def on_step(self, info) -> None:
        """Steps are numbered from 0, as in history.csv and result.json; "12/12" counts the steps done."""
        if info.step == 0:
            self.began = time.monotonic()
        if not self.started:
            self._start()
        elif self.header_due and self.live is None:
            self.console.print("", highlight=False)
            self.console.print(f"{self.title}: {self.num_iter} steps", highlight=False, soft_wrap=True)
        self.header_due = False
        self.rows.append(info)
        self.progress.update(self.task, completed=info.step + 1)
        if self.live is None and (info.step % self.every == 0 or info.step + 1 == info.num_iter):
            self.console.print(
                f"step {info.step:>5} ({info.step + 1}/{info.num_iter})  lr {info.lr:.3e}  loss {info.loss:.4g}  "
                f"smoothed {info.smoothed:.4g}  best {info.best_loss:.4g} @ {info.best_lr:.3e}  eta {self._eta(info)}",
                highlight=False,
                soft_wrap=True,
            )

    def _eta(self, info) -> str:
        """H:MM:SS to the last step at the mean pace since step 0 (rich's bar shows the same in a terminal)."""
        if info.step == 0:
            return "-:--:--"
        left = (time.monotonic() - self.began) / info.step * (info.num_iter - 1 - info.step)
        seconds = int(round(left))
        return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"

    def _render(self) -> Group:
        table = Table(title=self.title, title_justify="left", expand=False)
        for name in ("step", "lr", "loss", "smoothed", "best"):
            table.add_column(name, justify="right")
        for info in list(self.rows):  # a copy: rich redraws from its own thread while steps come in
            table.add_row(str(info.step), f"{info.lr:.3e}", f"{info.loss:.4g}", f"{info.smoothed:.4g}",
                          f"{info.best_loss:.4g} @ {info.best_lr:.2e}")
        return Group(table, self.progress)
