"""Checking a raw spec before anything is built: every name resolves, every kwarg fits its target's signature."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Any

from .registry import (
    UnknownName,
    did_you_mean,
    import_object,
    resolve_dataset,
    resolve_loss,
    resolve_model,
    resolve_optimizer,
    resolve_transform,
)

Key = tuple  # a key path into the spec, e.g. ("optimizer", "kwargs")

# Arguments lrfind passes itself, per section.
_SUPPLIED = {
    "model": set(),
    "data": {"transform"},
    "optimizer": {"params", "lr"},
    "loss": set(),
    "transform": set(),
}


def check_targets(raw: dict) -> list[tuple[Key, str, str]]:
    """Resolve every name in a raw spec dict and check its kwargs against the target's signature.

    Returns (key path, what, fix) for every problem; sections that are not well formed are skipped
    (the schema reports those).
    """
    problems: list[tuple[Key, str, str]] = []
    resolvers = {"model": resolve_model, "data": resolve_dataset, "optimizer": resolve_optimizer, "loss": resolve_loss}
    defaults = {"data": "synthetic", "optimizer": "SGD", "loss": "CrossEntropyLoss"}
    for section, resolve in resolvers.items():
        body = raw.get(section, {} if section in defaults else None)
        if not isinstance(body, dict):
            continue
        name = body.get("name", defaults.get(section))
        if name is None and section == "loss":
            continue
        problems += _check_one((section,), name, body.get("kwargs") or {}, resolve, _SUPPLIED[section])
    optimizer = raw.get("optimizer")
    groups = optimizer.get("param_groups") if isinstance(optimizer, dict) else None
    if isinstance(groups, list) and isinstance(optimizer.get("name", "SGD"), str):
        for i, group in enumerate(groups):
            if isinstance(group, dict):
                problems += _check_one(("optimizer", "param_groups", i), optimizer.get("name", "SGD"), group.get("kwargs") or {},
                                       resolve_optimizer, _SUPPLIED["optimizer"], name_key=("optimizer", "name"))
    step = raw.get("step")
    if isinstance(step, str):
        problems += _check_function(("step",), step, "name a function(model, batch, loss_fn) -> loss")
    collate = raw.get("data", {}).get("collate_fn") if isinstance(raw.get("data"), dict) else None
    if isinstance(collate, str):
        problems += _check_function(("data", "collate_fn"), collate, "name a function(samples: list) -> batch")
    transforms = raw.get("data", {}).get("transforms") if isinstance(raw.get("data"), dict) else None
    if isinstance(transforms, list):
        for i, item in enumerate(transforms):
            if isinstance(item, dict):
                problems += _check_one(("data", "transforms", i), item.get("name"), item.get("kwargs") or {},
                                       resolve_transform, _SUPPLIED["transform"])
    return problems


def _check_function(key: Key, path: str, fix: str) -> list[tuple[Key, str, str]]:
    """A problem when the import path does not resolve to something callable."""
    try:
        if not callable(import_object(path)):
            return [(key, f"{path!r} is not a function", fix)]
    except UnknownName as exc:
        return [(key, str(exc), exc.fix)]
    return []


def _check_one(key: Key, name: Any, kwargs: Any, resolve: Callable, supplied: set[str],
               name_key: Key | None = None) -> list[tuple[Key, str, str]]:
    if not isinstance(name, str) or not isinstance(kwargs, dict):
        return []
    try:
        target = resolve(name)
    except UnknownName as exc:
        return [] if name_key else [(key + ("name",), str(exc), exc.fix)]  # a name checked elsewhere is reported once
    if not callable(target):
        return [(key + ("name",), f"{name!r} is a {type(target).__name__}, not something that can be called", "name a class or function")]
    # A loss that is a function (not a class) is called as loss(output, target, **kwargs) at each step
    # (see build_loss): its required arguments come from the step, not from the spec.
    require = not (key == ("loss",) and not inspect.isclass(target))
    return [(key + ("kwargs",) + ((k,) if k else ()), what, fix)
            for k, what, fix in signature_problems(target, kwargs, supplied, require=require)]


def signature_problems(target: Callable, kwargs: dict, supplied: set[str], *, require: bool = True) -> list[tuple[str, str, str]]:
    """(kwarg, what, fix) for kwargs the target does not accept and (if `require`) required arguments not given."""
    params = parameters_of(target)
    if params is None:
        return []
    accepts_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    known = {n for n, p in params.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    if accepts_any:
        # torchvision model builders take **kwargs and pass them to the class they return.
        returned = _return_class(target)
        if returned is None:
            return []
        inner = parameters_of(returned) or {}
        if any(p.kind is p.VAR_KEYWORD for p in inner.values()):
            return []
        known |= set(inner)
    label = getattr(target, "__qualname__", getattr(target, "__name__", repr(target)))
    problems = []
    for k in kwargs:
        if k not in known:
            choices = sorted(known - supplied - {"self"})
            fix = did_you_mean(str(k), choices) or f"{label} accepts: {', '.join(choices)}"
            problems.append((str(k), f"{label} does not accept the argument {k!r}", fix))
    if not accepts_any and require:
        for n, p in params.items():
            required = p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            if required and n not in kwargs and n not in supplied and n != "self":
                problems.append(("", f"{label} needs the argument {n!r}", f"add `{n}:` under kwargs"))
    return problems


def parameters_of(target: Callable) -> dict[str, inspect.Parameter] | None:
    """The parameters of a callable's signature; None when it has none Python can read (a builtin)."""
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return None
    return dict(sig.parameters)


def _return_class(fn: Callable) -> type | None:
    try:
        hint = typing.get_type_hints(fn).get("return")
    except Exception:
        hint = inspect.signature(fn).return_annotation
    return hint if inspect.isclass(hint) else None
