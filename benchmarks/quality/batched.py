"""Many trainings of one task at once: S seeds x K arms (schedule, lr) as one set of stacked weights under torch.func.vmap.

The ground truth of the horizon benchmark trains every task at several lengths, under every schedule,
at a quarter-decade grid of learning rates and several seeds: thousands of small trainings. Trained
one at a time they would take days on two cores; here every copy of the model lives in one stacked
tensor per parameter (`torch.func.stack_module_state`), the forward and backward pass run for all of
them in one call (`vmap` over seeds, each with its own batches, and inside it over arms, which share
their seed's batch), and the optimizers are written once over the stacked tensors, with a learning
rate and a momentum per copy.

The update rules are PyTorch's own (torch/optim/sgd.py, adam.py, rmsprop.py, adagrad.py, single-tensor
path), with the hyper-parameters a scheduler writes into a param group (lr, SGD/RMSprop momentum,
Adam's beta1) given per copy and per step; tests/test_batched_training.py checks them against
torch.optim and the torch schedulers. Schedules come from lrfind_cli.plan, which reads them off the
PyTorch schedulers themselves.

A copy diverges when its training loss is non-finite or exceeds 1e4 times its seed's untrained
validation loss (the rule of ground_truth.train_run); it is then frozen and scores the untrained loss,
as does a copy that ends worse than the untrained model.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, grad_and_value, stack_module_state, vmap

from lrfind_cli.plan import TrainPlan, lr_factors, momenta

# the arms' schedules: the plan's schedules, and one-cycle without momentum cycling (cycle_momentum=False)
ARM_SCHEDULES = ("constant", "onecycle", "onecycle_nocycle", "cosine", "wsd")
DIVERGED = 1e4  # a training loss this many times the untrained validation loss is a divergence
VAL_CHUNK = 512  # validation samples per vmapped forward pass (bounds memory for many copies)

Batches = Callable[[int, int], Iterator[tuple[torch.Tensor, torch.Tensor]]]  # (seed, steps) -> one (x, y) per step


@dataclass(frozen=True)
class Arm:
    """One training configuration of a task besides its seed: a schedule of ARM_SCHEDULES and its peak lr."""

    schedule: str
    lr: float


def plan_of(schedule: str, optimizer: str) -> TrainPlan:
    """The TrainPlan an arm's schedule means for an optimizer (Adagrad has no momentum to cycle: OneCycleLR needs
    cycle_momentum=False there, so its one-cycle is always the uncycled one)."""
    if schedule == "onecycle_nocycle" or (schedule == "onecycle" and optimizer == "adagrad"):
        return TrainPlan("onecycle", cycle_momentum=False)
    return TrainPlan(schedule)


class StackedOptimizer:
    """torch.optim's SGD, Adam, AdamW, RMSprop or Adagrad over stacked parameters, with per-copy lr and momentum.

    Parameters are tensors of shape (S, K, *shape); `lr` and `momentum` passed to `step` are (S, K). `momentum`
    is SGD's and RMSprop's momentum or Adam's beta1 (what OneCycleLR cycles); None keeps the optimizer's own.
    """

    def __init__(self, name: str, kwargs: dict, params: dict[str, torch.Tensor]):
        if name not in ("sgd", "adam", "adamw", "rmsprop", "adagrad"):
            raise ValueError(f"unknown optimizer {name!r}")
        self.name, self.kw = name, dict(kwargs)
        unknown = set(self.kw) - {"momentum", "nesterov", "weight_decay", "betas", "eps", "alpha"}
        if unknown:
            raise ValueError(f"unsupported optimizer arguments {sorted(unknown)}")
        self.t = 0
        self.state = {k: {} for k in params}
        self.own_momentum = float(self.kw.get("betas", (0.9, 0.999))[0] if name in ("adam", "adamw") else self.kw.get("momentum", 0.0))

    @torch.no_grad()
    def step(self, params: dict[str, torch.Tensor], grads: dict[str, torch.Tensor], lr: torch.Tensor,
             momentum: torch.Tensor | None = None) -> None:
        self.t += 1
        mom = momentum if momentum is not None else torch.full_like(lr, self.own_momentum)
        for key, p in params.items():
            g = grads[key]
            shape = (*lr.shape,) + (1,) * (p.dim() - lr.dim())
            getattr(self, "_" + self.name)(p, g, self.state[key], lr.reshape(shape), mom.reshape(shape))

    def _sgd(self, p, g, st, lr, mom):
        wd = self.kw.get("weight_decay", 0.0)
        if wd:
            g = g + wd * p
        if "buf" not in st and not bool((mom != 0).any()):
            p.sub_(lr * g)
            return
        buf = st.setdefault("buf", torch.zeros_like(p))
        buf.mul_(mom).add_(g)  # torch starts the buffer at the first gradient: the same as 0 * mom + g
        d = g + mom * buf if self.kw.get("nesterov") else buf
        p.sub_(lr * d)

    def _adam(self, p, g, st, lr, beta1, decoupled: bool = False):
        beta2 = float(self.kw.get("betas", (0.9, 0.999))[1])
        eps, wd = float(self.kw.get("eps", 1e-8)), float(self.kw.get("weight_decay", 0.0))
        if decoupled and wd:
            p.mul_(1 - lr * wd)
        elif wd:
            g = g + wd * p
        m = st.setdefault("m", torch.zeros_like(p))
        v = st.setdefault("v", torch.zeros_like(p))
        m.lerp_(g, 1 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        bc1 = 1 - beta1**self.t  # with the step's own beta1, as torch does when a scheduler changes it
        bc2 = 1 - beta2**self.t
        p.sub_((lr / bc1) * m / (v.sqrt() / math.sqrt(bc2) + eps))

    def _adamw(self, p, g, st, lr, beta1):
        self._adam(p, g, st, lr, beta1, decoupled=True)

    def _rmsprop(self, p, g, st, lr, mom):
        alpha, eps, wd = float(self.kw.get("alpha", 0.99)), float(self.kw.get("eps", 1e-8)), float(self.kw.get("weight_decay", 0.0))
        if wd:
            g = g + wd * p
        sq = st.setdefault("sq", torch.zeros_like(p))
        sq.mul_(alpha).addcmul_(g, g, value=1 - alpha)
        avg = sq.sqrt().add_(eps)
        if "buf" not in st and not bool((mom != 0).any()):
            p.sub_(lr * g / avg)
            return
        buf = st.setdefault("buf", torch.zeros_like(p))
        buf.mul_(mom).addcdiv_(g, avg)
        p.sub_(lr * buf)

    def _adagrad(self, p, g, st, lr, _mom):
        eps, wd = float(self.kw.get("eps", 1e-10)), float(self.kw.get("weight_decay", 0.0))
        if wd:
            g = g + wd * p
        acc = st.setdefault("sum", torch.zeros_like(p))
        acc.addcmul_(g, g, value=1)
        p.sub_(lr * g / (acc.sqrt() + eps))


class Copies:
    """S x K copies of a model as stacked parameters and buffers; seed s's copies start from torch.manual_seed(seed_s)."""

    def __init__(self, build: Callable[[], nn.Module], seeds: Sequence[int], k: int):
        models = []
        for seed in seeds:
            torch.manual_seed(seed)
            first = build()
            models += [first] + [_copy_of(first, build) for _ in range(k - 1)]
        self.s, self.k = len(seeds), k
        params, buffers = stack_module_state(models)
        self.params = {n: v.detach().reshape(self.s, k, *v.shape[1:]).clone() for n, v in params.items()}
        self.buffers = {n: v.reshape(self.s, k, *v.shape[1:]).clone() for n, v in buffers.items()}
        self.base = build().to("meta")
        self.eval_through_grad = False

    def _loss(self, loss_fn):
        def one(p, b, x, y):
            return loss_fn(functional_call(self.base, (p, b), (x,)), y)

        return one

    def grads(self, loss_fn: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[dict, torch.Tensor]:
        """(gradients, losses (S, K)) of one step; x, y are (S, B, ...): seed s's batch, shared by its K arms."""
        self.base.train()
        inner = vmap(grad_and_value(self._loss(loss_fn)), in_dims=(0, 0, None, 0), randomness="different")
        outer = vmap(inner, in_dims=(0, 0, 0, 0), randomness="different")
        # the targets go in expanded over the arms: some losses' batching rules mis-handle an unbatched target
        return outer(self.params, self.buffers, x, y.unsqueeze(1).expand(self.s, self.k, *y.shape[1:]))

    def evaluate(self, loss_fn: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean loss (S, K) of every copy on (x, y), shared by all copies, in eval mode, VAL_CHUNK samples at a time."""
        with torch.no_grad():
            return self._evaluate(loss_fn, x, y)

    def _evaluate(self, loss_fn: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.base.eval()
        plain = self._loss(loss_fn)
        with_grad = grad_and_value(plain)  # some ops (LSTM) have a batching rule only on their autograd path

        def one(p, b, xs, ys):
            return with_grad(p, b, xs, ys)[1] if self.eval_through_grad else plain(p, b, xs, ys)

        both = vmap(vmap(one, in_dims=(0, 0, None, 0)), in_dims=(0, 0, None, 0))
        try:
            return self._mean_loss(both, x, y)
        except RuntimeError as exc:
            if self.eval_through_grad or "Batching rule not implemented" not in str(exc):
                raise
            self.eval_through_grad = True
            return self._evaluate(loss_fn, x, y)

    def _mean_loss(self, both, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        total = torch.zeros(self.s, self.k)
        for start in range(0, len(x), VAL_CHUNK):
            xs, ys = x[start : start + VAL_CHUNK], y[start : start + VAL_CHUNK]
            total += both(self.params, self.buffers, xs, ys.expand(self.s, self.k, *ys.shape)) * len(xs)  # targets expanded: see grads
        return total / len(x)


class StackedProdigy:
    """Prodigy (prodigyopt 1.1, Mishchenko & Defazio 2023, arXiv 2306.06101) at its defaults over stacked parameters.

    Every copy keeps its own D estimate (d, d_max, the numerator), reduced over that copy's parameters as
    Prodigy reduces over all of a model's. `lr` (S, K) is Prodigy's multiplier as a scheduler sets it (1.0
    at its default), `momentum` its beta1 (what OneCycleLR cycles). A copy whose lr is 0 at a step is left
    alone, as Prodigy returns early when it accumulated nothing. Defaults: betas (0.9, 0.999), beta3 =
    sqrt(beta2), eps 1e-8, no weight decay, no bias correction, d0 1e-6, d_coef 1, no growth limit.
    """

    D0, BETA2, EPS = 1e-6, 0.999, 1e-8

    def __init__(self, params: dict[str, torch.Tensor]):
        first = next(iter(params.values()))
        shape = first.shape[:2]
        self.d = torch.full(shape, self.D0, dtype=torch.float64)
        self.d_max = self.d.clone()
        self.numerator = torch.zeros(shape, dtype=torch.float64)
        self.state = {k: {"s": torch.zeros_like(p), "p0": p.clone(), "m": torch.zeros_like(p), "v": torch.zeros_like(p)}
                      for k, p in params.items()}
        self.own_momentum = 0.9

    @torch.no_grad()
    def step(self, params: dict[str, torch.Tensor], grads: dict[str, torch.Tensor], lr: torch.Tensor,
             momentum: torch.Tensor | None = None) -> None:
        beta1 = (momentum if momentum is not None else torch.full_like(lr, self.own_momentum)).double()
        beta3 = math.sqrt(self.BETA2)
        lr = lr.double()
        active = lr > 0
        d, dlr = self.d, self.d * lr
        delta, denom = torch.zeros_like(d), torch.zeros_like(d)
        for key, p in params.items():
            g, st = grads[key], self.state[key]
            view = (*d.shape,) + (1,) * (p.dim() - 2)
            on = active.reshape(view)
            delta += (d / self.D0 * dlr) * _per_copy_sum((g * (st["p0"] - p)).double())
            dd = d.reshape(view).to(p.dtype)
            b1 = beta1.reshape(view).to(p.dtype)
            st["m"] = torch.where(on, st["m"] * b1 + g * (dd * (1 - b1)), st["m"])
            st["v"] = torch.where(on, st["v"] * self.BETA2 + g * g * (dd * dd * (1 - self.BETA2)), st["v"])
            st["s"] = torch.where(on, st["s"] * beta3 + g * (d / self.D0 * dlr).reshape(view).to(p.dtype), st["s"])
            denom += _per_copy_sum(st["s"].abs().double())
        numerator = self.numerator * beta3 + delta
        go = active & (denom > 0)
        d_hat = numerator / torch.where(denom > 0, denom, torch.ones_like(denom))
        d_max = torch.maximum(self.d_max, d_hat)
        d_new = d_max  # Prodigy's min(d_max, d * growth_rate) with its unlimited default growth rate
        self.numerator = torch.where(go, numerator, self.numerator)
        self.d_max = torch.where(go, d_max, self.d_max)
        self.d = torch.where(go, d_new, self.d)
        for key, p in params.items():
            st = self.state[key]
            view = (*d.shape,) + (1,) * (p.dim() - 2)
            step = torch.where(go, dlr, torch.zeros_like(dlr)).reshape(view).to(p.dtype)
            p.sub_(step * st["m"] / (st["v"].sqrt() + (self.d.reshape(view) * self.EPS).to(p.dtype)))


def _per_copy_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum over everything but the two copy dimensions (S, K)."""
    return t.reshape(*t.shape[:2], -1).sum(-1)


def make_optimizer(name: str, kwargs: dict, params: dict[str, torch.Tensor]):
    """A StackedOptimizer for torch.optim's `name`, or StackedProdigy for "prodigy" (its defaults; kwargs ignored)."""
    return StackedProdigy(params) if name == "prodigy" else StackedOptimizer(name, kwargs, params)


def _copy_of(model: nn.Module, build: Callable[[], nn.Module]) -> nn.Module:
    twin = build()
    twin.load_state_dict(model.state_dict())
    return twin


def schedules_of(arms: Sequence[Arm], optimizer: str, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """(lr (K, steps), momentum (K, steps); NaN where the arm keeps the optimizer's own) of each arm over a run."""
    lr = np.empty((len(arms), steps))
    mom = np.full((len(arms), steps), np.nan)
    for j, arm in enumerate(arms):
        plan = plan_of(arm.schedule, optimizer)
        lr[j] = arm.lr * lr_factors(plan, steps)
        found = momenta(plan, steps) if optimizer != "adagrad" else None  # Prodigy has Adam's betas: cycled too
        if found is not None:
            mom[j] = found
    return lr, mom


@dataclass(frozen=True)
class Trained:
    """What `run_arms` measured, per (seed, arm): validation loss at the end (the untrained loss for a copy that
    diverged or ended no better), the untrained loss per seed, and the mean of the last `tail` training losses
    (inf for a diverged copy; None unless asked for)."""

    val: np.ndarray
    untrained: np.ndarray
    train_tail: np.ndarray | None = None


def train_arms(build: Callable[[], nn.Module], loss_fn: nn.Module, optimizer: str, opt_kwargs: dict,
               arms: Sequence[Arm], seeds: Sequence[int], steps: int, batches: Batches,
               val: tuple[torch.Tensor, torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
    """Train every (seed, arm) for `steps` steps; return (validation losses (S, K), untrained validation loss (S,)).

    A diverged copy, or one ending no better than untrained, scores its seed's untrained loss.
    """
    trained = run_arms(build, loss_fn, optimizer, opt_kwargs, arms, seeds, steps, batches, val)
    return trained.val, trained.untrained


def run_arms(build: Callable[[], nn.Module], loss_fn: nn.Module, optimizer: str, opt_kwargs: dict,
             arms: Sequence[Arm], seeds: Sequence[int], steps: int, batches: Batches,
             val: tuple[torch.Tensor, torch.Tensor], tail: int = 0) -> Trained:
    """`train_arms`, and with `tail` > 0 also each copy's mean training loss over its last `tail` steps."""
    copies = Copies(build, seeds, len(arms))
    xv, yv = val
    untrained = copies.evaluate(loss_fn, xv, yv)[:, 0].clone()
    limit = DIVERGED * torch.clamp(untrained, min=1e-3).unsqueeze(1)
    opt = make_optimizer(optimizer, opt_kwargs, copies.params)
    lr_np, mom_np = schedules_of(arms, optimizer, steps)
    cycled = ~np.isnan(mom_np).all(axis=1)
    lr_t = torch.tensor(lr_np, dtype=torch.float32)
    mom_t = torch.tensor(np.where(np.isnan(mom_np), opt.own_momentum, mom_np), dtype=torch.float32)
    alive = torch.ones(len(seeds), len(arms), dtype=torch.bool)
    tail_sum = torch.zeros(len(seeds), len(arms), dtype=torch.float64)
    streams = [batches(seed, steps) for seed in seeds]
    for i in range(steps):
        pairs = [next(stream) for stream in streams]
        x = torch.stack([p[0] for p in pairs])
        y = torch.stack([p[1] for p in pairs])
        grads, losses = copies.grads(loss_fn, x, y)
        alive &= torch.isfinite(losses) & (losses <= limit)
        if i >= steps - tail:
            tail_sum += torch.where(alive, losses.detach().double(), torch.zeros((), dtype=torch.float64))
        lr = lr_t[:, i].expand(len(seeds), -1) * alive
        momentum = mom_t[:, i].expand(len(seeds), -1) if cycled.any() else None
        opt.step(copies.params, grads, lr, momentum)
        if not bool(alive.all()):
            _silence(copies, alive)
    final = copies.evaluate(loss_fn, xv, yv)
    ok = alive & torch.isfinite(final) & (final < untrained.unsqueeze(1))
    out = torch.where(ok, final, untrained.unsqueeze(1).expand_as(final))
    train_tail = None
    if tail > 0:
        train_tail = torch.where(alive, tail_sum / min(tail, steps), torch.full_like(tail_sum, math.inf)).numpy()
    return Trained(out.numpy().astype(float), untrained.numpy().astype(float), train_tail)


def _silence(copies: Copies, alive: torch.Tensor) -> None:
    """Zero the weights of diverged copies (they score untrained), so their inf/NaN never costs time or spreads."""
    for group in (copies.params, copies.buffers):
        for key, v in group.items():
            if v.is_floating_point():
                mask = alive.reshape(*alive.shape, *([1] * (v.dim() - 2)))
                group[key] = torch.where(mask, v, torch.zeros((), dtype=v.dtype))
