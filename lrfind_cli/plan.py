"""The training an answer is for: its schedule, length and momentum cycling, and each step's lr and momentum as PyTorch runs it.

A range test measures one curve; the learning rate to train with depends on the run that follows
(how long, under which schedule). `TrainPlan` describes that run; `lr_factors` and `momenta` give, for
every optimizer step, the multiplier of the peak learning rate and the momentum (or Adam's beta1) that
the matching PyTorch scheduler sets, read off the scheduler itself so they cannot drift from it:

    onecycle  torch.optim.lr_scheduler.OneCycleLR(max_lr=lr, total_steps=steps, pct_start=warmup or 0.3,
              cycle_momentum=cycle_momentum): cosine warm-up from lr / 25, cosine annealing to lr / 25 / 1e4;
              with cycle_momentum (PyTorch's default) momentum or beta1 runs 0.95 -> 0.85 -> 0.95
    cosine    LambdaLR, linear warm-up from 0 over `warmup`, then a half cosine to 0 (the schedule of
              transformers' get_cosine_schedule_with_warmup)
    wsd       LambdaLR, linear warm-up, constant, then a linear decay to 0 over the last `cooldown` share
              (warm-up-stable-decay: Hu et al. 2024, arXiv 2404.06395; Hagele et al. 2024, arXiv 2405.18392)
    constant  the lr at every step

Only numpy (torch where a scheduler is stepped); nothing here prints.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is imported where a scheduler is made, so the plan itself stays light (suggest reads it)
    import torch

SCHEDULES = ("onecycle", "cosine", "constant", "wsd")
# OneCycleLR's defaults (torch.optim.lr_scheduler.OneCycleLR): pct_start 0.3, momentum 0.85 .. 0.95
ONECYCLE_WARMUP = 0.3
BASE_MOMENTUM, MAX_MOMENTUM = 0.85, 0.95
# Warm-up share of cosine and wsd when the plan does not say: 5% of the run, within the 1-10% that timm,
# transformers' examples and LLM recipes use; the cool-down share of wsd: 20%, where Hagele et al. (2024)
# find warm-up-stable-decay matching cosine.
WARMUP = 0.05
COOLDOWN = 0.2


@dataclass(frozen=True)
class TrainPlan:
    """The training run an answer is for.

    schedule        one of SCHEDULES
    steps           optimizer steps of the run (None: not stated; the answer then states what it assumes)
    warmup          warm-up as a share of `steps` (0 <= warmup < 1) or a number of steps (>= 1); None: the
                    schedule's default (OneCycleLR's pct_start 0.3; WARMUP for cosine and wsd); unused by constant
    cooldown        wsd only: the share of the run spent decaying (0 < cooldown <= 1); None: COOLDOWN
    cycle_momentum  onecycle only: OneCycleLR's cycle_momentum (True, PyTorch's default, writes momentum or beta1
                    0.95 -> 0.85 -> 0.95 into the optimizer, including SGD and RMSprop set up without momentum)
    steps_per_pass  optimizer steps in one pass over the training data (dataset size / global batch); None when
                    the dataset has no length (a stream: every batch is new data)
    """

    schedule: str = "onecycle"
    steps: int | None = None
    warmup: float | None = None
    cooldown: float | None = None
    cycle_momentum: bool = True
    steps_per_pass: float | None = None

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"steps must be at least 1, got {self.steps}")
        if self.warmup is not None and not (self.warmup >= 0 and math.isfinite(self.warmup)):
            raise ValueError(f"warmup must be a share in [0, 1) or a number of steps >= 1, got {self.warmup}")
        if self.cooldown is not None and not 0 < self.cooldown <= 1:
            raise ValueError(f"cooldown must be a share in (0, 1], got {self.cooldown}")
        if self.steps_per_pass is not None and not (self.steps_per_pass > 0 and math.isfinite(self.steps_per_pass)):
            raise ValueError(f"steps_per_pass must be a positive number, got {self.steps_per_pass}")

    @property
    def passes(self) -> float | None:
        """Passes over the training data the run makes (None without a length or for a stream)."""
        if self.steps is None or self.steps_per_pass is None:
            return None
        return self.steps / self.steps_per_pass

    def cycles_momentum(self, optimizer_defaults: dict) -> bool:
        """Whether this plan's scheduler writes momentum or beta1 into an optimizer with these defaults."""
        return self.schedule == "onecycle" and self.cycle_momentum and ("momentum" in optimizer_defaults or "betas" in optimizer_defaults)


def momentum_free(optimizer: torch.optim.Optimizer) -> bool:
    """Whether the optimizer has a momentum setting that every param group holds at 0 (SGD, RMSprop set up without
    momentum): OneCycleLR with cycle_momentum writes 0.95 -> 0.85 -> 0.95 into it, a training the sweep did not run."""
    return "momentum" in optimizer.defaults and all(not group.get("momentum") for group in optimizer.param_groups)


def with_length(plan: TrainPlan, steps_per_pass: float | None) -> TrainPlan:
    """The plan with `steps_per_pass` filled in where it has none (the loader's batches per pass over the accumulation)."""
    if plan.steps_per_pass is not None or steps_per_pass is None:
        return plan
    return dataclasses.replace(plan, steps_per_pass=float(steps_per_pass))


def warmup_steps(schedule: str, steps: int, warmup: float | None) -> int:
    """Warm-up steps of a `steps`-step run: a share (< 1) of `steps`, or a count (>= 1), capped at steps - 1."""
    if schedule == "constant":
        return 0
    share = warmup if warmup is not None else (ONECYCLE_WARMUP if schedule == "onecycle" else WARMUP)
    count = int(share * steps) if share < 1 else int(share)
    return max(0, min(count, steps - 1))


def lr_factors(plan: TrainPlan, steps: int | None = None) -> np.ndarray:
    """Each step's lr as a multiple of the plan's peak lr, shape (steps,): what the PyTorch scheduler sets.

    `steps` defaults to plan.steps. Raises ValueError without a length.
    """
    n = _length(plan, steps)
    return _curves(plan.schedule, n, plan.warmup, plan.cooldown, plan.cycle_momentum)[0].copy()


def momenta(plan: TrainPlan, steps: int | None = None) -> np.ndarray | None:
    """Each step's momentum (SGD, RMSprop) or beta1 (Adam family) under the plan, shape (steps,); None when the
    scheduler leaves the optimizer's own momentum alone (every schedule but onecycle with cycle_momentum)."""
    n = _length(plan, steps)
    found = _curves(plan.schedule, n, plan.warmup, plan.cooldown, plan.cycle_momentum)[1]
    return None if found is None else found.copy()


def scheduler(optimizer: torch.optim.Optimizer, plan: TrainPlan, max_lr: float | list[float],
              steps: int | None = None) -> torch.optim.lr_scheduler.LRScheduler:
    """The PyTorch scheduler that runs `plan` on `optimizer` with peak lr `max_lr` (one per param group, or one for all).

    Call `scheduler.step()` after every `optimizer.step()`, as PyTorch expects. For onecycle this is
    OneCycleLR itself; for cosine and wsd a LambdaLR over `lr_factors` (so the optimizer's groups must
    hold their peak lr: this function sets it); for constant a LambdaLR of 1.
    """
    import torch

    n = _length(plan, steps)
    peaks = list(max_lr) if isinstance(max_lr, (list, tuple)) else [float(max_lr)] * len(optimizer.param_groups)
    if plan.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=peaks, total_steps=n, pct_start=_pct_start(plan.warmup, n),
                                                   cycle_momentum=plan.cycle_momentum)
    for group, peak in zip(optimizer.param_groups, peaks):
        group["lr"] = peak
        group["initial_lr"] = peak
    factors = lr_factors(plan, n)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: float(factors[min(i, n - 1)]))


def _length(plan: TrainPlan, steps: int | None) -> int:
    n = steps if steps is not None else plan.steps
    if n is None or n < 1:
        raise ValueError("the plan has no length: give steps")
    return int(n)


def _pct_start(warmup: float | None, steps: int) -> float:
    """OneCycleLR's pct_start for a warm-up given as a share or as a count of steps."""
    if warmup is None:
        return ONECYCLE_WARMUP
    return float(warmup) if warmup < 1 else min(float(warmup) / steps, 0.999)


def cosine_factor(i: int, warm: int, steps: int) -> float:
    """get_cosine_schedule_with_warmup's multiplier at step i: i / warm during the warm-up, then a half cosine to 0."""
    if i < warm:
        return i / max(1, warm)
    progress = (i - warm) / max(1, steps - warm)
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))


def wsd_factor(i: int, warm: int, decay: int, steps: int) -> float:
    """The warm-up-stable-decay multiplier at step i: linear warm-up from 0, 1, then linear to 0 over the last `decay` steps."""
    if i < warm:
        return i / max(1, warm)
    start = steps - decay
    if i < start:
        return 1.0
    return max(0.0, 1.0 - (i - start) / max(1, decay))


@functools.lru_cache(maxsize=64)
def _curves(schedule: str, steps: int, warmup: float | None, cooldown: float | None,
            cycle_momentum: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """(lr factors, momenta or None) of a run, read step by step off the PyTorch scheduler (cached; callers copy)."""
    if schedule == "constant":
        return np.ones(steps), None
    from torch.optim.lr_scheduler import LambdaLR, OneCycleLR

    if schedule in ("cosine", "wsd"):
        warm = warmup_steps(schedule, steps, warmup)
        decay = max(1, int(round((cooldown if cooldown is not None else COOLDOWN) * steps)))
        fn = (lambda i: cosine_factor(i, warm, steps)) if schedule == "cosine" else (lambda i: wsd_factor(i, warm, decay, steps))
        return _read(lambda opt: LambdaLR(opt, fn), steps, momentum=False)
    return _read(lambda opt: OneCycleLR(opt, max_lr=1.0, total_steps=steps, pct_start=_pct_start(warmup, steps),
                                        cycle_momentum=cycle_momentum), steps, momentum=cycle_momentum)


def _read(make, steps: int, momentum: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Step a throwaway SGD (lr 1, momentum 0.9) under `make(optimizer)` and record lr and momentum at each step."""
    import torch

    weight = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([weight], lr=1.0, momentum=0.9)
    sched = make(opt)
    lrs, moms = np.empty(steps), np.empty(steps)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # stepping past the end is never asked; nothing else warns
        for i in range(steps):
            lrs[i], moms[i] = opt.param_groups[0]["lr"], opt.param_groups[0]["momentum"]
            opt.step()  # no gradient: a no-op that keeps the scheduler's order check quiet
            if i < steps - 1:
                sched.step()
    return lrs, (moms if momentum else None)
