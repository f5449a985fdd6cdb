"""range_test: snapshot, sweep the lr up until the loss diverges, restore exactly, suggest. Never prints."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import Interrupted
from ..plan import TrainPlan, momentum_free, with_length
from ..results import RangeTestResult, measured
from ..signals import signals_held
from ..snapshot import Snapshot
from ..suggest import read_curve, summarize
from .batches import cycle, loader_state, steps_per_pass
from .config import SweepConfig, check_arguments
from .costs import memory_of, timing_of
from .guard import RestoreGuard
from .reader import LossReader, StepInfo, Stop
from .schedule import EXTEND_DECADES, resolve_ratios, set_lr
from .step import Clipping, StepConfig, StepFn, evaluate, model_device, scale_now, skipped_since, sweep_modes, train_step

# Raised after a KeyboardInterrupt once the state is restored; `.result` holds what was measured (the one interrupt type).
RangeTestInterrupted = Interrupted


class TrainingFailed(Exception):
    """Training failed at `step` (0-based): the data, the user's step, backward or the optimizer raised `__cause__`."""

    def __init__(self, step: int):
        super().__init__(f"training failed at step {step}")
        self.step = step


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
    warm_start: bool | None = None,
    extend_decades: float = EXTEND_DECADES,
    train: TrainPlan | None = None,
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
    `warm_start=True` says the model holds trained weights: a curve that stays flat and then rises is
    then a trained model's, and the answer is never above the fine-tuning rate (flag "pretrained"; method
    "finetune" under one-cycle). Otherwise (False, or None: not said) such a curve is an untrained
    model's whose fall batch noise hid (the schedule's rule, flag "noisy").
    A loss that has not started to diverge by `end_lr` is followed past it at the schedule's own rate,
    up to `extend_decades` decades further and at most `num_iter` more steps (0: stop at end_lr);
    `result.extended_steps` counts those steps. Without an onset of divergence there is no suggestion.
    `train` (a TrainPlan) says what training the answers are for: its length (the answer for a longer run is
    lower, suggest.horizon; without steps, horizon.DEFAULT_STEPS is assumed and `result.train["assumed"]` says so),
    its schedule (then `schedule` may be left out) and OneCycleLR's momentum cycling. Its `steps_per_pass` is
    taken from `len(train_loader)` / `accumulation_steps` when it has none and the loader has a length.
    `result.schedules` holds the answer under every schedule for that length.
    """
    check_arguments(model, optimizer, train_loader, loss_fn, step_fn=step_fn, on_step=on_step, val_fn=val_fn)
    if train is not None and isinstance(train, TrainPlan) and schedule == "onecycle":
        schedule = train.schedule  # the plan names the schedule; `schedule` left at its default follows it
    config = SweepConfig(start_lr, end_lr, num_iter, mode, smoothing, diverge_threshold, accumulation_steps, max_grad_norm,
                         max_grad_value, train_mode, precision, snapshot, suggest_method, schedule, sync_every, val_every,
                         warm_start, extend_decades, train)
    try:
        return run_sweep(model, optimizer, train_loader, loss_fn, config, step_fn=step_fn, on_step=on_step, val_fn=val_fn,
                         scaler=scaler, group_scales=group_scales)
    except TrainingFailed as failed:
        raise failed.__cause__ from None  # the library's caller gets the user's own exception


def run_sweep(model: torch.nn.Module, optimizer: torch.optim.Optimizer, train_loader: Iterable, loss_fn: Callable | None,
              config: SweepConfig, *, step_fn: StepFn | None = None, on_step: Callable[[StepInfo], None] | None = None,
              val_fn: Callable | None = None, scaler: Any = None, group_scales: list[float] | None = None,
              on_snapshot: Callable[[int, str], None] | None = None,
              available: Callable[[bool], int | None] | None = None) -> RangeTestResult:
    """`range_test` with a validated config; a failure of training itself is raised as TrainingFailed (its step, its cause).

    Before the snapshot is taken, `on_snapshot(bytes, "memory" | "disk")` hears its size, and a snapshot
    larger than `available(to_disk)` (default `snapshot.available_bytes`: free host memory, or free
    space in the temporary directory) raises SnapshotTooLarge, before anything is trained.
    """
    device = model_device(model)
    internal_scaler = scaler is None and config.precision == "fp16"
    step = StepConfig.create(step_fn, loss_fn, device, config.precision, config.accumulation_steps,
                             Clipping(config.max_grad_norm, config.max_grad_value), scaler)
    reader = LossReader(config, device, val_fn is not None, on_step, with_skips=step.scaler is not None)
    ratios = resolve_ratios(optimizer, group_scales)
    state = Snapshot(model, optimizer, None if internal_scaler else scaler, to_disk=config.snapshot == "disk",
                     loss=loss_fn if isinstance(loss_fn, torch.nn.Module) else None)
    state.check(on_snapshot, available)
    guard = RestoreGuard(state, loader_state(train_loader))
    at = _Training()
    try:
        with guard:
            started = time.perf_counter()
            stop = _train(model, optimizer, cycle(train_loader), step, ratios, reader, config, val_fn, at)
    except Exception as exc:
        if at.step is None:
            raise  # not from training: a callback's error, say
        raise TrainingFailed(at.step) from exc  # wrapped after the restore, so a held signal's context is the failure itself
    if stop.status != "interrupted" and guard.late_interrupt():
        stop = reader.interrupted()  # a signal that came while restoring after a normal end acts now, on the restored state
    ended = time.perf_counter()
    plan = with_length(config.plan or TrainPlan(config.schedule), steps_per_pass(train_loader, config.accumulation_steps))
    result = _result(reader, stop, config, device, ended - started, plan, momentum_free(optimizer))
    result.group_scales = ratios
    result.timing = timing_of(guard.startup_s, guard.snapshot_s, guard.captured_at, reader.reads, guard.restore_s,
                              suggest_s=time.perf_counter() - ended)
    result.memory = memory_of(device, state.nbytes)
    if stop.status == "interrupted":
        raise Interrupted(result=result)
    return result


@dataclass
class _Training:
    """The step whose training (data, the user's step, backward, optimizer, validation) runs now; None between steps."""

    step: int | None = None


def _train(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batches: Iterator, step: StepConfig, ratios: list[float],
           reader: LossReader, config: SweepConfig, val_fn: Callable | None, at: _Training) -> Stop:
    """Train step after step until the reader says stop or end_lr is reached; an interrupt keeps what was measured.

    A loss that has not started to diverge by end_lr (`goes_on`) is followed past it (`SweepConfig.extension`).
    """
    try:
        modes = sweep_modes(model, config.train_mode)
        i = 0
        while i < len(reader.planned):
            at.step = i
            set_lr(optimizer, ratios, float(reader.planned[i]))
            scale = scale_now(step)  # under fp16: a skipped step lowers the scale (no host sync)
            loss = train_step(model, optimizer, batches, step)
            reader.put(i, loss, skipped_since(step, scale))
            if val_fn is not None and (i % config.val_every == 0 or i == config.num_iter - 1):
                reader.put_val(i, evaluate(model, val_fn, step.autocast, modes))
            at.step = None
            if reader.due(loss) and reader.read() is not None:
                return reader.stop
            i += 1
            if i == config.num_iter and goes_on(reader, config):
                reader.extend(config.extension())
    except KeyboardInterrupt:
        # signals held: a second Ctrl-C must not cut this short (it would lose the partial result); a
        # KeyboardInterrupt raised again by on_step keeps what is recorded; other ranks may not be here,
        # so this rank records its own losses
        with signals_held(), contextlib.suppress(KeyboardInterrupt):
            reader.read(collective=False)
        return reader.interrupted()
    extra = len(reader.records) - config.num_iter
    if extra > 0:
        return Stop("completed", f"reached end_lr after {config.num_iter} steps without diverging, and went on past it for "
                                 f"{extra} steps (to lr {reader.planned[-1]:.3g}) without diverging")
    return Stop("completed", f"reached end_lr after {config.num_iter} steps")


def goes_on(reader: LossReader, config: SweepConfig) -> bool:
    """Whether a sweep that reached end_lr goes on past it: its loss has not started to diverge (no onset; see
    `suggest.Reading.onset`), and there are enough points to tell (RULE_MIN_POINTS)."""
    if config.extend_decades <= 0:
        return False
    records = [r for r in reader.records if not r.skipped]  # a step the GradScaler skipped measured nothing
    curve = read_curve([r.lr for r in records], None, [r.loss for r in records])
    return not curve.too_short and curve.onset is None


def _result(reader: LossReader, stop: Stop, config: SweepConfig, device: torch.device, duration_s: float, plan: TrainPlan,
            free: bool) -> RangeTestResult:
    """The result of one sweep: its history, how it ended, and the suggestions read off it (never off a skipped step)."""
    lrs = [r.lr for r in reader.records]
    losses = [r.loss for r in reader.records]
    smoothed = [r.smoothed for r in reader.records]
    skipped = [r.skipped for r in reader.records] if reader.with_skips else None
    summary = summarize([measured(lrs, smoothed, losses, skipped)], config.suggest_method, config.schedule, [stop.status],
                        config.warm_start, config.end_lr, plan, free)
    result = RangeTestResult(
        lrs=lrs, losses=losses, smoothed=smoothed, status=stop.status, stop_reason=stop.reason, device=str(device),
        duration_s=duration_s, start_lr=float(config.start_lr), end_lr=float(config.end_lr), num_iter=config.num_iter,
        mode=config.mode, val_losses=[r.val_loss for r in reader.records] if reader.with_val else None, skipped=skipped,
        **summary.fields(),  # suggestions, method, suggested_lr, schedule, lr_range, schedules, confidence, zero_lag
    )
    if stop.status == "interrupted":
        return result.withdrawn()
    result.note_skipped()
    return result
