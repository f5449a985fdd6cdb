"""`validate` checks what `run` would refuse once it builds, without training; `run` refuses the same at the same key.

Parameter-group globs are matched against the model built on the meta device (no weights read); a dataset that is
a stream (an IterableDataset) cannot be shuffled by a loader nor have a fraction held out (case 24 of
../shared/cases: data shorter than the sweep, without a length, endless or one-shot).
"""

import json

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from lrfind_cli import range_test
from lrfind_cli.engine import LoaderExhausted
from tests.test_cli import error_lines, invoke

STREAMS = '''
import torch
from torch.utils.data import IterableDataset

W = torch.randn(16, 1, generator=torch.Generator().manual_seed(0))


def _sample(gen):
    x = torch.randn(16, generator=gen)
    return x, torch.sin(x @ W)


class FiniteStream(IterableDataset):
    """200 samples per pass, no __len__."""

    def __init__(self, num_samples=200, seed=0):
        self.num_samples, self.seed = num_samples, seed

    def __iter__(self):
        gen = torch.Generator().manual_seed(self.seed)
        for _ in range(self.num_samples):
            yield _sample(gen)


class EndlessStream(IterableDataset):
    """Never ends."""

    def __init__(self, seed=0):
        self.seed = seed

    def __iter__(self):
        gen = torch.Generator().manual_seed(self.seed)
        while True:
            yield _sample(gen)


def stream(seed=0):
    return FiniteStream(seed=seed)


def annotated_stream(seed=0) -> FiniteStream:
    return FiniteStream(seed=seed)


class NeedsRealTensors(torch.nn.Module):
    """A constructor that reads a tensor's value, which the meta device cannot give."""

    def __init__(self):
        super().__init__()
        self.body = torch.nn.Linear(16, 1)
        self.scale = float(torch.ones(1).item())

    def forward(self, x):
        return self.body(x) * self.scale
'''

SPEC = """\
seed: 0
device: cpu
model: {name: mlp_regressor, kwargs: {in_features: 16, hidden: 64}}
data:
  name: streams:FiniteStream
  batch_size: 32
optimizer: {name: SGD, kwargs: {momentum: 0.9}}
loss: {name: MSELoss}
sweep:
  start_lr: 1.0e-4
  end_lr: 1.0
  num_iter: 60
"""


@pytest.fixture
def streams(cli_user_module, cli_write_spec):
    """Factory: the spec above (lines replaced by {number: text}), beside the module `streams`; returns its path."""
    cli_user_module("streams", STREAMS)

    def write(lines: dict[int, str] | None = None, extra: str = ""):
        text = SPEC.splitlines()
        for number, new in (lines or {}).items():
            text[number - 1] = new
        return cli_write_spec("\n".join(text) + "\n" + extra)

    return write


SHUFFLED_STREAM = ("data.shuffle: FiniteStream is an IterableDataset (a stream read in its own order, without an index), which "
                   "a DataLoader cannot shuffle (set data.shuffle: false; a stream that should be shuffled shuffles itself, e.g. "
                   "with a buffer)")


def checked(cli_runner, command, spec, tmp_path):
    """`lrfind validate SPEC` or `lrfind run SPEC --out tmp_path/out`, from tmp_path."""
    args = [command, spec, "--out", tmp_path / "out"] if command == "run" else [command, spec]
    return invoke(cli_runner, args, cwd=tmp_path)


def run_json(cli_runner, spec, tmp_path, *args):
    result = invoke(cli_runner, ["run", spec, "--out", tmp_path / "out", "--json", *args], cwd=tmp_path)
    return result, (json.loads(result.stdout) if result.stdout else None)


# ---- streams in a spec --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["validate", "run"])
def test_a_stream_with_the_default_shuffle_is_a_spec_error_at_data_shuffle(command, streams, cli_runner, tmp_path):
    spec = streams()

    result = checked(cli_runner, command, spec, tmp_path)

    assert result.exit_code == 2, result.stderr
    assert error_lines(result.stderr) == [f"error: {spec}:4 {SHUFFLED_STREAM}"]
    assert not (tmp_path / "out").exists()


def test_shuffle_written_true_for_a_stream_is_refused_at_its_own_line(streams, cli_runner, tmp_path):
    spec = streams({6: "  batch_size: 32\n  shuffle: true"})

    result = invoke(cli_runner, ["validate", spec], cwd=tmp_path)

    assert result.exit_code == 2
    assert error_lines(result.stderr) == [f"error: {spec}:7 {SHUFFLED_STREAM}"]


@pytest.mark.parametrize("name", ["streams:FiniteStream", "streams:EndlessStream"])
def test_an_unshuffled_stream_runs_every_step_reading_new_passes_as_needed(name, streams, cli_runner, tmp_path):
    spec = streams({5: f"  name: {name}", 6: "  batch_size: 32\n  shuffle: false"})

    assert invoke(cli_runner, ["validate", spec], cwd=tmp_path).exit_code == 0
    result, doc = run_json(cli_runner, spec, tmp_path)

    assert result.exit_code == 0, result.stderr
    # never cut short by the data: past the first pass (200 samples: 6 batches of 32), to the end or to the divergence
    assert doc["status"] in ("completed", "diverged") and doc["num_steps"] > 6 and doc["suggested_lr"] is not None
    assert doc["num_steps"] == 60 if doc["status"] == "completed" else doc["stop_reason"].startswith("smoothed loss")


@pytest.mark.parametrize("command", ["validate", "run"])
def test_a_validation_fraction_of_a_stream_is_a_spec_error_at_sweep_val_fraction(command, streams, cli_runner, tmp_path):
    spec = streams({5: "  name: streams:EndlessStream", 6: "  batch_size: 32\n  shuffle: false"},
                   extra="  val:\n    every: 10\n    fraction: 0.1\n")

    result = checked(cli_runner, command, spec, tmp_path)

    assert result.exit_code == 2, result.stderr
    assert error_lines(result.stderr) == [
        f"error: {spec}:16 sweep.val.fraction: EndlessStream is an IterableDataset (a stream read in its own order, without an "
        "index), so no fraction of it can be held out for validation (name a validation split with sweep.val.kwargs instead, "
        "e.g. {train: false}, merged into data.kwargs)"]
    assert not (tmp_path / "out").exists()


def test_a_stream_is_validated_on_the_first_batches_of_a_named_split(streams, cli_runner, tmp_path):
    spec = streams({5: "  name: streams:EndlessStream", 6: "  batch_size: 32\n  shuffle: false"},
                   extra="  val: {every: 10, batches: 2, kwargs: {seed: 1}}\n")

    result, doc = run_json(cli_runner, spec, tmp_path)

    assert result.exit_code == 0, result.stderr
    measured = [v for v in doc["history"]["val_loss"] if v is not None]
    assert len(measured) == 7  # steps 0, 10, ..., 50 and the last


def test_a_stream_made_by_a_function_is_refused_when_run_builds_it(streams, cli_runner, tmp_path):
    # validate cannot tell what an unannotated function returns; run finds out when it builds, and says the same
    spec = streams({5: "  name: streams:stream"})

    validated, ran = (checked(cli_runner, command, spec, tmp_path) for command in ("validate", "run"))

    assert validated.exit_code == 0, validated.stderr
    assert ran.exit_code == 2
    assert error_lines(ran.stderr) == [f"error: {SHUFFLED_STREAM}"]
    assert not (tmp_path / "out").exists()


def test_a_function_annotated_to_return_a_stream_is_caught_by_validate(streams, cli_runner, tmp_path):
    spec = streams({5: "  name: streams:annotated_stream"})

    result = invoke(cli_runner, ["validate", spec], cwd=tmp_path)

    assert result.exit_code == 2
    assert error_lines(result.stderr) == [f"error: {spec}:4 {SHUFFLED_STREAM}"]


# ---- parameter groups ---------------------------------------------------------------------------------------------


def test_validate_matches_param_groups_on_the_meta_device_without_reading_weights(cli_runner, cli_write_spec, tmp_path, monkeypatch):
    def no_download(*args, **kwargs):
        raise AssertionError("validate must not read weights")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    spec = cli_write_spec("""
    model:
      name: resnet18
      kwargs: {weights: DEFAULT}
    optimizer:
      param_groups:
        - {params: 'fc.*', lr_scale: 10}
        - {params: 'head.*', lr_scale: 10}
    """)

    result = invoke(cli_runner, ["validate", spec], cwd=tmp_path)

    assert result.exit_code == 2, result.stderr
    assert error_lines(result.stderr) == [
        f"error: {spec}:7 optimizer.param_groups.1.params: 'head.*' matches no trainable parameter (names look like: "
        "conv1.weight, bn1.weight, bn1.bias, layer1.0.conv1.weight) (fix the glob)"]


def test_validate_says_nothing_about_groups_of_a_model_it_cannot_build_and_run_refuses_them(streams, cli_runner, tmp_path):
    spec = streams({3: "model: {name: streams:NeedsRealTensors}", 5: "  name: streams:FiniteStream\n  shuffle: false",
                    7: "optimizer:\n  name: SGD\n  param_groups: [{params: 'head.*'}]"})

    validated, ran = (checked(cli_runner, command, spec, tmp_path) for command in ("validate", "run"))

    assert validated.exit_code == 0, validated.stderr
    assert ran.exit_code == 2
    assert error_lines(ran.stderr) == [f"error: {spec}:10 optimizer.param_groups.0.params: 'head.*' matches no trainable "
                                       "parameter (names look like: body.weight, body.bias) (fix the glob)"]
    assert not (tmp_path / "out").exists()


# ---- the Python API takes every kind of loader (case 24) ------------------------------------------------------------


def _sweep(loader):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    try:
        return range_test(model, optimizer, loader, torch.nn.MSELoss(), start_lr=1e-4, end_lr=1.0, num_iter=60)
    finally:
        assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def _batches(module, count):
    """A one-shot generator of `count` batches of 32 (it cannot be iterated again)."""
    gen = torch.Generator().manual_seed(0)
    for _ in range(count):
        xs, ys = zip(*[module._sample(gen) for _ in range(32)])
        yield torch.stack(xs), torch.stack(ys)


@pytest.fixture
def api_streams(cli_user_module, tmp_path, monkeypatch):
    """The module `streams` above, imported."""
    import importlib

    monkeypatch.syspath_prepend(str(tmp_path))
    return importlib.import_module(cli_user_module("streams", STREAMS))


@pytest.mark.parametrize("kind", ["short-loader", "finite-stream", "endless-stream", "one-shot-long-enough"])
def test_range_test_runs_all_steps_on_data_shorter_than_the_sweep_without_a_length_or_endless(kind, api_streams):
    streams = api_streams
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(100, 16, generator=gen)
    loaders = {
        "short-loader": lambda: DataLoader(TensorDataset(x, torch.sin(x @ streams.W)), batch_size=32, shuffle=True,
                                           generator=torch.Generator().manual_seed(0)),  # 4 batches, the last of 4
        "finite-stream": lambda: DataLoader(streams.FiniteStream(), batch_size=32),
        "endless-stream": lambda: DataLoader(streams.EndlessStream(), batch_size=32),
        "one-shot-long-enough": lambda: _batches(streams, 80),
    }

    result = _sweep(loaders[kind]())

    # never cut short by the data: past the first pass (4 or 6 batches), to the end or to the divergence
    assert result.status in ("completed", "diverged") and len(result.lrs) > 6
    assert len(result.lrs) == 60 if result.status == "completed" else result.stop_reason.startswith("smoothed loss")
    assert result.suggested_lr is not None


def test_range_test_says_a_one_shot_iterator_ran_out_and_restores_the_model(api_streams):
    with pytest.raises(LoaderExhausted, match="ran out after 10 batches and cannot be iterated again"):
        _sweep(_batches(api_streams, 10))  # _sweep checks the model is restored
