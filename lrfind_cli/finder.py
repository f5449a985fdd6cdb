"""The engine's public names where users and older code import them from (`lrfind_cli.finder`); see `lrfind_cli.engine`."""

from .engine.batches import LoaderExhausted
from .engine.config import CPU_READ_SECONDS
from .engine.reader import LossCurve, StepInfo
from .engine.schedule import lr_schedule
from .engine.step import Clipping, StepConfig, StepFn, StepOutputError, callable_name, default_step, loss_of, scalar_loss, train_step
from .engine.sweep import RangeTestInterrupted, range_test

__all__ = [
    "CPU_READ_SECONDS", "Clipping", "LoaderExhausted", "LossCurve", "RangeTestInterrupted", "StepConfig", "StepFn", "StepInfo",
    "StepOutputError", "callable_name", "default_step", "loss_of", "lr_schedule", "range_test", "scalar_loss", "train_step",
]
