"""The learning rate of each step of the sweep, and how every param group follows it."""

from __future__ import annotations

import numpy as np
import torch


def lr_schedule(start_lr: float, end_lr: float, num_iter: int, mode: str = "exp") -> np.ndarray:
    """The learning rate of each step i = 0..N-1; both ends are reached exactly.

    exp: s * (e/s) ** (i/(N-1));  linear: s + (e - s) * i/(N-1).
    """
    if num_iter < 2:
        raise ValueError(f"num_iter must be at least 2, got {num_iter}")
    if not 0 < start_lr < end_lr:
        raise ValueError(f"need 0 < start_lr < end_lr, got {start_lr} and {end_lr}")
    t = np.arange(num_iter) / (num_iter - 1)
    if mode == "exp":
        lrs = start_lr * (end_lr / start_lr) ** t
    elif mode == "linear":
        lrs = start_lr + (end_lr - start_lr) * t
    else:
        raise ValueError(f"mode must be 'exp' or 'linear', got {mode!r}")
    lrs[0], lrs[-1] = start_lr, end_lr  # exact endpoints despite floating-point powers
    return lrs


# A sweep whose loss has not diverged by end_lr goes on past it, at most this many decades (and at most
# num_iter more steps): an answer is read from where the loss starts to diverge, never from end_lr itself
# (issue 21, item 17: end_lr 10 / 100 / 1000 gave three different answers for one model).
EXTEND_DECADES = 2.0


def lr_extension(start_lr: float, end_lr: float, num_iter: int, mode: str = "exp",
                 decades: float = EXTEND_DECADES) -> np.ndarray:
    """The lrs of the steps after the last one (i = N, N+1, ...), for a sweep that goes on past end_lr.

    The schedule's own formula continued (exp: the same ratio per step; linear: the same increment),
    up to `decades` above end_lr and at most `num_iter` steps (so the sweep at most doubles).
    """
    t = np.arange(num_iter, 2 * num_iter) / (num_iter - 1)
    lrs = start_lr * (end_lr / start_lr) ** t if mode == "exp" else start_lr + (end_lr - start_lr) * t
    return lrs[lrs <= end_lr * 10**decades * (1 + 1e-12)]


def group_ratios(optimizer: torch.optim.Optimizer) -> list[float]:
    """Each group's lr over that of the first group with a non-zero lr: a group at lr 0 stays at 0.

    When every group is at 0 there is nothing to take a ratio to: all follow the schedule.
    """
    lrs = [float(g["lr"]) for g in optimizer.param_groups]
    ref = next((lr for lr in lrs if lr != 0), None)
    return [lr / ref for lr in lrs] if ref is not None else [1.0] * len(lrs)


def resolve_ratios(optimizer: torch.optim.Optimizer, group_scales: list[float] | None) -> list[float]:
    """`group_scales` (one per param group) if given, else `group_ratios`; ValueError when the counts differ."""
    ratios = [float(r) for r in group_scales] if group_scales is not None else group_ratios(optimizer)
    if len(ratios) != len(optimizer.param_groups):
        raise ValueError(f"group_scales has {len(ratios)} entries for {len(optimizer.param_groups)} param groups")
    return ratios


def set_lr(optimizer: torch.optim.Optimizer, ratios: list[float], lr: float) -> None:
    """Every group's lr: the scheduled lr times the group's ratio (in place for a tensor lr, as a compiled step needs)."""
    for group, ratio in zip(optimizer.param_groups, ratios):
        if isinstance(group["lr"], torch.Tensor):
            group["lr"].fill_(lr * ratio)
        else:
            group["lr"] = lr * ratio
