"""The range-test engine: config, training step, loss reading and stop rule, restore guard, and `range_test` itself.

Layers, from the bottom: `schedule` (the lr of each step), `batches` (cycling the loader), `step` (one optimizer
step as a training loop takes it), `config` (SweepConfig, every argument check), `reader` (LossReader: device
buffer, chunked reads, all-reduce, the stop decision), `guard` (snapshot and exact restore), `sweep` (range_test).
"""

from .batches import LoaderExhausted, cycle
from .config import SweepConfig, check_arguments
from .reader import LossCurve, StepInfo
from .schedule import lr_schedule
from .step import Clipping, StepConfig, StepFn, StepOutputError, default_step, scalar_loss, to_device, train_step
from .sweep import RangeTestInterrupted, TrainingFailed, range_test, run_sweep

__all__ = [
    "Clipping", "LoaderExhausted", "LossCurve", "RangeTestInterrupted", "StepConfig", "StepFn", "StepInfo", "StepOutputError",
    "SweepConfig", "TrainingFailed", "check_arguments", "cycle", "default_step", "lr_schedule", "range_test", "run_sweep",
    "scalar_loss", "to_device", "train_step",
]
