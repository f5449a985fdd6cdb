"""Issue 8, any model and any batch: batch structures, custom steps, models that return their own loss,
parameter groups, warm starts from a checkpoint, and more model sources (timm, the built-in examples)."""

import collections
import json
import math
import sys
import types
from pathlib import Path

import pytest
import torch

from lrfind_cli import range_test
from lrfind_cli.build import build_model, build_optimizer, load_checkpoint
from lrfind_cli.cli import app
from lrfind_cli.data import SyntheticImages, SyntheticSequences, SyntheticTabular
from lrfind_cli.errors import RunError, SpecError
from lrfind_cli.finder import default_step
from lrfind_cli.models import TinyCausalLM
from lrfind_cli.registry import UnknownName, resolve_model
from lrfind_cli.spec import ModelSpec, OptimizerSpec, ParamGroupSpec, load_spec
from tests.models import tiny_mlp

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "tiny.yaml"
# The data of configs/tiny.yaml, for the model it names (tests.models:tiny_mlp with 48 inputs and 4 classes).
TINY_DATA = {"num_samples": 256, "num_classes": 4, "channels": 3, "height": 4, "width": 4, "noise": 0.5}
ESC = "\x1b"


def invoke(runner, args, *, cwd=REPO):
    """Run the app in-process from `cwd`, leaving the working directory and sys.path as they were."""
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(cwd)
        mp.setattr(sys, "path", list(sys.path))
        return runner.invoke(app, [str(a) for a in args])


def reject_constant(token: str):
    raise AssertionError(f"non-finite number {token} in JSON")


def load_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"), parse_constant=reject_constant)


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("error:")]


def linear_batches(n_batches: int = 4, batch_size: int = 8, features: int = 6, classes: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(features, classes, generator=g)
    out = []
    for _ in range(n_batches):
        x = torch.randn(batch_size, features, generator=g)
        out.append((x, (x @ w).argmax(dim=1)))
    return out


def linear_model(features: int = 6, classes: int = 3, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(features, 8), torch.nn.ReLU(), torch.nn.Linear(8, classes))


def state_copy(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def assert_bit_exact(actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert actual.keys() == expected.keys()
    for key, value in expected.items():
        assert actual[key].dtype == value.dtype and torch.equal(actual[key], value), key


# ---- batches of any structure -------------------------------------------------------------------------


class Tracked(torch.Tensor):
    """A tensor that records every `.to(...)` call made on it (and whether it was non-blocking)."""

    moves: list[bool] = []

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.Tensor.to:
            cls.moves.append(bool(kwargs.get("non_blocking", False)))
        return super().__torch_function__(func, types, args, kwargs)


Pair = collections.namedtuple("Pair", "left right")


def tracked(t: torch.Tensor) -> Tracked:
    return t.as_subclass(Tracked)


def plain(t: torch.Tensor) -> torch.Tensor:
    return t.as_subclass(torch.Tensor)


def test_nested_batches_keep_their_structure_and_every_tensor_at_any_depth_is_moved_non_blocking(monkeypatch):
    monkeypatch.setattr(Tracked, "moves", [])
    model = linear_model()
    batches = [
        {"inputs": [tracked(x), (tracked(x), {"deep": tracked(x)})], "pair": Pair(tracked(y), "label"), "name": "b", "index": i}
        for i, (x, y) in enumerate(linear_batches())
    ]
    seen = []

    def step(model, batch, loss_fn):
        seen.append(batch)
        x = plain(batch["inputs"][1][1]["deep"])
        return loss_fn(model(x), plain(batch["pair"].left))

    result = range_test(model, torch.optim.SGD(model.parameters(), lr=0.01), batches, torch.nn.CrossEntropyLoss(),
                        start_lr=1e-3, end_lr=1e-1, num_iter=4, step_fn=step)

    assert result.num_steps == 4
    assert len(Tracked.moves) == 4 * 4  # four tensors per batch, each moved once
    assert all(Tracked.moves), "every tensor is moved with non_blocking=True"
    for i, batch in enumerate(seen):
        assert type(batch) is dict and type(batch["inputs"]) is list and type(batch["inputs"][1]) is tuple
        assert type(batch["inputs"][1][1]) is dict
        assert type(batch["pair"]) is Pair and batch["pair"].right == "label"  # a namedtuple stays one
        assert batch["name"] == "b" and batch["index"] == i  # non-tensors pass untouched
        assert all(isinstance(t, torch.Tensor) for t in (batch["inputs"][0], batch["inputs"][1][0], batch["pair"].left))


def test_a_namedtuple_batch_stays_a_namedtuple_and_the_default_step_reads_inputs_and_targets_from_it():
    Batch = collections.namedtuple("Batch", "inputs targets")
    model = linear_model()
    batches = [Batch(x, y) for x, y in linear_batches()]
    kinds = []

    def step(model, batch, loss_fn):
        kinds.append(type(batch))
        return default_step(model, batch, loss_fn)

    result = range_test(model, torch.optim.SGD(model.parameters(), lr=0.01), batches, torch.nn.CrossEntropyLoss(),
                        start_lr=1e-3, end_lr=1e-1, num_iter=4, step_fn=step)

    assert kinds == [Batch] * 4
    assert all(math.isfinite(loss) for loss in result.losses)


def test_a_mapping_batch_that_is_not_a_dict_has_its_tensors_moved_too(monkeypatch):
    monkeypatch.setattr(Tracked, "moves", [])
    model = linear_model()
    batches = [collections.UserDict(x=tracked(x), y=tracked(y)) for x, y in linear_batches()]

    def step(model, batch, loss_fn):
        return loss_fn(model(plain(batch["x"])), plain(batch["y"]))

    range_test(model, torch.optim.SGD(model.parameters(), lr=0.01), batches, torch.nn.CrossEntropyLoss(),
               start_lr=1e-3, end_lr=1e-1, num_iter=2, step_fn=step)

    assert Tracked.moves == [True] * 4


def test_without_a_loss_function_a_mapping_batch_is_passed_as_keyword_arguments():
    model = ReturnsOwnLoss("dict")
    batch = collections.UserDict(x=torch.randn(4, 6), y=torch.tensor([0, 1, 2, 0]))

    loss = default_step(model, batch, None)

    assert loss.ndim == 0


# ---- the step: default, custom, and models that return their own loss -------------------------------------


def test_the_default_step_is_the_loss_of_the_model_output_against_the_targets():
    model = linear_model()
    x, y = linear_batches(1)[0]
    calls = []

    def loss_fn(output, target):
        calls.append((output, target))
        return torch.nn.functional.cross_entropy(output, target)

    loss = default_step(model, (x, y, "extra fields are ignored"), loss_fn)

    (output, target), = calls
    assert torch.equal(output, model(x)) and target is y
    assert torch.equal(loss, torch.nn.functional.cross_entropy(model(x), y))


class ReturnsOwnLoss(torch.nn.Module):
    """A classifier that computes its own cross-entropy and returns it in one of three shapes."""

    def __init__(self, kind: str):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Linear(6, 3)
        self.kind = kind

    def forward(self, x, y):
        logits = self.net(x)
        loss = torch.nn.functional.cross_entropy(logits, y)
        if self.kind == "tensor":
            return loss
        if self.kind == "attribute":
            return types.SimpleNamespace(logits=logits, loss=loss)
        return {"logits": logits, "loss": loss}


@pytest.mark.parametrize("kind", ["tensor", "attribute", "dict"])
def test_a_model_that_returns_its_own_loss_works_without_a_loss_function(kind):
    model = ReturnsOwnLoss(kind)
    batches = linear_batches()
    first = torch.nn.functional.cross_entropy(model.net(batches[0][0]), batches[0][1]).item()

    result = range_test(model, torch.optim.SGD(model.parameters(), lr=0.01), batches, None, start_lr=1e-3, end_lr=1e-1, num_iter=6)

    assert result.num_steps == 6
    assert result.losses[0] == pytest.approx(first, rel=1e-6)  # the loss recorded is the one the model returned


def test_a_dict_batch_is_passed_as_keyword_arguments_to_a_model_that_returns_its_own_loss():
    model = ReturnsOwnLoss("dict")
    batches = [{"x": x, "y": y} for x, y in linear_batches()]

    result = range_test(model, torch.optim.SGD(model.parameters(), lr=0.01), batches, None, start_lr=1e-3, end_lr=1e-1, num_iter=4)

    assert result.num_steps == 4 and all(math.isfinite(v) for v in result.losses)


class ReturnsLogits(torch.nn.Module):
    def __init__(self, wrap: bool):
        super().__init__()
        self.net, self.wrap = torch.nn.Linear(6, 3), wrap

    def forward(self, x):
        logits = self.net(x)
        return {"logits": logits} if self.wrap else logits


def test_a_model_output_without_a_loss_is_refused_with_what_it_must_return():
    model = ReturnsLogits(wrap=True)

    with pytest.raises(TypeError, match=r"no loss in it.*\.loss.*'loss'"):
        range_test(model, torch.optim.SGD(model.parameters(), lr=0.01), [torch.randn(4, 6)] * 2, None, num_iter=2)


def test_a_model_returning_a_tensor_that_is_not_a_scalar_loss_is_refused_as_not_a_loss():
    model = ReturnsLogits(wrap=False)

    with pytest.raises(TypeError, match="loss"):
        range_test(model, torch.optim.SGD(model.parameters(), lr=0.01), [torch.randn(4, 6)] * 2, None, num_iter=2)


DICT_BATCH_MODULE = '''
import torch

steps = []  # what the step saw, one entry per call


class DictRows(torch.utils.data.Dataset):
    """Each sample is a nested dict: {"inputs": {"features": x}, "label": y, "row": [index, "name"]}."""

    def __init__(self, num_samples=128, num_features=8, num_classes=3, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(num_samples, num_features, generator=g)
        self.y = (self.x @ torch.randn(num_features, num_classes, generator=g)).argmax(dim=1)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"inputs": {"features": self.x[i]}, "label": self.y[i], "row": [i, "name"]}


def classifier(num_features=8, num_classes=3):
    return torch.nn.Sequential(torch.nn.Linear(num_features, 32), torch.nn.ReLU(), torch.nn.Linear(32, num_classes))


def step(model, batch, loss_fn):
    steps.append({"batch": type(batch).__name__, "inputs": type(batch["inputs"]).__name__,
                  "shape": tuple(batch["inputs"]["features"].shape), "names": list(batch["row"][1]),
                  "loss_fn": type(loss_fn).__name__})
    return loss_fn(model(batch["inputs"]["features"]), batch["label"])
'''


def test_a_custom_step_and_a_dict_batch_dataset_named_by_import_path_run_end_to_end_through_the_cli(
        cli_runner, cli_user_module, cli_write_spec, tmp_path):
    name = cli_user_module("dict_rows_user", DICT_BATCH_MODULE)
    spec = cli_write_spec(f"""
        device: cpu
        model: {{name: "{name}:classifier"}}
        data: {{name: "{name}:DictRows", batch_size: 16}}
        optimizer: {{name: SGD, kwargs: {{momentum: 0.9}}}}
        loss: {{name: CrossEntropyLoss}}
        step: "{name}:step"
        sweep: {{start_lr: 1.0e-3, end_lr: 10.0, num_iter: 20}}
        """)

    result = cli_runner.invoke(app, ["run", str(spec), "--out", str(tmp_path / "out"), "-q"])

    assert result.exit_code == 0, result.stderr
    doc = load_json(tmp_path / "out" / "result.json")
    assert doc["spec"]["step"] == f"{name}:step"
    assert doc["suggested_lr"] is not None and math.isfinite(float(result.stdout))
    steps = sys.modules[name].steps
    assert len(steps) >= doc["num_steps"] > 10
    assert steps[0] == {"batch": "dict", "inputs": "dict", "shape": (16, 8), "names": ["name"] * 16, "loss_fn": "CrossEntropyLoss"}


@pytest.mark.parametrize("step, what", [
    ("no_such_module_here:step", "not found"),
    ("{name}:nothing", "has no attribute"),
    ("{name}:NOT_A_FUNCTION", "is not a function"),
])
def test_validate_refuses_a_step_that_cannot_be_imported_or_called(step, what, cli_runner, cli_user_module, cli_write_spec):
    name = cli_user_module("step_user", "NOT_A_FUNCTION = 3\n")
    spec = cli_write_spec(f"""
        model: {{name: mlp_regressor}}
        step: "{step.format(name=name)}"
        """)

    result = cli_runner.invoke(app, ["validate", str(spec)])

    assert result.exit_code == 2
    line, = error_lines(result.stderr)
    assert "spec.yaml:2 step" in line and what in line


# ---- parameter groups ---------------------------------------------------------------------------------------

RECORDING_OPTIMIZER = '''
import torch

seen = []  # every param group's lr at each optimizer step


class RecordingSGD(torch.optim.SGD):
    def step(self, closure=None):
        seen.append([float(g["lr"]) for g in self.param_groups])
        return super().step(closure)
'''


def test_two_param_groups_with_lr_scale_0_1_and_1_keep_a_1_to_10_ratio_at_every_step_in_result_json(
        cli_runner, cli_user_module, cli_repo, tmp_path, monkeypatch):
    name = cli_user_module("recording_sgd_user", RECORDING_OPTIMIZER)
    monkeypatch.syspath_prepend(str(tmp_path))  # the run goes from the repository root (tiny.yaml names tests.models)
    groups = '[{params: "1.*", lr_scale: 0.1}, {params: "*", lr_scale: 1}]'  # tiny_mlp: 1 = first Linear, then BN and head
    args = ["run", TINY, "--set", f"optimizer.name={name}:RecordingSGD", "--set", f"optimizer.param_groups={groups}",
            "--set", "sweep.num_iter=20", "--out", tmp_path / "out", "--json"]

    result = invoke(cli_runner, args, cwd=cli_repo)

    assert result.exit_code == 0, result.stderr
    doc = load_json(tmp_path / "out" / "result.json")
    lrs, group_lrs = doc["history"]["lr"], doc["history"]["group_lrs"]
    assert len(group_lrs) == len(lrs) == doc["num_steps"] > 10
    for lr, (scaled, full) in zip(lrs, group_lrs):
        assert full == pytest.approx(lr, rel=1e-12)
        assert full == pytest.approx(10 * scaled, rel=1e-12)  # 1:10 at every step
    # ...and those are the learning rates the optimizer really stepped with.
    stepped = sys.modules[name].seen
    assert len(stepped) >= len(lrs)
    for used, recorded in zip(stepped, group_lrs):
        assert used == pytest.approx(recorded, rel=1e-12)
    suggested = doc["suggested_lr"]
    assert doc["suggested_group_lrs"] == pytest.approx([0.1 * suggested, suggested], rel=1e-12)


def test_param_groups_take_parameters_by_glob_in_order_with_their_kwargs_and_the_rest_form_a_group_of_scale_1():
    model = tiny_mlp()  # parameters 1.weight, 1.bias (Linear), 2.weight, 2.bias (BatchNorm), 4.weight, 4.bias (Linear)
    spec = OptimizerSpec(name="SGD", kwargs={"momentum": 0.9, "weight_decay": 1e-4}, param_groups=[
        ParamGroupSpec(params="*.bias", lr_scale=0.5, kwargs={"weight_decay": 0.0}),
        ParamGroupSpec(params="4.*", lr_scale=2.0),
    ])

    optimizer, scales = build_optimizer(spec, model, lr=0.01)

    names = {id(p): n for n, p in model.named_parameters()}
    assert [[names[id(p)] for p in g["params"]] for g in optimizer.param_groups] == [
        ["1.bias", "2.bias", "4.bias"], ["4.weight"], ["1.weight", "2.weight"]]
    assert scales == [0.5, 2.0, 1.0]
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.005, 0.02, 0.01])
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.0, 1e-4, 1e-4]
    assert all(g["momentum"] == 0.9 for g in optimizer.param_groups)


def test_frozen_parameters_are_never_in_the_optimizer_and_stay_frozen_and_bit_exact_through_a_sweep():
    torch.manual_seed(0)
    model = tiny_mlp(in_features=12, num_classes=3)
    for p in model[1].parameters():
        p.requires_grad_(False)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    spec = OptimizerSpec(name="AdamW", kwargs={"weight_decay": 0.5}, param_groups=[ParamGroupSpec(params="*", lr_scale=0.1)])
    optimizer, scales = build_optimizer(spec, model, lr=1e-3)
    in_optimizer = {id(p) for g in optimizer.param_groups for p in g["params"]}
    during = []

    def step(model, batch, loss_fn):
        during.append(all(torch.equal(p, frozen[n]) and not p.requires_grad for n, p in model.named_parameters() if n in frozen))
        return default_step(model, batch, loss_fn)

    result = range_test(model, optimizer, linear_batches(features=12), torch.nn.CrossEntropyLoss(), start_lr=1e-3, end_lr=10.0,
                        num_iter=15, step_fn=step, group_scales=scales)

    assert set(frozen) == {"1.weight", "1.bias"}
    assert not in_optimizer & {id(p) for p in model[1].parameters()}
    assert in_optimizer == {id(p) for p in model.parameters() if p.requires_grad}
    assert result.num_steps > 5 and all(during)
    for n, p in model.named_parameters():
        if n in frozen:
            assert torch.equal(p, frozen[n]) and not p.requires_grad and p.grad is None


@pytest.mark.parametrize("glob, frozen", [("encoder.*", False), ("1.*", True)])
def test_a_param_group_glob_that_matches_no_trainable_parameter_is_an_error_that_shows_the_names(glob, frozen):
    model = tiny_mlp()
    if frozen:
        model[1].requires_grad_(False)

    # a spec error (exit 2), at the key the command line puts the file:line of
    with pytest.raises(SpecError, match=r"optimizer\.param_groups\.0\.params: .*matches no trainable parameter.*names look like") as info:
        build_optimizer(OptimizerSpec(param_groups=[ParamGroupSpec(params=glob)]), model, lr=0.01)
    assert info.value.key == "optimizer.param_groups.0.params"


def test_a_model_with_every_parameter_frozen_is_refused():
    model = tiny_mlp().requires_grad_(False)

    with pytest.raises(RunError, match="no trainable parameters"):
        build_optimizer(OptimizerSpec(), model, lr=0.01)


def test_validate_checks_each_param_groups_kwargs_against_the_optimizer(cli_runner, cli_write_spec):
    spec = cli_write_spec("""
        model: {name: mlp_regressor}
        optimizer:
          name: AdamW
          param_groups:
            - {params: "0.*", lr_scale: 0.1, kwargs: {wieght_decay: 0.0}}
        """)

    result = cli_runner.invoke(app, ["validate", str(spec)])

    assert result.exit_code == 2
    line, = error_lines(result.stderr)
    assert "optimizer.param_groups.0.kwargs.wieght_decay" in line and "'weight_decay'" in line


def test_the_transformer_config_exempts_every_embedding_and_norm_parameter_from_weight_decay(cli_repo):
    spec = load_spec(cli_repo / "configs" / "transformer-lm.yaml").spec
    model = build_model(spec.model)

    optimizer, _ = build_optimizer(spec.optimizer, model, lr=1e-3)

    decay = {id(p): g["weight_decay"] for g in optimizer.param_groups for p in g["params"]}
    exempt = (torch.nn.Embedding, torch.nn.LayerNorm)
    for module_name, module in model.named_modules():
        for param_name, p in module.named_parameters(recurse=False):
            expected = 0.0 if isinstance(module, exempt) else 0.1
            assert decay[id(p)] == expected, f"{module_name}.{param_name}"


# ---- warm start from a checkpoint ----------------------------------------------------------------------------


def train_tiny(path: Path, steps: int) -> Path:
    """Train tests.models:tiny_mlp for `steps` SGD steps on configs/tiny.yaml's data; save its state_dict to `path`."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = tiny_mlp(48, 4)
        loader = torch.utils.data.DataLoader(SyntheticImages(**TINY_DATA), batch_size=32, shuffle=True,
                                             generator=torch.Generator().manual_seed(0))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        for _, (x, y) in zip(range(steps), loader):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def trained_checkpoint(tmp_path_factory):
    """tiny_mlp trained for one epoch (8 steps): its loss is well below chance."""
    return train_tiny(tmp_path_factory.mktemp("checkpoint") / "trained.pt", steps=8)


@pytest.fixture(scope="module")
def warm_checkpoint(tmp_path_factory):
    """tiny_mlp trained for 2 steps: off chance, with room left for the sweep to show a fall."""
    return train_tiny(tmp_path_factory.mktemp("checkpoint") / "warm.pt", steps=2)


def tiny_spec(checkpoint, strict: bool = True) -> ModelSpec:
    return ModelSpec(name="tests.models:tiny_mlp", kwargs={"in_features": 48, "num_classes": 4}, checkpoint=str(checkpoint),
                     strict=strict)


def test_a_sweep_from_a_trained_checkpoint_runs_past_its_first_10_steps_and_restores_the_weights_bit_exactly(
        trained_checkpoint, cli_repo, monkeypatch):
    monkeypatch.chdir(cli_repo)  # the model is named by import path, relative to the repository root
    monkeypatch.setattr(sys, "path", list(sys.path))
    trained = torch.load(trained_checkpoint, weights_only=True)
    model = build_model(tiny_spec(trained_checkpoint))
    assert_bit_exact(state_copy(model), trained)  # the checkpoint is what the sweep starts from
    loader = torch.utils.data.DataLoader(SyntheticImages(**TINY_DATA), batch_size=32, shuffle=True, drop_last=True,
                                         generator=torch.Generator().manual_seed(0))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)

    result = range_test(model, optimizer, loader, torch.nn.CrossEntropyLoss(), start_lr=1e-4, end_lr=10.0, num_iter=40)

    assert result.num_steps > 10, result.stop_reason
    assert result.losses[0] < 0.7 * math.log(4)  # it started from the trained weights, not from chance
    assert_bit_exact(state_copy(model), trained)


def test_cli_run_from_a_checkpoint_starts_from_its_weights(warm_checkpoint, cli_runner, cli_repo, tmp_path):
    args = ["run", TINY, "--set", f"model.checkpoint={warm_checkpoint}", "--set", "sweep.num_iter=20", "--out", tmp_path / "out", "-q"]
    before = warm_checkpoint.read_bytes()

    result = invoke(cli_runner, args, cwd=cli_repo)

    assert result.exit_code == 0, result.stderr
    doc = load_json(tmp_path / "out" / "result.json")
    assert doc["num_steps"] > 10 and doc["spec"]["model"]["checkpoint"] == str(warm_checkpoint)
    assert doc["history"]["loss"][0] < 0.7 * math.log(4)  # from chance, a 4-class loss starts near ln 4
    assert warm_checkpoint.read_bytes() == before


def test_cli_run_from_a_well_trained_checkpoint_whose_loss_falls_a_hundredfold_gives_a_suggestion(
        trained_checkpoint, cli_runner, cli_repo, tmp_path):
    args = ["run", TINY, "--set", f"model.checkpoint={trained_checkpoint}", "--out", tmp_path / "out", "-q"]

    result = invoke(cli_runner, args, cwd=cli_repo)

    losses = load_json(tmp_path / "out" / "result.json")["history"]["loss"]
    assert losses[0] > 0.05 and min(losses) < 0.01  # the raw loss did fall more than fivefold (here a hundredfold)...
    assert result.exit_code == 0, result.stderr  # ...so a learning rate can be suggested


def test_cli_partial_checkpoint_loads_with_strict_false_and_strict_true_lists_the_missing_and_unexpected_keys(
        trained_checkpoint, cli_runner, cli_repo, tmp_path):
    state = torch.load(trained_checkpoint, weights_only=True)
    partial = tmp_path / "backbone.pt"
    torch.save({k: v for k, v in state.items() if not k.startswith("4.")} | {"head.weight": torch.zeros(4, 32)}, partial)
    base = ["run", TINY, "--set", f"model.checkpoint={partial}", "--set", "sweep.num_iter=20", "-q"]

    loose = invoke(cli_runner, [*base, "--set", "model.strict=false", "--out", tmp_path / "loose"], cwd=cli_repo)
    strict = invoke(cli_runner, [*base, "--out", tmp_path / "strict"], cwd=cli_repo)

    assert loose.exit_code == 0, loose.stderr
    assert load_json(tmp_path / "loose" / "result.json")["spec"]["model"]["strict"] is False
    assert strict.exit_code == 1
    line, = error_lines(strict.stderr)
    assert "model.checkpoint" in line and str(partial) in line
    assert "missing ['4.weight', '4.bias']" in line and "unexpected ['head.weight']" in line
    assert "model.strict: false" in line
    assert not (tmp_path / "strict" / "result.json").exists()


def test_cli_refuses_a_checkpoint_that_shares_no_key_with_the_model_even_with_strict_false(
        trained_checkpoint, cli_runner, cli_repo, tmp_path):
    state = torch.load(trained_checkpoint, weights_only=True)
    wrapped = tmp_path / "ddp.pt"
    torch.save({f"module.{k}": v for k, v in state.items()}, wrapped)  # as saved from a DistributedDataParallel model

    result = invoke(cli_runner, ["run", TINY, "--set", f"model.checkpoint={wrapped}", "--set", "model.strict=false",
                                 "--set", "sweep.num_iter=20", "--out", tmp_path / "out", "-q"], cwd=cli_repo)

    assert result.exit_code == 1, "a strict: false load of no key at all silently runs from random weights"
    line, = error_lines(result.stderr)
    assert "shares no key with the model" in line and "module.1.weight" in line


@pytest.mark.parametrize("strict", [True, False])
def test_a_checkpoint_whose_shapes_differ_lists_each_mismatched_key_with_both_shapes(strict, tmp_path):
    path = tmp_path / "ten_classes.pt"
    torch.save(tiny_mlp(48, 10).state_dict(), path)

    with pytest.raises(RunError) as info:
        load_checkpoint(tiny_mlp(48, 4), str(path), strict=strict)

    message = str(info.value)
    assert "\n" not in message
    assert "4.weight (checkpoint [10, 32], model [4, 32])" in message and "4.bias (checkpoint [10], model [4])" in message


def test_a_whole_pickled_model_is_refused_by_weights_only_loading_with_one_plain_line(tmp_path):
    path = tmp_path / "whole_model.pt"
    torch.save(tiny_mlp(), path)

    with pytest.raises(RunError) as info:
        load_checkpoint(tiny_mlp(), str(path))

    message = str(info.value)
    assert "weights_only" in message and "torch.save(model.state_dict(), path)" in message
    assert ESC not in message and "\n" not in message and len(message) < 400


def test_a_checkpoint_with_more_mismatches_than_listed_says_how_many_more(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({f"layer{i}.weight": torch.zeros(2) for i in range(9)} | {"1.weight": torch.zeros(32, 48)}, path)

    with pytest.raises(RunError) as info:
        load_checkpoint(tiny_mlp(), str(path))

    message = str(info.value)
    assert "unexpected ['layer0.weight', 'layer1.weight', 'layer2.weight', 'layer3.weight', 'layer4.weight'] and 4 more" in message
    assert "missing ['1.bias'" in message


@pytest.mark.parametrize("wrapper", ["state_dict", "model_state_dict", "model"])
def test_a_state_dict_inside_a_training_checkpoint_dict_is_found(wrapper, trained_checkpoint, tmp_path):
    state = torch.load(trained_checkpoint, weights_only=True)
    path = tmp_path / "training.pt"
    torch.save({wrapper: state, "epoch": 3, "optimizer": {"lr": 0.1}}, path)
    model = tiny_mlp(48, 4)

    load_checkpoint(model, str(path))

    assert_bit_exact(state_copy(model), state)


# ---- more model sources ---------------------------------------------------------------------------------------


def _timm_installed() -> bool:
    try:
        import timm  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(_timm_installed(), reason="timm is installed here")
def test_a_timm_model_is_refused_clearly_when_timm_is_not_installed(cli_runner, cli_write_spec):
    spec = cli_write_spec("""
        model: {name: "timm:resnet50", kwargs: {num_classes: 10}}
        """)

    result = cli_runner.invoke(app, ["validate", str(spec)])

    assert result.exit_code == 2
    line, = error_lines(result.stderr)
    assert "spec.yaml:1 model.name" in line and "needs timm" in line and "pip install timm" in line
    assert "Traceback" not in result.stderr


@pytest.fixture
def fake_timm(monkeypatch):
    """A stand-in `timm` module with one model, so the timm: path is tested without timm or network."""
    module = types.ModuleType("timm")
    module.created = []

    def create_model(name, **kwargs):
        module.created.append((name, kwargs))
        return torch.nn.Linear(4, kwargs.get("num_classes", 1000))

    module.create_model = create_model
    module.is_model = lambda name: name == "resnet50"
    module.list_models = lambda *args, **kwargs: ["resnet50"]
    monkeypatch.setitem(sys.modules, "timm", module)
    return module


def test_timm_names_build_the_model_through_timm_create_model_with_the_kwargs(fake_timm):
    model = build_model(ModelSpec(name="timm:resnet50", kwargs={"num_classes": 10}))

    assert fake_timm.created == [("resnet50", {"num_classes": 10})]
    assert isinstance(model, torch.nn.Linear) and model.out_features == 10
    with pytest.raises(UnknownName, match="unknown timm model 'resnet5'") as info:
        resolve_model("timm:resnet5")
    assert "resnet50" in info.value.fix


@pytest.mark.parametrize("config, overrides", [
    ("transformer-lm.yaml", ["sweep.num_iter=20", "sweep.start_lr=1.0e-4", "data.kwargs.num_samples=256"]),
    ("tabular-mse.yaml", ["sweep.num_iter=30", "sweep.start_lr=1.0e-4", "sweep.end_lr=1.0"]),
])
def test_example_config_runs_offline_to_a_finite_suggestion(config, overrides, cli_runner, cli_repo, tmp_path):
    args = ["run", cli_repo / "configs" / config, "--device", "cpu", "--out", tmp_path / "out", "--json"]
    for item in overrides:
        args += ["--set", item]

    result = invoke(cli_runner, args, cwd=cli_repo)

    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout, parse_constant=reject_constant)
    assert doc["suggested_lr"] is not None and math.isfinite(doc["suggested_lr"])
    assert 1e-4 < doc["suggested_lr"] < 1.0
    assert min(doc["history"]["smoothed"]) < 0.95 * doc["history"]["smoothed"][0]  # the loss fell: something was learnt
    assert len(doc["suggested_group_lrs"]) == len(doc["history"]["group_lrs"][0])


def test_the_built_in_causal_lm_returns_logits_and_a_next_token_loss_near_log_vocab_at_init():
    torch.manual_seed(0)
    model = TinyCausalLM(vocab_size=50, dim=16, depth=1, heads=2, max_len=12)
    batch = {"input_ids": SyntheticSequences(num_samples=4, seq_len=12, vocab_size=50).input_ids}

    output = model(**batch)

    assert output["logits"].shape == (4, 12, 50)
    assert output["loss"].ndim == 0 and abs(output["loss"].item() - math.log(50)) < 1.0


def test_the_built_in_causal_lm_refuses_sequences_longer_than_max_len_by_name():
    model = TinyCausalLM(vocab_size=50, dim=16, depth=1, heads=2, max_len=8)

    with pytest.raises(ValueError, match="max_len"):
        model(input_ids=torch.zeros(2, 9, dtype=torch.long))


def test_the_built_in_causal_lm_sees_no_future_token():
    torch.manual_seed(0)
    model = TinyCausalLM(vocab_size=20, dim=16, depth=2, heads=2, max_len=10).eval()
    ids = torch.randint(0, 20, (1, 10))
    changed = ids.clone()
    changed[0, 6:] = (changed[0, 6:] + 1) % 20

    with torch.no_grad():
        a, b = model(input_ids=ids)["logits"], model(input_ids=changed)["logits"]

    assert torch.allclose(a[:, :6], b[:, :6], atol=1e-5)
    assert not torch.allclose(a[:, 6:], b[:, 6:])


@pytest.mark.parametrize("cls, kwargs", [
    (SyntheticSequences, {"num_samples": 32, "seq_len": 16, "vocab_size": 40}),
    (SyntheticTabular, {"num_samples": 32, "num_features": 5}),
])
def test_built_in_datasets_are_deterministic_and_leave_the_global_random_state_alone(cls, kwargs):
    state = torch.random.get_rng_state()

    first, second = cls(**kwargs), cls(**kwargs)

    assert torch.equal(torch.random.get_rng_state(), state)
    for i in (0, 31):
        a, b = first[i], second[i]
        pairs = zip(a.values(), b.values()) if isinstance(a, dict) else zip(a, b)
        assert all(torch.equal(x, y) for x, y in pairs)
    sample = first[0]
    if cls is SyntheticSequences:
        assert sample["input_ids"].shape == (16,) and sample["input_ids"].dtype == torch.long
        assert int(first.input_ids.max()) < 40
    else:
        assert sample[0].shape == (5,) and sample[1].shape == (1,)


@pytest.mark.parametrize("name, kwargs, checkpoint, trained, expected", [
    ("tiny_mlp", {}, None, None, False),  # built-in: freshly initialised
    ("resnet18", {"num_classes": 10}, None, None, False),  # torchvision without weights
    ("resnet18", {"weights": "DEFAULT"}, None, None, True),
    ("resnet18", {"weights": None}, None, None, False),
    ("timm:resnet18", {"pretrained": True}, None, None, True),
    ("timm:resnet18", {}, None, None, False),
    ("tiny_mlp", {}, "trained.pt", None, True),
    ("transformers:AutoModelForCausalLM.from_pretrained", {"pretrained_model_name_or_path": "gpt2"}, None, None, True),
    ("torch.nn:Linear", {"in_features": 4, "out_features": 1}, None, None, False),
    ("lrfind_cli.models:tiny_mlp", {}, None, None, False),  # a built-in by its import path
    ("torchvision.models:resnet18", {"weights": "DEFAULT"}, None, None, True),
    ("tests.models:tiny_mlp", {}, None, None, False),  # a user's factory: untrained unless the spec says otherwise
    ("tests.models:tiny_mlp", {}, None, True, True),  # ... model.trained says so
    ("tiny_mlp", {}, "init.pt", False, False),  # model.trained wins over what the checkpoint suggests
])
def test_starts_trained_says_what_the_spec_tells_about_the_models_weights(name, kwargs, checkpoint, trained, expected):
    from lrfind_cli.build import starts_trained

    assert starts_trained(ModelSpec(name=name, kwargs=kwargs, checkpoint=checkpoint, trained=trained)) is expected


def test_the_sweep_is_told_whether_the_model_starts_trained(cli_write_spec):
    from lrfind_cli.runner import sweep_config
    from lrfind_cli.spec import load_spec

    fresh = load_spec(cli_write_spec("model: {name: tiny_mlp}\n")).spec
    warm = load_spec(cli_write_spec("model: {name: tiny_mlp, checkpoint: w.pt}\n", "warm.yaml")).spec

    assert sweep_config(fresh).warm_start is False and sweep_config(warm).warm_start is True
