"""The verification stage: candidates trained from one restored start, bit-exact restore, the better lr chosen, the schedule honoured."""

import itertools
import math

import numpy as np
import pytest
import torch

from lrfind_cli.verify import bracket, schedule_lrs, verify_candidates

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
