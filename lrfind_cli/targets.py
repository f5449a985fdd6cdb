"""Checking a raw spec before anything is built: every name resolves, every kwarg fits its target's signature."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Collection
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


def check_targets(raw: dict, bad: Collection[Key] = ()) -> list[tuple[Key, str, str]]:
    """Resolve every name in a raw spec dict and check its kwargs against the target's signature.

    Returns (key path, what, fix) for every problem; sections that are not well formed are skipped
    (the schema reports those). `bad` holds the key paths where the schema found a problem, and only
    the keys that are right are checked: a name at fault is not resolved, and a problem at one of a
    section's own keys (`kwarg:` for `kwargs:`, say) leaves its kwargs unchecked, and its name too
    when none is written (the misspelled key may be either).
    """

    def at_fault(key: Key) -> bool:
        return any(tuple(loc[: len(key)]) == key for loc in bad)

    def hidden(section: str) -> bool:  # a problem at the section or one of its own keys, which may be `name` or `kwargs`
        return any(tuple(loc[:1]) == (section,) and len(loc) <= 2 for loc in bad)

    def name_known(section: str, body: dict) -> bool:
        return not at_fault((section, "name")) and ("name" in body or not hidden(section))

    problems: list[tuple[Key, str, str]] = []
    for section, resolve in _RESOLVERS.items():
        body = raw.get(section, {} if section in _DEFAULT_NAMES else None)
        if not isinstance(body, dict) or not name_known(section, body):
            continue
        name = body.get("name", _DEFAULT_NAMES.get(section))
        if name is not None:
            problems += _check_one((section,), name, None if hidden(section) else body.get("kwargs") or {}, resolve,
                                   _SUPPLIED[section])
    optimizer = raw.get("optimizer")
    if isinstance(optimizer, dict) and name_known("optimizer", optimizer):
        for i, group in _items(optimizer.get("param_groups"), ("optimizer", "param_groups"), at_fault):
            problems += _check_one(("optimizer", "param_groups", i), optimizer.get("name", "SGD"), group.get("kwargs") or {},
                                   resolve_optimizer, _SUPPLIED["optimizer"], name_key=("optimizer", "name"))
    data = raw.get("data") if isinstance(raw.get("data"), dict) else {}
    for i, item in _items(data.get("transforms"), ("data", "transforms"), at_fault):
        problems += _check_one(("data", "transforms", i), item.get("name"), item.get("kwargs") or {}, resolve_transform,
                               _SUPPLIED["transform"])
    if isinstance(raw.get("step"), str):
        problems += _check_function(("step",), raw["step"], "name a function(model, batch, loss_fn) -> loss")
    if isinstance(data.get("collate_fn"), str):
        problems += _check_function(("data", "collate_fn"), data["collate_fn"], "name a function(samples: list) -> batch")
    return problems


_RESOLVERS = {"model": resolve_model, "data": resolve_dataset, "optimizer": resolve_optimizer, "loss": resolve_loss}
_DEFAULT_NAMES = {"data": "synthetic", "optimizer": "SGD", "loss": "CrossEntropyLoss"}  # the schema's defaults


def _items(items: Any, key: Key, at_fault: Callable[[Key], bool]) -> list[tuple[int, dict]]:
    """(index, item) for the mappings of a list in the spec that have no problem of their own."""
    if not isinstance(items, list):
        return []
    return [(i, item) for i, item in enumerate(items) if isinstance(item, dict) and not at_fault(key + (i,))]


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
    """The problems of one target: its name, then (unless `kwargs` is None: the name only) its kwargs."""
    if not isinstance(name, str) or not (kwargs is None or isinstance(kwargs, dict)):
        return []
    try:
        target = resolve(name)
    except UnknownName as exc:
        return [] if name_key else [(key + ("name",), str(exc), exc.fix)]  # a name checked elsewhere is reported once
    if not callable(target):
        return [(key + ("name",), f"{name!r} is a {type(target).__name__}, not something that can be called", "name a class or function")]
    if kwargs is None:
        return []
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
        returned = return_class(target)
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


def return_class(fn: Callable) -> type | None:
    """The class a function's return annotation names, or None (no annotation, or not a class)."""
    try:
        hint = typing.get_type_hints(fn).get("return")
    except Exception:
        hint = inspect.signature(fn).return_annotation
    return hint if inspect.isclass(hint) else None
