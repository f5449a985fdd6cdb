"""The sweep trains the way the user trains: clipping, loss parameters, param groups at lr 0, module modes.

Each test names the recipe detail and asserts what the optimizer and the modules really saw during the
sweep (through optimizer step hooks and custom steps), and that everything comes back bit-exactly.
The cases are ../shared/cases/11, 16 and 18, made small.
"""

import tempfile

import pytest
import torch

from lrfind_cli import range_test
from lrfind_cli.finder import StepOutputError

MSE = torch.nn.MSELoss()
CE = torch.nn.CrossEntropyLoss()


def regression_loader(n: int = 256, features: int = 8, outputs: int = 1, batch_size: int = 32):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, features, generator=g)
    y = torch.sin(x @ torch.randn(features, outputs, generator=g))
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=batch_size)


def grad_norm(optimizer: torch.optim.Optimizer) -> float:
    grads = [p.grad.detach().float().norm() for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
    return float(torch.linalg.vector_norm(torch.stack(grads)))


# ---- gradient clipping ------------------------------------------------------------------------------------------


class Offset(torch.nn.Module):
    """One float64 parameter w predicting every target: MSE(w, y) = (w - mean y)^2 + var y, a parabola of curvature 2."""

    def __init__(self, start: float):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor([start], dtype=torch.float64))

    def forward(self, x):
        return self.w.expand(len(x), 1)


CLIP, SHIFT = 0.1, 0.1


def parabola_sweep(max_grad_norm):
    """A range test whose every number follows from arithmetic, not from a chaotic model: the same on every build.

    Batches alternate between targets +-1 around +SHIFT and around -SHIFT, so the loss of batch k is
    (w - m_k)^2 + 1 with m_k = +-SHIFT: w never settles exactly (it is kicked by SHIFT every step).
    Plain SGD multiplies w - m_k by (1 - 2 lr) per step: past lr 1 every step grows it, and the loss
    passes 4x its best (the stop rule, smoothing off) a few steps later. A step clipped to norm CLIP
    moves w by at most lr * CLIP, so the loss stays below 1 + (lr * CLIP + SHIFT)^2 and cannot reach
    4x its best (>= 1) before lr >= (sqrt(3) - SHIFT) / CLIP, about 16.
    """
    signs = torch.tensor([[1.0], [-1.0]], dtype=torch.float64).repeat(32, 1)  # 64 rows: two batches of mean 0
    shifts = torch.tensor([SHIFT, -SHIFT], dtype=torch.float64).repeat_interleave(32)[:, None]
    y = (signs + shifts).repeat(4, 1)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.zeros_like(y), y), batch_size=32)
    model = Offset(2.0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    norms = []
    optimizer.register_step_pre_hook(lambda opt, args, kwargs: norms.append(grad_norm(opt)))
    result = range_test(model, optimizer, loader, MSE, start_lr=1e-3, end_lr=100.0, num_iter=60, smoothing=0.0,
                        max_grad_norm=max_grad_norm)
    # The stop is read in chunks, so a few steps may run past the one that triggered it (how many depends on
    # timing); the history is cut at that step, and so are the norms compared here.
    return result, norms[: result.num_steps], norms


def test_clipping_bounds_the_norm_the_optimizer_sees_so_the_sweep_reaches_higher_lrs():
    plain, plain_norms, _ = parabola_sweep(None)
    clipped, clipped_norms, every_clipped_norm = parabola_sweep(CLIP)

    assert plain.status == "diverged" and 1.0 < plain.lrs[-1] < 3.0  # the unclipped sweep blows up just past lr 1
    assert max(plain_norms) > 10 * CLIP  # its gradients grew far beyond the clip ...
    assert max(every_clipped_norm) <= CLIP * (1 + 1e-9)  # ... and every step of the clipped sweep saw them clipped
    assert clipped.lrs[-1] >= (3**0.5 - SHIFT) / CLIP > 5 * plain.lrs[-1]
    # over the lrs where the unclipped loss diverged, the clipped one never rose above where it started
    assert max(clipped.losses[: plain.num_steps]) <= max(clipped.losses[:2])


def test_clip_grad_norm_applies_once_per_optimizer_step_after_accumulation_and_after_unscaling_fp16():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    norms = []
    optimizer.register_step_pre_hook(lambda opt, args, kwargs: norms.append(grad_norm(opt)))
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    range_test(model, optimizer, regression_loader(), MSE, start_lr=1e-3, end_lr=1.0, num_iter=12,
               accumulation_steps=3, precision="fp16", scaler=scaler, max_grad_norm=0.05)

    assert len(norms) == 12  # one optimizer step (and one clip) per 3 micro-batches
    # Clipped before unscaling, the norm would be 0.05 / 1024; clipped per micro-batch, up to 3 x 0.05.
    assert all(n == pytest.approx(0.05, rel=1e-2) for n in norms)


def test_clip_grad_value_bounds_every_gradient_element():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    largest = []
    optimizer.register_step_pre_hook(lambda opt, args, kwargs: largest.append(
        max(float(p.grad.abs().max()) for g in opt.param_groups for p in g["params"])))
    range_test(model, optimizer, regression_loader(), MSE, start_lr=1e-3, end_lr=1.0, num_iter=10, max_grad_value=1e-3)

    assert largest and max(largest) == pytest.approx(1e-3)


# ---- a loss with trainable parameters (case 11) -----------------------------------------------------------------


class UncertaintyWeightedMSE(torch.nn.Module):
    """sum_k exp(-s_k) * mse_k + s_k with a learned log-variance s_k per task (Kendall et al., 2018)."""

    def __init__(self, tasks: int = 2):
        super().__init__()
        self.log_vars = torch.nn.Parameter(torch.zeros(tasks))
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))

    def forward(self, pred, target):
        self.calls += 1
        return (torch.exp(-self.log_vars) * ((pred - target) ** 2).mean(dim=0) + self.log_vars).sum()


@pytest.mark.parametrize("snapshot", ["memory", "disk"])
def test_a_loss_modules_parameters_and_buffers_come_back_bit_exactly(snapshot):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2))
    loss_fn = UncertaintyWeightedMSE()
    loader = regression_loader(outputs=2)
    optimizer = torch.optim.Adam(list(model.parameters()) + list(loss_fn.parameters()), lr=1e-3)
    for x, y in loader:  # real training first: the loss's parameters and Adam's state for them exist
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()
        optimizer.step()
    before = {k: v.clone() for k, v in loss_fn.state_dict().items()}
    grad = loss_fn.log_vars.grad.clone()
    moved = []

    def step(model, batch, loss_fn):
        moved.append(not torch.equal(loss_fn.log_vars, before["log_vars"]))
        return loss_fn(model(batch[0]), batch[1])

    result = range_test(model, optimizer, loader, loss_fn, start_lr=1e-6, end_lr=10.0, num_iter=40, step_fn=step,
                        snapshot=snapshot)

    assert result.num_steps > 10 and any(moved)  # the sweep did train the loss's parameters
    after = loss_fn.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert torch.equal(loss_fn.log_vars.grad, grad)


# ---- param groups at lr 0 (case 16) ------------------------------------------------------------------------------


@pytest.mark.parametrize("frozen_first", [True, False])
def test_a_param_group_at_lr_0_stays_at_0_wherever_it_stands(frozen_first):
    torch.manual_seed(0)
    backbone, head = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU()), torch.nn.Linear(32, 1)
    model = torch.nn.Sequential(backbone, head)
    frozen, trained = {"params": backbone.parameters(), "lr": 0.0}, {"params": head.parameters(), "lr": 1e-3}
    optimizer = torch.optim.SGD([frozen, trained] if frozen_first else [trained, frozen], momentum=0.9)
    at_zero, other = (0, 1) if frozen_first else (1, 0)
    used = []
    optimizer.register_step_pre_hook(lambda opt, args, kwargs: used.append([g["lr"] for g in opt.param_groups]))
    weights = backbone[0].weight.detach().clone()
    unchanged = []

    def step(model, batch, loss_fn):
        unchanged.append(torch.equal(backbone[0].weight, weights))
        return loss_fn(model(batch[0]), batch[1])

    result = range_test(model, optimizer, regression_loader(), MSE, start_lr=1e-6, end_lr=1.0, num_iter=30, step_fn=step)

    assert all(unchanged)
    assert [lrs[at_zero] for lrs in used] == [0.0] * len(used)
    assert [lrs[other] for lrs in used][: result.num_steps] == pytest.approx(result.lrs)  # the schedule is the head's
    assert [row[at_zero] for row in result.history["group_lrs"]] == [0.0] * result.num_steps
    assert result.suggested_group_lrs is None or result.suggested_group_lrs[at_zero] == 0.0
    assert [g["lr"] for g in optimizer.param_groups][at_zero] == 0.0


def test_groups_keep_their_ratio_to_the_first_group_with_a_non_zero_lr():
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Linear(8, 8), torch.nn.Linear(8, 1))
    optimizer = torch.optim.SGD([{"params": model[0].parameters(), "lr": 0.0},
                                 {"params": model[1].parameters(), "lr": 1e-3},
                                 {"params": model[2].parameters(), "lr": 1e-2}])

    result = range_test(model, optimizer, regression_loader(), MSE, start_lr=1e-4, end_lr=1e-2, num_iter=4)

    assert result.group_scales == pytest.approx([0.0, 1.0, 10.0])


# ---- module modes (case 18) --------------------------------------------------------------------------------------


def frozen_bn_setup():
    """A conv backbone whose BatchNorm is frozen (eval mode, no grad) under a head with dropout in train mode."""
    torch.manual_seed(0)
    backbone = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                                   torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten())
    head = torch.nn.Sequential(torch.nn.Dropout(0.2), torch.nn.Linear(16, 3))
    model = torch.nn.Sequential(backbone, head)
    model.train()
    backbone.eval()
    for p in backbone.parameters():
        p.requires_grad_(False)
    g = torch.Generator().manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.rand(128, 3, 8, 8, generator=g), torch.randint(0, 3, (128,), generator=g))
    loader = torch.utils.data.DataLoader(data, batch_size=16)
    return model, backbone[1], torch.optim.SGD(head.parameters(), lr=1e-3, momentum=0.9), loader


def sweep_modes(model, bn, optimizer, loader, **kwargs):
    """Run a short sweep; return the BatchNorm's mode at each step and whether its buffers moved during the sweep."""
    stats = [b.clone() for b in bn.buffers()]
    modes, moved = [], []

    def step(model, batch, loss_fn):
        modes.append(bn.training)
        moved.append(not all(torch.equal(a, b) for a, b in zip(stats, bn.buffers())))
        return loss_fn(model(batch[0]), batch[1])

    range_test(model, optimizer, loader, CE, start_lr=1e-4, end_lr=1.0, num_iter=12, step_fn=step, **kwargs)
    return modes, moved, stats


def test_keep_is_the_default_and_trains_with_a_frozen_batchnorm_left_in_eval_mode():
    model, bn, optimizer, loader = frozen_bn_setup()
    modes_before = {n: m.training for n, m in model.named_modules()}

    modes, moved, stats = sweep_modes(model, bn, optimizer, loader)

    assert modes == [False] * 12 and not any(moved)  # eval mode all along: its statistics never moved
    assert all(torch.equal(a, b) for a, b in zip(stats, bn.buffers()))
    assert {n: m.training for n, m in model.named_modules()} == modes_before


def test_train_mode_all_puts_every_module_in_train_mode_and_restores_the_modes():
    model, bn, optimizer, loader = frozen_bn_setup()
    modes_before = {n: m.training for n, m in model.named_modules()}

    modes, moved, stats = sweep_modes(model, bn, optimizer, loader, train_mode="all")

    assert modes == [True] * 12 and any(moved)
    assert all(torch.equal(a, b) for a, b in zip(stats, bn.buffers()))  # restored afterwards
    assert {n: m.training for n, m in model.named_modules()} == modes_before


def test_keep_trains_a_model_left_in_eval_mode_as_a_whole():
    model, bn, optimizer, loader = frozen_bn_setup()
    model.eval()  # e.g. after evaluating: not a training setup

    modes, _, _ = sweep_modes(model, bn, optimizer, loader)

    assert modes == [True] * 12
    assert not any(m.training for m in model.modules())  # restored to eval


def test_validation_returns_to_the_kept_modes():
    model, bn, optimizer, loader = frozen_bn_setup()
    batches = list(loader)[:2]

    def val_fn(m):
        return sum(CE(m(x), y) for x, y in batches) / 2

    modes, _, _ = sweep_modes(model, bn, optimizer, loader, val_fn=val_fn, val_every=3)

    assert modes == [False] * 12
    assert model[1].training  # the head is back in train mode after each validation


# ---- what the step returns --------------------------------------------------------------------------------------


def returns_none_on_third_call():
    calls = []

    def step(model, batch, loss_fn):
        calls.append(1)
        return None if len(calls) == 3 else loss_fn(model(batch[0]), batch[1])

    return step


def test_a_step_returning_none_is_named_with_what_it_returned_and_the_state_is_restored():
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    with pytest.raises(StepOutputError) as info:
        range_test(model, optimizer, regression_loader(), MSE, num_iter=10, step_fn=returns_none_on_third_call())

    assert info.value.source == "step" and info.value.returned == "None"
    assert "returns_none_on_third_call.<locals>.step returned None" in str(info.value)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    # the engine says at which step training failed (TrainingFailed, its cause the step's own error)
    from lrfind_cli.engine import SweepConfig, TrainingFailed, run_sweep

    with pytest.raises(TrainingFailed) as failed:
        run_sweep(model, optimizer, regression_loader(), MSE, SweepConfig(num_iter=10), step_fn=returns_none_on_third_call())
    assert isinstance(failed.value.__cause__, StepOutputError) and failed.value.step == 2


def test_a_loss_that_is_not_reduced_is_named_with_the_shape_it_returned():
    model = torch.nn.Linear(8, 1)

    with pytest.raises(StepOutputError, match=r"the loss function MSELoss returned a tensor of shape \(32, 1\)") as info:
        range_test(model, torch.optim.SGD(model.parameters(), lr=0.1), regression_loader(), torch.nn.MSELoss(reduction="none"),
                   num_iter=5)

    assert info.value.source == "loss"


# ---- arguments are checked before anything is captured ----------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "error", "names"), [
    ({"num_iter": 5.0}, TypeError, "num_iter must be an int, got 5.0 (float)"),
    ({"num_iter": True}, TypeError, "num_iter must be an int"),
    ({"accumulation_steps": "2"}, TypeError, "accumulation_steps must be an int"),
    ({"sync_every": 0}, ValueError, "sync_every must be at least 1"),
    ({"start_lr": "1e-4"}, TypeError, "start_lr must be a number"),
    ({"max_grad_norm": 0.0}, ValueError, "max_grad_norm must be above 0"),
    ({"max_grad_value": "1"}, TypeError, "max_grad_value must be a number or None"),
    ({"train_mode": "eval"}, ValueError, "train_mode must be 'all' or 'keep'"),
    ({"step_fn": "mod:step"}, TypeError, "step_fn must be a function or None"),
])
def test_a_bad_argument_is_refused_by_name_before_a_disk_snapshot_exists(kwargs, error, names, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where a disk snapshot would go
    model = torch.nn.Linear(8, 1)

    with pytest.raises(error, match=names.replace("(", r"\(").replace(")", r"\)")):
        range_test(model, torch.optim.SGD(model.parameters(), lr=0.1), regression_loader(), MSE, snapshot="disk", **kwargs)

    assert not list(tmp_path.glob("lrfind-snapshot-*"))  # no snapshot directory was made (or left)


@pytest.mark.parametrize(("position", "names"), [
    ("model-twice", "optimizer must be a torch.optim.Optimizer, got a Linear (are model and optimizer swapped?)"),
    ("swapped", "model must be a torch.nn.Module, got a SGD (are model and optimizer swapped?)"),
    ("model", "model must be a torch.nn.Module"),
    ("loader", "train_loader must be a DataLoader or another iterable of batches, got 3 (int)"),
    ("loss", "loss_fn must be a loss module, a function, or None"),
])
def test_an_object_of_the_wrong_kind_is_refused_by_name(position, names, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    model = torch.nn.Linear(8, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    args = {"swapped": (optimizer, model, regression_loader(), MSE), "model-twice": (model, model, regression_loader(), MSE),
            "model": ("net", optimizer, regression_loader(), MSE),
            "loader": (model, optimizer, 3, MSE), "loss": (model, optimizer, regression_loader(), "MSELoss")}[position]

    with pytest.raises(TypeError, match=names.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")):
        range_test(*args, snapshot="disk")

    assert not list(tmp_path.glob("lrfind-snapshot-*"))  # no snapshot directory was made (or left)
