"""The YAML spec: its schema, loading with a line map, --set overrides and the grid, behind the names exported here.

Modules: `schema` (pydantic models), `load` (YAML + line map + validation -> LoadedSpec), `overrides` (--set),
`grid` (variants), `problems` (file:line and key path for every problem).
"""

from .grid import grid_variants, variant_label
from .load import LoadedSpec, load_spec
from .overrides import apply_override, key_tuple, set_path
from .schema import (
    DEVICE_PATTERN,
    DataSpec,
    DistributedSpec,
    LossSpec,
    ModelSpec,
    OptimizerSpec,
    OutputSpec,
    ParamGroupSpec,
    PerformanceSpec,
    Spec,
    SuggestSpec,
    SweepSpec,
    TransformSpec,
    ValSpec,
    VerifySpec,
    Whole,
)

__all__ = [
    "DEVICE_PATTERN", "DataSpec", "DistributedSpec", "LoadedSpec", "LossSpec", "ModelSpec", "OptimizerSpec", "OutputSpec", "ParamGroupSpec",
    "PerformanceSpec", "Spec", "SuggestSpec", "SweepSpec", "TransformSpec", "ValSpec", "VerifySpec", "Whole", "apply_override",
    "grid_variants", "key_tuple", "load_spec", "set_path", "variant_label",
]
