"""The engine's public names where users and older code import them from (`lrfind_cli.finder`); see `lrfind_cli.engine`."""

from .engine import (
    CPU_READ_SECONDS,
    Clipping,
    LoaderExhausted,
    LossCurve,
    RangeTestInterrupted,
    StepConfig,
    StepFn,
    StepInfo,
    StepOutputError,
    callable_name,
    default_step,
    loss_of,
    lr_schedule,
    range_test,
    scalar_loss,
    train_step,
)

__all__ = [
    "CPU_READ_SECONDS", "Clipping", "LoaderExhausted", "LossCurve", "RangeTestInterrupted", "StepConfig", "StepFn", "StepInfo",
    "StepOutputError", "callable_name", "default_step", "loss_of", "lr_schedule", "range_test", "scalar_loss", "train_step",
]
