"""Speed options: chunked loss reads stop within one chunk, resident batches and spec options change nothing measured."""

import json
import math

import pytest
import torch
from typer.testing import CliRunner

from lrfind_cli import range_test
from lrfind_cli.cli import app


def counting_setup():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    steps = {"n": 0}
    original = opt.step

    def step(*args, **kwargs):
        steps["n"] += 1
        return original(*args, **kwargs)

    opt.step = step
    return model, opt, steps


@pytest.mark.parametrize("sync_every", [1, 4, 16, None])
def test_a_non_finite_loss_stops_the_sweep_within_one_chunk(sync_every):
    model, opt, steps = counting_setup()
    batches = [(torch.randn(8, 4), torch.randn(8, 1))]
    calls = {"n": 0}

    def loss_fn(out, target):
        calls["n"] += 1
        loss = torch.nn.functional.mse_loss(out, target)
        return loss * float("nan") if calls["n"] == 6 else loss  # step index 5 is NaN

    result = range_test(model, opt, batches, loss_fn, num_iter=100, sync_every=sync_every)
    assert result.num_steps == 6 and math.isnan(result.losses[-1])
    assert steps["n"] - 6 < (sync_every or 1)  # the steps run past the NaN before the chunk was read (on a CPU: none)


@pytest.mark.parametrize("sync_every", [1, 8])
def test_divergence_stops_within_one_chunk_of_the_step_that_triggered_it(sync_every):
    model, opt, steps = counting_setup()
    batches = [(torch.randn(8, 4), torch.randn(8, 1))]
    calls = {"n": 0}

    def loss_fn(out, target):
        calls["n"] += 1
        base = torch.nn.functional.mse_loss(out, target) * 0 + 1.0
        return base * (1.0 if calls["n"] < 20 else 100.0)  # a jump at step 19 that crosses 4 x best at once

    result = range_test(model, opt, batches, loss_fn, num_iter=100, smoothing=0.0, sync_every=sync_every)
    assert result.status == "diverged" and result.num_steps == 20
    assert steps["n"] - 20 < sync_every


def run_tiny(tmp_path, name, *sets):
    args = ["run", "configs/tiny.yaml", "--json", "--out", str(tmp_path / name), "--set", "sweep.num_iter=20"]
    for item in sets:
        args += ["--set", item]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_resident_batches_and_chunked_reads_give_the_same_history_as_the_default(tmp_path):
    plain = run_tiny(tmp_path, "plain")
    fast = run_tiny(tmp_path, "fast", "performance.device_batches=true", "performance.sync_every=4",
                    "performance.channels_last=false")
    assert fast["history"] == plain["history"]
    assert fast["performance"] == {"channels_last": False, "cudnn_benchmark": False, "device_batches": True}
    assert plain["performance"]["channels_last"] is False  # auto: only on CUDA


def test_unknown_performance_key_is_a_spec_error(tmp_path):
    result = CliRunner().invoke(app, ["validate", "configs/tiny.yaml", "--set", "performance.sync_evry=4"])
    assert result.exit_code == 2
    assert "did you mean 'sync_every'" in result.stderr


def fast_paths_on_cuda(monkeypatch, cli_write_spec, text: str, free_bytes: int = 10**10) -> dict:
    """What runner._fast_paths chooses for a spec as if the device were a GPU with `free_bytes` free (no GPU needed)."""
    from lrfind_cli.build import build_dataset, build_model
    from lrfind_cli.runner import _fast_paths
    from lrfind_cli.spec import load_spec

    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free_bytes, 2 * free_bytes))
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", torch.backends.cudnn.benchmark)  # put back afterwards
    spec = load_spec(cli_write_spec(text)).spec
    return _fast_paths(spec, build_model(spec.model), torch.device("cuda"), build_dataset(spec.data))


BUILTIN = """
    model: {name: tiny_mlp, kwargs: {in_features: 48, num_classes: 4}}
    data: {name: synthetic, kwargs: {num_samples: 256, num_classes: 4, channels: 3, height: 4, width: 4}, batch_size: 32}
    sweep: {num_iter: 100}
"""


def test_built_in_data_goes_onto_the_gpu_before_the_sweep_by_default(monkeypatch, cli_write_spec):
    # 100 batches of 32 samples of 3x4x4 floats (and a label): 0.6 MB
    assert fast_paths_on_cuda(monkeypatch, cli_write_spec, BUILTIN)["device_batches"] is True
    assert fast_paths_on_cuda(monkeypatch, cli_write_spec, BUILTIN, free_bytes=5_000_000)["device_batches"] is False
    with_transforms = BUILTIN.replace("batch_size: 32}", "batch_size: 32, transforms: [{name: RandomHorizontalFlip}]}")
    assert fast_paths_on_cuda(monkeypatch, cli_write_spec, with_transforms)["device_batches"] is False
    chosen = BUILTIN + "    performance: {device_batches: false}\n"
    assert fast_paths_on_cuda(monkeypatch, cli_write_spec, chosen)["device_batches"] is False


def test_resident_batches_stay_under_the_cap(monkeypatch):
    from lrfind_cli.data import RESIDENT_MAX_BYTES, SyntheticImages, resident_by_default

    images = SyntheticImages(num_samples=64)  # a sample: 3x32x32 floats and a label
    assert resident_by_default(images, 128, 100, torch.device("cpu")) is False  # no GPU: the loader as it is
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (10**12, 10**12))
    per_batch = 128 * (3 * 32 * 32 * 4 + 8)
    assert resident_by_default(images, 128, RESIDENT_MAX_BYTES // per_batch, torch.device("cuda")) is True
    assert resident_by_default(images, 128, RESIDENT_MAX_BYTES // per_batch + 1, torch.device("cuda")) is False
