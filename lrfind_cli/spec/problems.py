"""Problems with a spec as the user fixes them: file:line (or the --set that caused it), key path, what, how to fix."""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from ..errors import Problem
from ..spellings import LineMap
from .schema import AT_KEY, Spec, _shown


def _where(path: Path, lines: dict[tuple, int], key: tuple, overridden: dict[tuple, str] | None = None) -> str:
    key = tuple(key)
    spelled = lines.spelled(key) if isinstance(lines, LineMap) else key  # as written: optimizer._target_, not .name
    keypath = ".".join(_shown(str(k)) for k in spelled)
    for prefix, item in (overridden or {}).items():
        if key[: len(prefix)] == prefix:
            return f"--set {_shown(item)} ({keypath})"
    if key:
        # An override below the key (--set sweep.start_lr=20 makes `sweep` invalid), or a key the file lacks that an
        # override introduced (--set foo.bar=1 makes an unknown `foo`): the override is named, never a line of the file.
        for prefix, item in (overridden or {}).items():
            if prefix[: len(key)] == key:
                return f"--set {_shown(item)} ({keypath})"
    probe = key
    while probe not in lines and probe:
        probe = probe[:-1]
    line = lines.get(probe)
    location = f"{path}:{line}" if line else str(path)
    return f"{location} {keypath}" if keypath else location


def _pydantic_problems(exc: ValidationError, path: Path, lines: dict[tuple, int], overridden: dict[tuple, str]) -> list[Problem]:
    problems = []
    for loc, err, message in located(exc):
        kind = err["type"]
        if kind == "extra_forbidden":
            name = str(loc[-1])
            known = _fields_at(loc[:-1])
            close = difflib.get_close_matches(name, known, n=1)
            fix = f"did you mean {close[0]!r}?" if close else f"valid keys here: {', '.join(known)}"
            problems.append(Problem(_where(path, lines, loc, overridden), f"unknown key {name!r}", fix))
        elif kind == "missing":
            problems.append(Problem(_where(path, lines, loc, overridden), "required key is missing", f"add `{loc[-1]}:`"))
        else:
            value = err.get("input")
            shown = f" (got {value!r})" if not isinstance(value, (dict, list)) and kind not in ("value_error", AT_KEY) else ""
            problems.append(Problem(_where(path, lines, loc, overridden), f"{message}{shown}", _fix_for(kind)))
    return problems


def located(exc: ValidationError) -> list[tuple[tuple, dict[str, Any], str]]:
    """(key path, pydantic's error, message) for each error, the key path being the key the problem is at.

    A check across keys names the key it is about ("sweep.repeats: ..."); an AT_KEY error names the key below its field.
    """
    found = []
    for err in exc.errors(include_url=False):
        loc, message = tuple(err["loc"]), err["msg"].removeprefix("Value error, ")
        keyed = re.match(r"([a-z_]+(?:\.[a-z_]+)+): (.*)", message) if not loc and err["type"] == "value_error" else None
        if keyed:
            loc, message = tuple(keyed.group(1).split(".")), keyed.group(2)
        if err["type"] == AT_KEY:
            loc += (err["ctx"]["key"],)
        found.append((loc, err, message))
    return found


def _fields_at(loc: tuple) -> list[str]:
    """The valid key names of the spec model found at a location (for close-match hints)."""
    model: Any = Spec
    for part in loc:
        if isinstance(part, int) or model is None:
            continue
        field = model.model_fields.get(part)
        if field is None:
            return []
        model = _model_of(field.annotation)
    return list(model.model_fields) if model is not None else []


def _model_of(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _fix_for(kind: str) -> str:
    fixes = {
        "float_parsing": "write a number such as 1.0e-4",
        "int_parsing": "write a whole number",
        "int_type": "write a whole number",
        "int_from_float": "write a whole number",
        "int_parsing_size": "write a smaller whole number",
        "float_type": "write a number such as 1.0e-4",
        "finite_number": "write a finite number",
        "bool_type": "write true or false",
        "literal_error": "use one of the listed values",
        "greater_than": "use a larger value",
        "greater_than_equal": "use a larger value",
        "less_than": "use a smaller value",
        "bool_parsing": "write true or false",
        "model_type": "write a mapping of keys",
        "dict_type": "write a mapping of keys",
        "list_type": "write a list",
        "string_type": "write a string",
    }
    return fixes.get(kind, "")


def _dedupe(problems: list[Problem]) -> list[Problem]:
    seen, out = set(), []
    for p in problems:
        if str(p) not in seen:
            seen.add(str(p))
            out.append(p)
    return out
