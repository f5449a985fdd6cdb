"""Loading a spec: YAML with a line map, --set overrides, spellings, validation, names and the grid; every problem at once."""

from __future__ import annotations

import copy
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from ..errors import Problem, SpecError
from ..searchpath import beside
from ..spellings import LineMap, normalize_spellings
from .grid import grid_variants, variant_label
from .overrides import _first_line, apply_override, key_tuple, set_path
from .problems import _dedupe, _fix_for, _pydantic_problems, _where, located
from .schema import Spec, _shown


class LoadedSpec(BaseModel):
    """A validated spec together with where it came from."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    spec: Spec
    path: Path
    lines: dict[tuple, int]
    overridden: dict[tuple, str] = {}
    # One (grid overrides, spec) pair per range test to run; a single ({}, spec) without a grid.
    variants: list[tuple[dict[str, Any], Spec]] = []

    def where(self, *key: str | int) -> str:
        return _where(self.path, self.lines, key, self.overridden)

    def written_at(self, dotted: str) -> str:
        """'spec.yaml:12' when the dotted key is written in the spec file itself, else ''.

        A key absent from the file, or set by --set, --out, --device or the grid, has no line of the file to blame.
        """
        key = key_tuple(dotted)
        line = self.lines.get(key)
        varied = list(self.overridden) + [key_tuple(k) for k in (self.spec.grid or {})]
        if line is None or any(key[: len(k)] == k or k[: len(key)] == key for k in varied):
            return ""
        return f"{self.path}:{line}"


def load_spec(path: str | Path, overrides: list[str] | tuple[str, ...] = (), *, check_targets: bool = True,
              complete: bool = False, on_targets: Callable[[], None] | None = None) -> LoadedSpec:
    """Read, override and validate a spec; raise SpecError listing every problem found.

    Keys and types are checked first, without torch; then, with torch, names and kwargs against signatures
    (`targets`) and what building would refuse (`preflight`), once keys and types are right. With `complete`
    (`lrfind validate`) the second stage runs on the keys that are right even when others are wrong, so one
    pass reports every problem. `on_targets()` is called just before the second stage.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(Problem(str(path), "spec file not found", "check the path")) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(Problem(str(path), f"cannot read the spec: {exc}", "pass a readable UTF-8 YAML file")) from None
    raw, lines, problems = _parse_yaml(text, path)
    overridden: dict[tuple, str] = {}
    for item in overrides:
        problem = apply_override(raw, item)
        if problem:
            problems.append(problem)
        else:
            overridden[key_tuple(item.partition("=")[0])] = item
    problems += normalize_spellings(raw, lines, path)
    spec, bad = None, set()
    try:
        spec = Spec.model_validate(raw)
    except ValidationError as exc:
        problems.extend(_pydantic_problems(exc, path, lines, overridden))
        bad = {loc for loc, _, _ in located(exc)}
    # Names and signatures need torch (seconds to import): `run` checks them once keys and types are right, so a
    # typo is reported at once; when torch is loaded already (a Python session) checking them costs nothing.
    check_targets = check_targets and (complete or (spec is not None and not problems) or "torch" in sys.modules)
    if check_targets and on_targets is not None:
        on_targets()
    with beside(path):
        if check_targets:
            from ..preflight import preflight_problems  # imports torch: only when asked
            from ..targets import check_targets as _check

            found = _check(raw, bad)
            checked = spec if spec is not None else _right_part(raw, bad)
            if checked is not None and not checked.grid:
                found += preflight_problems(checked)
            problems += [Problem(_where(path, lines, key, overridden), what, fix) for key, what, fix in found]
        variants = _grid_specs(raw, spec, path, lines, problems, check_targets) if spec is not None else []
    if problems or spec is None:
        raise SpecError(_dedupe(problems))
    return LoadedSpec(spec=spec, path=path, lines=lines, overridden=overridden, variants=variants)


def _right_part(raw: dict, bad: set[tuple]) -> Spec | None:
    """The spec without its top-level sections that have problems (their defaults instead); None if that is invalid too."""
    if any(not loc for loc in bad):
        return None
    try:
        return Spec.model_validate({k: v for k, v in raw.items() if k not in {loc[0] for loc in bad}})
    except ValidationError:
        return None


def _grid_specs(raw: dict, spec: Spec, path: Path, lines: dict[tuple, int], problems: list[Problem],
                check_targets: bool) -> list[tuple[dict[str, Any], Spec]]:
    """Validate every grid variant up front, adding its problems; return (overrides, spec) for each.

    A problem is placed at the grid key that caused it (file:line of that key under `grid:`), and
    names the variants it occurs in, or says it occurs in every variant.
    """
    if not spec.grid:
        return [({}, spec)]
    variants: list[tuple[dict[str, Any], Spec]] = []
    found: dict[tuple[tuple, str, str], list[str]] = {}
    combos = grid_variants(spec.grid)
    for overrides in combos:
        variant = copy.deepcopy({k: v for k, v in raw.items() if k != "grid"})
        here: list[tuple[tuple, str, str]] = []
        for key, value in overrides.items():
            problem = set_path(variant, key.split("."), value, "")
            if problem:
                here.append((("grid", key), problem.what, problem.fix))
        if not here:
            bad: set[tuple] = set()
            try:
                variants.append((overrides, Spec.model_validate(variant)))
            except ValidationError as exc:
                here += [(loc, message, _fix_for(e["type"])) for loc, e, message in located(exc)]
                bad = {loc for loc, _, _ in located(exc)}
            if check_targets:
                from ..preflight import preflight_problems
                from ..targets import check_targets as _check

                here += _check(variant, bad)
                if not bad:
                    here += preflight_problems(variants[-1][1])
        for item in here:
            found.setdefault(item, []).append(variant_label(overrides))
    for (key, what, fix), labels in found.items():
        dotted = ".".join(map(str, key))
        grid_key = next((k for k in spec.grid if dotted == k or dotted.startswith(k + ".") or k.startswith(dotted + ".")), None)
        where = _where(path, lines, ("grid", grid_key)) if grid_key else _where(path, lines, key)
        scope = "every grid variant" if len(labels) == len(combos) else "grid variant " + "; ".join(labels)
        text = what if grid_key == dotted else f"{dotted}: {what}"
        problems.append(Problem(where, f"{text} (in {scope})", fix))
    return variants


def _parse_yaml(text: str, path: Path) -> tuple[dict, dict[tuple, int], list[Problem]]:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        tag = re.search(r"constructor for the tag '([^']+)'", str(exc)) if isinstance(exc, yaml.constructor.ConstructorError) else None
        if tag:
            # yaml.safe_load builds plain data only: a tag such as !!python/object would run code, so it is refused.
            name = tag.group(1).replace("tag:yaml.org,2002:", "!!")
            raise SpecError(Problem(where, f"the YAML tag {name!r} is not allowed: a spec holds plain data (loaded with "
                                    "yaml.safe_load)", "remove the tag and write a plain value")) from None
        fix = "indent with spaces, not tabs" if "'\\t'" in str(exc) else "fix the syntax at that line"
        raise SpecError(Problem(where, f"invalid YAML: {_yaml_problem(exc)}", fix)) from None
    if raw is None:
        raise SpecError(Problem(str(path), "the spec is empty", "start from one of the examples in configs/"))
    if not isinstance(raw, dict):
        found = type(raw).__name__
        what = f"the spec must be a mapping of keys, found a {found}"
        raise SpecError(Problem(f"{path}:1", what, "write `model: ...`, `data: ...` at the top level"))
    lines: dict[tuple, int] = LineMap()
    duplicates: list[Problem] = []
    _collect_lines(node, (), lines, path, duplicates)
    return raw, lines, duplicates


def _collect_lines(node: yaml.Node, key: tuple, lines: dict[tuple, int], path: Path, duplicates: list[Problem]) -> None:
    """Map every key path to its line; report keys given twice in one mapping (YAML keeps the last silently)."""
    lines[key] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            name = k.value
            line = k.start_mark.line + 1
            if key + (name,) in lines:
                keypath = ".".join(_shown(str(p)) for p in key + (name,))
                first = lines[key + (name,)]
                duplicates.append(Problem(f"{path}:{line} {keypath}", f"key {name!r} is given twice (first at line {first})",
                                          "keep one of them"))
                continue
            lines[key + (name,)] = line
            if isinstance(v, (yaml.MappingNode, yaml.SequenceNode)):
                _collect_lines(v, key + (name,), lines, path, duplicates)
                lines[key + (name,)] = line
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            _collect_lines(v, key + (i,), lines, path, duplicates)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's complaint without its '<unicode string>' and excerpts: the problem, and where its context began."""
    problem = getattr(exc, "problem", None)
    if not problem:
        return _first_line(exc)
    context, mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context and mark is not None:
        return f"{problem} ({context} that starts at line {mark.line + 1}, column {mark.column + 1})"
    return f"{problem}{f' ({context})' if context else ''}"
