"""The YAML spec: pydantic models, loading, --set overrides, and errors with file:line and key path."""

from __future__ import annotations

import copy
import difflib
import itertools
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import Problem, SpecError
from .spellings import LineMap, normalize_spellings

DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def _not_a_bool(value: Any) -> Any:
    if isinstance(value, bool):  # YAML's true/false would pass as 1/0
        raise ValueError(f"expected a whole number, got {str(value).lower()}; write a whole number")
    return value


Whole = Annotated[int, BeforeValidator(_not_a_bool)]  # an int that refuses true/false


class _Strict(BaseModel):
    # extra="forbid": a misspelled key is an error, never silently ignored.
    model_config = ConfigDict(extra="forbid")


class ModelSpec(_Strict):
    name: str
    kwargs: dict[str, Any] = Field(default_factory=dict)
    checkpoint: str | None = None
    strict: bool = True  # checkpoint keys must match the model's exactly


class TransformSpec(_Strict):
    name: str
    kwargs: dict[str, Any] = Field(default_factory=dict)


class DataSpec(_Strict):
    name: str = "synthetic"
    kwargs: dict[str, Any] = Field(default_factory=dict)
    transforms: list[TransformSpec] | None = None
    collate_fn: str | None = None  # "package.module:function" that makes a batch from a list of samples (padding)
    batch_size: Whole = Field(128, ge=1)
    num_workers: Whole = Field(0, ge=0)
    shuffle: bool = True
    drop_last: bool = True


class ParamGroupSpec(_Strict):
    params: str  # a glob on parameter names, e.g. "backbone.*"
    lr_scale: float = Field(1.0, gt=0)
    kwargs: dict[str, Any] = Field(default_factory=dict)

    @field_validator("kwargs")
    @classmethod
    def _no_lr(cls, kwargs: dict[str, Any]) -> dict[str, Any]:
        if "lr" in kwargs:
            raise ValueError("a group's lr follows the sweep; remove 'lr' and use lr_scale")
        return kwargs


class OptimizerSpec(_Strict):
    name: str = "SGD"
    kwargs: dict[str, Any] = Field(default_factory=dict)
    # Parameters are matched to the first group whose glob fits; the rest form a group of scale 1.
    param_groups: list[ParamGroupSpec] | None = None

    @field_validator("kwargs")
    @classmethod
    def _no_lr(cls, kwargs: dict[str, Any]) -> dict[str, Any]:
        if "lr" in kwargs:
            raise ValueError("the learning rate is what the sweep sets; remove 'lr' and use sweep.start_lr / sweep.end_lr")
        return kwargs


class LossSpec(_Strict):
    name: str = "CrossEntropyLoss"
    kwargs: dict[str, Any] = Field(default_factory=dict)


class ValSpec(_Strict):
    every: Whole = Field(10, ge=1)  # evaluate after every k-th optimizer step (and the last)
    batches: Whole = Field(2, ge=1)  # the fixed subsample: this many batches, drawn once with the seed
    fraction: float = Field(0.1, gt=0, lt=1)  # held out from the training set when no kwargs are given
    kwargs: dict[str, Any] | None = None  # else: a named split, e.g. {train: false}, merged into data.kwargs


class SweepSpec(_Strict):
    start_lr: float = Field(1e-7, gt=0)
    end_lr: float = Field(10.0, gt=0)
    num_iter: Whole = Field(100, ge=2)
    mode: Literal["exp", "linear"] = "exp"
    smoothing: float = Field(0.98, ge=0, lt=1)
    diverge_threshold: float = Field(4.0, gt=1)
    accumulation_steps: Whole = Field(1, ge=1)
    clip_grad_norm: float | None = Field(None, gt=0)  # once per optimizer step, after accumulation (and unscaling)
    clip_grad_value: float | None = Field(None, gt=0)
    train_mode: Literal["keep", "all"] = "keep"  # keep: modules in eval mode at the start stay in eval mode
    snapshot: Literal["memory", "disk"] = "memory"
    val: ValSpec | None = None  # validation-loss mode (off by default)
    repeats: Whole = Field(1, ge=1)  # range tests from the same start with different data order, combined

    @model_validator(mode="after")
    def _ordered(self) -> SweepSpec:
        if self.start_lr >= self.end_lr:
            raise ValueError(f"start_lr ({self.start_lr:g}) must be below end_lr ({self.end_lr:g})")
        return self


class PerformanceSpec(_Strict):
    channels_last: Literal["auto", True, False] = "auto"  # auto: on CUDA, for models with 2-D convolutions
    cudnn_benchmark: bool = True  # cuDNN autotune on CUDA: fastest kernels, tiny run-to-run differences
    device_batches: bool = False  # load the sweep's batches onto the device before it starts
    sync_every: Whole | None = Field(None, ge=1)  # steps between loss reads (null: 16, or on a CPU every 20 ms)


class VerifySpec(_Strict):
    # after the sweep: `candidates` short trainings around the rule's answer, `spacing_decades` apart
    candidates: Whole = Field(3, ge=2)
    spacing_decades: float = Field(0.5, gt=0)  # as measured in benchmarks/suggestion_quality.py
    num_steps: Whole | None = Field(None, ge=1)  # steps per candidate (null: sweep.num_iter)


class SuggestSpec(_Strict):
    # auto: the schedule-aware rule; or one classic method
    method: Literal["auto", "onecycle", "constant", "steepest", "valley", "minimum"] = "auto"
    schedule: Literal["onecycle", "constant"] = "onecycle"  # what suggested_lr is for
    verify: VerifySpec | None = None  # off by default: see README, "Verification"


class OutputSpec(_Strict):
    dir: str | None = None


class Spec(_Strict):
    seed: Whole = Field(0, ge=0)
    device: str = "auto"
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    model: ModelSpec
    data: DataSpec = Field(default_factory=DataSpec)
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec)
    loss: LossSpec | None = Field(default_factory=LossSpec)  # null: the model returns its own loss
    step: str | None = None  # "package.module:function" called as function(model, batch, loss_fn) -> loss
    sweep: SweepSpec = Field(default_factory=SweepSpec)
    performance: PerformanceSpec = Field(default_factory=PerformanceSpec)
    suggest: SuggestSpec = Field(default_factory=SuggestSpec)
    output: OutputSpec = Field(default_factory=OutputSpec)
    # Dotted spec keys to lists of values: every combination runs as its own range test.
    grid: dict[str, list[Any]] | None = None

    @field_validator("grid")
    @classmethod
    def _grid(cls, grid: dict[str, list[Any]] | None) -> dict[str, list[Any]] | None:
        for key, values in (grid or {}).items():
            if not values:
                raise ValueError(f"grid.{_shown(key)} needs at least one value")
            if key.split(".")[0] in ("grid", "output"):
                raise ValueError(f"grid.{_shown(key)}: {key.split('.')[0]} cannot vary within one run")
        return grid

    @model_validator(mode="after")
    def _repeats_need_shuffle(self) -> Spec:
        if self.sweep.repeats > 1 and not self.data.shuffle:
            raise ValueError(f"sweep.repeats: {self.sweep.repeats} repeats differ only in data order, but data.shuffle is "
                             "false, so they would all be the same sweep; set data.shuffle: true or sweep.repeats: 1")
        return self

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not DEVICE_PATTERN.match(value):
            raise ValueError(f"device {value!r} is not one of auto, cpu, cuda, cuda:N, mps")
        return value


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


def load_spec(path: str | Path, overrides: list[str] | tuple[str, ...] = (), *, check_targets: bool = True,
              on_targets: Callable[[], None] | None = None) -> LoadedSpec:
    """Read, override and validate a spec; raise SpecError listing every problem found.

    Keys and types are checked first, without torch; names and kwargs against signatures (which import
    torch) once those are right. `on_targets()` is called just before that second check.
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
    spec = None
    try:
        spec = Spec.model_validate(raw)
    except ValidationError as exc:
        problems.extend(_pydantic_problems(exc, path, lines, overridden))
    search_beside(path)
    # Names and signatures need torch (seconds to import): checked once keys and types are right, so a
    # typo is reported at once; when torch is loaded already (a Python session) checking them costs nothing.
    check_targets = check_targets and ((spec is not None and not problems) or "torch" in sys.modules)
    if check_targets and on_targets is not None:
        on_targets()
    if check_targets:
        from .registry import check_targets as _check  # imports torch: only when asked

        for key, what, fix in _check(raw):
            problems.append(Problem(_where(path, lines, key, overridden), what, fix))
    variants = _grid_specs(raw, spec, path, lines, problems, check_targets) if spec is not None else []
    if problems or spec is None:
        raise SpecError(_dedupe(problems))
    return LoadedSpec(spec=spec, path=path, lines=lines, overridden=overridden, variants=variants)


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
            try:
                variants.append((overrides, Spec.model_validate(variant)))
            except ValidationError as exc:
                here += [(tuple(e["loc"]), e["msg"].removeprefix("Value error, "), _fix_for(e["type"]))
                         for e in exc.errors(include_url=False)]
            if check_targets:
                from .registry import check_targets as _check

                here += _check(variant)
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
    return tuple(int(p) if p.strip().isdigit() else p.strip() for p in dotted.split("."))


def search_beside(path: Path) -> None:
    """Let import paths in a spec name modules that sit beside it, from any working directory (after the cwd)."""
    folder = str(path.resolve().parent)
    if folder not in sys.path:
        sys.path.append(folder)


def grid_variants(grid: dict[str, list[Any]] | None) -> list[dict[str, Any]]:
    """The cartesian product of a grid as a list of {dotted key: value}; [{}] without a grid."""
    if not grid:
        return [{}]
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def variant_label(overrides: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in overrides.items()) or "base"


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
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
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
            message = err["msg"].removeprefix("Value error, ")
            keyed = re.match(r"([a-z_]+(?:\.[a-z_]+)+): (.*)", message) if not loc else None
            if keyed:  # a check across keys names the key it is about: "sweep.repeats: ..."
                loc, message = tuple(keyed.group(1).split(".")), keyed.group(2)
            value = err.get("input")
            shown = f" (got {value!r})" if not isinstance(value, (dict, list)) and kind != "value_error" else ""
            problems.append(Problem(_where(path, lines, loc, overridden), f"{message}{shown}", _fix_for(kind)))
    return problems


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


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's complaint without its '<unicode string>' and excerpts: the problem, and where its context began."""
    problem = getattr(exc, "problem", None)
    if not problem:
        return _first_line(exc)
    context, mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context and mark is not None:
        return f"{problem} ({context} that starts at line {mark.line + 1}, column {mark.column + 1})"
    return f"{problem}{f' ({context})' if context else ''}"


def _shown(text: str) -> str:
    """Text as it can stand in a one-line message: as it is if printable, else its repr (a key may hold a newline)."""
    return text if text.isprintable() else repr(text)


def _first_line(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text[:200]
