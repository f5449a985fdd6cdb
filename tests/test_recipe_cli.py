"""The recipe through the CLI: clipping and train_mode keys, a loss's parameters in the optimizer, collate_fn, and
hints chosen from the failure (cases 01, 02, 08 and 11 of ../shared/cases, made small)."""

import json

import pytest
import torch

from lrfind_cli.build import build_optimizer
from lrfind_cli.spec import OptimizerSpec
from tests.test_cli import assert_no_traceback, error_lines, invoke

# User code the specs below name by import path (written beside the spec, as a user's would be).
MODULES = '''
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_sequence

calls = {"n": 0}


def skipping_step(model, batch, loss_fn):
    calls["n"] += 1
    if calls["n"] == 3:  # e.g. a batch with nothing to learn from
        return None
    return loss_fn(model(batch[0]), batch[1])


def detached_step(model, batch, loss_fn):
    return loss_fn(model(batch[0]), batch[1]).detach()


def bn_mlp(in_features=8):
    return torch.nn.Sequential(torch.nn.Linear(in_features, 16), torch.nn.BatchNorm1d(16), torch.nn.ReLU(),
                               torch.nn.Linear(16, 1))


def frozen_bn_mlp(in_features=8):
    model = bn_mlp(in_features)
    model[1].eval()  # the constructor freezes the BatchNorm's statistics, as a fine-tuning setup does
    return model


def mlp(in_features=8, outputs=3):
    return torch.nn.Sequential(torch.nn.Linear(in_features, 16), torch.nn.ReLU(), torch.nn.Linear(16, outputs))


class FloatLabels(torch.utils.data.Dataset):
    """Class labels stored as floats: CrossEntropyLoss refuses them."""

    def __len__(self):
        return 64

    def __getitem__(self, i):
        return torch.full((8,), float(i % 3)), float(i % 3)


class TwoTargets(torch.utils.data.Dataset):
    def __init__(self, n=256):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 8, generator=g)
        self.y = torch.sin(self.x @ torch.randn(8, 2, generator=g)) + torch.tensor([0.05, 0.5]) * torch.randn(n, 2, generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


class UncertaintyWeightedMSE(torch.nn.Module):
    def __init__(self, tasks=2):
        super().__init__()
        self.log_vars = torch.nn.Parameter(torch.zeros(tasks))

    def forward(self, pred, target):
        return (torch.exp(-self.log_vars) * ((pred - target) ** 2).mean(dim=0) + self.log_vars).sum()


class VarLenSequences(torch.utils.data.Dataset):
    """Token sequences of 3..12 tokens; label: does token 1 occur more often than token 2."""

    def __init__(self, num_samples=256):
        g = torch.Generator().manual_seed(0)
        self.items = []
        for _ in range(num_samples):
            seq = torch.randint(0, 8, (int(torch.randint(3, 13, (1,), generator=g)),), generator=g)
            self.items.append((seq, int((seq == 1).sum() > (seq == 2).sum())))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def pad_collate(samples):
    seqs, labels = zip(*samples)
    return (pad_sequence(list(seqs), batch_first=True), torch.tensor([len(s) for s in seqs])), torch.tensor(labels)


class LSTMClassifier(torch.nn.Module):
    def __init__(self, dim=16):
        super().__init__()
        self.emb, self.lstm, self.head = torch.nn.Embedding(8, dim), torch.nn.LSTM(dim, dim, batch_first=True), torch.nn.Linear(dim, 2)

    def forward(self, inputs):
        tokens, lengths = inputs
        packed = pack_padded_sequence(self.emb(tokens), lengths, batch_first=True, enforce_sorted=False)
        return self.head(self.lstm(packed)[1][0][-1])
'''

TABULAR = "{name: synthetic_tabular, kwargs: {num_samples: 256, num_features: 8}, batch_size: 32}"


def spec_text(model: str, data: str, loss: str = "{name: MSELoss}", extra: str = "", num_iter: int = 8) -> str:
    return (f"seed: 0\ndevice: cpu\nmodel: {model}\ndata: {data}\nloss: {loss}\noptimizer: {{name: SGD, kwargs: {{momentum: 0.9}}}}\n"
            f"sweep: {{start_lr: 1.0e-4, end_lr: 1.0, num_iter: {num_iter}}}\n{extra}")


@pytest.fixture
def recipe(cli_user_module, cli_write_spec, cli_runner, tmp_path):
    """Factory: write the user module and a spec, run `lrfind run` on it from tmp_path; return (result, out dir)."""
    cli_user_module("recipe_mods", MODULES)

    def run(text: str, *args: str):
        out = tmp_path / "out"
        result = invoke(cli_runner, ["run", cli_write_spec(text), "--out", out, *args], cwd=tmp_path)
        return result, out

    return run


# ---- hints chosen from the failure ------------------------------------------------------------------------------


@pytest.mark.parametrize(("model", "data", "loss", "extra", "facts", "not_said"), [
    pytest.param("{name: 'recipe_mods:mlp', kwargs: {outputs: 1}}", TABULAR, "{name: MSELoss}", "step: 'recipe_mods:skipping_step'\n",
                 ["spec.yaml:8 step: 'recipe_mods:skipping_step' returned None at step 2 (of 0-7)", "return the loss for every batch"],
                 "num_classes", id="step-returns-none"),
    pytest.param("{name: 'recipe_mods:mlp', kwargs: {outputs: 1}}", TABULAR, "{name: MSELoss}", "step: 'recipe_mods:detached_step'\n",
                 ["does not require grad", "the loss has no gradient: step 'recipe_mods:detached_step'"],
                 "num_classes", id="step-detaches-the-loss"),
    pytest.param("{name: 'recipe_mods:mlp', kwargs: {outputs: 1}}", TABULAR, "{name: MSELoss, kwargs: {reduction: none}}", "",
                 ["loss: 'MSELoss' returned a tensor of shape (32, 1) at the first step", "loss.kwargs.reduction: mean"],
                 "num_classes", id="loss-not-reduced"),
    pytest.param("{name: 'recipe_mods:bn_mlp'}",
                 "{name: synthetic_tabular, kwargs: {num_samples: 65, num_features: 8}, batch_size: 16, drop_last: false, shuffle: false}",
                 "{name: MSELoss}", "", ["at step 4 (of 0-7)", "Expected more than 1 value per channel", "set data.drop_last: true"],
                 "num_classes", id="batch-of-one-meets-batchnorm"),
    pytest.param("{name: 'recipe_mods:mlp'}", "{name: 'recipe_mods:FloatLabels', batch_size: 16}", "{name: CrossEntropyLoss}", "",
                 ["expected target dtype to be Long", "the dtypes do not fit", "targets of data 'recipe_mods:FloatLabels'",
                  "loss 'CrossEntropyLoss'", "int64"], "num_classes", id="targets-of-the-wrong-dtype"),
    pytest.param("{name: 'recipe_mods:mlp', kwargs: {outputs: 4}}", "{name: 'recipe_mods:TwoTargets', batch_size: 32}",
                 "{name: MSELoss}", "",
                 ["model.kwargs: the output of model 'recipe_mods:mlp' has shape [32, 4] and the targets of data "
                  "'recipe_mods:TwoTargets' have shape [32, 2] at the first step", "MSELoss compares them element by element",
                  "set model.kwargs so the output has the targets' shape"],
                 "drop_last", id="output-shape-does-not-fit-the-loss"),
])
def test_a_failed_step_names_its_cause_and_the_fix(recipe, model, data, loss, extra, facts, not_said):
    result, out = recipe(spec_text(model, data, loss, extra), "-q")

    assert result.exit_code == 1
    lines = error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    for fact in facts:
        assert fact in lines[0]
    assert not_said not in lines[0]
    assert_no_traceback(result)


# ---- the recipe keys reach the sweep ----------------------------------------------------------------------------


def test_clip_grad_norm_from_the_spec_changes_the_curve_and_is_recorded(recipe):
    text = spec_text("{name: 'recipe_mods:mlp', kwargs: {outputs: 1}}", TABULAR, num_iter=10)
    plain, out = recipe(text, "--json", "--set", "sweep.end_lr=100")
    clipped, _ = recipe(text, "--json", "--set", "sweep.end_lr=100", "--set", "sweep.clip_grad_norm=0.01",
                        "--set", "sweep.clip_grad_value=1.0")

    assert plain.exit_code in (0, 3) and clipped.exit_code in (0, 3), clipped.stderr
    plain_doc, clipped_doc = json.loads(plain.stdout), json.loads(clipped.stdout)
    assert plain_doc["history"]["loss"][0] == clipped_doc["history"]["loss"][0]  # the same first batch and weights
    assert plain_doc["history"]["loss"][1:] != clipped_doc["history"]["loss"][1:]
    assert clipped_doc["spec"]["sweep"]["clip_grad_norm"] == 0.01 and clipped_doc["spec"]["sweep"]["clip_grad_value"] == 1.0
    assert plain_doc["spec"]["sweep"]["clip_grad_norm"] is None and plain_doc["spec"]["sweep"]["train_mode"] == "keep"


def test_train_mode_from_the_spec_decides_whether_a_frozen_batchnorm_trains(recipe):
    text = spec_text("{name: 'recipe_mods:frozen_bn_mlp'}", TABULAR, num_iter=6)
    keep, _ = recipe(text, "--json")
    train_all, _ = recipe(text, "--json", "--set", "sweep.train_mode=all")

    assert keep.exit_code in (0, 3) and train_all.exit_code in (0, 3), keep.stderr
    keep_loss, all_loss = json.loads(keep.stdout)["history"]["loss"], json.loads(train_all.stdout)["history"]["loss"]
    assert keep_loss[0] != all_loss[0]  # running statistics against batch statistics, from the first batch on


@pytest.mark.parametrize(("setting", "fact"), [
    ("sweep.clip_grad_norm=0", "sweep.clip_grad_norm"),
    ("sweep.clip_grad_value=-1", "sweep.clip_grad_value"),
    ("sweep.train_mode=eval", "sweep.train_mode"),
    ("data.collate_fn=recipe_mods:nowhere", "data.collate_fn"),
])
def test_bad_recipe_keys_are_spec_errors(recipe, setting, fact):
    result, _ = recipe(spec_text("{name: 'recipe_mods:mlp', kwargs: {outputs: 1}}", TABULAR), "--set", setting)

    assert result.exit_code == 2
    assert any(fact in line for line in error_lines(result.stderr)), result.stderr


def test_a_loss_with_parameters_trains_them_in_a_param_group_of_their_own(recipe):
    text = spec_text("{name: 'recipe_mods:mlp', kwargs: {outputs: 2}}", "{name: 'recipe_mods:TwoTargets', batch_size: 32}",
                     "{name: 'recipe_mods:UncertaintyWeightedMSE'}", num_iter=6)
    result, out = recipe(text, "-q")

    assert result.exit_code in (0, 3), result.stderr
    doc = json.loads((out / "result.json").read_text())
    assert [len(row) for row in doc["history"]["group_lrs"]] == [2] * doc["num_steps"]  # the model's group, the loss's


def test_build_optimizer_puts_a_loss_modules_trainable_parameters_last():
    model = torch.nn.Linear(4, 2)
    loss = torch.nn.Module()
    loss.weights = torch.nn.Parameter(torch.zeros(2))
    loss.fixed = torch.nn.Parameter(torch.zeros(2), requires_grad=False)

    optimizer, scales = build_optimizer(OptimizerSpec(name="Adam"), model, 1e-3, loss)

    assert scales == [1.0, 1.0]
    assert optimizer.param_groups[-1]["params"] == [loss.weights]
    assert build_optimizer(OptimizerSpec(), model, 1e-3, torch.nn.MSELoss())[1] == [1.0]  # a loss without parameters: no group


def test_variable_length_sequences_run_with_a_collate_fn(recipe):
    text = spec_text("{name: 'recipe_mods:LSTMClassifier'}", "{name: 'recipe_mods:VarLenSequences', batch_size: 32}",
                     "{name: CrossEntropyLoss}", num_iter=30).replace("end_lr: 1.0", "end_lr: 10.0")
    without, _ = recipe(text, "-q")
    result, out = recipe(text, "-q", "--set", "data.collate_fn=recipe_mods:pad_collate")

    assert without.exit_code == 1 and "stack expects each tensor to be equal size" in error_lines(without.stderr)[0]
    assert "data.collate_fn" in error_lines(without.stderr)[0]
    assert result.exit_code == 0, result.stderr
    doc = json.loads((out / "result.json").read_text())
    assert doc["num_steps"] > 10 and doc["suggested_lr"] == float(result.stdout)


def test_validation_batches_use_the_collate_fn_too(recipe):
    text = spec_text("{name: 'recipe_mods:LSTMClassifier'}", "{name: 'recipe_mods:VarLenSequences', batch_size: 32}",
                     "{name: CrossEntropyLoss}", num_iter=6,
                     extra="").replace("num_iter: 6}", "num_iter: 6, val: {every: 2, batches: 1}}")
    result, out = recipe(text, "-q", "--set", "data.collate_fn=recipe_mods:pad_collate")

    assert result.exit_code in (0, 3), result.stderr
    doc = json.loads((out / "result.json").read_text())
    assert doc["history"]["val_loss"][0] is not None
