"""The verification stage: short trainings from the restored start at a few candidate lrs, and the best of them. Never prints.

After a range test, a rule reads one learning rate off the curve. `verify_candidates` checks that reading
against the thing it predicts: for each candidate (e.g. `bracket(rule_lr)`), it trains `num_steps` from the
same starting state under the schedule the user will train with, as PyTorch runs it (lrfind_cli.plan: each
step's lr and, for OneCycleLR with cycle_momentum, its momentum or beta1), measures the final loss (the mean
of the last training losses, or `val_fn(model)`), and restores model, optimizer and RNG bit-exactly before
the next candidate and at the end. `choose` fits a parabola in log10(lr) to the candidates' final losses and
takes its vertex (Zhou et al. 2026, arXiv 2601.05049: near its optimum the loss is a parabola in log-lr);
a candidate that diverged (non-finite loss) never counts. `for_planned_training` moves that choice, made on
trainings of `num_steps`, to the planned length with the rule's length law (suggest.horizon).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .engine.batches import cycle, loader_state
from .engine.schedule import resolve_ratios, set_lr
from .engine.step import Clipping, StepConfig, StepFn, evaluate, model_device, sweep_modes, train_step
from .plan import TrainPlan, lr_factors, momenta
from .signals import deliver, signals_held
from .snapshot import Snapshot
from .suggest import SCHEDULES, horizon

VERIFY_SCHEDULES = SCHEDULES
CHECK_EVERY = 16  # steps between reads of the losses (a non-finite one ends a candidate)


@dataclass
class VerifyResult:
    """What `verify_candidates` measured. `losses[i]` is the final loss of `candidates[i]` (inf if it diverged)."""

    candidates: list[float]
    losses: list[float]
    chosen_lr: float | None
    steps_trained: int  # optimizer steps over all candidates (the cost, in the range test's unit)
    schedule: str
    num_steps: int
    train_losses: list[float]  # the mean of the last training losses of each candidate (inf if it diverged)
    val_losses: list[float] | None  # val_fn's value at the end of each candidate (None without val_fn)
    momentum_cycled: bool = False  # the candidates trained with OneCycleLR's momentum (or beta1) cycling


def best_candidate(candidates: Sequence[float], losses: Sequence[float]) -> float | None:
    """The candidate with the lowest finite loss (ties: the lower lr, the safer one); None when every loss is non-finite."""
    finite = [i for i, v in enumerate(losses) if math.isfinite(v)]
    if not finite:
        return None
    return float(candidates[min(finite, key=lambda i: (losses[i], candidates[i]))])


def bracket(lr: float, k: int = 3, step_decades: float = 0.25) -> list[float]:
    """`k` learning rates spaced `step_decades` apart in log10, centred on `lr` (lr itself among them when k is odd)."""
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a positive finite number, got {lr}")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if step_decades <= 0:
        raise ValueError(f"step_decades must be positive, got {step_decades}")
    middle = (k - 1) / 2
    return [float(lr * 10 ** (step_decades * (i - middle))) for i in range(k)]


def schedule_lrs(lr: float, num_steps: int, schedule: str, plan: TrainPlan | None = None) -> np.ndarray:
    """The lr of each of `num_steps` steps with peak `lr` under `schedule` (`plan`'s warm-up and cool-down), as the
    PyTorch scheduler sets it (lrfind_cli.plan.lr_factors)."""
    if schedule not in VERIFY_SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(VERIFY_SCHEDULES)}, got {schedule!r}")
    return float(lr) * lr_factors(_plan_for(schedule, plan), num_steps)


def _plan_for(schedule: str, plan: TrainPlan | None) -> TrainPlan:
    """`plan` (its warm-up, cool-down, cycle_momentum) under `schedule`; PyTorch's defaults without one."""
    return dataclasses.replace(plan, schedule=schedule) if plan is not None else TrainPlan(schedule)


def choose(candidates: Sequence[float], losses: Sequence[float]) -> float | None:
    """The lr the candidates' final losses point to: the vertex of the parabola through them in log10(lr).

    With three or more finite losses, a least-squares parabola in log10(lr) (Zhou et al. 2026, arXiv 2601.05049);
    its vertex, when it opens upwards, within the candidates' span. Otherwise (fewer points, a concave or
    flat fit, a vertex outside the span: the optimum is not bracketed) the best candidate (`best_candidate`).
    None when every candidate diverged.
    """
    finite = [i for i, v in enumerate(losses) if math.isfinite(v)]
    if len(finite) < 3:
        return best_candidate(candidates, losses)
    x = np.log10([candidates[i] for i in finite])
    y = np.array([losses[i] for i in finite], dtype=float)
    a, b, _ = np.polyfit(x, y, 2)
    if not a > 0:
        return best_candidate(candidates, losses)
    vertex = -b / (2 * a)
    if not x.min() <= vertex <= x.max():
        return best_candidate(candidates, losses)
    return float(10**vertex)


def for_planned_training(lr: float, num_steps: int, plan: TrainPlan) -> float:
    """An lr chosen on trainings of `num_steps`, moved to the plan's length by the length law (suggest.horizon):
    lower by length_decades(planned) - length_decades(num_steps) decades (plan.steps None: DEFAULT_STEPS)."""
    planned = plan.steps if plan.steps is not None else horizon.DEFAULT_STEPS
    shift = horizon.length_decades(planned, plan.steps_per_pass) - horizon.length_decades(num_steps, plan.steps_per_pass)
    return float(lr / 10**shift)


def verify_candidates(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    train_loader: Iterable,
    loss_fn: Callable | None,
    candidates: Sequence[float],
    *,
    num_steps: int,
    schedule: str = "onecycle",
    plan: TrainPlan | None = None,
    val_fn: Callable[[torch.nn.Module], torch.Tensor] | None = None,
    step_fn: StepFn | None = None,
    tail: int | None = None,
    group_scales: list[float] | None = None,
    snapshot: str = "memory",
    precision: str = "fp32",
    accumulation_steps: int = 1,
    max_grad_norm: float | None = None,
    max_grad_value: float | None = None,
    train_mode: str = "keep",
) -> VerifyResult:
    """Train `num_steps` from the current state at each candidate lr under `schedule`; return the losses and the best lr.

    Each candidate starts from the same state (model, optimizer, RNG, and the loader's generators and
    epoch, so a shuffled DataLoader or a list yields the same batches each time) and everything is
    restored bit-exactly after it, and on return, exception or interrupt. Param groups keep their ratio to
    group 0 (`group_scales` overrides, as in `range_test`). The final loss of a candidate is `val_fn(model)`
    (eval mode, no gradients) when given, else the mean of its last `tail` training losses (default: a
    tenth of the steps, at least 1). A non-finite loss stops that candidate and scores it inf. `chosen_lr` is
    `choose`'s (None only when every candidate diverged). Each step's lr follows `schedule` as PyTorch's scheduler
    sets it, with `plan`'s warm-up, cool-down and cycle_momentum (default: TrainPlan(schedule), PyTorch's
    defaults); under one-cycle with cycle_momentum, momentum (or beta1) follows OneCycleLR's cycle in every param
    group that has one, as OneCycleLR writes it. `steps_trained` counts optimizer steps over all candidates.
    Each step is `engine.train_step`, the sweep's own: `precision`, `accumulation_steps`, clipping
    (`max_grad_norm`, `max_grad_value`) and `train_mode` mean what they mean for `range_test`.
    """
    lrs = _checked(candidates, num_steps, schedule, snapshot)
    plan = _plan_for(schedule, plan)
    factors = lr_factors(plan, num_steps)  # each candidate's lrs: its peak times these
    cycled = plan.cycles_momentum(optimizer.defaults)
    momentum = momenta(plan, num_steps) if cycled else None
    tail = max(1, num_steps // 10) if tail is None else max(1, min(int(tail), num_steps))
    ratios = resolve_ratios(optimizer, group_scales)
    device = model_device(model)
    config = StepConfig.create(step_fn, loss_fn, device, precision, accumulation_steps, Clipping(max_grad_norm, max_grad_value))
    restore_loader = loader_state(train_loader)
    state = Snapshot(model, optimizer, None, to_disk=snapshot == "disk",
                     loss=loss_fn if isinstance(loss_fn, torch.nn.Module) else None).capture()
    train_losses: list[float] = []
    val_losses: list[float] = []
    steps = 0
    try:
        for lr in lrs:
            trained, final_train, final_val = _train_one(model, optimizer, train_loader, config, ratios, lr * factors,
                                                         momentum, tail, val_fn, train_mode)
            steps += trained
            train_losses.append(final_train)
            if val_fn is not None:
                val_losses.append(final_val)
            _put_back(state, restore_loader)
    finally:
        _put_back(state, restore_loader, discard=True)
    losses = val_losses if val_fn is not None else train_losses
    return VerifyResult(candidates=lrs, losses=list(losses), chosen_lr=choose(lrs, losses), steps_trained=steps,
                        schedule=schedule, num_steps=num_steps, train_losses=train_losses,
                        val_losses=val_losses if val_fn is not None else None, momentum_cycled=cycled)


def _checked(candidates: Sequence[float], num_steps: int, schedule: str, snapshot: str) -> list[float]:
    """The candidates as floats; ValueError for a bad candidate, step count, schedule or snapshot mode."""
    if num_steps < 1:
        raise ValueError(f"num_steps must be at least 1, got {num_steps}")
    if schedule not in VERIFY_SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(VERIFY_SCHEDULES)}, got {schedule!r}")
    lrs = [float(c) for c in candidates]
    if not lrs or any(not (c > 0 and math.isfinite(c)) for c in lrs):
        raise ValueError(f"candidates must be positive finite learning rates, got {list(candidates)}")
    if snapshot not in ("memory", "disk"):
        raise ValueError(f"snapshot must be 'memory' or 'disk', got {snapshot!r}")
    return lrs


def set_momentum(optimizer: torch.optim.Optimizer, value: float) -> None:
    """Write `value` as every param group's momentum (SGD, RMSprop) or beta1 (Adam family), as OneCycleLR does."""
    for group in optimizer.param_groups:
        if "betas" in group:
            group["betas"] = (value, *group["betas"][1:])
        elif "momentum" in group:
            group["momentum"] = value


def _put_back(state: Snapshot, restore_loader: Callable[[], None], discard: bool = False) -> None:
    """Restore the start (and drop the snapshot at the end); a Ctrl-C meanwhile waits, so nothing is left half-restored."""
    with signals_held() as held:
        state.restore()
        if discard:
            state.discard()
        restore_loader()
    if held:
        deliver(held)


def _train_one(model, optimizer, loader, config: StepConfig, ratios, planned, momentum, tail, val_fn,
               train_mode) -> tuple[int, float, float]:
    """Train along `planned` lrs (and `momentum`, OneCycleLR's cycle, where not None); return (steps taken, mean of the
    last `tail` training losses, val_fn's value), inf when diverged.

    Losses stay on the device and are checked for a non-finite value every CHECK_EVERY steps, so an
    accelerator is not synchronised at every step.
    """
    modes = sweep_modes(model, train_mode)
    batches = cycle(loader)
    recorded = torch.full((len(planned),), math.nan, dtype=torch.float32, device=config.device)
    for i, lr in enumerate(planned):
        set_lr(optimizer, ratios, float(lr))
        if momentum is not None:
            set_momentum(optimizer, float(momentum[i]))
        recorded[i] = train_step(model, optimizer, batches, config)
        if (i + 1) % CHECK_EVERY == 0 and not bool(torch.isfinite(recorded[: i + 1]).all()):
            return i + 1, math.inf, math.inf
    if not bool(torch.isfinite(recorded).all()):
        return len(planned), math.inf, math.inf
    final_train = float(recorded[-tail:].mean())
    final_val = math.nan
    if val_fn is not None:
        final_val = float(evaluate(model, val_fn, config.autocast, modes))
        if not math.isfinite(final_val):
            final_val = math.inf
    return len(planned), final_train, final_val
