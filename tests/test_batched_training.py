"""The horizon benchmark's batched trainer trains every copy exactly as torch.optim and the PyTorch schedulers do.

Its ground truth (thousands of trainings run at once as stacked weights) is only as good as this: each
(seed, schedule, lr) copy must end where a plain training loop with torch.optim and lrfind_cli.plan's
scheduler ends, and a copy that diverges must not disturb the others.
"""

from __future__ import annotations

import pytest
import torch

from benchmarks.quality.batched import Arm, plan_of, train_arms
from lrfind_cli.plan import scheduler

OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "rmsprop": torch.optim.RMSprop,
              "adagrad": torch.optim.Adagrad}
SCHEDULES = ("constant", "onecycle", "onecycle_nocycle", "cosine", "wsd")
STEPS = 20


def _problem():
    gen = torch.Generator().manual_seed(123)
    x = torch.randn(192, 6, generator=gen)
    y = (x @ torch.randn(6, 3, generator=gen)).argmax(1)
    return x[64:], y[64:], x[:64], y[:64]


XT, YT, XV, YV = _problem()


def _build() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))


def _batches(seed: int, steps: int):
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(0, len(XT), (16,), generator=gen)
        yield XT[idx], YT[idx]


def _plain_loop(optimizer: str, kwargs: dict, arm: Arm, seed: int) -> float:
    torch.manual_seed(seed)
    model = _build()
    if optimizer == "prodigy":
        prodigyopt = pytest.importorskip("prodigyopt")
        opt = prodigyopt.Prodigy(model.parameters(), lr=arm.lr)
    else:
        opt = OPTIMIZERS[optimizer](model.parameters(), lr=arm.lr, **kwargs)
    sched = scheduler(opt, plan_of(arm.schedule, optimizer), arm.lr, STEPS)
    for x, y in _batches(seed, STEPS):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        sched.step()
    with torch.no_grad():
        return float(torch.nn.functional.cross_entropy(model(XV), YV))


@pytest.mark.parametrize("optimizer, kwargs", [
    ("sgd", {}), ("sgd", {"momentum": 0.9, "nesterov": True}), ("sgd", {"momentum": 0.9, "weight_decay": 5e-4}),
    ("adam", {}), ("adamw", {"weight_decay": 0.01}), ("rmsprop", {}), ("adagrad", {}),
])
def test_every_copy_ends_where_torch_optim_under_the_pytorch_scheduler_ends(optimizer, kwargs):
    arms = [Arm(s, 0.03) for s in SCHEDULES]
    got, untrained = train_arms(_build, torch.nn.CrossEntropyLoss(), optimizer, kwargs, arms, [0, 1], STEPS, _batches, (XV, YV))
    for i, seed in enumerate([0, 1]):
        for j, arm in enumerate(arms):
            expected = min(_plain_loop(optimizer, kwargs, arm, seed), float(untrained[i]))
            assert got[i, j] == pytest.approx(expected, rel=1e-4), (seed, arm)


def test_prodigy_copies_follow_prodigyopt_with_their_own_step_size_estimates():
    arms = [Arm(s, lr) for s in ("constant", "onecycle", "cosine") for lr in (1.0, 0.3)]
    got, untrained = train_arms(_build, torch.nn.CrossEntropyLoss(), "prodigy", {}, arms, [0], STEPS, _batches, (XV, YV))
    for j, arm in enumerate(arms):
        assert got[0, j] == pytest.approx(min(_plain_loop("prodigy", {}, arm, 0), float(untrained[0])), rel=1e-4), arm


def test_a_diverging_copy_scores_the_untrained_loss_and_leaves_the_others_alone():
    arms = [Arm("constant", 0.01), Arm("constant", 1e6), Arm("onecycle", 0.03)]
    got, untrained = train_arms(_build, torch.nn.CrossEntropyLoss(), "sgd", {}, arms, [0], STEPS, _batches, (XV, YV))
    assert got[0, 1] == untrained[0]
    alone, _ = train_arms(_build, torch.nn.CrossEntropyLoss(), "sgd", {}, [arms[0], arms[2]], [0], STEPS, _batches, (XV, YV))
    assert got[0, [0, 2]].tolist() == pytest.approx(alone[0].tolist(), rel=1e-6)
