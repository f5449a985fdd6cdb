"""The answer is for the training you will run: its length, schedule and OneCycleLR's momentum cycling (train:).

The schedules are PyTorch's own (lrfind_cli.plan reads them off the schedulers), the answer moves with the
planned length as suggest.horizon's law says, a momentum-free optimizer under cycled one-cycle gets the answer
for the momentum it will get (and the note how to turn cycling off), and result.json says what it assumed.
"""

from __future__ import annotations

import json
import math
import re
import textwrap

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from lrfind_cli.plan import TrainPlan, cosine_factor, lr_factors, momenta, scheduler
from lrfind_cli.suggest import CYCLED_DECADES, horizon

from .test_cli import REPO, TINY, invoke

TINY_STEPS = ["--set", "sweep.num_iter=40"]  # tiny.yaml sweeps to a clear divergence at 40 steps


def _torch_lrs(make, steps: int, momentum: float = 0.9) -> tuple[list[float], list[float]]:
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=1.0, momentum=momentum)
    sched = make(opt)
    lrs, moms = [], []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        moms.append(opt.param_groups[0]["momentum"])
        opt.step()
        sched.step()
    return lrs, moms


@pytest.mark.parametrize("steps", [10, 100, 333])
def test_onecycle_is_onecyclelr_with_pytorchs_defaults_momentum_cycled(steps):
    want_lr, want_mom = _torch_lrs(lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=1.0, total_steps=steps), steps)
    plan = TrainPlan("onecycle", steps)
    assert lr_factors(plan).tolist() == want_lr
    assert momenta(plan).tolist() == want_mom
    assert max(want_mom) == 0.95 and min(want_mom) == pytest.approx(0.85)
    assert momenta(TrainPlan("onecycle", steps, cycle_momentum=False)) is None
    assert momenta(TrainPlan("cosine", steps)) is None


@pytest.mark.parametrize("schedule", ["cosine", "wsd", "constant", "onecycle"])
def test_the_scheduler_for_a_plan_runs_its_factors_from_the_peak_lr(schedule):
    plan = TrainPlan(schedule, 200, warmup=0.1)
    lrs, _ = _torch_lrs(lambda o: scheduler(o, plan, 0.3), 200)
    assert lrs == pytest.approx((0.3 * lr_factors(plan)).tolist(), rel=1e-12)
    assert max(lrs) == pytest.approx(0.3)


def test_the_cosine_answer_is_the_peak_of_the_readmes_lambdalr_warm_up_and_cosine():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- cosine-recipe -->\n```python\n(.*?)```", readme, re.S)
    assert block, "the README shows how to train with the cosine answer"
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([param], lr=1.0)
    namespace = {"optimizer": optimizer, "lr": 0.02, "steps": 500}
    exec(textwrap.dedent(block.group(1)), namespace)  # noqa: S102
    sched = namespace["scheduler"]
    seen = []
    for _ in range(500):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        sched.step()
    assert seen == pytest.approx((0.02 * lr_factors(TrainPlan("cosine", 500))).tolist(), rel=1e-12)
    warm = int(0.05 * 500)
    assert seen[warm] == pytest.approx(0.02) and seen[0] == 0.0
    assert [cosine_factor(i, warm, 500) for i in (0, warm, 500 - 1)] == pytest.approx([0.0, 1.0, 0.5 * (1 + math.cos(math.pi * 474 / 475))])


def _run(tmp_path, *sets: str) -> dict:
    out = tmp_path / "out"
    result = invoke(CliRunner(), ["run", TINY, *TINY_STEPS, *sets, "--out", out, "--json"])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def lengths(tmp_path_factory):
    """tiny.yaml (256 samples, batch 32: 8 steps a pass) answered for 100, 1000 and 10000 planned steps, and unsaid."""
    base = tmp_path_factory.mktemp("lengths")
    docs = {n: _run(base / str(n), "--set", f"train.steps={n}") for n in {100, 1000, 10000, horizon.DEFAULT_STEPS}}
    docs[None] = _run(base / "none")
    return docs


def test_the_answer_moves_with_train_steps_as_the_length_law_says(lengths):
    per_pass = lengths[100]["train"]["steps_per_pass"]
    assert per_pass == 8.0
    for schedule in ("onecycle", "cosine", "constant", "wsd"):
        lr = {n: lengths[n]["schedules"][schedule]["suggested_lr"] for n in (100, 1000, 10000)}
        assert lr[100] >= lr[1000] >= lr[10000]  # a longer training wants a lower rate, never a higher one
        for short, long in ((100, 1000), (1000, 10000)):
            moved = math.log10(lr[short] / lr[long])
            assert moved == pytest.approx(horizon.length_decades(long, per_pass) - horizon.length_decades(short, per_pass), abs=1e-9)
        assert lengths[10000]["schedules"][schedule]["steps"] == 10000
        assert lengths[10000]["schedules"][schedule]["per_decade_of_steps"] == horizon.slope(10000, per_pass)
    # 1250 passes over 256 samples: past REPEAT_PASSES, the answer falls REPEAT_SLOPE decades per decade of length
    assert lengths[10000]["schedules"]["onecycle"]["per_decade_of_steps"] == -horizon.REPEAT_SLOPE


def test_without_a_length_the_answer_states_the_one_it_assumed(lengths):
    train = lengths[None]["train"]
    assert train["assumed"] is True and train["steps"] == horizon.DEFAULT_STEPS
    assert lengths[None]["schedules"] == lengths[horizon.DEFAULT_STEPS]["schedules"]
    assert lengths[horizon.DEFAULT_STEPS]["train"]["assumed"] is False
    assert train["passes"] == pytest.approx(horizon.DEFAULT_STEPS / 8.0)


def test_epochs_are_turned_into_steps_with_the_loaders_length_and_accumulation(tmp_path):
    doc = _run(tmp_path, "--set", "train.epochs=2.5", "--set", "sweep.accumulation_steps=2")
    assert doc["train"]["steps_per_pass"] == 4.0  # 8 batches a pass, 2 per optimizer step
    assert doc["train"]["steps"] == 10 and doc["train"]["assumed"] is False


def test_epochs_of_a_stream_are_a_spec_error_naming_train_epochs(tmp_path, cli_runner):
    spec = tmp_path / "stream.yaml"
    spec.write_text(textwrap.dedent("""\
        device: cpu
        model: {name: mlp_regressor, kwargs: {in_features: 16}}
        data: {name: "itermod:EndlessStream", batch_size: 16, shuffle: false}
        loss: {name: MSELoss}
        train: {epochs: 3}
        """), encoding="utf-8")
    (tmp_path / "itermod.py").write_text(textwrap.dedent('''\
        import torch
        from torch.utils.data import IterableDataset

        class EndlessStream(IterableDataset):
            def __iter__(self):
                gen = torch.Generator().manual_seed(0)
                while True:
                    x = torch.randn(16, generator=gen)
                    yield x, x[:1]
        '''), encoding="utf-8")
    # validate finds what run refuses, with the same words, before anything is built
    for command in (["run", spec, "--out", tmp_path / "out"], ["validate", spec]):
        result = invoke(cli_runner, command, cwd=tmp_path)
        assert result.exit_code == 2
        assert re.search(r"stream\.yaml:5 train\.epochs: data 'itermod:EndlessStream' has no length.*give train\.steps",
                         result.stderr), result.stderr
    # set on the command line, the error names the override instead of a line of the file
    spec.write_text(spec.read_text(encoding="utf-8").replace("train: {epochs: 3}\n", ""), encoding="utf-8")
    result = invoke(cli_runner, ["run", spec, "--set", "train.epochs=2", "--out", tmp_path / "out2"], cwd=tmp_path)
    assert "--set train.epochs=2 (train.epochs): data 'itermod:EndlessStream'" in result.stderr, result.stderr[-400:]
    assert result.exit_code == 2


def test_a_warm_up_that_fills_the_run_is_a_spec_error_at_train_warmup(tmp_path, cli_runner, cli_write_spec):
    spec = cli_write_spec("model: {name: mlp_regressor, kwargs: {in_features: 8}}\ndata: {name: synthetic_tabular}\n"
                          "train:\n  steps: 100\n  schedule: cosine\n  warmup: 2000\n")
    result = invoke(cli_runner, ["validate", spec], cwd=tmp_path)
    assert result.exit_code == 2
    assert re.search(r":6 train\.warmup: .*warm-up of 2000 steps fills the whole run of 100 steps", result.stderr), result.stderr
    # with epochs the length is known once the data is built: run refuses it there, before the sweep
    result = invoke(cli_runner, ["run", TINY, "--set", "train.epochs=1", "--set", "train.warmup=50", "--out", tmp_path / "o"])
    assert result.exit_code == 2 and "fills the whole run of 8 steps (1 epochs)" in result.stderr, result.stderr


def test_momentum_free_sgd_under_cycled_onecycle_gets_the_answer_for_the_momentum_it_will_get_and_the_note(tmp_path):
    plain = _run(tmp_path / "cycled", "--set", "optimizer.kwargs.momentum=0", "--set", "train.steps=1000")
    off = _run(tmp_path / "off", "--set", "optimizer.kwargs.momentum=0", "--set", "train.steps=1000",
               "--set", "train.cycle_momentum=false")
    assert plain["train"]["momentum_free"] and plain["train"]["momentum_cycled"]
    assert not off["train"]["momentum_cycled"]
    assert plain["suggested_lr"] == pytest.approx(off["suggested_lr"] / 10**CYCLED_DECADES, rel=1e-9)
    assert plain["schedules"]["cosine"] == off["schedules"]["cosine"]  # only OneCycleLR cycles momentum
    with_momentum = _run(tmp_path / "momentum", "--set", "train.steps=1000")
    assert not with_momentum["train"]["momentum_free"] and not with_momentum["train"]["momentum_cycled"]


def test_the_cycling_note_says_how_to_turn_it_off(tmp_path, cli_runner):
    result = invoke(cli_runner, ["run", TINY, *TINY_STEPS, "--set", "optimizer.kwargs.momentum=0", "--out", tmp_path])
    assert result.exit_code == 0, result.stderr
    doc = json.loads((tmp_path / "result.json").read_text())
    without = doc["suggested_lr"] * 10**CYCLED_DECADES
    assert "note: OneCycleLR's cycle_momentum" in result.stdout and "cycle_momentum=False" in result.stdout
    assert f"use {without:.4g}" in result.stdout and "train.cycle_momentum: false" in result.stdout
    assert f"for: {horizon.DEFAULT_STEPS} optimizer steps (assumed: set train.steps or train.epochs)" in result.stdout
    assert "with OneCycleLR's momentum cycling" in result.stdout
    # under another schedule nothing cycles momentum, and nothing says it does
    cosine = invoke(cli_runner, ["run", TINY, *TINY_STEPS, "--set", "optimizer.kwargs.momentum=0", "--set",
                                 "train.schedule=cosine", "--out", tmp_path / "cosine"])
    assert cosine.exit_code == 0 and "momentum cycling" not in cosine.stdout and "cycle_momentum" not in cosine.stdout


def test_the_plan_refuses_what_no_scheduler_runs():
    for bad in (dict(steps=0), dict(warmup=-0.1), dict(cooldown=1.5), dict(steps_per_pass=0.0)):
        with pytest.raises(ValueError):
            TrainPlan("cosine", **bad)
    with pytest.raises(ValueError, match="schedule"):
        TrainPlan("linear")
    assert TrainPlan("onecycle", 100, steps_per_pass=8).passes == 12.5
    assert np.all(lr_factors(TrainPlan("constant", 5)) == 1.0)
