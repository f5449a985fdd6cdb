"""What the user sees while a sweep runs: a live rich table with a progress bar, on stderr only."""

from __future__ import annotations

from collections import deque

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
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
        self.progress = Progress(TextColumn("[bold]sweep"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                 console=console)
        self.task = self.progress.add_task("sweep", total=num_iter)
        # Without a terminal (CI) print every tenth step as plain text instead of redrawing.
        self.every = max(1, num_iter // 10)

    def __enter__(self) -> LiveReporter:
        return self

    def _start(self) -> None:
        """Begin drawing at the first step, so errors while building come first and alone."""
        self.started = True
        if self.console.is_terminal:
            self.live = Live(self._render(), console=self.console, refresh_per_second=8, transient=False)
            self.live.__enter__()
        else:
            self.console.print(f"{self.title}: {self.num_iter} steps", highlight=False, soft_wrap=True)

    def __exit__(self, *exc) -> None:
        if self.live is not None:
            self.live.update(self._render())
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

    def on_step(self, info) -> None:
        if not self.started:
            self._start()
        elif self.header_due and self.live is None:
            self.console.print("", highlight=False)
            self.console.print(f"{self.title}: {self.num_iter} steps", highlight=False, soft_wrap=True)
        self.header_due = False
        self.rows.append(info)
        self.progress.update(self.task, completed=info.step + 1)
        if self.live is not None:
            self.live.update(self._render())
        elif info.step % self.every == 0 or info.step + 1 == info.num_iter:
            self.console.print(
                f"step {info.step + 1:>5}/{info.num_iter}  lr {info.lr:.3e}  loss {info.loss:.4g}  "
                f"smoothed {info.smoothed:.4g}  best {info.best_loss:.4g} @ {info.best_lr:.3e}",
                highlight=False,
                soft_wrap=True,
            )

    def _render(self) -> Group:
        table = Table(title=self.title, title_justify="left", expand=False)
        for name in ("step", "lr", "loss", "smoothed", "best"):
            table.add_column(name, justify="right")
        for info in self.rows:
            table.add_row(str(info.step + 1), f"{info.lr:.3e}", f"{info.loss:.4g}", f"{info.smoothed:.4g}",
                          f"{info.best_loss:.4g} @ {info.best_lr:.2e}")
        return Group(table, self.progress)
