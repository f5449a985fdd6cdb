"""lrfind: Leslie Smith's learning-rate range test, exact and driven by a YAML spec.

The public API is imported lazily so that `lrfind --help` never imports torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["range_test", "RangeTestResult", "RangeTestInterrupted", "StepInfo", "TrainPlan", "load_spec", "lr_schedule",
           "__version__"]

if TYPE_CHECKING:
    from .engine import RangeTestInterrupted, StepInfo, lr_schedule, range_test
    from .plan import TrainPlan
    from .results import RangeTestResult
    from .spec import load_spec

_LAZY = {
    "range_test": "engine",
    "RangeTestInterrupted": "engine",
    "StepInfo": "engine",
    "lr_schedule": "engine",
    "RangeTestResult": "results",
    "TrainPlan": "plan",
    "load_spec": "spec",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'lrfind_cli' has no attribute {name!r}")
