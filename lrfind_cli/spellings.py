"""Other spellings of a target: Hydra's `_target_` and Lightning CLI's `class_path`/`init_args`, read as `name`/`kwargs`.

A block copied from a training config,

    optimizer:                          optimizer:
      _target_: torch.optim.AdamW         class_path: torch.optim.AdamW
      weight_decay: 0.01                  init_args: {weight_decay: 0.01}

becomes `{name: "torch.optim:AdamW", kwargs: {weight_decay: 0.01}}` before the spec is validated, so it is
checked exactly like the usual spelling. The line map learns the new keys (errors keep their file:line) and
how the user spelled them (errors name `optimizer.weight_decay`, not `optimizer.kwargs.weight_decay`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import Problem

SECTIONS = ("model", "data", "optimizer", "loss")
# A section's own keys stay where they are; everything else beside `_target_` is an argument of the target.
OWN_KEYS = {
    "model": {"checkpoint", "strict", "trained"},
    "data": {"transforms", "batch_size", "num_workers", "shuffle", "drop_last"},
    "optimizer": {"param_groups"},
    "loss": set(),
}
# Hydra keys that change nothing here: lrfind never instantiates nested configs, and the optimizer is
# always built later with the parameters (what `_partial_: true` asks for).
IGNORED_HYDRA_KEYS = {"_recursive_", "_convert_"}


class LineMap(dict):
    """Key path -> line, plus `aliases`: canonical key prefix -> the prefix as the user spelled it."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.aliases: dict[tuple, tuple] = {}

    def spelled(self, key: tuple) -> tuple:
        """The key path as written in the file (longest matching alias first)."""
        for length in range(len(key), 0, -1):
            if key[:length] in self.aliases:
                return self.aliases[key[:length]] + key[length:]
        return key


def import_path(dotted: str) -> str:
    """'torch.optim.AdamW' -> 'torch.optim:AdamW'; a name without dots ('AdamW') stays a registry name."""
    if ":" in dotted or "." not in dotted:
        return dotted
    module, _, attr = dotted.rpartition(".")
    return f"{module}:{attr}"


def normalize_spellings(raw: dict, lines: dict, path: Path) -> list[Problem]:
    """Rewrite `_target_` and `class_path` blocks of model, data, optimizer and loss in place; return the problems."""
    problems: list[Problem] = []
    for section in SECTIONS:
        body = raw.get(section)
        if not isinstance(body, dict):
            continue
        if "_target_" in body:
            problems += _hydra(section, body, lines, path)
        elif "class_path" in body:
            problems += _lightning(section, body, lines, path)
    return problems


def _hydra(section: str, body: dict, lines: dict, path: Path) -> list[Problem]:
    """`_target_` + arguments beside it -> name + kwargs; the section's own keys (batch_size, ...) stay."""
    problems = _conflicts(section, body, "_target_", lines, path)
    if problems:
        return problems
    for key in [k for k in body if isinstance(k, str) and k.startswith("_") and k.endswith("_") and k != "_target_"]:
        if key not in IGNORED_HYDRA_KEYS and not (key == "_partial_" and section == "optimizer"):
            problems.append(Problem(_at(path, lines, (section, key)), f"Hydra's {key!r} is not supported here",
                                    "remove it: lrfind calls the target with keyword arguments"))
        del body[key]  # reported once, here, not again as an unknown argument
    target = body.pop("_target_")
    kwargs = {k: body.pop(k) for k in list(body) if k not in OWN_KEYS[section]}
    body["name"], body["kwargs"] = _named(target), kwargs
    _move_lines(lines, (section, "_target_"), (section, "name"))
    for arg in kwargs:
        _move_lines(lines, (section, arg), (section, "kwargs", arg))
    lines[(section, "kwargs")] = lines.get((section,), 1)
    _alias(lines, (section, "kwargs"), (section,))
    return problems


def _lightning(section: str, body: dict, lines: dict, path: Path) -> list[Problem]:
    """`class_path` + `init_args` -> name + kwargs; the section's own keys stay."""
    problems = _conflicts(section, body, "class_path", lines, path)
    if problems:
        return problems
    body["name"] = _named(body.pop("class_path"))
    _move_lines(lines, (section, "class_path"), (section, "name"))
    if "init_args" in body:
        body["kwargs"] = body.pop("init_args")
        _move_lines(lines, (section, "init_args"), (section, "kwargs"))
        _alias(lines, (section, "kwargs"), (section, "init_args"))
    return []


def _conflicts(section: str, body: dict, spelling: str, lines: dict, path: Path) -> list[Problem]:
    """The usual keys cannot be mixed with another spelling of the same thing."""
    mixed = [k for k in ("name", "kwargs") if k in body]
    if not mixed:
        return []
    for key in [spelling, "init_args", *(k for k in body if isinstance(k, str) and k.startswith("_") and k.endswith("_"))]:
        body.pop(key, None)  # reported once, here, not again as unknown keys
    keys = " and ".join(repr(k) for k in mixed)
    args = "init_args" if spelling == "class_path" else "the arguments beside it"
    return [Problem(_at(path, lines, (section, mixed[0])), f"{keys} cannot be combined with {spelling!r}",
                    f"use either name + kwargs or {spelling} + {args}")]


def _named(target: Any) -> Any:
    return import_path(target) if isinstance(target, str) else target  # a non-string is reported by the schema


def _move_lines(lines: dict, old: tuple, new: tuple) -> None:
    """Every line of `old` and the keys below it is also known under `new`; new keys remember the old spelling."""
    for key in [k for k in lines if k[: len(old)] == old]:
        lines[new + key[len(old):]] = lines[key]
    _alias(lines, new, old)


def _alias(lines: dict, canonical: tuple, spelled: tuple) -> None:
    if isinstance(lines, LineMap):
        lines.aliases[canonical] = spelled


def _at(path: Path, lines: dict, key: tuple) -> str:
    line = lines.get(key)
    keypath = ".".join(str(k) for k in key)
    return f"{path}:{line} {keypath}" if line else f"{path} {keypath}"
