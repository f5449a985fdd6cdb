"""What the user sees while a sweep runs: a live rich table with a progress bar, on stderr only."""

from __future__ import annotations

import math
import time
from collections import deque

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, Task, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from .suggest import zero_lag


def loss_text(value: float) -> str:
    """A loss with 4 significant digits, trailing zeros kept (1.000, 0.2431, 2.303e-05): columns read alike."""
    return f"{value:#.4g}"


class EtaColumn(TimeRemainingColumn):
    """rich's time-remaining column, prefixed "eta" while the sweep runs; once it has ended it says so.

    A sweep that diverges ends before its last planned step, so rich's estimate would stay frozen on
    the last frame ("eta 0:00:30" after the run); the ended task shows "done" (every planned step) or
    "stopped" (earlier: diverged or interrupted, as the summary line says).
    """

    def render(self, task: Task) -> Text:
        if task.fields.get("ended"):
            return Text("done" if task.finished else "stopped", style="progress.elapsed")
        return Text.assemble("eta ", super().render(task))


class LiveReporter:
    """Receives StepInfo through `on_step`; shows a live table on a terminal and plain lines elsewhere.

    The table is drawn from `on_step`, at most 8 times a second and with at most a DRAW_SHARE-th of the
    time going into drawing: rich takes about 7 ms to lay out a frame of the table and the bar, so a
    table redrawn 8 times a second (rich's own thread, holding the GIL) took 6% of a sweep of 1 ms steps.
    """

    DRAW_EVERY = 1 / 8  # seconds between frames, at least
    DRAW_SHARE = 50  # at most a fiftieth of the sweep's time goes into drawing (a frame, and re-reading the best)

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
                                 EtaColumn(), console=console)
        self.task = self.progress.add_task("sweep", total=num_iter, ended=False)
        # Without a terminal (CI) print every tenth step as plain text instead of redrawing.
        self.every = max(1, num_iter // 10)
        self.began = time.monotonic()  # when the current sweep's first step was reported (for the plain-text eta)
        self.best = LowestPoint()
        self.printed = -1  # the step of the last plain line
        self.drawn_at, self.draw_cost = -math.inf, 0.0

    def __enter__(self) -> LiveReporter:
        return self

    def _start(self) -> None:
        """Begin drawing at the first step, so errors while building come first and alone."""
        self.started = True
        if self.console.is_terminal:
            self.live = Live(get_renderable=self._render, console=self.console, auto_refresh=False, transient=False)
            self.live.__enter__()
        else:
            self.console.print(f"{self.title}: {self.num_iter} steps", highlight=False, soft_wrap=True)

    def __exit__(self, *exc) -> None:
        self._last_line()
        if self.live is not None:
            # the last frame stays on screen: no estimate for steps that will never run, the clock stopped
            self.progress.stop_task(self.task)
            self.progress.update(self.task, ended=True)
            self._draw(force=True)  # and the best over the whole sweep, read exactly
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
        self._last_line()
        self.title = title
        self.rows.clear()
        self.best = LowestPoint()
        self.printed = -1
        self.progress.reset(self.task, total=self.num_iter, ended=False)
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
        self.best.add(info.lr, info.loss)
        self.rows.append((info, self.best.found))
        if self.live is not None:
            self.progress.update(self.task, completed=info.step + 1, total=max(info.num_iter, self.num_iter))
            self._draw()
        elif info.step % self.every == 0 or info.step + 1 == info.num_iter:
            self._line(info)

    def _draw(self, force: bool = False) -> None:
        """Draw a frame, with the best read again, unless one was drawn too recently (DRAW_EVERY, DRAW_SHARE)."""
        began = time.monotonic()
        if not force and began - self.drawn_at < max(self.DRAW_EVERY, self.DRAW_SHARE * self.draw_cost):
            return
        if self.rows:
            self.rows[-1] = (self.rows[-1][0], self.best.now())
        self.live.refresh()
        self.drawn_at = time.monotonic()
        self.draw_cost = self.drawn_at - began

    def _last_line(self) -> None:
        """Plain text: the line of the step the sweep ended at, whichever it was (a stop, or past end_lr)."""
        if self.live is None and self.rows and self.rows[-1][0].step != self.printed:
            self._line(self.rows[-1][0])

    def _line(self, info) -> None:
        """One plain progress line (no terminal)."""
        loss, lr = self.best.now()
        self.console.print(
            f"step {info.step:>5} ({info.step + 1}/{info.num_iter})  lr {info.lr:.3e}  loss {loss_text(info.loss)}  "
            f"smoothed {loss_text(info.smoothed)}  best {loss_text(loss)} @ {lr:.3e}  eta {self._eta(info)}",
            highlight=False,
            soft_wrap=True,
        )
        self.printed = info.step

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
        for info, (loss, lr) in self.rows:
            table.add_row(str(info.step), f"{info.lr:.3e}", loss_text(info.loss), loss_text(info.smoothed),
                          f"{loss_text(loss)} @ {lr:.2e}")
        return Group(table, self.progress)


class LowestPoint:
    """The lowest point so far of the zero-lag curve the rule reads (`suggest.zero_lag` of the raw losses): the
    live table's "best", from the same curve as result.json's `best` and the plot's main line.

    Reading the whole curve costs O(steps), so it is read again only when it is shown (`now`: a frame of
    the table, a plain line, the last frame); between readings `found` is what the last one found.
    """

    def __init__(self) -> None:
        self.lrs: list[float] = []
        self.losses: list[float] = []
        self.found = (math.nan, math.nan)

    def add(self, lr: float, loss: float) -> None:
        self.lrs.append(lr)
        self.losses.append(loss)

    def now(self) -> tuple[float, float]:
        """(loss, lr) at the zero-lag curve's lowest point, read over every step so far (nan, nan before a finite loss)."""
        x, z = zero_lag(self.lrs, self.losses)
        if len(z):
            i = int(z.argmin())
            self.found = (float(z[i]), float(x[i]))
        return self.found
