"""One optimizer step of the sweep as the user's training loop takes it: accumulation, autocast, scaler, clipping."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch

StepFn = Callable[[torch.nn.Module, Any, Callable], torch.Tensor]


class StepOutputError(TypeError):
    """The step function (or the loss function the default step calls) returned something other than a scalar tensor.

    `source` is "step" or "loss" (which of the two returned it) and `returned` says what came back.
    """

    def __init__(self, message: str, source: str, returned: str):
        super().__init__(message)
        self.source = source
        self.returned = returned


@dataclass(frozen=True)
class Clipping:
    """Gradient clipping as a training recipe does it: once per optimizer step, on the optimizer's parameters.

    `max_value` clips every gradient element to [-max_value, max_value] first; `max_norm` then scales
    all gradients together so their total 2-norm is at most max_norm (torch.nn.utils.clip_grad_*).
    """

    max_norm: float | None = None
    max_value: float | None = None

    @property
    def active(self) -> bool:
        return self.max_norm is not None or self.max_value is not None

    def apply(self, optimizer: torch.optim.Optimizer) -> None:
        if not self.active:
            return
        params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if self.max_value is not None:
            torch.nn.utils.clip_grad_value_(params, self.max_value)
        if self.max_norm is not None:
            torch.nn.utils.clip_grad_norm_(params, self.max_norm)


@dataclass(frozen=True)
class StepConfig:
    """How one optimizer step of the sweep trains: the user's step, precision, accumulation and clipping."""

    step_fn: StepFn
    loss_fn: Callable | None
    device: torch.device
    autocast: Any
    scaler: Any
    accumulation_steps: int
    clipping: Clipping

    @classmethod
    def create(cls, step_fn: StepFn | None, loss_fn: Callable | None, device: torch.device, precision: str,
               accumulation_steps: int, clipping: Clipping, scaler: Any = None) -> StepConfig:
        """The step for a precision on a device.

        `default_step` when step_fn is None; under fp16 a GradScaler of its own unless `scaler` is given.
        """
        if scaler is None and precision == "fp16":
            scaler = grad_scaler(device)
        return cls(step_fn or default_step, loss_fn, device, autocast_for(device, precision), scaler, accumulation_steps, clipping)


def default_step(model: torch.nn.Module, batch: Any, loss_fn: Callable | None) -> torch.Tensor:
    """The training step when none is given.

    With a loss function: `loss_fn(model(inputs), targets)` for a batch of (inputs, targets, ...).
    Without one (`loss_fn=None`), the model computes its own loss: it is called as `model(**batch)`
    for a dict, `model(*batch)` for a tuple or list, else `model(batch)`, and the loss is its output
    when that is a tensor, else the output's `.loss` attribute or `"loss"` entry.
    """
    if loss_fn is None:
        if isinstance(batch, Mapping):
            output = model(**batch)
        elif isinstance(batch, (tuple, list)):
            output = model(*batch)
        else:
            output = model(batch)
        return loss_of(output)
    if not isinstance(batch, (tuple, list)) or len(batch) < 2:
        kind = type(batch).__name__
        raise TypeError(f"a batch must be a pair (inputs, targets) when a loss function is given, got a {kind}; "
                        "use a model that returns its own loss (loss_fn=None, spec loss: null) or a custom step_fn")
    inputs, targets = batch[0], batch[1]
    return loss_fn(model(inputs), targets)


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batches: Iterator, config: StepConfig) -> torch.Tensor:
    """One optimizer step, as a training loop takes it; returns the step's loss (detached, on the device).

    zero_grad; for each of `accumulation_steps` micro-batches: forward under autocast, loss divided by
    the number of micro-batches, backward (scaled under fp16); then, once: unscale (fp16), clip, step.
    """
    optimizer.zero_grad(set_to_none=True)
    total = None
    for _ in range(config.accumulation_steps):
        batch = to_device(next(batches), config.device)
        with config.autocast:
            loss = scalar_loss(config.step_fn(model, batch, config.loss_fn), config.step_fn, config.loss_fn)
        if config.accumulation_steps > 1:
            loss = loss / config.accumulation_steps
        (config.scaler.scale(loss) if config.scaler is not None else loss).backward()
        total = loss.detach() if total is None else total + loss.detach()
    if config.scaler is not None and config.clipping.active:
        config.scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
    config.clipping.apply(optimizer)
    if config.scaler is not None:
        config.scaler.step(optimizer)
        config.scaler.update()
    else:
        optimizer.step()
    return total


def scale_now(config: StepConfig) -> torch.Tensor | None:
    """The GradScaler's scale as a device tensor (no host sync), or None without a scaler; see `skipped_since`."""
    if config.scaler is None:
        return None
    return config.scaler.scale(torch.ones((), device=config.device))  # a disabled scaler hands back the 1


def skipped_since(config: StepConfig, scale: torch.Tensor | None) -> torch.Tensor | None:
    """Whether the step taken since `scale_now` was skipped, as a 0-d bool tensor on the device (None without a scaler).

    GradScaler.update() multiplies the scale by backoff_factor (< 1) exactly when the step found inf or
    NaN gradients and skipped optimizer.step(), and otherwise keeps it or grows it (torch.amp.GradScaler):
    a lower scale is a skipped step, read without a host sync.
    """
    if scale is None:
        return None
    return scale_now(config) < scale


def scalar_loss(value: Any, step_fn: Callable, loss_fn: Callable | None) -> torch.Tensor:
    """`value` as a 0-d loss tensor; StepOutputError naming the step (or the loss) when it is anything else."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value if value.dim() == 0 else value.reshape(())  # a 0-d loss as it is: no view node to backpropagate
    if isinstance(value, torch.Tensor):
        returned = f"a tensor of shape {tuple(value.shape)}"
        fix = "reduce it to one number (e.g. .mean(), or the loss's reduction='mean')"
    else:
        returned = "None" if value is None else f"a {type(value).__name__}"
        fix = "return the loss tensor itself (not None, not loss.item()) for every batch"
    if step_fn is default_step:
        source, who = "loss", f"the loss function {callable_name(loss_fn)}"
    else:
        source, who = "step", f"the step function {callable_name(step_fn)}"
    raise StepOutputError(f"{who} returned {returned} where a scalar loss tensor was expected; {fix}", source, returned)


def callable_name(fn: Any) -> str:
    """'module.qualname' for a function, the class name for a module or other callable object."""
    if isinstance(fn, functools.partial):
        fn = fn.func
    if isinstance(fn, torch.nn.Module) or not hasattr(fn, "__qualname__"):
        return type(fn).__name__
    return f"{getattr(fn, '__module__', '?')}.{fn.__qualname__}"


def loss_of(output: Any) -> torch.Tensor:
    """The loss inside a model's output: the output itself, its `.loss`, or its `"loss"` entry; a scalar."""
    loss = None
    if isinstance(output, torch.Tensor):
        loss = output
    elif isinstance(output, Mapping) and isinstance(output.get("loss"), torch.Tensor):
        loss = output["loss"]
    elif isinstance(getattr(output, "loss", None), torch.Tensor):
        loss = output.loss
    if loss is not None:
        if loss.numel() != 1:
            raise TypeError(f"the model returned a tensor of shape {tuple(loss.shape)} where a scalar loss was expected; "
                            "without a loss function the model must return its loss (reduced to one number), "
                            "or name a loss in the spec")
        return loss if loss.dim() == 0 else loss.reshape(())
    raise TypeError(f"the model returned a {type(output).__name__} with no loss in it; without a loss function the model "
                    "must return a loss tensor, an object with .loss, or a dict with 'loss'")


def evaluate(model: torch.nn.Module, val_fn: Callable, autocast: Any, modes: dict[str, bool]) -> torch.Tensor:
    """val_fn(model) in eval mode without gradients; the sweep's train/eval modes again afterwards (no host sync)."""
    model.eval()
    try:
        with torch.no_grad(), autocast:
            return val_fn(model).detach().float()
    finally:
        set_modes(model, modes)


def sweep_modes(model: torch.nn.Module, train_mode: str) -> dict[str, bool]:
    """Put the model in the modes the sweep trains in and return every module's mode.

    "all": model.train(), as a loop that calls it each epoch (a model whose train() keeps parts
    frozen keeps them frozen). "keep": the modes as they are, so modules the user put in eval mode
    stay there; but a model in eval mode as a whole was left so by evaluation, not set up to train:
    it gets model.train() too.
    """
    if train_mode == "all" or not model.training:
        model.train()
    return {name: module.training for name, module in model.named_modules()}


def set_modes(model: torch.nn.Module, modes: dict[str, bool]) -> None:
    """Put every module back in the train/eval mode recorded in `modes`."""
    for name, module in model.named_modules():
        if name in modes:
            module.training = modes[name]


def to_device(batch: Any, device: torch.device) -> Any:
    """Tensors inside tuples, lists and dicts (at any depth) moved to `device`; the containers keep their types."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):  # before Mapping: an isinstance check against an ABC costs more
        moved = [to_device(v, device) for v in batch]
        return type(batch)(moved) if not hasattr(batch, "_fields") else type(batch)(*moved)
    if isinstance(batch, Mapping):
        moved = {k: to_device(v, device) for k, v in batch.items()}
        try:
            return type(batch)(moved)  # keep the mapping's own type (e.g. a tokenizer's batch object)
        except TypeError:
            return moved
    return batch


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of the model's first parameter (or buffer); the CPU for a model without either."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")




def autocast_for(device: torch.device, precision: str) -> Any:
    """The autocast context of a precision: none for fp32, else bf16 or fp16 on the device's type."""
    if precision == "fp32":
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(device: torch.device) -> Any:
    """A GradScaler for fp16 on the device's type."""
    try:
        return torch.amp.GradScaler(device.type)
    except (AttributeError, TypeError, RuntimeError):  # torch < 2.3 has only the CUDA scaler
        return torch.cuda.amp.GradScaler(enabled=device.type == "cuda")
