"""range_test: history shape, loss/lr pairing, accumulation, loader cycling, stop rule, smoothing, sync, precision, snapshot."""

import glob
import json
import math
import os
import tempfile

import numpy as np
import pytest
import torch

from lrfind_cli import RangeTestResult, StepInfo, range_test
from lrfind_cli.finder import LossCurve, lr_schedule


class ScriptedLoss:
    """A loss_fn whose value is `value(call_index, lr, target)`; records the lr in force at each call.

    The model output enters with weight zero, so gradients are zero and the model never changes:
    the curve is exactly the script.
    """

    def __init__(self, optimizer, value):
        self.optimizer = optimizer
        self.value = value
        self.lrs: list[float] = []
        self.values: list[float] = []

    def __call__(self, output, target):
        lr = float(self.optimizer.param_groups[0]["lr"])
        value = float(self.value(len(self.values), lr, target))
        self.lrs.append(lr)
        self.values.append(value)
        return output.sum() * 0.0 + value


def scripted(values):
    """A value function replaying `values[k]` for call k."""
    return lambda k, lr, target: values[k]


def linear_setup(lr=0.1):
    torch.manual_seed(0)
    model = torch.nn.Linear(12, 3)
    return model, torch.optim.SGD(model.parameters(), lr=lr)


def same_floats(a, b):
    """Element-wise equality that treats NaN as equal to NaN."""
    return len(a) == len(b) and all(x == y or (math.isnan(x) and math.isnan(y)) for x, y in zip(a, b))


# ---------------------------------------------------------------- history shape and pairing


def test_history_starts_at_start_lr_and_increases(engine_loader):
    model, opt = linear_setup()
    result = range_test(model, opt, engine_loader(), torch.nn.CrossEntropyLoss(), start_lr=1e-4, end_lr=1e-1, num_iter=12)
    assert isinstance(result, RangeTestResult)
    assert result.status == "completed"
    assert result.lrs[0] == 1e-4
    assert result.lrs[-1] == 1e-1
    assert all(b > a for a, b in zip(result.lrs, result.lrs[1:]))
    assert len(result.lrs) == len(result.losses) == len(result.smoothed) == result.num_steps == 12
    hist = result.history
    assert len(hist["lr"]) == len(hist["loss"]) == len(hist["smoothed"]) == 12
    np.testing.assert_array_equal(result.lrs, lr_schedule(1e-4, 1e-1, 12))


def test_each_loss_is_paired_with_the_lr_that_produced_it(engine_loader):
    model, opt = linear_setup()
    loss_fn = ScriptedLoss(opt, lambda k, lr, target: -math.log(lr))  # the loss reveals the lr in force
    stepped = []
    opt.register_step_pre_hook(lambda o, args, kwargs: stepped.append(float(o.param_groups[0]["lr"])))
    result = range_test(model, opt, engine_loader(), loss_fn, start_lr=1e-6, end_lr=1.0, num_iter=15)
    assert result.num_steps == 15
    assert loss_fn.lrs == result.lrs  # the lr in force when losses[i] was computed is lrs[i]
    assert stepped == result.lrs  # and the optimizer step that followed used it too
    np.testing.assert_allclose(result.losses, [-math.log(lr) for lr in result.lrs], rtol=1e-6)


def test_linear_mode_pairs_losses_with_linear_lrs(engine_loader):
    model, opt = linear_setup()
    loss_fn = ScriptedLoss(opt, lambda k, lr, target: 1.0 - lr)
    result = range_test(model, opt, engine_loader(), loss_fn, start_lr=0.1, end_lr=0.5, num_iter=5, mode="linear")
    np.testing.assert_allclose(result.lrs, [0.1, 0.2, 0.3, 0.4, 0.5], rtol=1e-12)
    assert loss_fn.lrs == result.lrs
    np.testing.assert_allclose(result.losses, [0.9, 0.8, 0.7, 0.6, 0.5], rtol=1e-6)


def test_other_param_groups_keep_their_ratio_to_group_zero(engine_loader):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(12, 8), torch.nn.Linear(8, 3))
    opt = torch.optim.SGD([{"params": model[0].parameters(), "lr": 0.1}, {"params": model[1].parameters(), "lr": 0.01}])
    seen = []
    opt.register_step_pre_hook(lambda o, args, kwargs: seen.append([float(g["lr"]) for g in o.param_groups]))
    result = range_test(model, opt, engine_loader(), torch.nn.CrossEntropyLoss(), start_lr=1e-4, end_lr=1e-2, num_iter=6)
    for (lr0, lr1), lr in zip(seen, result.lrs):
        assert lr0 == lr
        assert lr1 == pytest.approx(lr * 0.1, rel=1e-12)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.01]  # restored afterwards


# ---------------------------------------------------------------- accumulation and the loader


def test_gradient_accumulation_moves_lr_once_per_optimizer_step(engine_loader):
    model, opt = linear_setup()
    loss_fn = ScriptedLoss(opt, lambda k, lr, target: 1.0 + target.float().mean().item())
    stepped = []
    opt.register_step_pre_hook(lambda o, args, kwargs: stepped.append(float(o.param_groups[0]["lr"])))
    loader = engine_loader(batch_size=16, n=48)  # 3 batches
    result = range_test(model, opt, loader, loss_fn, start_lr=1e-4, end_lr=1e-2, num_iter=5, accumulation_steps=3)
    assert result.num_steps == 5
    assert len(loss_fn.lrs) == 15  # the loss is computed 3x per optimizer step
    assert len(stepped) == 5  # optimizer.step runs num_iter times
    assert stepped == result.lrs
    assert loss_fn.lrs == [lr for lr in result.lrs for _ in range(3)]  # lr changes once per 3 micro-batches
    # each recorded loss is the mean over its micro-batches
    means = [sum(loss_fn.values[3 * i : 3 * i + 3]) / 3 for i in range(5)]
    np.testing.assert_allclose(result.losses, means, rtol=1e-6)


def test_loader_is_cycled_when_num_iter_exceeds_one_epoch(engine_loader):
    model, opt = linear_setup()
    loader = engine_loader(batch_size=16, n=48)  # 3 batches
    assert len(loader) == 3
    seen = []

    def step_fn(model, batch, loss_fn):
        inputs, targets = batch
        seen.append(float(inputs[0, 0]))
        return loss_fn(model(inputs), targets)

    result = range_test(model, opt, loader, torch.nn.CrossEntropyLoss(), start_lr=1e-4, end_lr=1e-2, num_iter=10, step_fn=step_fn)
    assert result.status == "completed"
    assert result.num_steps == 10
    first_epoch = seen[:3]
    assert len(set(first_epoch)) == 3
    assert seen == (first_epoch * 4)[:10]


def test_a_plain_list_of_batches_works_as_a_loader(engine_data):
    model, opt = linear_setup()
    x, y = engine_data
    batches = [(x[:16], y[:16]), (x[16:32], y[16:32])]
    result = range_test(model, opt, batches, torch.nn.CrossEntropyLoss(), start_lr=1e-4, end_lr=1e-2, num_iter=5)
    assert result.num_steps == 5


def test_empty_loader_raises_a_clear_error(engine_loader):
    model, opt = linear_setup()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="no batches"):
        range_test(model, opt, [], torch.nn.CrossEntropyLoss(), num_iter=5)
    loader = engine_loader(batch_size=16, n=8, drop_last=True)  # smaller than one batch
    with pytest.raises(ValueError, match="no batches"):
        range_test(model, opt, loader, torch.nn.CrossEntropyLoss(), num_iter=5)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_a_one_shot_iterator_that_runs_out_says_so(engine_data):
    model, opt = linear_setup()
    x, y = engine_data
    batches = iter([(x[:16], y[:16]), (x[16:32], y[16:32]), (x[32:48], y[32:48])])
    with pytest.raises(ValueError, match="cannot be iterated again"):
        range_test(model, opt, batches, torch.nn.CrossEntropyLoss(), start_lr=1e-4, end_lr=1e-2, num_iter=10)
    fresh = iter([(x[:16], y[:16]), (x[16:32], y[16:32]), (x[32:48], y[32:48])])
    result = range_test(model, opt, fresh, torch.nn.CrossEntropyLoss(), start_lr=1e-4, end_lr=1e-2, num_iter=3)
    assert result.num_steps == 3  # one pass is enough when num_iter fits in it


def test_a_batch_that_is_not_a_pair_needs_a_step_fn(engine_data):
    model, opt = linear_setup()
    x, _ = engine_data
    with pytest.raises(TypeError, match="step_fn"):
        range_test(model, opt, [x[:16]], torch.nn.CrossEntropyLoss(), num_iter=3)


def test_step_fn_receives_dict_batches_untouched(engine_data):
    model, opt = linear_setup()
    x, y = engine_data
    keys = []

    def step_fn(model, batch, loss_fn):
        keys.append(sorted(batch))
        return loss_fn(model(batch["image"]), batch["label"])

    batches = [{"image": x[:16], "label": y[:16]}]
    result = range_test(model, opt, batches, torch.nn.CrossEntropyLoss(), start_lr=1e-4, end_lr=1e-2, num_iter=3, step_fn=step_fn)
    assert result.num_steps == 3
    assert keys == [["image", "label"]] * 3


@pytest.mark.parametrize(
    "kwargs",
    [
        {"accumulation_steps": 0},
        {"smoothing": 1.0},
        {"smoothing": -0.1},
        {"diverge_threshold": 1.0},
        {"precision": "fp8"},
        {"snapshot": "gpu"},
        {"mode": "cosine"},
        {"num_iter": 1},
        {"start_lr": 1.0, "end_lr": 1e-3},
    ],
)
def test_invalid_arguments_raise_value_error_before_training(engine_loader, kwargs):
    model, opt = linear_setup()
    calls = []

    def step_fn(model, batch, loss_fn):
        calls.append(1)
        return loss_fn(model(batch[0]), batch[1])

    with pytest.raises(ValueError):
        range_test(model, opt, engine_loader(), torch.nn.CrossEntropyLoss(), step_fn=step_fn, **kwargs)
    assert calls == []


# ---------------------------------------------------------------- stop rule


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_loss_stops_immediately(engine_loader, bad):
    model, opt = linear_setup()
    loss_fn = ScriptedLoss(opt, scripted([3.0, 2.5, 2.0, bad] + [1.0] * 20))
    result = range_test(model, opt, engine_loader(), loss_fn, start_lr=1e-5, end_lr=1e-1, num_iter=20)
    assert result.status == "diverged"
    assert result.num_steps == 4  # stopped at step 3
    assert len(loss_fn.values) == 4  # on a CPU a non-finite loss is seen at once: no step after the bad one
    assert "non-finite" in result.stop_reason
    assert result.losses[:3] == [3.0, 2.5, 2.0]
    assert not math.isfinite(result.losses[3])
    doc = result.to_dict()
    text = json.dumps(doc, allow_nan=False)  # no NaN/Infinity reaches result.json
    assert json.loads(text)["history"]["loss"] == [3.0, 2.5, 2.0, None]
    assert doc["num_steps"] == 4
    assert doc["status"] == "diverged"


def test_positive_loss_that_blows_up_stops_as_diverged(engine_loader):
    model, opt = linear_setup()
    values = [2.0 - k * 0.05 for k in range(20)] + [1.0 * 3.0**k for k in range(1, 30)]
    loss_fn = ScriptedLoss(opt, scripted(values))
    result = range_test(model, opt, engine_loader(), loss_fn, start_lr=1e-5, end_lr=1.0, num_iter=49)
    assert result.status == "diverged"
    assert 20 <= result.num_steps - 1 < 30
    assert "diverged" in result.stop_reason


def test_negative_losses_diverge_only_after_the_fall(engine_loader):
    model, opt = linear_setup()
    values = [-10.0 - 2.0 * math.tanh(k / 5) for k in range(25)] + [-12.0 + 3.0 * k**2 for k in range(1, 40)]
    loss_fn = ScriptedLoss(opt, scripted(values))
    result = range_test(model, opt, engine_loader(), loss_fn, start_lr=1e-5, end_lr=1.0, num_iter=64)
    assert result.status == "diverged"
    stop = result.num_steps - 1
    assert stop >= 25  # not while the loss was still falling (a plain `smoothed > 4 * best` would stop at step 1)
    assert stop < 45  # but once the rise is clear
    assert all(v < 0 for v in result.losses[:25])


def test_negative_losses_that_keep_falling_complete(engine_loader):
    model, opt = linear_setup()
    loss_fn = ScriptedLoss(opt, scripted([-1.0 - 0.1 * k for k in range(40)]))
    result = range_test(model, opt, engine_loader(), loss_fn, start_lr=1e-5, end_lr=1.0, num_iter=40, extend_decades=0)
    assert result.status == "completed"
    assert result.num_steps == 40


def test_near_zero_positive_losses_do_not_stop_on_tiny_noise(engine_loader):
    model, opt = linear_setup()
    rng = np.random.default_rng(0)
    # falls from 1 to ~1e-8, then jitters by up to 1e-5: huge relative to the best, tiny relative to the fall
    fall = [math.exp(-k) for k in range(19)]
    noise = list(1e-8 + 1e-5 * rng.random(60))
    loss_fn = ScriptedLoss(opt, scripted(fall + noise))
    result = range_test(model, opt, engine_loader(), loss_fn, start_lr=1e-6, end_lr=1.0, num_iter=79, smoothing=0.0,
                        extend_decades=0)
    assert result.status == "completed", result.stop_reason
    assert result.num_steps == 79


def test_near_zero_losses_with_tiny_noise_from_the_start_do_not_stop(engine_loader):
    model, opt = linear_setup()
    rng = np.random.default_rng(1)
    loss_fn = ScriptedLoss(opt, scripted(list(1e-6 * (1 + 0.2 * rng.standard_normal(60)))))
    result = range_test(model, opt, engine_loader(), loss_fn, start_lr=1e-6, end_lr=1.0, num_iter=60, extend_decades=0)
    assert result.status == "completed", result.stop_reason


def test_near_zero_losses_still_stop_on_a_real_blow_up(engine_loader):
    model, opt = linear_setup()
    fall = [math.exp(-k) for k in range(19)]
    loss_fn = ScriptedLoss(opt, scripted(fall + [1e-8] * 10 + [0.5 * 2**k for k in range(40)]))
    result = range_test(model, opt, engine_loader(), loss_fn, start_lr=1e-6, end_lr=1.0, num_iter=60, smoothing=0.0)
    assert result.status == "diverged"
    assert result.num_steps - 1 >= 29


# ---------------------------------------------------------------- smoothing


def hand_ema(losses, beta):
    avg, out = 0.0, []
    for t, loss in enumerate(losses, start=1):
        avg = beta * avg + (1 - beta) * loss
        out.append(avg / (1 - beta**t))
    return out


def test_loss_curve_is_a_bias_corrected_ema():
    losses = [5.0, 3.0, 4.0, 1.0, 2.5, 0.5, 0.7]
    curve = LossCurve(0.9, 4.0)
    got = [curve.add(v) for v in losses]
    assert got == pytest.approx(hand_ema(losses, 0.9), rel=1e-12)
    assert got[0] == pytest.approx(5.0, rel=1e-12)  # bias correction: the first value is the first loss
    # by hand, step 2: avg = 0.9*0.5 + 0.1*3 = 0.75, corrected by 1 - 0.81 = 0.19
    assert got[1] == pytest.approx(0.75 / 0.19, rel=1e-12)


def test_loss_curve_with_zero_smoothing_is_the_raw_loss():
    curve = LossCurve(0.0, 4.0)
    assert [curve.add(v) for v in [3.0, 1.0, 2.0]] == [3.0, 1.0, 2.0]


def test_range_test_smoothing_is_counted_from_its_own_step_zero(engine_loader):
    model, opt = linear_setup()
    values = [2.0, 1.9, 2.1, 1.5, 1.6, 1.2, 1.0, 1.1]
    result = range_test(model, opt, engine_loader(), ScriptedLoss(opt, scripted(values)), start_lr=1e-5, end_lr=1e-2,
                        num_iter=8, smoothing=0.7)
    assert result.losses == pytest.approx(values, rel=1e-6)
    assert result.smoothed == pytest.approx(hand_ema(result.losses, 0.7), rel=1e-12)
    assert result.smoothed[0] == result.losses[0]


# ---------------------------------------------------------------- sync_every and on_step


def test_sync_every_does_not_change_the_history_of_a_real_sweep(engine_bn_model, engine_loader):
    model = engine_bn_model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = engine_loader(batch_size=16, shuffle=True)
    results = [range_test(model, opt, loader, torch.nn.CrossEntropyLoss(), start_lr=1e-4, end_lr=100.0, num_iter=40, sync_every=s)
               for s in (1, 4, 16)]
    assert results[0].status == "diverged"
    for other in results[1:]:
        assert other.status == results[0].status
        assert other.stop_reason == results[0].stop_reason
        assert other.lrs == results[0].lrs
        assert same_floats(other.losses, results[0].losses)
        assert same_floats(other.smoothed, results[0].smoothed)
        assert other.suggestions == results[0].suggestions


@pytest.mark.parametrize("bad_step", [5, 9, 21])  # mid-chunk for sync_every 4 and 16
def test_sync_every_cuts_history_at_a_stop_in_mid_chunk(engine_loader, bad_step):
    histories = []
    for sync in (1, 4, 16):
        model, opt = linear_setup()
        values = [3.0 - 0.05 * k for k in range(bad_step)] + [math.nan] * 40
        infos = []
        result = range_test(model, opt, engine_loader(), ScriptedLoss(opt, scripted(values)), start_lr=1e-5, end_lr=1.0,
                            num_iter=32, sync_every=sync, on_step=infos.append)
        assert result.status == "diverged"
        assert result.num_steps == bad_step + 1
        assert [info.step for info in infos] == list(range(bad_step + 1))  # no callbacks for the steps run past the stop
        histories.append((result.lrs, result.losses[:-1], result.smoothed[:-1], result.stop_reason))
    assert histories[0] == histories[1] == histories[2]


@pytest.mark.parametrize("sync", [1, 4, 16])
def test_on_step_is_called_once_per_recorded_step_in_order(engine_loader, sync):
    model, opt = linear_setup()
    values = [2.0 - 0.02 * k for k in range(30)] + [50.0 * 2**k for k in range(30)]
    infos: list[StepInfo] = []
    result = range_test(model, opt, engine_loader(), ScriptedLoss(opt, scripted(values)), start_lr=1e-5, end_lr=1.0,
                        num_iter=50, sync_every=sync, on_step=infos.append)
    assert result.status == "diverged"
    assert [i.step for i in infos] == list(range(result.num_steps))
    assert [i.lr for i in infos] == result.lrs
    assert [i.loss for i in infos] == result.losses
    assert [i.smoothed for i in infos] == result.smoothed
    assert all(i.num_iter == 50 for i in infos)
    for info in infos:  # best so far is the lowest smoothed loss up to that step
        upto = result.smoothed[: info.step + 1]
        assert info.best_loss == min(upto)
        assert info.best_lr == result.lrs[upto.index(min(upto))]


# ---------------------------------------------------------------- precision and snapshot


def params_copy(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same_state(model, before):
    after = model.state_dict()
    assert after.keys() == before.keys()
    for key, value in before.items():
        assert after[key].dtype == value.dtype, key
        assert torch.equal(after[key], value), key


def test_bf16_autocast_runs_on_cpu(engine_bn_model, engine_loader):
    model = engine_bn_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    before = params_copy(model)
    result = range_test(model, opt, engine_loader(), torch.nn.CrossEntropyLoss(), start_lr=1e-4, end_lr=1e-1, num_iter=8,
                        precision="bf16")
    assert result.num_steps == 8
    assert all(math.isfinite(v) for v in result.losses)
    assert_same_state(model, before)


def _cpu_fp16_supported() -> bool:
    try:
        torch.amp.GradScaler("cpu")
        x = torch.ones(2, 2, requires_grad=True)
        with torch.autocast(device_type="cpu", dtype=torch.float16):
            y = x @ x
        return y.dtype == torch.float16
    except Exception:
        return False


@pytest.mark.skipif(not _cpu_fp16_supported(), reason="this torch has no CPU fp16 autocast or CPU GradScaler")
def test_fp16_autocast_with_grad_scaler_runs_on_cpu(engine_bn_model, engine_loader):
    model = engine_bn_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    before = params_copy(model)
    result = range_test(model, opt, engine_loader(), torch.nn.CrossEntropyLoss(), start_lr=1e-4, end_lr=1e-1, num_iter=8,
                        precision="fp16")
    assert result.num_steps == 8
    assert all(math.isfinite(v) for v in result.losses)
    assert_same_state(model, before)
    assert len(opt.state) == 0


def snapshot_dirs():
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "lrfind-snapshot-*")))


def test_disk_snapshot_restores_and_leaves_no_temp_dir(engine_bn_model, engine_loader):
    model = engine_bn_model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    before = params_copy(model)
    dirs = snapshot_dirs()
    result = range_test(model, opt, engine_loader(shuffle=True), torch.nn.CrossEntropyLoss(), start_lr=1e-4, end_lr=1e-1,
                        num_iter=8, snapshot="disk")
    assert result.num_steps == 8
    assert snapshot_dirs() == dirs
    assert_same_state(model, before)
    assert len(opt.state) == 0


def test_disk_snapshot_leaves_no_temp_dir_after_an_exception(engine_bn_model, engine_loader):
    model = engine_bn_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = params_copy(model)
    dirs = snapshot_dirs()
    calls = []

    def step_fn(model, batch, loss_fn):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("boom")
        return loss_fn(model(batch[0]), batch[1])

    with pytest.raises(RuntimeError, match="boom"):
        range_test(model, opt, engine_loader(), torch.nn.CrossEntropyLoss(), num_iter=8, snapshot="disk", step_fn=step_fn)
    assert snapshot_dirs() == dirs
    assert_same_state(model, before)


def test_disk_and_memory_snapshots_give_the_same_history(engine_bn_model, engine_loader):
    model = engine_bn_model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = engine_loader(shuffle=True)
    kwargs = {"start_lr": 1e-4, "end_lr": 1.0, "num_iter": 10}
    memory = range_test(model, opt, loader, torch.nn.CrossEntropyLoss(), snapshot="memory", **kwargs)
    disk = range_test(model, opt, loader, torch.nn.CrossEntropyLoss(), snapshot="disk", **kwargs)
    assert memory.losses == disk.losses
