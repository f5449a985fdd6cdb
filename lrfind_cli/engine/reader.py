"""LossReader: losses kept on the device, read in chunks, averaged across ranks, smoothed, and the stop decision."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from .config import CPU_READ_SECONDS, SweepConfig


@dataclass(frozen=True)
class StepInfo:
    """What `on_step` receives once per optimizer step (possibly a few steps late, in order)."""

    step: int
    num_iter: int
    lr: float
    loss: float
    smoothed: float  # NaN at a skipped step
    best_loss: float
    best_lr: float
    skipped: bool = False  # the GradScaler skipped this step's update (inf/NaN gradients): not a measurement


class StepRecord(NamedTuple):
    """One step of the history: the lr it trained at, its loss, the smoothed loss, the validation loss if measured.

    A step the GradScaler skipped (`skipped`) did not apply its lr: its loss is kept but is no
    measurement, so it is left out of the smoothing and the stop rule (smoothed is NaN there).
    A NamedTuple: one is made per step, at a third of a frozen dataclass's cost.
    """

    lr: float
    loss: float
    smoothed: float
    val_loss: float | None = None
    skipped: bool = False


@dataclass(frozen=True)
class Stop:
    """Why the sweep ended: status completed | diverged | interrupted, and the reason in words."""

    status: str
    reason: str


class LossCurve:
    """Bias-corrected EMA smoothing and the divergence rule, fed one raw loss at a time."""

    def __init__(self, smoothing: float, diverge_threshold: float):
        self.beta = smoothing
        self.threshold = diverge_threshold
        self._avg = 0.0
        self._count = 0
        self.first: float | None = None
        self.best = math.inf
        self.best_index = -1

    def add(self, loss: float, step: int | None = None) -> float:
        """Record a raw loss (of `step`: default, the count of losses so far); return the smoothed value (EMA from 0, / 1 - beta**t)."""
        self._count += 1
        self._avg = self.beta * self._avg + (1.0 - self.beta) * loss
        smoothed = self._avg / (1.0 - self.beta**self._count)
        if math.isfinite(smoothed):
            if self.first is None:
                self.first = smoothed
            if smoothed < self.best:
                self.best, self.best_index = smoothed, self._count - 1 if step is None else step
        return smoothed

    def diverged(self, smoothed: float) -> bool:
        """True once the smoothed loss has clearly risen above the best so far.

        For positive losses this is the classic rule, smoothed > threshold * best, with a floor
        on the scale (1% of the drop so far) so a loss near zero does not stop on noise. For a
        best loss at or below zero, where a ratio means nothing, the rise is measured against how
        far the loss has fallen (at least 10% of |best|).
        """
        if self.first is None or not math.isfinite(self.best):
            return False
        drop = max(self.first - self.best, 0.0)
        if self.best > 0:
            scale = max(self.best, 0.01 * drop)
        else:
            scale = max(drop, 0.1 * abs(self.best), 1e-12)
        return smoothed - self.best > (self.threshold - 1.0) * scale


def process_group():
    """The default process group when running distributed with more than one rank, else None."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return dist.group.WORLD
    return None


class LossReader:
    """The sweep's losses: written on the device each step, read to the host in chunks, then smoothed and judged.

    Reading every step would synchronise an accelerator at every step, so losses wait in a device
    buffer (a row for the training loss; with validation, one for the validation loss, NaN where not
    measured; with a GradScaler, one that is 1 where it skipped the step) until `due()`, which also
    reads right after step 0 (so its time is known: `reads` notes (steps trained, perf_counter) per read).
    `read()` turns the waiting steps into `records` (one `StepRecord` per step), calls `on_step`, and
    returns a `Stop` at the step where the loss diverged; the history is cut there, so it does not
    depend on when losses are read. Under torch.distributed every rank reads at the same steps and
    records the mean across ranks, so all ranks stop at the same step.
    """

    def __init__(self, config: SweepConfig, device: torch.device, with_val: bool = False,
                 on_step: Callable[[StepInfo], None] | None = None, with_skips: bool = False):
        self.planned = config.lrs()
        self.curve = LossCurve(config.smoothing, config.diverge_threshold)
        self.group = process_group()
        self.sync_every, self.by_time = config.read_every(device, distributed=self.group is not None)
        self.with_val = with_val
        self.with_skips = with_skips
        self.on_step = on_step
        self.val_row, self.skip_row = 1, 1 + with_val
        rows = 1 + with_val + with_skips
        self.buffer = torch.full((rows, len(self.planned)), math.nan, dtype=torch.float32, device=device)
        self._view: tuple[torch.Tensor, np.ndarray] | None = None  # (buffer, its numpy view), see `host`
        self.records: list[StepRecord] = []
        self.done = 0  # steps whose loss is in the buffer
        self.stop: Stop | None = None
        self.last_read = time.perf_counter()
        self.reads: list[tuple[int, float]] = []

    def extend(self, lrs) -> None:
        """Plan more steps after the last planned one (the sweep going on past end_lr): their lrs, and room for their losses."""
        self.planned = np.concatenate([self.planned, np.asarray(lrs, dtype=float)])
        more = torch.full((self.buffer.shape[0], len(lrs)), math.nan, dtype=self.buffer.dtype, device=self.buffer.device)
        self.buffer = torch.cat([self.buffer, more], dim=1)

    @property
    def host(self) -> np.ndarray | None:
        """On a CPU, a numpy view of the buffer (None elsewhere): a loss is a number already there, and writing it
        through numpy costs 0.5 us a step instead of 5 for a tensor write. Made again if the buffer was replaced."""
        if not self.by_time:
            return None
        if self._view is None or self._view[0] is not self.buffer:
            self._view = (self.buffer, self.buffer.numpy())
        return self._view[1]

    def put(self, step: int, loss: torch.Tensor, skipped: torch.Tensor | None = None) -> None:
        """The training loss of `step` and whether the GradScaler skipped it (no host sync); an interrupt keeps it."""
        host = self.host
        if host is not None:
            host[0, step] = loss.item()
            if skipped is not None:
                host[self.skip_row, step] = skipped.item()
        else:
            self.buffer[0, step] = loss
            if skipped is not None:
                self.buffer[self.skip_row, step] = skipped
        self.done = step + 1

    def put_val(self, step: int, loss: torch.Tensor) -> None:
        host = self.host
        if host is not None:
            host[self.val_row, step] = loss.item()
        else:
            self.buffer[self.val_row, step] = loss

    def due(self, loss: torch.Tensor) -> bool:
        """Whether to read now: after step 0, every `sync_every` steps and at the end; by time on a CPU (a non-finite loss at once)."""
        due = self.done % self.sync_every == 0 or self.done in (1, len(self.planned))
        if self.by_time and not due:
            due = not math.isfinite(self.host[0, self.done - 1]) or time.perf_counter() - self.last_read >= CPU_READ_SECONDS
        return due

    def read(self, collective: bool = True) -> Stop | None:
        """Record the steps measured since the last read; the Stop once the loss diverged, else None.

        `collective=False` (after an interrupt, when other ranks may not be here) records this rank's own losses.
        """
        first = len(self.records)  # one append per step: an interrupt cannot leave a step half-recorded
        if first < self.done and self.stop is None:
            self._record(first, self._fetch(first, collective))
            self.reads.append((self.done, time.perf_counter()))
        self.last_read = time.perf_counter()
        return self.stop

    def _fetch(self, first: int, collective: bool) -> list[list[float]]:
        chunk = self.buffer[:, first:self.done]
        if self.group is not None and collective:
            # Every rank reads at the same steps, so this collective lines up; the mean across ranks
            # is the loss of the global batch, and the stop decision taken from it is the same everywhere.
            chunk = chunk.clone()
            torch.distributed.all_reduce(chunk, group=self.group)
            chunk /= torch.distributed.get_world_size(self.group)
        return chunk.tolist()

    def _record(self, first: int, rows: list[list[float]]) -> None:
        for offset, loss in enumerate(rows[0]):
            i, lr = first + offset, float(self.planned[first + offset])
            # a skipped step is no measurement (smoothed NaN: no divergence), though a non-finite loss stops the sweep all the same
            skipped = self.with_skips and rows[self.skip_row][offset] > 0
            smoothed = math.nan if skipped else self.curve.add(loss, i)
            val = rows[self.val_row][offset] if self.with_val and math.isfinite(rows[self.val_row][offset]) else None
            self.records.append(StepRecord(lr, loss, smoothed, val, skipped))
            if self.on_step is not None:
                self.on_step(self._info(i, lr, loss, smoothed, skipped))
            self.stop = self._judge(i, lr, loss, smoothed)
            if self.stop is not None:
                return

    def _info(self, i: int, lr: float, loss: float, smoothed: float, skipped: bool) -> StepInfo:
        curve = self.curve
        best = curve.best if math.isfinite(curve.best) else smoothed
        best_lr = float(self.planned[curve.best_index]) if curve.best_index >= 0 else lr
        return StepInfo(i, len(self.planned), lr, loss, smoothed, best, best_lr, skipped)

    def _judge(self, i: int, lr: float, loss: float, smoothed: float) -> Stop | None:
        if not math.isfinite(loss):
            return Stop("diverged", f"non-finite loss ({loss}) at step {i}, lr {lr:.3g}")
        if self.curve.diverged(smoothed):
            return Stop("diverged", f"smoothed loss {smoothed:.4g} diverged from best {self.curve.best:.4g} at step {i}, lr {lr:.3g}")
        return None

    def interrupted(self) -> Stop:
        return Stop("interrupted", f"interrupted after {len(self.records)} steps")
