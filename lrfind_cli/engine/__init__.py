"""The range-test engine: config, training step, loss reading and stop rule, restore guard, and `range_test` itself."""

from .batches import LoaderExhausted, cycle, loader_state
from .config import CPU_READ_SECONDS, SweepConfig, check_arguments
from .guard import RestoreGuard
from .reader import LossCurve, LossReader, StepInfo, StepRecord, Stop
from .schedule import group_ratios, lr_schedule, resolve_ratios, set_lr
from .step import (
    Clipping,
    StepConfig,
    StepFn,
    StepOutputError,
    autocast_for,
    callable_name,
    default_step,
    evaluate,
    grad_scaler,
    loss_of,
    model_device,
    scalar_loss,
    set_modes,
    sweep_modes,
    to_device,
    train_step,
)
from .sweep import RangeTestInterrupted, TrainingFailed, range_test, run_sweep

__all__ = [
    "CPU_READ_SECONDS", "Clipping", "LoaderExhausted", "LossCurve", "LossReader", "RangeTestInterrupted", "RestoreGuard",
    "StepConfig", "StepFn", "StepInfo", "StepOutputError", "StepRecord", "Stop", "SweepConfig", "TrainingFailed",
    "autocast_for", "callable_name", "check_arguments", "cycle", "default_step", "evaluate", "grad_scaler", "group_ratios",
    "loader_state", "loss_of", "lr_schedule", "model_device", "range_test", "resolve_ratios", "run_sweep", "scalar_loss",
    "set_lr", "set_modes", "sweep_modes", "to_device", "train_step",
]
