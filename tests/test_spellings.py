"""Hydra's `_target_` and Lightning CLI's `class_path`/`init_args` are other spellings of `name`/`kwargs`."""

import json

import pytest

from lrfind_cli.spec import load_spec
from tests.test_cli import error_lines, invoke

HYDRA = """
model:
  _target_: lrfind_cli.models.tiny_mlp
  in_features: 48
  num_classes: 4
data:
  _target_: lrfind_cli.data.SyntheticImages
  num_samples: 64
  num_classes: 4
  height: 4
  width: 4
  batch_size: 16
optimizer:
  _target_: torch.optim.SGD
  _partial_: true
  momentum: 0.9
loss:
  _target_: torch.nn.CrossEntropyLoss
  label_smoothing: 0.1
sweep: {num_iter: 6, start_lr: 1.0e-4}
"""

LIGHTNING = """
model:
  class_path: lrfind_cli.models.tiny_mlp
  init_args: {in_features: 48, num_classes: 4}
data:
  class_path: lrfind_cli.data.SyntheticImages
  init_args: {num_samples: 64, num_classes: 4, height: 4, width: 4}
  batch_size: 16
optimizer:
  class_path: torch.optim.SGD
  init_args:
    momentum: 0.9
loss:
  class_path: torch.nn.CrossEntropyLoss
  init_args: {label_smoothing: 0.1}
sweep: {num_iter: 6, start_lr: 1.0e-4}
"""

EXPECTED = {
    "model": {"name": "lrfind_cli.models:tiny_mlp", "kwargs": {"in_features": 48, "num_classes": 4}},
    "data": {"name": "lrfind_cli.data:SyntheticImages", "kwargs": {"num_samples": 64, "num_classes": 4, "height": 4, "width": 4},
             "batch_size": 16},
    "optimizer": {"name": "torch.optim:SGD", "kwargs": {"momentum": 0.9}},
    "loss": {"name": "torch.nn:CrossEntropyLoss", "kwargs": {"label_smoothing": 0.1}},
}


@pytest.mark.parametrize("text", [HYDRA, LIGHTNING], ids=["hydra", "lightning"])
def test_other_spellings_load_as_name_and_kwargs(cli_write_spec, text):
    spec = load_spec(cli_write_spec(text)).spec

    for section, expected in EXPECTED.items():
        got = getattr(spec, section).model_dump()
        assert {k: got[k] for k in expected} == expected, section


@pytest.mark.parametrize("text", [HYDRA, LIGHTNING], ids=["hydra", "lightning"])
def test_a_spec_in_another_spelling_runs(cli_runner, cli_write_spec, tmp_path, text):
    result = invoke(cli_runner, ["run", cli_write_spec(text), "--out", tmp_path / "out", "--json"])

    assert result.exit_code in (0, 3), result.stderr
    assert json.loads(result.stdout)["spec"]["optimizer"]["name"] == "torch.optim:SGD"


@pytest.mark.parametrize(("text", "old", "new", "line"), [
    (HYDRA, "momentum: 0.9", "momentun: 0.9",
     "15 optimizer.momentun: SGD does not accept the argument 'momentun' (did you mean 'momentum'?)"),
    (LIGHTNING, "momentum: 0.9", "momentun: 0.9", "11 optimizer.init_args.momentun: SGD does not accept the argument 'momentun' "
     "(did you mean 'momentum'?)"),
    (HYDRA, "torch.optim.SGD", "torch.optim.SGDD",
     "13 optimizer._target_: 'torch.optim' has no attribute 'SGDD' (did you mean 'SGD' or 'ASGD'?)"),
    (LIGHTNING, "torch.nn.CrossEntropyLoss", "torch.nn.CrossEntropyLos",
     "13 loss.class_path: 'torch.nn' has no attribute 'CrossEntropyLos' (did you mean 'CrossEntropyLoss' or "
     "'LinearCrossEntropyLoss' or 'LinearCrossEntropyOptions'?)"),
    (HYDRA, "batch_size: 16", "batch_size: -1", "11 data.batch_size: Input should be greater than or equal to 1 (got -1) "
     "(use a larger value)"),
    # an lr copied along with the block: at the lr's own line, not the block's
    (HYDRA, "momentum: 0.9", "momentum: 0.9\n  lr: 0.1",
     "16 optimizer.lr: the learning rate is what the sweep sets; remove 'lr' and use sweep.start_lr / sweep.end_lr"),
    (LIGHTNING, "momentum: 0.9", "momentum: 0.9\n    lr: 0.1",
     "12 optimizer.init_args.lr: the learning rate is what the sweep sets; remove 'lr' and use sweep.start_lr / sweep.end_lr"),
])
def test_errors_in_another_spelling_point_at_the_line_and_key_as_written(cli_runner, cli_write_spec, text, old, new, line):
    path = cli_write_spec(text.replace(old, new))

    result = invoke(cli_runner, ["validate", path])

    assert result.exit_code == 2
    assert error_lines(result.stderr) == [f"error: {path}:{line}"]


def test_name_and_target_together_are_refused(cli_runner, cli_write_spec):
    path = cli_write_spec(HYDRA.replace("  _target_: torch.optim.SGD\n", "  _target_: torch.optim.SGD\n  name: Adam\n"))

    result = invoke(cli_runner, ["validate", path])

    assert result.exit_code == 2
    assert error_lines(result.stderr) == [
        f"error: {path}:14 optimizer.name: 'name' cannot be combined with '_target_' (use either name + kwargs or _target_ + "
        "the arguments beside it)",
        f"error: {path}:16 optimizer.momentum: unknown key 'momentum' (valid keys here: name, kwargs, param_groups)"]


def test_hydra_keys_that_mean_something_else_are_refused(cli_runner, cli_write_spec):
    path = cli_write_spec(HYDRA.replace("  label_smoothing: 0.1\n", "  _args_: [1]\n"))

    result = invoke(cli_runner, ["validate", path])

    assert result.exit_code == 2
    assert error_lines(result.stderr) == [
        f"error: {path}:18 loss._args_: Hydra's '_args_' is not supported here (remove it: lrfind calls the target with "
        "keyword arguments)"]
