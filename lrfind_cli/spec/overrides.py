"""--set KEY=VALUE: a YAML value put at a dotted key of the raw spec (into lists too)."""

from __future__ import annotations

import re
from typing import Any

import yaml

from ..errors import Problem
from .schema import _shown


def apply_override(raw: dict, item: str) -> Problem | None:
    """Apply one `a.b.c=value` override to the raw spec dict in place; return a Problem if it is malformed."""
    where = f"--set {_shown(item)}"
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        return Problem(where, "an override needs the form KEY=VALUE", "e.g. --set sweep.num_iter=50")
    parts = [p.strip() for p in key.split(".")]
    if any(not p for p in parts):
        return Problem(where, f"key {key!r} has an empty part", "use dotted keys like optimizer.kwargs.momentum")
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError as exc:
        return Problem(where, f"value is not valid YAML: {_first_line(exc)}", "quote the value")
    return set_path(raw, parts, parsed, where)


def set_path(raw: dict, parts: list[str], value: Any, where: str) -> Problem | None:
    """Set raw[a][b][c] = value for parts [a, b, c], creating missing mappings; a Problem if one is in the way.

    A part that is a whole number indexes a list (`optimizer.param_groups.0.lr_scale`).
    """
    node: Any = raw
    for depth, part in enumerate(parts):
        key: Any = part
        if isinstance(node, list):
            if not re.fullmatch(r"\d+", part) or int(part) >= len(node):
                so_far = ".".join(parts[:depth])
                return Problem(where, f"{so_far} is a list of {len(node)} items, so {part!r} is not an index in it",
                               f"use an index from 0 to {len(node) - 1}" if node else "add the item in the spec file")
            key = int(part)
        elif depth < len(parts) - 1 and node.get(part) is None:
            if parts[depth + 1].isdigit():
                return Problem(where, f"{'.'.join(parts[: depth + 1])} is not set, so it has no item {parts[depth + 1]}",
                               f"set the whole list in the spec file or with --set {'.'.join(parts[: depth + 1])}=[...]")
            node[part] = {}
        if depth == len(parts) - 1:
            node[key] = value
            return None
        node = node[key]
        if not isinstance(node, (dict, list)):
            so_far = ".".join(parts[: depth + 1])
            return Problem(where, f"{so_far} is a {type(node).__name__}, not a mapping", "use a key that exists")
    return None


def key_tuple(dotted: str) -> tuple:
    """'optimizer.param_groups.0.lr_scale' -> ('optimizer', 'param_groups', 0, 'lr_scale'), as pydantic and the line map name it."""
    return tuple(int(p.strip()) if p.strip().isdigit() else p.strip() for p in dotted.split("."))


def _first_line(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text[:200]
