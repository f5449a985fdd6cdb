"""The contract of §5: after range_test returns, raises or is interrupted, model, optimizer, scaler and RNG are bit-exact."""

import copy
import itertools
import random

import numpy as np
import pytest
import torch

from lrfind_cli import RangeTestInterrupted, range_test
from lrfind_cli.finder import lr_schedule

LOSS = torch.nn.CrossEntropyLoss()


def assert_bit_equal(before, after, path="state"):
    """Recursive equality: tensors with torch.equal (and same dtype/shape), arrays with array_equal, the rest with ==."""
    if isinstance(before, torch.Tensor):
        assert isinstance(after, torch.Tensor), path
        assert before.dtype == after.dtype and before.shape == after.shape, path
        assert torch.equal(before, after), path
    elif isinstance(before, np.ndarray):
        assert np.array_equal(before, after), path
    elif isinstance(before, dict):
        assert before.keys() == after.keys(), path
        for key in before:
            assert_bit_equal(before[key], after[key], f"{path}[{key!r}]")
    elif isinstance(before, (list, tuple)):
        assert type(before) is type(after) and len(before) == len(after), path
        for i, (a, b) in enumerate(zip(before, after)):
            assert_bit_equal(a, b, f"{path}[{i}]")
    else:
        assert before == after, path


def capture(model, optimizer, scaler=None):
    """Everything range_test must put back, deep-copied (state_dict() returns live references)."""
    return {
        "model": copy.deepcopy(model.state_dict()),
        "optimizer": copy.deepcopy(optimizer.state_dict()),
        "groups": [{k: copy.deepcopy(v) for k, v in g.items() if k != "params"} for g in optimizer.param_groups],
        "grads": {n: None if p.grad is None else p.grad.detach().clone() for n, p in model.named_parameters()},
        "training": {n: m.training for n, m in model.named_modules()},
        "torch_rng": torch.get_rng_state(),
        "python_rng": random.getstate(),
        "numpy_rng": np.random.get_state(),
        "scaler": copy.deepcopy(scaler.state_dict()) if scaler is not None else None,
    }


def assert_restored(before, model, optimizer, scaler=None):
    assert_bit_equal(before, capture(model, optimizer, scaler))


@pytest.fixture
def trained(engine_bn_model, engine_loader):
    """A BN + dropout model mid-training: Adam with state, grads set, one BN in eval mode, seeded RNGs."""
    model = engine_bn_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    loader = engine_loader(batch_size=16, shuffle=True)
    model.train()
    for x, y in itertools.islice(loader, 2):  # two real steps: Adam state and BN running stats exist
        optimizer.zero_grad()
        LOSS(model(x), y).backward()
        optimizer.step()
    x, y = next(iter(loader))
    optimizer.zero_grad()
    LOSS(model(x), y).backward()  # grads are set and not yet applied
    model[7].bias.grad = None  # and one parameter has no grad
    model[5].eval()  # a train/eval mix: the second BatchNorm is frozen
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    return model, optimizer, loader


def rng_hungry_step(model, batch, loss_fn):
    """A step that draws from python, numpy and torch RNGs (dropout in the model draws too)."""
    x, y = batch
    jitter = 0.01 * random.random() + 0.01 * float(np.random.rand())
    return loss_fn(model(x + jitter * torch.randn_like(x)), y)


def failing_step(exc_type, at_call):
    calls = []

    def step_fn(model, batch, loss_fn):
        calls.append(1)
        if len(calls) == at_call:
            raise exc_type("raised mid-sweep")
        return rng_hungry_step(model, batch, loss_fn)

    return step_fn


def test_fixture_state_is_rich(trained):
    model, optimizer, _ = trained
    assert len(optimizer.state) == len(list(model.parameters()))
    assert int(model[1].num_batches_tracked) == 3  # two steps and the grad-setting pass
    assert model.training and not model[5].training
    assert model[0].weight.grad is not None and model[7].bias.grad is None


@pytest.mark.parametrize("snapshot", ["memory", "disk"])
def test_restore_is_bit_exact_after_completion(trained, snapshot):
    model, optimizer, loader = trained
    before = capture(model, optimizer)
    result = range_test(model, optimizer, loader, LOSS, start_lr=1e-4, end_lr=1e-2, num_iter=8, step_fn=rng_hungry_step,
                        snapshot=snapshot)
    assert result.status == "completed"
    assert result.num_steps == 8
    assert_restored(before, model, optimizer)


@pytest.mark.parametrize("snapshot", ["memory", "disk"])
def test_restore_is_bit_exact_after_divergence(trained, snapshot):
    model, optimizer, loader = trained
    before = capture(model, optimizer)
    result = range_test(model, optimizer, loader, LOSS, start_lr=1e-4, end_lr=1e4, num_iter=40, step_fn=rng_hungry_step,
                        snapshot=snapshot)
    assert result.status == "diverged"
    assert result.num_steps < 40
    assert_restored(before, model, optimizer)


@pytest.mark.parametrize("snapshot", ["memory", "disk"])
def test_restore_is_bit_exact_after_an_exception_mid_sweep(trained, snapshot):
    model, optimizer, loader = trained
    before = capture(model, optimizer)
    with pytest.raises(RuntimeError, match="raised mid-sweep"):
        range_test(model, optimizer, loader, LOSS, start_lr=1e-4, end_lr=10.0, num_iter=20,
                   step_fn=failing_step(RuntimeError, at_call=5), snapshot=snapshot)
    assert_restored(before, model, optimizer)


@pytest.mark.parametrize("snapshot", ["memory", "disk"])
def test_restore_is_bit_exact_after_keyboard_interrupt_mid_sweep(trained, snapshot):
    model, optimizer, loader = trained
    before = capture(model, optimizer)
    with pytest.raises(RangeTestInterrupted) as caught:
        range_test(model, optimizer, loader, LOSS, start_lr=1e-4, end_lr=10.0, num_iter=20,
                   step_fn=failing_step(KeyboardInterrupt, at_call=5), snapshot=snapshot)
    assert isinstance(caught.value, KeyboardInterrupt)
    result = caught.value.result
    assert result.status == "interrupted"
    assert result.num_steps == 4  # the four steps completed before the fifth was interrupted
    assert result.lrs == list(lr_schedule(1e-4, 10.0, 20)[:4])
    assert len(result.losses) == len(result.smoothed) == 4
    assert_restored(before, model, optimizer)


def test_range_test_interrupted_is_a_keyboard_interrupt():
    assert issubclass(RangeTestInterrupted, KeyboardInterrupt)


@pytest.mark.parametrize("sync_every", [1, None])
def test_keyboard_interrupt_in_on_step_records_each_step_once(trained, sync_every):
    model, optimizer, loader = trained
    before = capture(model, optimizer)
    fired = []

    def on_step(info):
        if info.step == 2 and not fired:
            fired.append(info.step)
            raise KeyboardInterrupt

    with pytest.raises(RangeTestInterrupted) as caught:
        range_test(model, optimizer, loader, LOSS, start_lr=1e-4, end_lr=10.0, num_iter=20, on_step=on_step,
                   sync_every=sync_every)
    result = caught.value.result
    # read every step, the interrupted step is the last; read in chunks, the rest of the chunk is kept too
    n = result.num_steps
    assert n == 3 if sync_every == 1 else 3 <= n <= 20
    assert result.lrs == list(lr_schedule(1e-4, 10.0, 20)[:n])  # no step recorded twice
    assert len(result.losses) == len(result.smoothed) == n
    assert_restored(before, model, optimizer)


def test_restore_keeps_parameter_and_group_identity(trained):
    model, optimizer, loader = trained
    params = list(model.parameters())
    buffers = list(model.buffers())
    range_test(model, optimizer, loader, LOSS, start_lr=1e-4, end_lr=1e4, num_iter=30)
    assert all(a is b for a, b in zip(model.parameters(), params))
    assert all(a is b for a, b in zip(model.buffers(), buffers))
    group_params = [p for g in optimizer.param_groups for p in g["params"]]
    assert len(group_params) == len(params)
    assert all(a is b for a, b in zip(group_params, params))  # the optimizer still updates the model's own tensors
    assert model[7].bias.grad is None


def test_range_test_twice_gives_identical_histories(trained):
    model, optimizer, loader = trained
    before = capture(model, optimizer)
    kwargs = {"start_lr": 1e-4, "end_lr": 1e3, "num_iter": 30, "step_fn": rng_hungry_step}
    first = range_test(model, optimizer, loader, LOSS, **kwargs)
    second = range_test(model, optimizer, loader, LOSS, **kwargs)
    assert first.num_steps > 5
    assert first.lrs == second.lrs
    assert first.losses == second.losses  # same weights, same shuffles, same dropout masks, same draws
    assert first.smoothed == second.smoothed
    assert first.status == second.status
    assert first.suggestions == second.suggestions
    assert_restored(before, model, optimizer)


def _cpu_grad_scaler():
    try:
        return torch.amp.GradScaler("cpu", init_scale=2.0**8, growth_interval=2)
    except (AttributeError, TypeError, RuntimeError):
        return None


@pytest.mark.skipif(_cpu_grad_scaler() is None, reason="this torch has no CPU GradScaler (torch.amp.GradScaler('cpu'))")
def test_grad_scaler_state_is_restored(trained):
    model, optimizer, loader = trained
    scaler = _cpu_grad_scaler()
    for x, y in itertools.islice(loader, 3):  # the scaler has a history of its own
        optimizer.zero_grad()
        scaler.scale(LOSS(model(x), y)).backward()
        scaler.step(optimizer)
        scaler.update()
    optimizer.zero_grad()
    model[5].eval()
    before = capture(model, optimizer, scaler)
    scales = []

    def step_fn(model, batch, loss_fn):
        scales.append(scaler.get_scale())
        return rng_hungry_step(model, batch, loss_fn)

    range_test(model, optimizer, loader, LOSS, start_lr=1e-4, end_lr=1e4, num_iter=30, scaler=scaler, step_fn=step_fn)
    assert len(set(scales)) > 1  # the sweep did move the scale
    assert_restored(before, model, optimizer, scaler)


def test_sgd_momentum_without_state_ends_without_state(engine_bn_model, engine_loader):
    model = engine_bn_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    before = capture(model, optimizer)
    assert len(optimizer.state) == 0
    result = range_test(model, optimizer, engine_loader(shuffle=True), LOSS, start_lr=1e-4, end_lr=1.0, num_iter=10)
    assert result.num_steps > 0
    assert len(optimizer.state) == 0
    assert optimizer.state_dict()["state"] == {}
    assert_restored(before, model, optimizer)


@pytest.mark.parametrize("to_disk", [False, True])
def test_snapshot_can_be_restored_more_than_once(trained, to_disk):
    from lrfind_cli.snapshot import Snapshot

    model, optimizer, loader = trained
    before = capture(model, optimizer)
    snap = Snapshot(model, optimizer, to_disk=to_disk).capture()
    try:
        for _ in range(2):  # train (Adam updates its state in place), restore, and again
            for x, y in itertools.islice(loader, 2):
                optimizer.zero_grad()
                LOSS(model(x), y).backward()
                optimizer.step()
            model.eval()
            random.random()
            np.random.rand()
            snap.restore()
            assert_restored(before, model, optimizer)
    finally:
        snap.discard()


def _signal_during_restore(monkeypatch, signum):
    """Make Snapshot.restore send `signum` to this process halfway: after the weights, before the optimizer."""
    import os

    from lrfind_cli import snapshot as snapshot_module

    real = snapshot_module.Snapshot.restore
    sent = []

    def restore(self):
        real(self)
        if not sent:
            sent.append(signum)
            os.kill(os.getpid(), signum)
            # Python runs a handler between bytecodes: give it the chance to fire here, mid-restore
            for _ in range(1000):
                pass
        real(self)

    monkeypatch.setattr(snapshot_module.Snapshot, "restore", restore)
    return sent


def test_a_second_ctrl_c_while_restoring_cannot_leave_a_half_restored_model(trained, monkeypatch):
    import signal

    model, optimizer, loader = trained
    before = capture(model, optimizer)
    sent = _signal_during_restore(monkeypatch, signal.SIGINT)
    with pytest.raises(RangeTestInterrupted) as caught:
        range_test(model, optimizer, loader, LOSS, start_lr=1e-4, end_lr=10.0, num_iter=20,
                   step_fn=failing_step(KeyboardInterrupt, at_call=5))
    assert sent == [signal.SIGINT]
    assert caught.value.result.num_steps == 4
    assert_restored(before, model, optimizer)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_ctrl_c_while_restoring_after_a_normal_end_interrupts_once_the_state_is_back(trained, monkeypatch):
    import signal

    model, optimizer, loader = trained
    before = capture(model, optimizer)
    _signal_during_restore(monkeypatch, signal.SIGINT)
    with pytest.raises(RangeTestInterrupted) as caught:
        range_test(model, optimizer, loader, LOSS, start_lr=1e-4, end_lr=1e-2, num_iter=10)
    assert caught.value.result.status == "interrupted" and caught.value.result.num_steps == 10
    assert_restored(before, model, optimizer)


def test_a_second_interrupt_raised_while_the_first_is_handled_keeps_the_partial_result(trained):
    model, optimizer, loader = trained
    before = capture(model, optimizer)

    def on_step(info):
        if info.step in (5, 6):
            raise KeyboardInterrupt

    with pytest.raises(RangeTestInterrupted) as caught:
        range_test(model, optimizer, loader, LOSS, start_lr=1e-4, end_lr=10.0, num_iter=20, on_step=on_step, sync_every=16)
    result = caught.value.result
    assert result.status == "interrupted" and result.num_steps >= 6
    assert len(result.lrs) == len(result.losses) == len(result.smoothed) == result.num_steps
    assert_restored(before, model, optimizer)


def test_an_interrupt_during_validation_keeps_the_step_it_measured(trained):
    model, optimizer, loader = trained
    calls = []

    def val_fn(m):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return torch.tensor(1.0)

    with pytest.raises(RangeTestInterrupted) as caught:
        range_test(model, optimizer, loader, LOSS, start_lr=1e-4, end_lr=10.0, num_iter=20, val_fn=val_fn, val_every=2,
                   sync_every=1)
    # validation runs after steps 0, 2 and 4; the third (step 4) was interrupted after step 4 trained
    assert caught.value.result.num_steps == 5


def test_only_failures_of_training_are_marked_as_such(trained):
    # the engine wraps a failure of training in TrainingFailed carrying the step; range_test hands the user's own error on
    from lrfind_cli.engine import SweepConfig, TrainingFailed, run_sweep
    from lrfind_cli.finder import LoaderExhausted

    model, optimizer, loader = trained
    config = SweepConfig(start_lr=1e-4, end_lr=1e-2, num_iter=5)

    def broken_callback(info):
        raise ValueError("a bug in a progress callback")

    with pytest.raises(ValueError) as caught:
        run_sweep(model, optimizer, loader, LOSS, config, on_step=broken_callback)
    assert not isinstance(caught.value, TrainingFailed)
    with pytest.raises(LoaderExhausted):
        range_test(model, optimizer, [], LOSS, start_lr=1e-4, end_lr=1e-2, num_iter=5)
    with pytest.raises(TrainingFailed) as empty:
        run_sweep(model, optimizer, [], LOSS, config)
    assert isinstance(empty.value.__cause__, LoaderExhausted) and empty.value.step == 0
    with pytest.raises(RuntimeError):
        range_test(model, optimizer, loader, LOSS, start_lr=1e-4, end_lr=1e-2, num_iter=5,
                   step_fn=failing_step(RuntimeError, at_call=3))
    with pytest.raises(TrainingFailed) as failed:
        run_sweep(model, optimizer, loader, LOSS, config, step_fn=failing_step(RuntimeError, at_call=3))
    assert isinstance(failed.value.__cause__, RuntimeError) and failed.value.step == 2


def test_a_signal_while_restoring_after_a_failure_is_not_lost(trained, monkeypatch):
    import signal

    model, optimizer, loader = trained
    before = capture(model, optimizer)
    _signal_during_restore(monkeypatch, signal.SIGINT)
    with pytest.raises(KeyboardInterrupt) as caught:
        range_test(model, optimizer, loader, LOSS, start_lr=1e-4, end_lr=10.0, num_iter=20,
                   step_fn=failing_step(RuntimeError, at_call=3))
    assert isinstance(caught.value.__context__, RuntimeError)  # the failure it interrupted is kept as context
    assert_restored(before, model, optimizer)
