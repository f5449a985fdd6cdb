"""Steps the fp16 GradScaler skips (inf/NaN gradients) applied no lr: marked in the history, left out of the answer, counted."""

import json

import pytest
import torch

from lrfind_cli import range_test
from lrfind_cli.results import history_csv
from lrfind_cli.suggest import summarize

SKIPPED = {3, 4, 11, 20, 21, 22}


def cpu_grad_scaler():
    try:
        return torch.amp.GradScaler("cpu", init_scale=2.0**10)
    except (AttributeError, TypeError, RuntimeError):
        return None


pytestmark = pytest.mark.skipif(cpu_grad_scaler() is None, reason="this torch has no CPU GradScaler")


class InfGradient(torch.autograd.Function):
    """The loss times 100 going forward, and an infinite gradient going back: a step the scaler must skip."""

    @staticmethod
    def forward(ctx, loss):
        return loss * 100

    @staticmethod
    def backward(ctx, grad):
        return grad * float("inf")


def step_failing_at(steps: set[int]):
    """A step whose backward overflows at the given (0-based) optimizer steps; the spike in its loss must not count."""
    calls = []

    def step_fn(model, batch, loss_fn):
        calls.append(1)
        loss = loss_fn(model(batch[0]), batch[1])
        return InfGradient.apply(loss) if len(calls) - 1 in steps else loss

    return step_fn


def test_skipped_steps_are_marked_and_left_out_of_the_suggestion(engine_bn_model, engine_loader):
    model = engine_bn_model(dropout=0.0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    applied = []
    optimizer.register_step_post_hook(lambda *_: applied.append(True))
    scaler = cpu_grad_scaler()

    result = range_test(model, optimizer, engine_loader(shuffle=True), torch.nn.CrossEntropyLoss(), start_lr=1e-4,
                        end_lr=1.0, num_iter=40, scaler=scaler, step_fn=step_failing_at(SKIPPED), warm_start=False,
                        extend_decades=0)

    n = result.num_steps
    assert n == 40 and result.status == "completed"  # the 100x spikes of the skipped steps did not stop the sweep
    assert result.history["skipped"] == [i in SKIPPED for i in range(n)]
    assert len(applied) == n - len(SKIPPED)  # what is marked is what the optimizer really skipped
    lrs, smoothed, losses = result.measured_curve
    assert lrs == [lr for i, lr in enumerate(result.lrs) if i not in SKIPPED]
    assert all(result.smoothed[i] != result.smoothed[i] for i in SKIPPED)  # NaN: not a measurement
    assert all(result.curve[i] is None for i in SKIPPED)  # nor a point of the zero-lag curve the rule reads
    expected = summarize([(lrs, smoothed, losses)], "auto", "onecycle", ["completed"], False, 1.0)
    assert result.suggestions == expected.suggestions and result.suggested_lr == expected.suggested_lr
    assert "skipped_steps" in result.confidence.flags and result.confidence.skipped_steps == len(SKIPPED)
    note = result.confidence.notes[result.confidence.flags.index("skipped_steps")]
    assert f"skipped {len(SKIPPED)} steps" in note
    rows = history_csv(result).splitlines()
    assert rows[0].endswith(",skipped") and rows[1 + 3].endswith(",1") and rows[1 + 5].endswith(",0")


def test_without_a_scaler_there_is_no_skipped_field(engine_bn_model, engine_loader):
    model = engine_bn_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    result = range_test(model, optimizer, engine_loader(), torch.nn.CrossEntropyLoss(), start_lr=1e-4, end_lr=1e-2, num_iter=5)
    assert "skipped" not in result.history and "skipped_steps" not in result.confidence.flags


def test_the_command_line_warns_with_the_count(cli_runner, cli_write_spec, tmp_path, monkeypatch):
    import sys

    from lrfind_cli.cli import app

    monkeypatch.setattr(sys.modules[__name__], "cli_step", step_failing_at({5, 6}))  # counts this run's steps from 0

    spec = cli_write_spec("""
        seed: 0
        device: cpu
        precision: fp16
        model: {name: tiny_mlp, kwargs: {in_features: 48, num_classes: 4}}
        data: {name: synthetic, kwargs: {num_samples: 256, num_classes: 4, channels: 3, height: 4, width: 4, noise: 0.5},
               batch_size: 32}
        optimizer: {name: SGD, kwargs: {momentum: 0.9}}
        step: "tests.test_skipped_steps:step_skipped_twice"
        sweep: {start_lr: 1.0e-4, end_lr: 10.0, num_iter: 30}
    """)
    result = cli_runner.invoke(app, ["run", str(spec), "--json", "--out", str(tmp_path / "out")])
    assert result.exit_code in (0, 3), result.stderr
    doc = json.loads(result.stdout)
    skipped = [i for i, s in enumerate(doc["history"]["skipped"]) if s]
    assert {5, 6} <= set(skipped)  # the two it was made to skip (fp16 may overflow by itself late in the sweep)
    assert doc["confidence"]["skipped_steps"] == len(skipped)
    assert f"note (skipped_steps): the GradScaler (fp16) skipped {len(skipped)} steps" in result.stderr


cli_step = step_failing_at(set())


def step_skipped_twice(model, batch, loss_fn):
    """The spec's step (by import path): `cli_step`, which the test sets up afresh."""
    return cli_step(model, batch, loss_fn)
