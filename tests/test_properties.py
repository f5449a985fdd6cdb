"""Property tests: no YAML document and no --set override makes lrfind crash, print a traceback or leave the contract.

`load_spec` either returns a spec or raises SpecError (never anything else), and `lrfind validate` exits 0 or 2
with every problem on its own `error:` line. Bounded: a few hundred examples in all, seconds on a CPU.
"""

import math
import os
import sys
import uuid

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from lrfind_cli.cli import app
from lrfind_cli.errors import SpecError
from lrfind_cli.spec import LoadedSpec, apply_override, load_spec

# LRFIND_PROPERTY_EXAMPLES raises the count for a deeper search (e.g. 1000 before a release).
SETTINGS = settings(max_examples=int(os.environ.get("LRFIND_PROPERTY_EXAMPLES", "60")), deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# A valid spec the mutations start from (the built-in synthetic set and a built-in model: nothing to import).
VALID = {
    "seed": 0,
    "device": "cpu",
    "model": {"name": "mlp_regressor", "kwargs": {"in_features": 8}},
    "data": {"name": "synthetic_tabular", "kwargs": {"num_samples": 64, "num_features": 8}, "batch_size": 16},
    "optimizer": {"name": "SGD", "kwargs": {"momentum": 0.9}},
    "loss": {"name": "MSELoss"},
    "sweep": {"start_lr": 1e-4, "end_lr": 1.0, "num_iter": 10},
}

# Every key path of the spec (and a few that do not exist), for mutations and overrides.
PATHS = [
    "seed", "device", "precision", "step", "grid", "model", "model.name", "model.kwargs", "model.kwargs.in_features",
    "model.checkpoint", "model.strict", "data", "data.name", "data.kwargs", "data.kwargs.num_samples", "data.transforms",
    "data.batch_size", "data.num_workers", "data.shuffle", "data.drop_last", "optimizer", "optimizer.name",
    "optimizer.kwargs", "optimizer.kwargs.momentum", "optimizer.kwargs.lr", "optimizer.param_groups", "loss", "loss.name",
    "loss.kwargs", "sweep", "sweep.start_lr", "sweep.end_lr", "sweep.num_iter", "sweep.mode", "sweep.smoothing",
    "sweep.diverge_threshold", "sweep.accumulation_steps", "sweep.snapshot", "sweep.val", "sweep.val.every",
    "sweep.val.fraction", "sweep.repeats", "performance", "performance.sync_every", "performance.channels_last",
    "suggest", "suggest.method", "suggest.schedule", "output", "output.dir", "nonsense", "model.nonsense",
    "sweep.val.nonsense",
]

# Names that resolve (or nearly do) without importing anything outside torch and torchvision.
NAMES = ["SGD", "adam", "Adamm", "MSELoss", "CrossEntropyLoss", "resnet18", "resnet181", "synthetic", "synthetic_tabular",
         "MNIST", "mlp_regressor", "ToDtype", "RandomHorizontalFlip", "", ":", "a:", ":b", "nowhere_mod_xyz:thing",
         "tests.models:tiny_mlp", "tests.models:nothing_here", "..relative:x", "lrfind_cli.data:SyntheticTabular"]

_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True), _text,
    st.sampled_from(NAMES), st.sampled_from(["1e-4", "0", "-1", "auto", "cuda:7", "fp16", "exp", "nan", ".inf"]),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.one_of(_text, st.sampled_from(PATHS)), inner,
                                                                         max_size=3)),
    max_leaves=8,
)


def _set(doc: dict, dotted: str, value) -> None:
    node = doc
    parts = dotted.split(".")
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = value


@st.composite
def mutated_specs(draw) -> dict:
    """The valid spec with a few keys set to arbitrary values (wrong types, nonsense names, nested junk)."""
    import copy

    doc = copy.deepcopy(VALID)
    for dotted, value in draw(st.lists(st.tuples(st.sampled_from(PATHS), _values), min_size=1, max_size=4)):
        _set(doc, dotted, value)
    return doc


def _write(directory, text: str):
    path = directory / f"spec-{uuid.uuid4().hex}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _dump(doc) -> str:
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


def _check_load(path, overrides=()) -> None:
    """load_spec returns a spec or raises SpecError whose every problem is one line."""
    try:
        loaded = load_spec(path, list(overrides))
    except SpecError as exc:
        assert exc.problems, "a SpecError must name at least one problem"
        for problem in exc.problems:
            assert "\n" not in str(problem) and "\r" not in str(problem), repr(str(problem))
    else:
        assert isinstance(loaded, LoadedSpec)


def _check_validate(runner, path, overrides=()) -> None:
    args = ["validate", str(path)]
    for item in overrides:
        args += ["--set", item]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys, "path", list(sys.path))
        result = runner.invoke(app, args)
    assert result.exit_code in (0, 2), (result.exit_code, result.stderr)
    assert isinstance(result.exception, (SystemExit, type(None))), repr(result.exception)
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    assert result.stdout == ""
    if result.exit_code == 2:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert lines and all(line.startswith("error: ") for line in lines), result.stderr


@pytest.fixture(scope="module")
def spec_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("properties")


@SETTINGS
@given(doc=_values)
def test_any_yaml_value_as_a_whole_spec_is_refused_or_accepted_cleanly(doc, spec_dir, cli_runner):
    path = _write(spec_dir, _dump(doc))
    _check_load(path)
    _check_validate(cli_runner, path)


@SETTINGS
@given(doc=mutated_specs())
def test_a_valid_spec_with_arbitrary_values_at_its_keys_never_crashes(doc, spec_dir, cli_runner):
    path = _write(spec_dir, _dump(doc))
    _check_load(path)
    _check_validate(cli_runner, path)


@SETTINGS
@given(text=st.text(st.characters(blacklist_categories=("Cs",)), max_size=200))
def test_any_text_as_a_spec_file_never_crashes(text, spec_dir, cli_runner):
    path = _write(spec_dir, text)
    _check_load(path)
    _check_validate(cli_runner, path)


@SETTINGS
@given(text=st.lists(st.sampled_from(["model:", "  name: SGD", "  kwargs: {a: 1}", "sweep: [", "- 1", "  - x", ": :", "? a",
                                      "&a x: *a", "*b", "!!str 3", "!!python/object:os.system x", "\t- y", "---", "...",
                                      "{", "}", "'", '"', "#", "%YAML 1.1", "<<: *a", "a: |", "  b", "x: !!binary AAAA"]),
                      max_size=8).map("\n".join))
def test_yaml_shaped_fragments_never_crash(text, spec_dir, cli_runner):
    path = _write(spec_dir, text)
    _check_load(path)
    _check_validate(cli_runner, path)


_override_values = st.one_of(_text, _values.map(lambda v: yaml.safe_dump(v, default_flow_style=True).strip()))
_overrides = st.one_of(
    _text,  # anything at all, with or without '='
    st.tuples(st.sampled_from(PATHS), _override_values).map(lambda kv: f"{kv[0]}={kv[1]}"),
    st.tuples(_text, _override_values).map(lambda kv: f"{kv[0]}={kv[1]}"),
)


@SETTINGS
@given(overrides=st.lists(_overrides, min_size=1, max_size=3))
def test_any_override_strings_never_crash(overrides, spec_dir, cli_runner):
    assume(all("\x00" not in o for o in overrides))  # argv cannot carry NUL
    path = _write(spec_dir, _dump(VALID))
    _check_load(path, overrides)
    _check_validate(cli_runner, path, overrides)


@SETTINGS
@given(item=_overrides, doc=_values)
def test_apply_override_returns_a_problem_or_sets_the_value(item, doc):
    raw = {"base": doc}
    problem = apply_override(raw, item)
    if problem is None:
        key = item.partition("=")[0]
        node = raw
        for part in [p.strip() for p in key.split(".")]:
            assert isinstance(node, dict) and part in node
            node = node[part]
    else:
        assert "\n" not in str(problem)


def test_the_valid_base_spec_validates(spec_dir, cli_runner):
    path = _write(spec_dir, _dump(VALID))
    loaded = load_spec(path)
    assert loaded.spec.sweep.num_iter == 10 and not math.isnan(loaded.spec.sweep.start_lr)
    _check_validate(cli_runner, path)
