"""Where lrfind gives no answer rather than a wrong one, and the one curve every output reads (issue 21: 1, 2, 3, 9, 17).

- an untrained model (any model the spec does not say is trained) never gets the fine-tuning answer;
- a curve that rises from its first step, or whose answer would lie below start_lr, gets none (began_past_edge);
- an interrupted sweep's result has no suggestion;
- no answer is read off end_lr: a sweep that has not diverged goes on past it, and without divergence there is none;
- result.json's `best`, the summary line, the live table, the `minimum` method and the plot read one curve.
"""

import json
import math
import os
import signal
import sys
import time

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from lrfind_cli import RangeTestInterrupted, range_test
from lrfind_cli.cli import app
from lrfind_cli.suggest import FINETUNE_DECADES, ONECYCLE_DECADES, horizon, read_curve, summarize, zero_lag
from tests.test_cli import REPO, SHORT, TINY, invoke

# ---------------------------------------------------------------- 1: the fine-tuning answer is for trained models

MYMODELS = '''
from torch import nn


class MLP(nn.Sequential):
    """The README's CSV recipe model, written by a user: the same layers as the built-in mlp_regressor."""

    def __init__(self, in_features: int = 3, hidden: int = 32, depth: int = 2):
        layers: list[nn.Module] = []
        width = in_features
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        super().__init__(*layers, nn.Linear(width, 1))
'''


def _csv_recipe(tmp_path):
    for name in ("my_csv.py", "data.csv", "spec.yaml"):
        (tmp_path / name).write_bytes((REPO / "examples" / "csv" / name).read_bytes())
    (tmp_path / "mymodels.py").write_text(MYMODELS, encoding="utf-8")
    return tmp_path


def _run(args, cwd, out):
    result = invoke(CliRunner(), ["run", "spec.yaml", "--out", out, *args], cwd=cwd)
    assert result.exit_code == 0, result.output
    return result, json.loads((out / "result.json").read_text())


@pytest.fixture
def forget_recipe_modules():
    yield
    for name in ("my_csv", "mymodels"):
        sys.modules.pop(name, None)


def test_a_users_own_model_by_import_path_is_answered_as_the_untrained_model_it_is(tmp_path, forget_recipe_modules):
    # issue 21's example: the README's CSV recipe with `model.name: "mymodels:MLP"`, a fresh MLP
    recipe = _csv_recipe(tmp_path)

    builtin, builtin_doc = _run(["--json"], recipe, tmp_path / "builtin")
    mine, doc = _run(["--json", "--set", "model.name=mymodels:MLP"], recipe, tmp_path / "mine")
    constant, constant_doc = _run(["-q", "--set", "model.name=mymodels:MLP", "--set", "suggest.schedule=constant"], recipe,
                                  tmp_path / "constant")

    # the same layers from the same seed: the same curve, and the same answer as the built-in gets
    assert doc["history"]["loss"] == builtin_doc["history"]["loss"]
    assert (doc["method"], doc["suggested_lr"]) == (builtin_doc["method"], builtin_doc["suggested_lr"]) == (
        "onecycle", doc["schedules"]["onecycle"]["suggested_lr"])
    assert doc["suggestions"]["finetune"] is None and "pretrained" not in doc["confidence"]["flags"]
    # the schedule the user chose is the answer -q hands to CI
    assert constant_doc["method"] == "constant" and float(constant.stdout) == constant_doc["schedules"]["constant"]["suggested_lr"]


def test_model_trained_is_a_section_key_beside_hydras_target(cli_write_spec):
    from lrfind_cli.build import starts_trained
    from lrfind_cli.spec import load_spec

    spec = load_spec(cli_write_spec("model:\n  _target_: tests.models.tiny_mlp\n  trained: true\n")).spec

    assert spec.model.trained is True and "trained" not in spec.model.kwargs and starts_trained(spec.model) is True


def _flat_then_rising(noise=0.25):
    """A fall of 0.3 hidden in batch noise of 0.25, then a rise: the shape a trained model's sweep has."""
    lrs = np.logspace(-6, 0, 200)
    u = np.log10(lrs)
    raw = 1.0 - 0.3 / (1 + np.exp(-(u + 3) / 0.3)) + np.where(u > -1, 5 * (u + 1), 0.0)
    return lrs, raw + noise * np.random.default_rng(0).standard_normal(200)


@pytest.mark.parametrize("schedule, method, decades", [("onecycle", "finetune", FINETUNE_DECADES),
                                                       ("constant", "constant", 1.25)])
def test_a_trained_models_answer_is_never_above_the_finetune_rate_and_keeps_a_lower_schedule(schedule, method, decades):
    lrs, raw = _flat_then_rising()
    onset = read_curve(lrs, raw, raw).onset_lr

    found = summarize([(lrs, raw, raw)], schedule=schedule, warm_start=True)
    # no plan: the schedule's rule answers for the assumed length (a stream: the first slope only); the bound does not move
    length = horizon.length_decades(horizon.DEFAULT_STEPS, None)

    assert found.method == method and found.schedule == schedule
    assert found.suggested_lr == pytest.approx(onset / 10 ** (decades + (method != "finetune") * length), rel=1e-12)
    assert found.suggestions["finetune"] == pytest.approx(onset / 10**FINETUNE_DECADES, rel=1e-12)
    assert found.confidence.flags == ("pretrained",)
    # naming the schedule's rule as the method gives that rule's rate, as the note says
    named = summarize([(lrs, raw, raw)], method="onecycle", warm_start=True)
    assert named.method == "onecycle" and named.suggested_lr == pytest.approx(onset / 10 ** (ONECYCLE_DECADES + length), rel=1e-12)
    assert "suggest.method: onecycle" in found.confidence.notes[0]


# ---------------------------------------------------------------- 2: no answer at the start of the range


def test_a_curve_rising_from_its_first_step_gets_no_answer_and_says_the_sweep_began_past_the_edge():
    # ignite's test_lr_suggestion_unexpected_curve: 1.00 -> 1.29 over 30 steps, no fall
    lrs = np.logspace(-7, 1, 30)
    raw = np.linspace(1.0, 1.29, 30)

    found = summarize([(lrs, raw, raw)], statuses=["completed"])

    assert found.suggested_lr is None and all(lr is None for lr in found.suggestions.values())
    assert "began_past_edge" in found.confidence.flags and "flat_curve" not in found.confidence.flags
    assert "lower sweep.start_lr" in found.confidence.notes[found.confidence.flags.index("began_past_edge")]


def _fall_then_early_divergence():
    """A fall within the first decade and a half, and divergence right after it: the onset is 1.2 decades above start."""
    lrs = np.logspace(-7, 1, 100)
    i = np.arange(100)
    raw = 2.0 - 1.0 / (1 + np.exp(-(i - 8) / 1.0)) + np.where(i > 14, 0.3 * (i - 14), 0.0)
    return lrs, raw


def test_an_answer_below_start_lr_is_no_answer_and_is_flagged():
    lrs, raw = _fall_then_early_divergence()
    reading = read_curve(lrs, raw, raw)
    assert reading.fell and reading.onset_lr / 10**1.25 < lrs[0] < reading.onset_lr / 10**ONECYCLE_DECADES

    constant = summarize([(lrs, raw, raw)], schedule="constant")
    onecycle = summarize([(lrs, raw, raw)], schedule="onecycle")

    # the constant rate would lie below the first lr: none, rather than start_lr itself
    assert constant.suggested_lr is None and constant.schedules["constant"].lr is None
    assert constant.confidence.flags == ("began_past_edge",)
    # one-cycle's lies inside the swept range (then moved to the assumed length), with nothing to flag
    length = horizon.length_decades(horizon.DEFAULT_STEPS, None)
    assert onecycle.suggested_lr == pytest.approx(reading.onset_lr / 10 ** (ONECYCLE_DECADES + length))
    assert onecycle.confidence.flags == ()


# ---------------------------------------------------------------- 3: an interrupted sweep has no suggestion


def test_a_sweep_interrupted_after_its_onset_keeps_its_history_and_has_no_suggestion(engine_loader, engine_bn_model):
    model = engine_bn_model(dropout=0.0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    steps = []

    def step(model, batch, loss_fn):
        steps.append(1)
        if len(steps) == 85:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
        return loss_fn(model(batch[0]), batch[1])

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(RangeTestInterrupted) as caught:
            range_test(model, optimizer, engine_loader(), torch.nn.functional.cross_entropy, start_lr=1e-4, end_lr=1e3,
                       num_iter=100, diverge_threshold=1e9, step_fn=step)
    finally:
        signal.signal(signal.SIGINT, previous)

    result = caught.value.result
    assert result.status == "interrupted" and result.num_steps == 84
    # the partial curve would give an answer if it were taken for a whole one ...
    assert summarize([(result.lrs, result.smoothed, result.losses)], statuses=["completed"]).suggested_lr is not None
    # ... the interrupted result gives none, and says why
    assert result.suggested_lr is None and result.lr_range is None
    assert all(lr is None for lr in result.suggestions.values()) and all(s.lr is None for s in result.schedules.values())
    assert result.confidence.flags == ("interrupted",)
    doc = result.to_dict()
    assert doc["suggested_lr"] is None and doc["suggested_group_lrs"] is None and len(doc["history"]["loss"]) == 84


# ---------------------------------------------------------------- 17: nothing is read off end_lr


def _noisy_bowl(end_lr, num_iter, start_lr=1e-4):
    """SGD on 0.5 (w - t)^2 with t ~ N(0, 0.1): stable below lr 2, diverging above; ten steps a decade from 1e-4."""
    torch.manual_seed(0)
    model = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.constant_(model.weight, 1.0)
    targets = 0.1 * torch.randn(4096, 1, generator=torch.Generator().manual_seed(0))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.ones(4096, 1), targets), batch_size=16)
    optimizer = torch.optim.SGD(model.parameters(), lr=start_lr)
    return range_test(model, optimizer, loader, torch.nn.MSELoss(), start_lr=start_lr, end_lr=end_lr, num_iter=num_iter)


def test_the_answer_does_not_depend_on_end_lr_once_the_sweep_goes_on_to_divergence():
    # issue 21's example was end_lr 10 / 100 / 1000 giving 1.78 / 2.75 / 0.55 for one model; here the same lrs
    # are swept at ten steps a decade up to end_lr 1 (below the edge at 2), 10 and 1000
    short, wide, wider = _noisy_bowl(1.0, 41), _noisy_bowl(10.0, 51), _noisy_bowl(1000.0, 71)

    assert short.status == wide.status == wider.status == "diverged"
    assert short.extended_steps > 0 and wide.extended_steps == wider.extended_steps == 0
    assert short.lrs[-1] > 1.0 and short.history["loss"] == wide.history["loss"] == wider.history["loss"]
    assert short.suggested_lr == pytest.approx(wide.suggested_lr, rel=1e-9) == pytest.approx(wider.suggested_lr, rel=1e-9)
    assert short.confidence.flags == ("extended",) and wide.confidence.flags == ()
    assert short.to_dict()["sweep"]["extended_steps"] == short.extended_steps


def test_a_sweep_that_never_diverges_even_past_end_lr_has_no_answer():
    result = _noisy_bowl(1e-2, 21)  # two decades past 1e-2 reach lr 1, still below the edge at 2

    assert result.status == "completed" and result.extended_steps == 20 and result.lrs[-1] == pytest.approx(1.0)
    assert "went on past it for 20 steps" in result.stop_reason
    assert result.suggested_lr is None and all(lr is None for lr in result.suggestions.values())
    assert result.confidence.flags == ("extended", "no_divergence")


BOWL = """
import torch


def targets(n: int = 4096, seed: int = 0):
    \"\"\"The data of a noisy bowl: inputs 1, targets N(1, 0.1), so any starting weight but 1 has a loss to lose.\"\"\"
    noise = 0.1 * torch.randn(n, 1, generator=torch.Generator().manual_seed(seed))
    return torch.utils.data.TensorDataset(torch.ones(n, 1), 1.0 + noise)
"""


def test_no_divergence_exits_3_with_nothing_on_stdout_and_the_remedy(tmp_path):
    (tmp_path / "bowl.py").write_text(BOWL, encoding="utf-8")
    spec = tmp_path / "spec.yaml"
    spec.write_text("seed: 0\ndevice: cpu\nmodel: {name: 'torch.nn:Linear', kwargs: {in_features: 1, out_features: 1, bias: false}}\n"
                    "data: {name: 'bowl:targets', batch_size: 16, shuffle: false}\nloss: {name: MSELoss}\n"
                    "optimizer: {name: SGD}\nsweep: {start_lr: 1.0e-4, end_lr: 1.0e-2, num_iter: 21}\n")

    result = invoke(CliRunner(), ["run", spec, "-q", "--out", tmp_path / "out"])
    sys.modules.pop("bowl", None)

    assert result.exit_code == 3, result.stderr
    assert result.stdout == ""
    doc = json.loads((tmp_path / "out" / "result.json").read_text())
    assert doc["suggested_lr"] is None and "no_divergence" in doc["confidence"]["flags"] and doc["sweep"]["extended_steps"] > 0
    assert "raise sweep.end_lr" in result.stderr


# ---------------------------------------------------------------- 9: one curve in every output


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny") / "out"
    result = CliRunner().invoke(app, ["run", str(TINY), "--out", str(out), *SHORT])
    return result, json.loads((out / "result.json").read_text()), out


def test_best_the_minimum_method_and_the_summary_line_read_the_zero_lag_curve(tiny_run):
    result, doc, _ = tiny_run
    history = doc["history"]
    lrs, curve = zero_lag(history["lr"], history["loss"])

    assert result.exit_code == 0, result.stderr
    assert history["zero_lag"] == pytest.approx(curve.tolist(), rel=1e-12)  # the curve the rule reads, in result.json
    i = int(np.argmin(curve))
    assert doc["best"] == {"lr": pytest.approx(lrs[i], rel=1e-12), "loss": pytest.approx(curve[i], rel=1e-12)}
    assert doc["best"]["loss"] != pytest.approx(min(history["smoothed"]))  # not the EMA's lowest point
    assert doc["suggestions"]["minimum"] == pytest.approx(doc["best"]["lr"] / 10, rel=1e-12)
    assert f"best loss {doc['best']['loss']:.4g} at lr {doc['best']['lr']:.4g}" in result.stdout


def test_the_plot_and_the_live_table_show_the_same_lowest_point(tiny_run):
    from rich.console import Console

    from lrfind_cli.plot import rule_curve
    from lrfind_cli.results import RangeTestResult
    from lrfind_cli.ui import LiveReporter

    _, doc, _ = tiny_run
    back = RangeTestResult.from_dict(doc)
    assert [v for _, v in rule_curve(back)] == pytest.approx(doc["history"]["zero_lag"], rel=1e-12)

    class Info:
        def __init__(self, step, lr, loss):
            self.step, self.num_iter, self.lr, self.loss, self.smoothed = step, len(doc["history"]["lr"]), lr, loss, loss
            self.best_loss, self.best_lr = math.inf, math.inf  # the engine's EMA best: not what the table shows

    import io

    buffer = io.StringIO()
    with LiveReporter(Console(file=buffer, force_terminal=True, width=160, color_system=None), "t", 20) as reporter:
        for step, (lr, loss) in enumerate(zip(doc["history"]["lr"], doc["history"]["loss"])):
            reporter.on_step(Info(step, lr, loss))
    final = buffer.getvalue()[buffer.getvalue().rindex("┏"):]
    last_row = next(line for line in final.splitlines() if line.startswith(f"│ {len(doc['history']['lr']) - 1:>4} │"))
    assert last_row.endswith(f" {doc['best']['loss']:.4g} @ {doc['best']['lr']:.2e} │")  # the last frame's last row


def test_the_typed_records_still_read_as_the_dicts_the_api_used_to_hand_out():
    lrs, raw = _flat_then_rising()
    found = summarize([(lrs, raw, raw)], warm_start=True)

    assert found.confidence["flags"] == list(found.confidence.flags) == found.confidence.get("flags")
    assert found.confidence.get("missing", "default") == "default"
    assert found.schedules["constant"]["suggested_lr"] == found.schedules["constant"].lr
