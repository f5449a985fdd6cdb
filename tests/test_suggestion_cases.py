"""Suggestions on the situations of shared/cases 05, 06 and 17, end to end through the CLI, and the noise gate.

05: weights that cannot change (lr 1e-30) must give no learning rate (exit 3, flat_curve, empty -q output).
06: very short sweeps are flagged too_few_points and give no answer rather than one decades off.
17: a trained checkpoint gets a fine-tuning rate that does not damage it (method finetune, flag pretrained).
"""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from lrfind_cli.cli import app
from lrfind_cli.data import SyntheticTabular
from lrfind_cli.models import mlp_regressor
from lrfind_cli.suggest import recommend, summarize

TABULAR = """seed: 0
device: cpu
model: {{name: mlp_regressor, kwargs: {{in_features: 16, hidden: {hidden}, depth: {depth}}}{checkpoint}}}
data: {{name: synthetic_tabular, kwargs: {{num_samples: {samples}, num_features: 16{noise}}}, batch_size: {batch}}}
loss: {{name: MSELoss}}
optimizer: {{name: {optimizer}, kwargs: {{}}}}
sweep: {{start_lr: {start}, end_lr: {end}, num_iter: {steps}}}
"""


def write_spec(tmp_path, *, hidden=32, depth=2, samples=1024, noise="", batch=64, optimizer="SGD", start="1.0e-30",
               end="1.0e-29", steps=40, checkpoint=""):
    path = tmp_path / "spec.yaml"
    path.write_text(TABULAR.format(hidden=hidden, depth=depth, samples=samples, noise=noise, batch=batch, optimizer=optimizer,
                                   start=start, end=end, steps=steps, checkpoint=checkpoint))
    return path


def run_quiet(spec, out, *extra):
    return CliRunner().invoke(app, ["run", str(spec), "-q", "--out", str(out), *extra])


def test_case05_frozen_weights_give_exit_3_flat_curve_and_empty_quiet_output(tmp_path):
    spec = write_spec(tmp_path)  # lr 1e-30..1e-29: lr * grad is below float32 resolution, the weights never change

    result = run_quiet(spec, tmp_path / "out")

    assert result.exit_code == 3, result.stderr
    assert result.stdout == ""
    doc = json.loads((tmp_path / "out" / "result.json").read_text())
    assert doc["suggested_lr"] is None and all(v is None for v in doc["suggestions"].values())
    # flat up to end_lr, so the sweep went on past it (2 decades, at most num_iter steps), flat still
    assert doc["confidence"]["flags"] == ["extended", "flat_curve"] and doc["sweep"]["extended_steps"] == 40
    assert "never fell by more than batch noise" in result.stderr  # the message says what the flag says


@pytest.mark.parametrize("steps", [2, 3, 5, 8, 12])
def test_case06_very_short_sweeps_are_flagged_too_few_points_and_give_no_answer(tmp_path, steps):
    spec = write_spec(tmp_path, hidden=128, depth=3, samples=4096, noise=", noise: 0.1", batch=128, optimizer="Adam",
                      start="1.0e-6", end="10.0", steps=steps)

    result = run_quiet(spec, tmp_path / "out")

    assert result.exit_code == 3, result.stderr
    assert result.stdout == ""
    doc = json.loads((tmp_path / "out" / "result.json").read_text())
    assert doc["suggested_lr"] is None
    assert doc["confidence"]["flags"] == ["too_few_points"]
    assert "fewer than 20 finite losses" in result.stderr


def _train_adam(model, x, y, lr, steps, seed, max_lr=None):
    """Adam on random batches of 128 (seeded), constant lr or one-cycle up to `max_lr`; the model trained in place."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=steps) if max_lr else None
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(0, len(x), (128,), generator=gen)
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x[idx]), y[idx]).backward()
        opt.step()
        if sched is not None:
            sched.step()
    return model


def _converged_checkpoint(path):
    """The case 17 model trained to convergence (one-cycle Adam), as `fine_tune` would leave it."""
    torch.manual_seed(0)
    data = SyntheticTabular(1024, 16, noise=0.1)
    x, y = data.x, data.y
    model = _train_adam(mlp_regressor(16, 32, 2), x, y, lr=3e-3, steps=600, seed=1, max_lr=1e-2)
    torch.save(model.state_dict(), path)
    return x, y


def _loss_after_training(checkpoint, x, y, lr, steps=60):
    torch.manual_seed(0)
    model = mlp_regressor(16, 32, 2)
    model.load_state_dict(torch.load(checkpoint, weights_only=True))
    _train_adam(model, x, y, lr=lr, steps=steps, seed=2)
    with torch.no_grad():
        return float(torch.nn.functional.mse_loss(model(x), y))


def test_case17_a_trained_checkpoint_gets_a_finetune_rate_that_does_not_damage_it(tmp_path):
    checkpoint = tmp_path / "trained.pt"
    x, y = _converged_checkpoint(checkpoint)
    spec = write_spec(tmp_path, samples=1024, noise=", noise: 0.1", batch=128, optimizer="Adam", start="1.0e-7", end="10.0",
                      steps=100, checkpoint=f", checkpoint: {checkpoint}")

    result = run_quiet(spec, tmp_path / "out")

    assert result.exit_code == 0, result.stderr
    doc = json.loads((tmp_path / "out" / "result.json").read_text())
    lr = doc["suggested_lr"]
    assert doc["method"] == "finetune" and float(result.stdout) == lr
    assert "pretrained" in doc["confidence"]["flags"]
    assert doc["history"]["lr"][0] < lr < doc["history"]["lr"][-1]
    start = _loss_after_training(checkpoint, x, y, lr, steps=0)
    # training at the suggestion keeps the trained weights' loss; ten times higher damages them
    assert _loss_after_training(checkpoint, x, y, lr) < 1.5 * start
    assert _loss_after_training(checkpoint, x, y, 10 * lr) > 2.0 * start


# ---------------------------------------------------------------- the noise gate, sampled


@pytest.mark.parametrize("n", [20, 40, 100, 300])
@pytest.mark.parametrize("kind", ["gaussian", "heavy_tailed", "high_first_batch"])
def test_pure_batch_noise_never_gives_a_learning_rate(n, kind):
    rng = np.random.default_rng(n)
    lrs = np.logspace(-7, 1, n)
    answered = 0
    for _ in range(100 if n <= 100 else 30):  # seconds in all; benchmarks of the gate sample far more
        noise = rng.standard_t(3, n) if kind == "heavy_tailed" else rng.standard_normal(n)
        raw = 1.0 + 0.1 * noise
        if kind == "high_first_batch":
            raw[0] += 1.0  # ten standard deviations: one unlucky first batch
        summary = summarize([(lrs, raw, raw)])
        answered += summary.suggested_lr is not None
    assert answered == 0


@pytest.mark.parametrize("n", [20, 40, 100])
def test_a_fall_of_eight_noise_levels_is_found(n):
    rng = np.random.default_rng(7)
    lrs = np.logspace(-6, 0, n)
    u = np.log10(lrs)
    raw = 1.0 - 0.8 / (1 + np.exp(-(u + 3) / 0.3)) + np.where(u > -1, 2 * (u + 1), 0.0) + 0.1 * rng.standard_normal(n)
    assert recommend(lrs, raw, raw).lr is not None


# ---------------------------------------------------------------- blew_up


def _descent_then_rise(end_level):
    lrs = np.logspace(-6, 0, 100)
    u = np.log10(lrs)
    raw = 2.0 - 1.5 / (1 + np.exp(-(u + 3) / 0.3)) + np.where(u > -1.5, (end_level - 0.5) * ((u + 1.5) / 1.5) ** 2, 0.0)
    return lrs, raw


def test_a_completed_sweep_that_ends_above_its_start_is_flagged_blew_up():
    lrs, raw = _descent_then_rise(end_level=2.6)  # ends above the start (2.0): 5x its best, under a 4x-of-smoothed stop
    assert "blew_up" in summarize([(lrs, raw, raw)], statuses=["completed"]).confidence.flags
    # the stop rule fired: the status already says it, no flag
    assert "blew_up" not in summarize([(lrs, raw, raw)], statuses=["diverged"]).confidence.flags


def test_a_modest_rise_after_the_minimum_is_not_blew_up():
    lrs, raw = _descent_then_rise(end_level=0.8)  # 1.6x its best, well below the start
    assert "blew_up" not in summarize([(lrs, raw, raw)], statuses=["completed"]).confidence.flags


def test_tiny_example_that_blows_up_under_the_stop_threshold_says_so(tmp_path):
    from pathlib import Path

    tiny = Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"
    result = CliRunner().invoke(app, ["run", str(tiny), "--out", str(tmp_path), "--json"])

    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    smoothed = [v for v in doc["history"]["smoothed"] if v is not None]
    assert doc["status"] == "completed" and smoothed[-1] > 2 * min(smoothed)  # it blew up, the 4x stop never fired
    assert "blew_up" in doc["confidence"]["flags"]
    assert "warning: note (blew_up): " in result.stderr
