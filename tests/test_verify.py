"""The verification stage: candidates trained from one restored start, bit-exact restore, the better lr chosen, the schedule honoured."""

import itertools
import math

import numpy as np
import pytest
import torch

from lrfind_cli.verify import bracket, choose, for_planned_training, schedule_lrs, verify_candidates

from .test_restore import assert_restored, capture

LOSS = torch.nn.CrossEntropyLoss()


@pytest.fixture
def setup(engine_bn_model, engine_loader):
    """A BN + dropout model mid-training (Adam state, grads set), a shuffling loader, seeded RNGs."""
    torch.manual_seed(0)
    model = engine_bn_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = engine_loader(batch_size=16, shuffle=True)
    for x, y in itertools.islice(loader, 2):
        optimizer.zero_grad()
        LOSS(model(x), y).backward()
        optimizer.step()
    return model, optimizer, loader


def test_restore_is_bit_exact_after_every_candidate_and_a_divergence(setup):
    model, optimizer, loader = setup
    before = capture(model, optimizer)
    result = verify_candidates(model, optimizer, loader, LOSS, [1e-3, 1e-2, 1e6], num_steps=12, schedule="onecycle")
    assert_restored(before, model, optimizer)
    assert result.losses[2] == math.inf or result.losses[2] > result.losses[1]  # the huge lr is no winner
    assert 1e-3 <= result.chosen_lr <= 1e-2


def step_raising_at(call: int, error: BaseException):
    """A training step that raises `error` on its `call`-th call (1-based) and trains normally before it."""
    calls = []

    def step(m, batch, loss_fn):
        calls.append(1)
        if len(calls) == call:
            raise error
        return loss_fn(m(batch[0]), batch[1])

    return step


def test_restore_is_bit_exact_when_the_step_raises(setup):
    model, optimizer, loader = setup
    before = capture(model, optimizer)

    with pytest.raises(RuntimeError, match="boom"):
        verify_candidates(model, optimizer, loader, LOSS, [1e-2, 1e-1], num_steps=4, step_fn=step_raising_at(5, RuntimeError("boom")))
    assert_restored(before, model, optimizer)


def test_every_candidate_starts_from_the_same_state_and_batches(setup):
    model, optimizer, loader = setup
    twice = verify_candidates(model, optimizer, loader, LOSS, [3e-3, 3e-3], num_steps=8, schedule="constant")
    assert twice.losses[0] == twice.losses[1]  # same start, same batches, same dropout draws
    again = verify_candidates(model, optimizer, loader, LOSS, [3e-3], num_steps=8, schedule="constant")
    assert again.losses[0] == twice.losses[0]


def test_picks_the_clearly_better_of_two_candidates(engine_data):
    x, y = engine_data
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(12, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    batches = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 96, 16)]
    result = verify_candidates(model, optimizer, batches, LOSS, [1e-6, 0.1], num_steps=60, schedule="constant")
    assert result.chosen_lr == 0.1
    assert result.losses[1] < 0.5 * result.losses[0]
    assert result.steps_trained == 120
    # with a validation function, it decides
    val = verify_candidates(model, optimizer, batches, LOSS, [1e-6, 0.1], num_steps=60, schedule="constant",
                            val_fn=lambda m: LOSS(m(x), y))
    assert val.chosen_lr == 0.1 and val.val_losses == val.losses and len(val.train_losses) == 2


def test_onecycle_schedule_matches_torch_onecyclelr_and_is_followed():
    n, top = 40, 0.5
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=top)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=top, total_steps=n, cycle_momentum=False)
    expected = []
    for _ in range(n):
        expected.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    np.testing.assert_allclose(schedule_lrs(top, n, "onecycle"), expected, rtol=1e-9)
    np.testing.assert_array_equal(schedule_lrs(top, n, "constant"), np.full(n, top))

    # the lrs the optimizer actually sees, per param group (group 1 keeps its ratio to group 0)
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD([{"params": [model.weight]}, {"params": [model.bias], "lr": 0.5}], lr=1.0)
    seen = []

    def recording_step(m, batch, loss_fn):
        seen.append([g["lr"] for g in optimizer.param_groups])
        return m(batch[0]).pow(2).mean()

    data = [(torch.ones(4, 2), torch.zeros(4, 1))]
    verify_candidates(model, optimizer, data, None, [0.2], num_steps=n, schedule="onecycle", step_fn=recording_step)
    got = np.array(seen)
    np.testing.assert_allclose(got[:, 0], schedule_lrs(0.2, n, "onecycle"))
    np.testing.assert_allclose(got[:, 1], 0.5 * got[:, 0])
    assert [g["lr"] for g in optimizer.param_groups] == [1.0, 0.5]  # restored


@pytest.mark.parametrize("kind", ["sgd", "adamw"])
def test_onecycle_candidates_train_as_onecyclelr_runs_them_with_momentum_cycled_in_every_group(kind, engine_data):
    # shared/cases/25: verify's one-cycle is PyTorch's OneCycleLR with its defaults (momentum or beta1 0.95 -> 0.85 -> 0.95)
    x, y = engine_data

    def fresh():
        torch.manual_seed(3)
        model = torch.nn.Sequential(torch.nn.Linear(12, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
        groups = [{"params": model[0].parameters()}, {"params": model[2].parameters(), "lr": 10.0}]  # group 1 at 10x
        opt = torch.optim.SGD(groups, lr=1.0, momentum=0.9) if kind == "sgd" else torch.optim.AdamW(groups, lr=1.0)
        return model, opt

    batches = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 96, 16)]
    candidates, n = [3e-3, 1e-2], 30
    model, opt = fresh()
    seen = []
    result = verify_candidates(model, opt, batches, LOSS, candidates, num_steps=n, schedule="onecycle",
                               step_fn=lambda m, b, f: (seen.append(_momentum(opt)), f(m(b[0]), b[1]))[1])
    assert result.momentum_cycled and max(seen) == pytest.approx(0.95) and min(seen) == pytest.approx(0.85)
    assert _momentum(opt) == 0.9  # restored
    for lr, got in zip(candidates, result.losses):
        model, opt = fresh()
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[lr, 10 * lr], total_steps=n)  # PyTorch's defaults
        losses = []
        for step in range(n):
            xb, yb = batches[step % len(batches)]
            opt.zero_grad()
            loss = LOSS(model(xb), yb)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
        assert got == pytest.approx(np.mean(losses[-max(1, n // 10):]), rel=1e-5)


def _momentum(opt) -> float:
    group = opt.param_groups[-1]
    return group["betas"][0] if "betas" in group else group["momentum"]


def test_the_choice_is_the_vertex_of_the_parabola_through_the_scores_in_log_lr():
    lrs = [1e-3, 10**-2.5, 1e-2]
    x = np.log10(lrs)
    assert choose(lrs, list((x + 2.8) ** 2 + 1.0)) == pytest.approx(10**-2.8, rel=1e-9)
    assert choose(lrs, [1.0, 1.2, 0.5]) == 1e-2  # concave: the best candidate
    assert choose(lrs, list((x + 1.0) ** 2)) == 1e-2  # the vertex beyond the candidates: the optimum is not bracketed
    assert choose(lrs, [2.0, 1.0, math.inf]) == 10**-2.5  # two finite scores: the best of them
    assert choose(lrs, [math.inf] * 3) is None


def test_a_choice_made_on_short_trainings_moves_to_the_planned_length_by_the_length_law():
    from lrfind_cli.plan import TrainPlan
    from lrfind_cli.suggest import horizon

    plan = TrainPlan("cosine", steps=5000, steps_per_pass=40.0)
    shift = horizon.length_decades(5000, 40.0) - horizon.length_decades(100, 40.0)
    assert for_planned_training(0.01, 100, plan) == pytest.approx(0.01 / 10**shift, rel=1e-12)
    assert for_planned_training(0.01, 100, TrainPlan("cosine", steps=100, steps_per_pass=40.0)) == pytest.approx(0.01)


def test_bracket_is_centred_in_log_space():
    assert bracket(1e-2, k=3, step_decades=0.5) == pytest.approx([10**-2.5, 1e-2, 10**-1.5])
    assert bracket(1.0, k=1) == [1.0]
    assert bracket(1.0, k=2, step_decades=1.0) == pytest.approx([10**-0.5, 10**0.5])
    with pytest.raises(ValueError):
        bracket(0.0)


def test_bad_arguments_are_refused(setup):
    model, optimizer, loader = setup
    with pytest.raises(ValueError, match="num_steps"):
        verify_candidates(model, optimizer, loader, LOSS, [1e-3], num_steps=0)
    with pytest.raises(ValueError, match="schedule"):
        verify_candidates(model, optimizer, loader, LOSS, [1e-3], num_steps=2, schedule="cyclic")
    with pytest.raises(ValueError, match="candidates"):
        verify_candidates(model, optimizer, loader, LOSS, [], num_steps=2)
    with pytest.raises(ValueError, match="candidates"):
        verify_candidates(model, optimizer, loader, LOSS, [-1.0], num_steps=2)


def test_restore_is_bit_exact_after_an_interrupt(setup):
    model, optimizer, loader = setup
    before = capture(model, optimizer)

    with pytest.raises(KeyboardInterrupt):
        verify_candidates(model, optimizer, loader, LOSS, [1e-2, 1e-1], num_steps=5, step_fn=step_raising_at(7, KeyboardInterrupt()))
    assert_restored(before, model, optimizer)


# ---------------------------------------------------------------- suggest.verify through the CLI


def test_cli_verify_picks_one_of_the_candidates_around_the_rule_and_records_them(tmp_path):
    import json
    from pathlib import Path

    from typer.testing import CliRunner

    from lrfind_cli.cli import app

    tiny = Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"
    result = CliRunner().invoke(app, ["run", str(tiny), "--set", "sweep.num_iter=30", "--set",
                                      "suggest.verify={candidates: 3, spacing_decades: 0.25, num_steps: 12}",
                                      "--out", str(tmp_path), "--json"])

    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    verify = doc["verify"]
    rule = verify["rule_lr"]
    assert verify["rule"] == "onecycle" and verify["schedule"] == "onecycle" and verify["num_steps"] == 12
    # the candidates bracket the rule's answer for a training as long as verify's own, the length law's shift away
    centre = rule * 10 ** -verify["length_correction_decades"]
    assert verify["candidates"] == pytest.approx([centre / 10**0.25, centre, centre * 10**0.25])
    assert len(verify["losses"]) == 3 and verify["steps_trained"] <= 36
    # the vertex of the parabola through the scores (or the best candidate), moved back to the planned length
    assert verify["candidates"][0] <= verify["vertex_lr"] <= verify["candidates"][-1]
    assert doc["method"] == "verify"
    assert doc["suggested_lr"] == pytest.approx(verify["vertex_lr"] * 10 ** verify["length_correction_decades"], rel=1e-9)
    assert verify["planned_steps"] == doc["train"]["steps"]
    assert doc["suggestions"]["onecycle"] == rule and doc["suggestions"]["verify"] == doc["suggested_lr"]


def test_cli_verify_is_off_by_default(tmp_path):
    import json
    from pathlib import Path

    from typer.testing import CliRunner

    from lrfind_cli.cli import app

    tiny = Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"
    result = CliRunner().invoke(app, ["run", str(tiny), "--set", "sweep.num_iter=20", "--out", str(tmp_path), "--json"])

    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert "verify" not in doc and "verify" not in doc["suggestions"]
