"""A grid: the cartesian product of the values listed per key, one variant (overrides) per range test."""

from __future__ import annotations

import itertools
from typing import Any


def grid_variants(grid: dict[str, list[Any]] | None) -> list[dict[str, Any]]:
    """The cartesian product of a grid as a list of {dotted key: value}; [{}] without a grid."""
    if not grid:
        return [{}]
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def variant_label(overrides: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in overrides.items()) or "base"
