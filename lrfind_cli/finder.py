"""The range-test engine: snapshot, lr schedule, training loop, smoothing, stop rule, restore. Never prints."""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .results import RangeTestResult
from .signals import deliver, signals_held
from .snapshot import Snapshot
from .suggest import SCHEDULES, summarize

StepFn = Callable[[torch.nn.Module, Any, Callable], torch.Tensor]


CPU_READ_SECONDS = 0.02  # on a CPU, losses are read once this long has passed (or every 16 steps)


@dataclass(frozen=True)
class StepInfo:
    """What `on_step` receives once per optimizer step (possibly a few steps late, in order)."""

    step: int
    num_iter: int
    lr: float
    loss: float
    smoothed: float
    best_loss: float
    best_lr: float


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


class LoaderExhausted(ValueError):
    """The training data gave no batches (or could not be iterated again for another epoch)."""


class RangeTestInterrupted(KeyboardInterrupt):
    """Raised after a KeyboardInterrupt once the state is restored; `.result` holds what was measured."""

    def __init__(self, result: RangeTestResult):
        super().__init__("range test interrupted")
        self.result = result


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

    def add(self, loss: float) -> float:
        """Record a raw loss; return the smoothed value (EMA from 0, divided by 1 - beta**t)."""
        self._count += 1
        self._avg = self.beta * self._avg + (1.0 - self.beta) * loss
        smoothed = self._avg / (1.0 - self.beta**self._count)
        if math.isfinite(smoothed):
            if self.first is None:
                self.first = smoothed
            if smoothed < self.best:
                self.best, self.best_index = smoothed, self._count - 1
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
        batch = _to_device(next(batches), config.device)
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


def scalar_loss(value: Any, step_fn: Callable, loss_fn: Callable | None) -> torch.Tensor:
    """`value` as a 0-d loss tensor; StepOutputError naming the step (or the loss) when it is anything else."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.reshape(())
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
    import functools

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
        return loss.reshape(())
    raise TypeError(f"the model returned a {type(output).__name__} with no loss in it; without a loss function the model "
                    "must return a loss tensor, an object with .loss, or a dict with 'loss'")


def range_test(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    train_loader: Iterable,
    loss_fn: Callable | None,
    *,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_iter: int = 100,
    mode: str = "exp",
    smoothing: float = 0.98,
    diverge_threshold: float = 4.0,
    accumulation_steps: int = 1,
    max_grad_norm: float | None = None,
    max_grad_value: float | None = None,
    train_mode: str = "keep",
    precision: str = "fp32",
    scaler: Any = None,
    snapshot: str = "memory",
    suggest_method: str = "auto",
    schedule: str = "onecycle",
    step_fn: StepFn | None = None,
    on_step: Callable[[StepInfo], None] | None = None,
    sync_every: int | None = None,
    group_scales: list[float] | None = None,
    val_fn: Callable[[torch.nn.Module], torch.Tensor] | None = None,
    val_every: int = 10,
) -> RangeTestResult:
    """Run the learning-rate range test and restore model, optimizer, scaler and RNG exactly.

    The model trains on the device it is on; batches (tensors inside tuples, lists and dicts, at
    any depth) are moved there. Each param group's lr is the scheduled lr times its scale:
    `group_scales` if given, else the group's lr divided by that of the first group with a non-zero
    lr, so that group follows the schedule, the others keep their ratio to it, and a group at lr 0
    stays at 0. `loss_fn=None` means the model returns its own loss (see `default_step`); a loss_fn
    that is an nn.Module (with parameters of its own, say) is snapshotted and restored like the model.
    `max_grad_value` / `max_grad_norm` clip gradients once per optimizer step, after accumulation
    (and after unscaling under fp16), as `Clipping` describes. `train_mode="keep"` trains with the
    modules' train/eval modes as they are at the call (a BatchNorm frozen in eval mode stays frozen),
    unless the model itself is in eval mode (left so after evaluating), when everything is put in
    train mode as with "all". Losses stay on the device
    and are read every `sync_every` steps (default: 16 on accelerators; on a CPU, as soon as
    CPU_READ_SECONDS have passed since the last read, at most every 16 steps, so slow steps are
    read at once and fast ones in chunks); the history is cut at the step that triggered the
    stop, so it does not depend on when losses are read.
    Inside a torch.distributed process group of several ranks, every rank must call this alike: the
    recorded loss is the mean across ranks, so all ranks stop at the same step.
    With `val_fn(model) -> loss tensor`, it is called (in eval mode, without gradients) after the
    optimizer step of steps 0, val_every, 2*val_every, ... and the last; `result.val_losses` holds
    its value at those steps and None elsewhere.
    State is restored on return, on exception and on KeyboardInterrupt (which is re-raised as
    RangeTestInterrupted carrying the partial result).
    `suggest_method="auto"` makes `suggested_lr` the schedule-aware recommendation: the one-cycle
    max_lr (`schedule="onecycle"`) or the constant lr (`schedule="constant"`), with `lr_range` and
    `confidence`; "steepest", "valley" or "minimum" pick that classic method instead.
    """
    _check_objects(model, optimizer, train_loader, loss_fn)
    _check_callables(step_fn=step_fn, on_step=on_step, val_fn=val_fn)
    for name, value, minimum in (("num_iter", num_iter, 2), ("accumulation_steps", accumulation_steps, 1),
                                 ("val_every", val_every, 1), ("sync_every", sync_every, 1)):
        if value is not None or name != "sync_every":
            _check_whole(name, value, minimum)
    for name, value in (("start_lr", start_lr), ("end_lr", end_lr), ("smoothing", smoothing),
                        ("diverge_threshold", diverge_threshold), ("max_grad_norm", max_grad_norm),
                        ("max_grad_value", max_grad_value)):
        _check_number(name, value, optional=name.startswith("max_grad"))
    if train_mode not in ("all", "keep"):
        raise ValueError(f"train_mode must be 'all' or 'keep', got {train_mode!r}")
    if not 0 <= smoothing < 1:
        raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
    if diverge_threshold <= 1:
        raise ValueError(f"diverge_threshold must be above 1, got {diverge_threshold}")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
    if precision not in ("fp32", "bf16", "fp16"):
        raise ValueError(f"precision must be fp32, bf16 or fp16, got {precision!r}")
    if val_every < 1:
        raise ValueError(f"val_every must be at least 1, got {val_every}")
    if snapshot not in ("memory", "disk"):
        raise ValueError(f"snapshot must be 'memory' or 'disk', got {snapshot!r}")
    planned = lr_schedule(start_lr, end_lr, num_iter, mode)
    device = _model_device(model)
    group = _process_group()
    # On a CPU nothing runs ahead of Python, so reading is cheap but not free: read by time, unless
    # ranks must read at the same steps (their all_reduce has to line up).
    by_time = sync_every is None and device.type == "cpu" and group is None
    sync_every = sync_every or (1 if device.type == "cpu" and group is not None else 16)
    autocast = _autocast(device, precision)
    internal_scaler = scaler is None and precision == "fp16"
    if internal_scaler:
        scaler = _grad_scaler(device)
    config = StepConfig(step_fn or default_step, loss_fn, device, autocast, scaler, accumulation_steps,
                        Clipping(max_grad_norm, max_grad_value))

    ratios = [float(r) for r in group_scales] if group_scales is not None else _group_ratios(optimizer)
    if len(ratios) != len(optimizer.param_groups):
        raise ValueError(f"group_scales has {len(ratios)} entries for {len(optimizer.param_groups)} param groups")
    restore_loader = _loader_state(train_loader)
    state = Snapshot(model, optimizer, None if internal_scaler else scaler, to_disk=snapshot == "disk",
                     loss=loss_fn if isinstance(loss_fn, torch.nn.Module) else None)
    try:
        state.capture()  # touches nothing of the model's; an interrupt here only has to clean up
    except BaseException:
        state.discard()
        raise
    curve = LossCurve(smoothing, diverge_threshold)
    record: dict[str, list] = {"lr": [], "loss": [], "smoothed": [], "val_loss": []}
    # Row 0: the training loss of each step; row 1 (with val_fn): the validation loss, NaN where not measured.
    buffer = torch.full((2 if val_fn else 1, num_iter), math.nan, dtype=torch.float32, device=device)
    status, reason = "completed", f"reached end_lr after {num_iter} steps"
    started = last_read = time.perf_counter()
    done = 0  # steps whose loss is in `buffer`
    read = 0  # steps moved to `record`
    stop_at: int | None = None
    failed = False  # the sweep raised (not an interrupt)

    def drain(collective: bool = True) -> None:
        nonlocal read, stop_at, status, reason
        if read >= done or stop_at is not None:
            return
        first = read
        chunk = buffer[:, first:done]
        if group is not None and collective:
            # Every rank drains at the same steps, so this collective lines up; the mean across ranks
            # is the loss of the global batch, and the stop decision taken from it is the same everywhere.
            chunk = chunk.clone()
            torch.distributed.all_reduce(chunk, group=group)
            chunk /= torch.distributed.get_world_size(group)
        rows = chunk.tolist()
        for offset, loss in enumerate(rows[0]):
            i = first + offset
            smoothed = curve.add(loss)
            record["lr"].append(float(planned[i]))
            record["loss"].append(loss)
            record["smoothed"].append(smoothed)
            if val_fn is not None:
                record["val_loss"].append(rows[1][offset] if math.isfinite(rows[1][offset]) else None)
            read = i + 1  # recorded: a KeyboardInterrupt in on_step below must not make drain() record it again
            if on_step is not None:
                best = curve.best if math.isfinite(curve.best) else smoothed
                best_lr = float(planned[curve.best_index]) if curve.best_index >= 0 else float(planned[i])
                on_step(StepInfo(i, num_iter, float(planned[i]), loss, smoothed, best, best_lr))
            if not math.isfinite(loss):
                stop_at, status = i, "diverged"
                reason = f"non-finite loss ({loss}) at step {i}, lr {planned[i]:.3g}"
                break
            if curve.diverged(smoothed):
                stop_at, status = i, "diverged"
                reason = f"smoothed loss {smoothed:.4g} diverged from best {curve.best:.4g} at step {i}, lr {planned[i]:.3g}"
                break
        read = done

    try:
        modes = _sweep_modes(model, train_mode)
        batches = _cycle(train_loader)
        for i in range(num_iter):
            try:  # the training of step i: data, the user's step, backward, optimizer, validation
                _set_lr(optimizer, ratios, float(planned[i]))
                total = train_step(model, optimizer, batches, config)
                buffer[0, i] = total
                done = i + 1  # measured: an interrupt from here on keeps this step
                if val_fn is not None and (i % val_every == 0 or i == num_iter - 1):
                    buffer[1, i] = _evaluate(model, val_fn, autocast, modes)
            except Exception as exc:
                exc.lrfind_steps_done = i  # tells callers the failure came from training, at step i
                raise
            due = done % sync_every == 0 or done == num_iter
            if by_time and not due:  # a CPU loss is a number already: a non-finite one is read at once
                due = not math.isfinite(total.item()) or time.perf_counter() - last_read >= CPU_READ_SECONDS
            if due:
                drain()
                last_read = time.perf_counter()
                if stop_at is not None:
                    break
    except KeyboardInterrupt:
        with signals_held():  # a second Ctrl-C must not cut this short: it would lose the partial result
            read = _aligned(record, val_fn is not None)
            try:
                drain(collective=False)  # other ranks may not be here: record this rank's own losses
            except KeyboardInterrupt:  # raised again by on_step: keep what is recorded
                read = _aligned(record, val_fn is not None)
        status, reason = "interrupted", f"interrupted after {len(record['lr'])} steps"
    except Exception:
        failed = True
        raise
    finally:
        with signals_held() as held:
            state.restore()
            state.discard()
            restore_loader()
        if held and failed:
            deliver(held)  # after a failure: the signal (SIGTERM: exit 143) wins over the failure it interrupted
    if held and status != "interrupted":
        try:
            deliver(held)  # a signal that came while restoring after a normal end acts now, on the restored state
        except KeyboardInterrupt:
            status, reason = "interrupted", f"interrupted after {len(record['lr'])} steps"
    result = _result(record, status, reason, suggest_method, schedule, device, started, start_lr, end_lr, num_iter, mode)
    result.group_scales = ratios
    result.val_losses = record["val_loss"] if val_fn is not None else None
    if status == "interrupted":
        raise RangeTestInterrupted(result)
    return result


def _aligned(record: dict[str, list], with_val: bool) -> int:
    """Cut the history lists to a common length (an interrupt may land between two appends); return it."""
    keys = ("lr", "loss", "smoothed", "val_loss") if with_val else ("lr", "loss", "smoothed")
    n = min(len(record[k]) for k in keys)
    for k in keys:
        del record[k][n:]
    return n


def _result(record, status, reason, suggest_method, schedule, device, started, start_lr, end_lr, num_iter, mode) -> RangeTestResult:
    summary = summarize([(record["lr"], record["smoothed"], record["loss"])], suggest_method, schedule, [status])
    return RangeTestResult(
        lrs=record["lr"],
        losses=record["loss"],
        smoothed=record["smoothed"],
        status=status,
        stop_reason=reason,
        device=str(device),
        duration_s=time.perf_counter() - started,
        start_lr=float(start_lr),
        end_lr=float(end_lr),
        num_iter=num_iter,
        mode=mode,
        **summary,  # suggestions, method, suggested_lr, schedule, lr_range, schedules, confidence
    )


def _evaluate(model: torch.nn.Module, val_fn: Callable, autocast, modes: dict[str, bool]) -> torch.Tensor:
    """val_fn(model) in eval mode without gradients; the sweep's train/eval modes again afterwards (no host sync)."""
    model.eval()
    try:
        with torch.no_grad(), autocast:
            return val_fn(model).detach().float()
    finally:
        _set_modes(model, modes)


def _sweep_modes(model: torch.nn.Module, train_mode: str) -> dict[str, bool]:
    """Put the model in the modes the sweep trains in and return every module's mode.

    "all": model.train(), as a loop that calls it each epoch (a model whose train() keeps parts
    frozen keeps them frozen). "keep": the modes as they are, so modules the user put in eval mode
    stay there; but a model in eval mode as a whole was left so by evaluation, not set up to train:
    it gets model.train() too.
    """
    if train_mode == "all" or not model.training:
        model.train()
    return {name: module.training for name, module in model.named_modules()}


def _set_modes(model: torch.nn.Module, modes: dict[str, bool]) -> None:
    for name, module in model.named_modules():
        if name in modes:
            module.training = modes[name]


def _check_objects(model: Any, optimizer: Any, train_loader: Any, loss_fn: Any) -> None:
    """TypeError naming the argument when model, optimizer, train_loader or loss_fn is of the wrong kind."""
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


def _check_callables(**functions: Any) -> None:
    for name, fn in functions.items():
        if fn is not None and not callable(fn):
            raise TypeError(f"{name} must be a function or None, got {_kind(fn)}")


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


def _cycle(loader: Iterable) -> Iterator:
    """Yield batches forever, starting a new epoch whenever the loader runs out.

    A DistributedSampler is told each new epoch, so every pass over the data is shuffled anew.
    """
    sampler = getattr(loader, "sampler", None)
    set_epoch = getattr(sampler, "set_epoch", None)
    epoch = getattr(sampler, "epoch", 0)
    seen = 0
    while True:
        empty = True
        for batch in loader:
            empty = False
            seen += 1
            yield batch
        epoch += 1
        if callable(set_epoch):
            set_epoch(epoch)
        if empty and seen:
            raise LoaderExhausted(f"the data loader ran out after {seen} batches and cannot be iterated again (a one-shot iterator?); "
                             "pass a re-iterable loader such as a DataLoader or a list, or lower num_iter")
        if empty:
            raise LoaderExhausted("the data loader yielded no batches (is the dataset smaller than one batch with drop_last?)")


def _loader_state(loader: Any) -> Callable[[], None]:
    """Capture what iterating a DataLoader changes (its generators, a sampler's epoch); return the restorer."""
    found: dict[int, torch.Generator] = {}
    sampler = getattr(loader, "sampler", None)
    batch_sampler = getattr(loader, "batch_sampler", None)
    for owner in (loader, sampler, getattr(batch_sampler, "sampler", None)):
        generator = getattr(owner, "generator", None)
        if isinstance(generator, torch.Generator):
            found[id(generator)] = generator
    states = [(g, g.get_state()) for g in found.values()]
    epoch = getattr(sampler, "epoch", None)

    def restore() -> None:
        for generator, saved in states:
            generator.set_state(saved)
        if isinstance(epoch, int):
            sampler.epoch = epoch

    return restore


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        moved = {k: _to_device(v, device) for k, v in batch.items()}
        try:
            return type(batch)(moved)  # keep the mapping's own type (e.g. a tokenizer's batch object)
        except TypeError:
            return moved
    if isinstance(batch, (list, tuple)):
        moved = [_to_device(v, device) for v in batch]
        return type(batch)(moved) if not hasattr(batch, "_fields") else type(batch)(*moved)
    return batch


def _process_group():
    """The default process group when running distributed with more than one rank, else None."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return dist.group.WORLD
    return None


def _model_device(model: torch.nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def _group_ratios(optimizer: torch.optim.Optimizer) -> list[float]:
    """Each group's lr over that of the first group with a non-zero lr: a group at lr 0 stays at 0.

    When every group is at 0 there is nothing to take a ratio to: all follow the schedule.
    """
    lrs = [float(g["lr"]) for g in optimizer.param_groups]
    ref = next((lr for lr in lrs if lr != 0), None)
    return [lr / ref for lr in lrs] if ref is not None else [1.0] * len(lrs)


def _set_lr(optimizer: torch.optim.Optimizer, ratios: list[float], lr: float) -> None:
    for group, ratio in zip(optimizer.param_groups, ratios):
        if isinstance(group["lr"], torch.Tensor):
            group["lr"].fill_(lr * ratio)
        else:
            group["lr"] = lr * ratio


def _autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def _grad_scaler(device: torch.device):
    try:
        return torch.amp.GradScaler(device.type)
    except (AttributeError, TypeError, RuntimeError):  # torch < 2.3 has only the CUDA scaler
        return torch.cuda.amp.GradScaler(enabled=device.type == "cuda")
