"""SweepConfig: the numbers and choices of one range test, validated once when it is made."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..suggest import SCHEDULES
from .schedule import EXTEND_DECADES, lr_extension, lr_schedule

CPU_READ_SECONDS = 0.02  # on a CPU, losses are read once this long has passed (or every 16 steps)


@dataclass(frozen=True)
class SweepConfig:
    """How the sweep runs; every argument check of `range_test` lives in `__post_init__`.

    `sync_every=None` lets the engine choose when losses are read (see `read_every`).
    """

    start_lr: float = 1e-7
    end_lr: float = 10.0
    num_iter: int = 100
    mode: str = "exp"
    smoothing: float = 0.98
    diverge_threshold: float = 4.0
    accumulation_steps: int = 1
    max_grad_norm: float | None = None
    max_grad_value: float | None = None
    train_mode: str = "keep"
    precision: str = "fp32"
    snapshot: str = "memory"
    suggest_method: str = "auto"
    schedule: str = "onecycle"
    sync_every: int | None = None
    val_every: int = 10
    warm_start: bool | None = None  # the model started from trained weights (True; see suggest.rule)
    extend_decades: float = EXTEND_DECADES  # how far past end_lr a sweep that has not diverged goes on (0: not at all)

    def __post_init__(self) -> None:
        for name, minimum in (("num_iter", 2), ("accumulation_steps", 1), ("val_every", 1), ("sync_every", 1)):
            if getattr(self, name) is not None or name != "sync_every":
                _check_whole(name, getattr(self, name), minimum)
        for name in ("start_lr", "end_lr", "smoothing", "diverge_threshold", "max_grad_norm", "max_grad_value", "extend_decades"):
            _check_number(name, getattr(self, name), optional=name.startswith("max_grad"))
        _check_choice("train_mode", self.train_mode, ("all", "keep"))
        if not 0 <= self.smoothing < 1:
            raise ValueError(f"smoothing must be in [0, 1), got {self.smoothing}")
        if not 0 <= self.extend_decades < math.inf:
            raise ValueError(f"extend_decades must be 0 or more, got {self.extend_decades}")
        if self.diverge_threshold <= 1:
            raise ValueError(f"diverge_threshold must be above 1, got {self.diverge_threshold}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.precision not in ("fp32", "bf16", "fp16"):
            raise ValueError(f"precision must be fp32, bf16 or fp16, got {self.precision!r}")
        _check_choice("snapshot", self.snapshot, ("memory", "disk"))

    def lrs(self) -> np.ndarray:
        """The planned lr of every step (ValueError for a range or mode the schedule cannot take)."""
        return lr_schedule(self.start_lr, self.end_lr, self.num_iter, self.mode)

    def extension(self) -> np.ndarray:
        """The lrs of the steps past end_lr, for a sweep whose loss has not diverged by then (`lr_extension`)."""
        return lr_extension(self.start_lr, self.end_lr, self.num_iter, self.mode, self.extend_decades)

    def read_every(self, device: torch.device, distributed: bool) -> tuple[int, bool]:
        """(read the losses every N steps, read by time instead) on this device.

        On a CPU nothing runs ahead of Python, so reading is cheap but not free: read by time, unless
        ranks must read at the same steps (their all_reduce has to line up).
        """
        by_time = self.sync_every is None and device.type == "cpu" and not distributed
        return self.sync_every or (1 if device.type == "cpu" and distributed else 16), by_time


def check_arguments(model: Any, optimizer: Any, train_loader: Any, loss_fn: Any, **functions: Any) -> None:
    """TypeError naming the argument when model, optimizer, train_loader, loss_fn or a callback is of the wrong kind."""
    swapped = " (are model and optimizer swapped?)"
    if not isinstance(model, torch.nn.Module):
        hint = swapped if isinstance(model, torch.optim.Optimizer) else ""
        raise TypeError(f"model must be a torch.nn.Module, got {_kind(model)}{hint}")
    if not isinstance(optimizer, torch.optim.Optimizer):
        hint = swapped if isinstance(optimizer, torch.nn.Module) else ""
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {_kind(optimizer)}{hint}")
    iterable = hasattr(train_loader, "__iter__") or hasattr(train_loader, "__getitem__")
    if not iterable or isinstance(train_loader, (str, bytes, Mapping, torch.Tensor)):
        raise TypeError(f"train_loader must be a DataLoader or another iterable of batches, got {_kind(train_loader)}")
    if loss_fn is not None and not callable(loss_fn):
        raise TypeError(f"loss_fn must be a loss module, a function, or None (the model returns its loss), got {_kind(loss_fn)}")
    for name, fn in functions.items():
        if fn is not None and not callable(fn):
            raise TypeError(f"{name} must be a function or None, got {_kind(fn)}")


def _check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be {' or '.join(repr(a) for a in allowed)}, got {value!r}")


def _check_whole(name: str, value: Any, minimum: int) -> None:
    """An int (numpy ints too; not a bool, not a float such as 5.0) of at least `minimum`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {_kind(value)}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")


def _check_number(name: str, value: Any, optional: bool = False) -> None:
    """A real number (not a bool); with `optional`, None or a number above 0."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number{' or None' if optional else ''}, got {_kind(value)}")
    if optional and not 0 < value < math.inf:
        raise ValueError(f"{name} must be above 0 (or None for no clipping), got {value}")


def _kind(value: Any) -> str:
    """How a wrong argument is shown: its value when short, and its type."""
    text = repr(value)
    return f"{text} ({type(value).__name__})" if len(text) <= 40 else f"a {type(value).__name__}"
