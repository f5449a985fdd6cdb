"""The spec contract (DESIGN.md section 2): loading, defaults, strict keys, errors with file:line and key path, --set."""

import sys

import pytest
import torch
import yaml

from lrfind_cli.errors import EXIT_USAGE, SpecError
from lrfind_cli.registry import resolve_model, resolve_optimizer
from lrfind_cli.spec import apply_override, load_spec

MODEL = "tests.models:tiny_mlp"


def spec_error(path, overrides=(), **kwargs) -> SpecError:
    with pytest.raises(SpecError) as info:
        load_spec(path, overrides, **kwargs)
    return info.value


def only_problem(error: SpecError) -> str:
    assert len(error.problems) == 1, str(error)
    return str(error.problems[0])


# ---- a valid spec -------------------------------------------------------------------------------


def test_minimal_spec_gets_the_contract_defaults(cli_write_spec):
    path = cli_write_spec(f"model: {{name: '{MODEL}'}}\n")

    loaded = load_spec(path)

    spec = loaded.spec
    assert loaded.path == path
    assert (spec.seed, spec.device, spec.precision) == (0, "auto", "fp32")
    assert spec.model.model_dump() == {"name": MODEL, "kwargs": {}, "checkpoint": None, "strict": True, "trained": None}
    assert (spec.data.name, spec.data.kwargs, spec.data.transforms) == ("synthetic", {}, None)
    assert (spec.data.batch_size, spec.data.num_workers) == (128, 0)
    assert (spec.optimizer.name, spec.optimizer.kwargs) == ("SGD", {})
    assert (spec.loss.name, spec.loss.kwargs) == ("CrossEntropyLoss", {})
    sweep = spec.sweep
    assert (sweep.start_lr, sweep.end_lr, sweep.num_iter, sweep.mode) == (1e-7, 10.0, 100, "exp")
    assert (sweep.smoothing, sweep.diverge_threshold, sweep.accumulation_steps) == (0.98, 4.0, 1)
    assert spec.suggest.method == "auto"
    assert spec.output.dir is None


def test_exponent_numbers_that_pyyaml_reads_as_strings_are_accepted_as_floats(cli_write_spec):
    text = f"""
    model: {{name: '{MODEL}'}}
    sweep:
      start_lr: 1e-4
      end_lr: 1e1
      diverge_threshold: 5e0
    """
    path = cli_write_spec(text)
    assert yaml.safe_load(path.read_text())["sweep"]["start_lr"] == "1e-4"  # the reason lax mode is needed

    sweep = load_spec(path).spec.sweep

    assert (sweep.start_lr, sweep.end_lr, sweep.diverge_threshold) == (1e-4, 10.0, 5.0)
    assert all(isinstance(v, float) for v in (sweep.start_lr, sweep.end_lr, sweep.diverge_threshold))


def test_spec_error_is_a_usage_error():
    assert SpecError([]).exit_code == EXIT_USAGE == 2


# ---- unknown keys: key path, file:LINE, close match ---------------------------------------------

MISSPELLED = [
    # (yaml body after the model line, key path, line, the key it should have been)
    ("devic: cpu\n", "devic", 2, "device"),
    ("sweep:\n  start_lr: 1.0e-5\n  num_iters: 50\n", "sweep.num_iters", 4, "num_iter"),
    ("optimizer:\n  name: SGD\n  kwarg: {momentum: 0.9}\n", "optimizer.kwarg", 4, "kwargs"),
    ("data:\n  name: synthetic\n  batchsize: 32\n", "data.batchsize", 4, "batch_size"),
    ("suggest: {methd: valley}\n", "suggest.methd", 2, "method"),
    ("data:\n  transforms:\n    - name: RandomCrop\n      kwarg: {size: 4}\n", "data.transforms.0.kwarg", 5, "kwargs"),
]


@pytest.mark.parametrize(("body", "keypath", "line", "meant"), MISSPELLED, ids=[m[1] for m in MISSPELLED])
def test_misspelled_key_is_an_error_naming_key_path_file_line_and_close_match(cli_write_spec, body, keypath, line, meant):
    path = cli_write_spec(f"model: {{name: '{MODEL}'}}\n{body}")

    error = spec_error(path, check_targets=False)

    message = only_problem(error)
    assert f"{path}:{line} {keypath}:" in message
    assert f"unknown key {keypath.rsplit('.', 1)[-1]!r}" in message
    assert f"did you mean {meant!r}" in message


def test_misspelled_model_key_is_reported_at_its_line_even_with_nothing_close(cli_write_spec):
    path = cli_write_spec(f"""
    seed: 1
    model:
      name: '{MODEL}'
      zzzzz: 1
    """)

    message = only_problem(spec_error(path, check_targets=False))

    assert f"{path}:4 model.zzzzz:" in message
    assert "valid keys here: name, kwargs, checkpoint" in message


def test_every_problem_in_one_file_is_reported_in_one_error(cli_write_spec):
    path = cli_write_spec(f"""
    seed: 0
    model:
      name: '{MODEL}'
    data:
      batchsize: 32
    optimizer:
      name: Adamm
      kwarg: {{momentum: 0.9}}
    sweep:
      num_iters: 10
      smoothing: 2
    devic: cpu
    """)

    error = spec_error(path)

    text = str(error)
    expected = [
        f"{path}:5 data.batchsize:",
        f"{path}:7 optimizer.name:",
        f"{path}:8 optimizer.kwarg:",
        f"{path}:10 sweep.num_iters:",
        f"{path}:11 sweep.smoothing:",
        f"{path}:12 devic:",
    ]
    assert len(error.problems) == len(expected), text
    for where in expected:
        assert where in text
    assert len(text.splitlines()) == len(expected)  # one line per problem


# ---- wrong values ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ("seed: abc\n", ":2 seed:"),
        ("data: {batch_size: 1.5}\n", ":2 data.batch_size:"),
        ("sweep:\n  num_iter: many\n", ":3 sweep.num_iter:"),
        ("data:\n  shuffle: maybe\n", ":3 data.shuffle:"),
        ("data:\n  kwargs: [1, 2]\n", ":3 data.kwargs:"),
        ("data:\n  transforms: 5\n", ":3 data.transforms:"),
        ("sweep: fast\n", ":2 sweep:"),
        ("sweep: {mode: cosine}\n", ":2 sweep.mode:"),
    ],
    ids=["seed-str", "batch-float", "num_iter-str", "bool", "kwargs-list", "transforms-int", "section-str", "mode"],
)
def test_wrong_type_is_an_error_at_its_key_and_line(cli_write_spec, body, where):
    path = cli_write_spec(f"model: {{name: '{MODEL}'}}\n{body}")

    message = only_problem(spec_error(path, check_targets=False))

    assert message.startswith(f"{path}{where}")


def test_missing_model_section_is_an_error(cli_write_spec):
    path = cli_write_spec("seed: 1\n")

    message = only_problem(spec_error(path, check_targets=False))

    assert "model" in message and "missing" in message


@pytest.mark.parametrize(("start", "end"), [(1.0, 0.1), (0.5, 0.5)], ids=["above", "equal"])
def test_start_lr_not_below_end_lr_is_an_error(cli_write_spec, start, end):
    path = cli_write_spec(f"model: {{name: '{MODEL}'}}\nsweep:\n  start_lr: {start}\n  end_lr: {end}\n")

    message = only_problem(spec_error(path, check_targets=False))

    assert f"{path}:2 sweep" in message
    assert "start_lr" in message and "end_lr" in message


@pytest.mark.parametrize("num_iter", [1, 0, -5])
def test_fewer_than_two_iterations_is_an_error(cli_write_spec, num_iter):
    path = cli_write_spec(f"model: {{name: '{MODEL}'}}\nsweep: {{num_iter: {num_iter}}}\n")

    message = only_problem(spec_error(path, check_targets=False))

    assert f"{path}:2 sweep.num_iter:" in message
    assert "2" in message


@pytest.mark.parametrize("smoothing", [-0.1, 1, 1.0, 1.5])
def test_smoothing_outside_zero_to_one_is_an_error(cli_write_spec, smoothing):
    path = cli_write_spec(f"model: {{name: '{MODEL}'}}\nsweep: {{smoothing: {smoothing}}}\n")

    assert f"{path}:2 sweep.smoothing:" in only_problem(spec_error(path, check_targets=False))


@pytest.mark.parametrize("smoothing", [0, 0.5, 0.999])
def test_smoothing_in_zero_to_one_is_accepted(cli_write_spec, smoothing):
    path = cli_write_spec(f"model: {{name: '{MODEL}'}}\nsweep: {{smoothing: {smoothing}}}\n")

    assert load_spec(path, check_targets=False).spec.sweep.smoothing == smoothing


@pytest.mark.parametrize(
    ("key", "value"),
    [("start_lr", 0), ("start_lr", -1.0e-3), ("end_lr", 0), ("end_lr", -10)],
)
def test_zero_or_negative_learning_rate_is_an_error(cli_write_spec, key, value):
    path = cli_write_spec(f"model: {{name: '{MODEL}'}}\nsweep:\n  {key}: {value}\n")

    error = spec_error(path, check_targets=False)

    assert f"{path}:3 sweep.{key}:" in str(error)


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "cuda:", "CUDA0", "tpu", "cpu "])
def test_unknown_device_string_is_an_error(cli_write_spec, device):
    path = cli_write_spec(f"model: {{name: '{MODEL}'}}\ndevice: '{device}'\n")

    message = only_problem(spec_error(path, check_targets=False))

    assert f"{path}:2 device:" in message
    assert "auto, cpu, cuda, cuda:N, mps" in message


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:0", "cuda:3", "mps"])
def test_device_strings_of_the_contract_are_accepted_without_touching_a_device(cli_write_spec, device):
    path = cli_write_spec(f"model: {{name: '{MODEL}'}}\ndevice: '{device}'\n")

    assert load_spec(path, check_targets=False).spec.device == device


@pytest.mark.parametrize("precision", ["fp8", "float32", "16", "FP32"])
def test_unknown_precision_is_an_error(cli_write_spec, precision):
    path = cli_write_spec(f"model: {{name: '{MODEL}'}}\nprecision: '{precision}'\n")

    message = only_problem(spec_error(path, check_targets=False))

    assert f"{path}:2 precision:" in message
    assert "fp32" in message and "bf16" in message and "fp16" in message


def test_lr_among_optimizer_kwargs_is_refused_because_the_sweep_sets_it(cli_write_spec):
    path = cli_write_spec(f"model: {{name: '{MODEL}'}}\noptimizer:\n  kwargs:\n    momentum: 0.9\n    lr: 0.1\n")

    message = only_problem(spec_error(path))

    assert f"{path}:5 optimizer.kwargs.lr:" in message  # the lr's own line
    assert "start_lr" in message


def test_lr_among_a_param_groups_kwargs_is_refused_at_its_line(cli_write_spec):
    path = cli_write_spec(f"""
    model: {{name: '{MODEL}'}}
    optimizer:
      param_groups:
        - params: '0.*'
          kwargs:
            lr: 0.1
    """)

    message = only_problem(spec_error(path))

    assert f"{path}:6 optimizer.param_groups.0.kwargs.lr: a group's lr follows the sweep" in message


# ---- files that are not a spec --------------------------------------------------------------------


def test_malformed_yaml_reports_the_line(cli_write_spec):
    path = cli_write_spec("seed: 0\nmodel:\n  name: x\n   kwargs: [1,\n")

    message = only_problem(spec_error(path))

    assert message.startswith(f"{path}:4:")
    assert "invalid YAML" in message


def test_tab_indentation_reports_the_line(cli_write_spec):
    path = cli_write_spec("seed: 0\nmodel:\n\tname: x\n")

    assert only_problem(spec_error(path)).startswith(f"{path}:3:")


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"], ids=["empty", "blank", "comment"])
def test_empty_file_is_an_error(cli_write_spec, text):
    path = cli_write_spec(text)

    message = only_problem(spec_error(path))

    assert str(path) in message and "empty" in message


@pytest.mark.parametrize(("text", "found"), [("- model\n- data\n", "list"), ("just words\n", "str")])
def test_top_level_that_is_not_a_mapping_is_an_error(cli_write_spec, text, found):
    path = cli_write_spec(text)

    message = only_problem(spec_error(path))

    assert f"{path}:1" in message
    assert "mapping" in message and found in message


def test_missing_file_is_an_error(tmp_path):
    path = tmp_path / "nope.yaml"

    message = only_problem(spec_error(path))

    assert str(path) in message and "not found" in message


# ---- --set overrides ------------------------------------------------------------------------------


def test_override_sets_a_nested_key_and_keeps_its_siblings():
    raw = {"optimizer": {"name": "SGD", "kwargs": {"momentum": 0.9, "weight_decay": 0.1}}}

    assert apply_override(raw, "optimizer.kwargs.momentum=0.5") is None

    assert raw == {"optimizer": {"name": "SGD", "kwargs": {"momentum": 0.5, "weight_decay": 0.1}}}


def test_override_splits_on_the_first_equals_sign():
    raw = {}

    assert apply_override(raw, "output.dir=runs/a=b==c") is None

    assert raw == {"output": {"dir": "runs/a=b==c"}}


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("50", 50),
        ("0.5", 0.5),
        ("false", False),
        ("null", None),
        ("", None),
        ("[1, 2]", [1, 2]),
        ("{a: 1, b: x}", {"a": 1, "b": "x"}),
        ("'123'", "123"),
        ("AdamW", "AdamW"),
    ],
)
def test_override_value_is_parsed_as_yaml(value, parsed):
    raw = {}

    assert apply_override(raw, f"key={value}") is None

    assert raw == {"key": parsed}


def test_override_creates_missing_intermediate_mappings():
    raw = {"seed": 0}

    assert apply_override(raw, "data.kwargs.num_samples=64") is None

    assert raw == {"seed": 0, "data": {"kwargs": {"num_samples": 64}}}


@pytest.mark.parametrize("item", ["sweep.num_iter", "sweep.num_iter 50", "=50", "  =50"])
def test_override_without_a_key_and_equals_sign_is_a_problem(item):
    raw = {"seed": 0}

    problem = apply_override(raw, item)

    assert problem is not None
    assert problem.where == f"--set {item}"
    assert "KEY=VALUE" in problem.what
    assert raw == {"seed": 0}


@pytest.mark.parametrize("item", ["a..b=1", ".a=1", "a.=1"])
def test_override_with_an_empty_key_part_is_a_problem(item):
    raw = {"seed": 0}

    problem = apply_override(raw, item)

    assert problem is not None and "empty part" in problem.what
    assert raw == {"seed": 0}


def test_override_through_a_scalar_is_a_problem_and_changes_nothing():
    raw = {"seed": 0, "sweep": {"num_iter": 5}}

    problem = apply_override(raw, "sweep.num_iter.max=3")

    assert problem is not None
    assert "sweep.num_iter is a int, not a mapping" in problem.what
    assert raw == {"seed": 0, "sweep": {"num_iter": 5}}


def test_override_with_invalid_yaml_value_is_a_problem():
    problem = apply_override({}, "model.name=: bad: [")

    assert problem is not None and "not valid YAML" in problem.what


def test_overrides_apply_before_validation(cli_write_spec):
    path = cli_write_spec(f"model: {{name: '{MODEL}'}}\nsweep: {{num_iter: 1}}\n")

    spec = load_spec(path, ["sweep.num_iter=7", "sweep.start_lr=1e-5", "optimizer.kwargs.momentum=0.8"]).spec

    assert spec.sweep.num_iter == 7
    assert spec.sweep.start_lr == 1e-5
    assert spec.optimizer.kwargs == {"momentum": 0.8}


def test_overridden_misspelled_key_is_reported_with_a_close_match(cli_write_spec):
    path = cli_write_spec(f"model: {{name: '{MODEL}'}}\n")

    message = only_problem(spec_error(path, ["sweep.num_iters=5"]))

    assert "sweep.num_iters" in message and "did you mean 'num_iter'" in message


def test_bad_overrides_are_all_reported_with_the_other_problems(cli_write_spec):
    path = cli_write_spec(f"model: {{name: '{MODEL}'}}\nseed: -1\n")

    error = spec_error(path, ["noequals", "a..b=1", "seed.x=2"])

    wheres = [p.where for p in error.problems]
    assert wheres[:3] == ["--set noequals", "--set a..b=1", "--set seed.x=2"]
    assert any(w.startswith(f"{path}:2 seed") for w in wheres[3:])


# ---- names resolved against torch / torchvision -----------------------------------------------------


def test_unknown_model_name_suggests_a_close_match(cli_write_spec):
    path = cli_write_spec("model:\n  name: resnet81\n")

    message = only_problem(spec_error(path))

    assert f"{path}:2 model.name:" in message
    assert "unknown model 'resnet81'" in message
    assert "'resnet18'" in message


@pytest.mark.parametrize("name", ["adamw", "ADAMW", "AdamW"])
def test_optimizer_name_is_case_insensitive(cli_write_spec, name):
    path = cli_write_spec(f"model: {{name: '{MODEL}'}}\noptimizer: {{name: {name}}}\n")

    loaded = load_spec(path)

    assert resolve_optimizer(loaded.spec.optimizer.name) is torch.optim.AdamW


def test_unknown_optimizer_name_suggests_a_close_match(cli_write_spec):
    path = cli_write_spec(f"model: {{name: '{MODEL}'}}\noptimizer:\n  name: Adamm\n")

    message = only_problem(spec_error(path))

    assert f"{path}:3 optimizer.name:" in message
    assert "unknown optimizer 'Adamm'" in message
    assert "did you mean 'Adam'" in message


def test_unknown_loss_name_suggests_a_close_match(cli_write_spec):
    path = cli_write_spec(f"model: {{name: '{MODEL}'}}\nloss: {{name: CrossEntropyLos}}\n")

    message = only_problem(spec_error(path))

    assert f"{path}:2 loss.name:" in message and "'CrossEntropyLoss'" in message


def test_unknown_dataset_name_suggests_a_close_match(cli_write_spec):
    path = cli_write_spec(f"model: {{name: '{MODEL}'}}\ndata: {{name: synthetik}}\n")

    message = only_problem(spec_error(path))

    assert f"{path}:2 data.name:" in message and "did you mean 'synthetic'" in message


def test_unknown_transform_name_suggests_a_close_match_at_its_list_item(cli_write_spec):
    path = cli_write_spec(f"""
    model: {{name: '{MODEL}'}}
    data:
      transforms:
        - name: RandomCrop
          kwargs: {{size: 4}}
        - name: RandomHorizontalFlp
    """)

    message = only_problem(spec_error(path))

    assert f"{path}:6 data.transforms.1.name:" in message
    assert "'RandomHorizontalFlip'" in message


def test_optimizer_kwarg_the_optimizer_does_not_accept_suggests_a_close_match(cli_write_spec):
    path = cli_write_spec(f"model: {{name: '{MODEL}'}}\noptimizer:\n  name: SGD\n  kwargs: {{momentun: 0.9}}\n")

    message = only_problem(spec_error(path))

    assert f"{path}:4 optimizer.kwargs.momentun:" in message
    assert "did you mean 'momentum'" in message


def test_model_kwarg_the_builder_does_not_accept_suggests_a_close_match(cli_write_spec):
    path = cli_write_spec("model:\n  name: resnet18\n  kwargs:\n    num_clases: 10\n")

    message = only_problem(spec_error(path))

    assert f"{path}:4 model.kwargs.num_clases:" in message
    assert "did you mean 'num_classes'" in message


def test_model_kwargs_the_builder_accepts_pass(cli_write_spec):
    path = cli_write_spec("model:\n  name: resnet18\n  kwargs: {num_classes: 10, weights: null}\n")

    assert load_spec(path).spec.model.kwargs == {"num_classes": 10, "weights": None}


def test_transform_kwarg_not_accepted_suggests_a_close_match(cli_write_spec):
    path = cli_write_spec(f"""
    model: {{name: '{MODEL}'}}
    data:
      transforms:
        - name: RandomCrop
          kwargs: {{size: 4, paddng: 1}}
    """)

    message = only_problem(spec_error(path))

    assert "data.transforms.0.kwargs.paddng:" in message and "did you mean 'padding'" in message


def test_dataset_without_a_required_argument_is_an_error(cli_write_spec):
    path = cli_write_spec(f"model: {{name: '{MODEL}'}}\ndata:\n  name: CIFAR10\n")

    message = only_problem(spec_error(path))

    assert "data.kwargs" in message
    assert "CIFAR10 needs the argument 'root'" in message


def test_dataset_with_its_required_argument_validates_without_downloading(cli_write_spec, tmp_path):
    root = tmp_path / "data"
    path = cli_write_spec(f"model: {{name: '{MODEL}'}}\ndata:\n  name: cifar10\n  kwargs: {{root: '{root}'}}\n")

    load_spec(path)

    assert not root.exists()


def test_loss_function_by_import_path_validates_without_demanding_its_call_arguments(cli_write_spec):
    # A loss function is called as loss(output, target) each step, so input/target are not spec kwargs.
    path = cli_write_spec(f"model: {{name: '{MODEL}'}}\nloss:\n  name: 'torch.nn.functional:cross_entropy'\n")

    assert load_spec(path).spec.loss.name == "torch.nn.functional:cross_entropy"


def test_loss_function_kwarg_it_does_not_accept_is_still_an_error(cli_write_spec):
    text = f"model: {{name: '{MODEL}'}}\nloss:\n  name: 'torch.nn.functional:cross_entropy'\n  kwargs: {{label_smoothin: 0.1}}\n"
    path = cli_write_spec(text)

    message = only_problem(spec_error(path))

    assert f"{path}:4 loss.kwargs.label_smoothin:" in message and "did you mean 'label_smoothing'" in message


@pytest.mark.parametrize(("body", "where", "what"), [
    ("loss:\n  nam: HuberLoss\n  kwargs: {delta: 1.0}\n", ":3 loss.nam:", "unknown key 'nam'"),
    ("data:\n  name: MNIST\n  kwarg: {root: data}\n", ":4 data.kwarg:", "unknown key 'kwarg'"),
    ("optimizer:\n  name: Adam\n  kwargs: {betas: [0.9, 0.99]}\n  param_groups: [{params: '0.*', lr_scal: 2}]\n",
     ":5 optimizer.param_groups.0.lr_scal:", "unknown key 'lr_scal'"),
], ids=["name-misspelled", "kwargs-misspelled", "group-key-misspelled"])
def test_a_section_with_a_wrong_key_is_not_checked_against_a_target_it_may_not_mean(cli_write_spec, body, where, what):
    # the loss is not CrossEntropyLoss refusing `delta`, MNIST is not missing its `root`: only the misspelled key is wrong
    path = cli_write_spec(f"model: {{name: '{MODEL}'}}\n{body}")

    message = only_problem(spec_error(path, complete=True))

    assert f"{path}{where} {what}" in message


def test_a_wrong_key_inside_a_param_group_leaves_the_optimizers_kwargs_checked(cli_write_spec):
    path = cli_write_spec(f"""
    model: {{name: '{MODEL}'}}
    optimizer:
      name: Adam
      kwargs: {{betaz: [0.9, 0.99]}}
      param_groups: [{{params: '0.*', lr_scal: 2}}]
    """)

    error = spec_error(path, complete=True)

    assert [str(p).split(": ")[0] for p in error.problems] == [f"{path}:5 optimizer.param_groups.0.lr_scal",
                                                               f"{path}:4 optimizer.kwargs.betaz"]


def test_names_are_not_resolved_when_targets_are_not_checked(cli_write_spec):
    path = cli_write_spec("model: {name: resnet81}\noptimizer: {name: Adamm}\n")

    assert load_spec(path, check_targets=False).spec.optimizer.name == "Adamm"


# ---- import paths -----------------------------------------------------------------------------------


def test_import_path_to_the_test_model_resolves():
    import tests.models

    assert resolve_model(MODEL) is tests.models.tiny_mlp


def test_spec_naming_a_missing_module_is_a_clear_problem(cli_write_spec):
    path = cli_write_spec("model:\n  name: 'no_such_module_for_lrfind:build'\n")

    message = only_problem(spec_error(path))

    assert f"{path}:2 model.name:" in message
    assert "module 'no_such_module_for_lrfind' not found" in message


def test_spec_naming_a_missing_attribute_is_a_clear_problem_with_a_close_match(cli_write_spec):
    path = cli_write_spec("model:\n  name: 'tests.models:tiny_mlpp'\n")

    message = only_problem(spec_error(path))

    assert f"{path}:2 model.name:" in message
    assert "has no attribute 'tiny_mlpp'" in message and "did you mean 'tiny_mlp'" in message


@pytest.mark.parametrize("name", ["tests.models:", ":tiny_mlp"])
def test_malformed_import_path_is_a_clear_problem(cli_write_spec, name):
    path = cli_write_spec(f"model:\n  name: '{name}'\n")

    assert "must look like 'package.module:attribute'" in only_problem(spec_error(path))


def test_import_path_to_something_not_callable_is_a_clear_problem(cli_write_spec):
    path = cli_write_spec("model:\n  name: 'os:sep'\n")

    assert "not something that can be called" in only_problem(spec_error(path))


def test_module_beside_the_spec_is_found_from_the_current_directory(cli_user_module, cli_write_spec):
    name = cli_user_module("lrfind_user_models", """
        import torch

        def small(width: int = 4):
            return torch.nn.Linear(width, 2)
    """)
    path = cli_write_spec(f"model:\n  name: '{name}:small'\n  kwargs: {{width: 8}}\n")

    assert load_spec(path).spec.model.kwargs == {"width": 8}


def test_module_that_raises_on_import_is_a_clear_problem_naming_its_line(cli_user_module, cli_write_spec, tmp_path):
    name = cli_user_module("lrfind_boom_on_import", """
        VALUE = 1
        raise RuntimeError("boom while importing")
    """)
    path = cli_write_spec(f"model:\n  name: '{name}:build'\n")

    message = only_problem(spec_error(path))

    assert f"{path}:2 model.name:" in message
    assert f"importing '{name}' raised RuntimeError: boom while importing" in message
    assert f"{tmp_path / (name + '.py')}:2" in message
    assert name not in sys.modules


def test_module_whose_own_import_is_missing_names_the_missing_package(cli_user_module, cli_write_spec):
    name = cli_user_module("lrfind_needs_a_dependency", "import no_such_dependency_for_lrfind\n")
    path = cli_write_spec(f"model:\n  name: '{name}:build'\n")

    message = only_problem(spec_error(path))

    assert f"importing '{name}' failed" in message
    assert "no_such_dependency_for_lrfind" in message


def test_import_paths_from_the_cwd_and_beside_the_spec_leave_sys_path_as_it_was(tmp_path, monkeypatch):
    import sys

    from lrfind_cli.registry import import_object
    from lrfind_cli.searchpath import beside

    monkeypatch.setattr(sys, "path", list(sys.path))
    (tmp_path / "cwd_side_mod.py").write_text("VALUE = 3\n", encoding="utf-8")
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "spec_side_mod.py").write_text("VALUE = 4\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    before = list(sys.path)
    try:
        assert import_object("cwd_side_mod:VALUE") == 3
        assert sys.path == before
        with beside(tmp_path / "specs" / "spec.yaml"):
            assert import_object("spec_side_mod:VALUE") == 4
        assert sys.path == before
    finally:
        sys.modules.pop("cwd_side_mod", None)
        sys.modules.pop("spec_side_mod", None)
