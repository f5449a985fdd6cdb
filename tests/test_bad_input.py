"""Bad input, one case at a time: every mistake a user can make exits with the contract's code and one clear line.

Each case asserts the exit code (2 for a spec or usage error, 1 for a runtime failure, 3 for a sweep without a
usable suggestion), exactly one `error:` line on stderr, the facts that line must carry (file:line and key path,
the close match, the fix), and that no Python traceback is shown without -v. Security cases (YAML tags, pickled
checkpoints, downloads, the README's warning that import paths run code) are at the end.
"""

import json
import os
import socket
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from lrfind_cli.cli import app

REPO = Path(__file__).resolve().parents[1]

# The spec every case starts from; cases replace numbered lines or append lines (from line 19 on).
BASE = """\
seed: 0
device: cpu
model:
  name: corpus_mods:mlp
  kwargs: {in_features: 48, num_classes: 4}
data:
  name: synthetic
  kwargs: {num_samples: 64, num_classes: 4, channels: 3, height: 4, width: 4, noise: 0.5}
  batch_size: 16
optimizer:
  name: SGD
  kwargs: {momentum: 0.9}
loss:
  name: CrossEntropyLoss
sweep:
  start_lr: 1.0e-4
  end_lr: 10.0
  num_iter: 6
"""

# User code the specs name by import path (the modules sit in the directory the command runs from).
MODULES = {
    "corpus_mods": '''
        import torch

        def mlp(in_features=48, num_classes=4):
            return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(in_features, num_classes))

        def vector_out(in_features=48, num_classes=4):
            return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(in_features, 5))

        def mse_step(model, batch, loss_fn):
            inputs, targets = batch
            return torch.nn.functional.mse_loss(model(inputs), targets.float())

        def not_a_model(in_features=48, num_classes=4):
            return [in_features, num_classes]

        class FailingForward(torch.nn.Module):
            def __init__(self, in_features=48, num_classes=4):
                super().__init__()
                self.lin = torch.nn.Linear(in_features, num_classes)

            def forward(self, x):
                raise ValueError("forward cannot cope")

        class WarningForward(torch.nn.Module):
            def __init__(self, in_features=48, num_classes=4):
                super().__init__()
                self.lin = torch.nn.Linear(in_features, num_classes)

            def forward(self, x):
                import warnings
                warnings.warn("this argument is deprecated", UserWarning)
                return self.lin(x.flatten(1))

        class FailingInit(torch.nn.Module):
            def __init__(self, in_features=48, num_classes=4):
                super().__init__()
                raise ValueError("bad layer sizes")

        class FailingItem(torch.utils.data.Dataset):
            def __len__(self):
                return 64

            def __getitem__(self, index):
                return {}["image"]

        class FailingSetup(torch.utils.data.Dataset):
            def __init__(self, size=64):
                raise RuntimeError("labels.csv is missing")

        def nan_loss(output, target):
            return output.sum() * float("nan")

        NOT_CALLABLE = 3
    ''',
    "corpus_boom": '''
        x = 1
        raise RuntimeError("this module refuses to load")
    ''',
}



def line_of(module: str, text: str) -> int:
    """The line (1-based) of a user module, as written to disk, that contains `text`."""
    lines = textwrap.dedent(MODULES[module]).lstrip("\n").splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line)


# Line numbers in the user modules, for the "user's file and line" assertions.
FORWARD_LINE = line_of("corpus_mods", "forward cannot cope")
INIT_LINE = line_of("corpus_mods", "bad layer sizes")
GETITEM_LINE = line_of("corpus_mods", '{}["image"]')
SETUP_LINE = line_of("corpus_mods", "labels.csv is missing")
BOOM_LINE = line_of("corpus_boom", "refuses to load")
WARN_LINE = line_of("corpus_mods", "this argument is deprecated")


@dataclass
class Case:
    id: str
    exit: int
    facts: list[str]  # each must appear in the error line; "{spec}", "{tmp}" are filled in
    lines: dict[int, str] = field(default_factory=dict)  # replace BASE line N (1-based)
    extra: str = ""  # appended after BASE
    text: str | None = None  # the whole spec instead of BASE
    args: list[str] = field(default_factory=list)  # after SPEC; "{tmp}" filled in
    command: str = "validate"
    error_line: bool = True  # False: the outcome is reported without `error:` (exit 3)
    write: bool = True  # False: the spec file does not exist


def spec_with(case: Case) -> str:
    if case.text is not None:
        return case.text
    lines = BASE.splitlines()
    for number, new in case.lines.items():
        lines[number - 1] = new
    return "\n".join(lines) + "\n" + case.extra


CASES = [
    # ---- the file itself ----
    Case("malformed-yaml", 2, ["{spec}:13", "invalid YAML: expected ',' or '}'", "flow mapping that starts at line 12",
                               "fix the syntax at that line"],
         lines={12: "  kwargs: {momentum: 0.9"}),
    Case("bad-indentation", 2, ["{spec}:", "invalid YAML"], lines={12: "   kwargs: {momentum: 0.9}"}),
    Case("tab-indentation", 2, ["{spec}:12", "invalid YAML", "indent with spaces, not tabs"], lines={12: "\tkwargs: {momentum: 0.9}"}),
    Case("empty-file", 2, ["{spec}: the spec is empty", "configs/"], text=""),
    Case("only-comments", 2, ["{spec}: the spec is empty"], text="# nothing here yet\n"),
    Case("list-at-top-level", 2, ["{spec}:1", "must be a mapping", "found a list", "model: ..."],
         text="- model: resnet18\n- sweep: {}\n"),
    Case("scalar-at-top-level", 2, ["{spec}:1", "must be a mapping", "found a str"], text="resnet18\n"),
    Case("duplicate-key", 2, ["{spec}:19 device", "given twice (first at line 2)", "keep one"], extra="device: cpu\n"),
    Case("missing-model", 2, ["model", "required key is missing", "add `model:`"], text="seed: 0\n"),
    Case("missing-spec-file", 2, ["{spec}: spec file not found", "check the path"], write=False),
    # ---- unknown keys, at every level ----
    Case("unknown-key-top", 2, ["{spec}:2 devise", "unknown key 'devise'", "did you mean 'device'?"],
         lines={2: "devise: cpu"}),
    Case("unknown-key-model", 2, ["{spec}:5 model.kwarg", "unknown key 'kwarg'", "did you mean 'kwargs'?"],
         lines={5: "  kwarg: {in_features: 48, num_classes: 4}"}),
    Case("unknown-key-data", 2, ["{spec}:9 data.batchsize", "did you mean 'batch_size'?"], lines={9: "  batchsize: 16"}),
    Case("unknown-key-transform-item", 2, ["{spec}:10 data.transforms.0.kwrgs", "did you mean 'kwargs'?"],
         lines={9: "  batch_size: 16\n  transforms: [{name: RandomHorizontalFlip, kwrgs: {}}]"}),
    Case("unknown-key-optimizer", 2, ["{spec}:12 optimizer.kwags", "did you mean 'kwargs'?"],
         lines={12: "  kwags: {momentum: 0.9}"}),
    Case("unknown-key-param-group", 2, ["{spec}:13 optimizer.param_groups.0.lr_scal", "did you mean 'lr_scale'?"],
         lines={12: "  kwargs: {momentum: 0.9}\n  param_groups: [{params: '1.*', lr_scal: 0.1}]"}),
    Case("unknown-key-loss", 2, ["{spec}:14 loss.nam", "unknown key 'nam'", "did you mean 'name'?"],
         lines={14: "  nam: CrossEntropyLoss"}),
    Case("unknown-key-sweep", 2, ["{spec}:18 sweep.num_iters", "did you mean 'num_iter'?"], lines={18: "  num_iters: 6"}),
    Case("unknown-key-sweep-val", 2, ["{spec}:19 sweep.val.evry", "did you mean 'every'?"], extra="  val: {evry: 5}\n"),
    Case("unknown-key-performance", 2, ["{spec}:19 performance.sync_evry", "did you mean 'sync_every'?"],
         extra="performance: {sync_evry: 2}\n"),
    Case("unknown-key-suggest", 2, ["{spec}:19 suggest.methd", "did you mean 'method'?"], extra="suggest: {methd: valley}\n"),
    Case("unknown-key-output", 2, ["{spec}:19 output.directory", "unknown key 'directory'", "valid keys here: dir"],
         extra="output: {directory: out}\n"),
    # ---- wrong types and values ----
    Case("batch-size-not-a-number", 2, ["{spec}:9 data.batch_size", "integer", "got 'lots'", "write a whole number"],
         lines={9: "  batch_size: lots"}),
    Case("batch-size-zero", 2, ["{spec}:9 data.batch_size", "greater than or equal to 1", "use a larger value"],
         lines={9: "  batch_size: 0"}),
    Case("kwargs-a-list", 2, ["{spec}:5 model.kwargs", "dictionary", "write a mapping of keys"],
         lines={5: "  kwargs: [48, 4]"}),
    Case("model-a-string", 2, ["{spec}:3 model", "write a mapping of keys"], lines={3: "model: resnet18", 4: "", 5: ""}),
    Case("negative-seed", 2, ["{spec}:1 seed", "greater than or equal to 0", "got -1"], lines={1: "seed: -1"}),
    Case("shuffle-not-bool", 2, ["{spec}:10 data.shuffle", "got 'sometimes'", "write true or false"],
         lines={9: "  batch_size: 16\n  shuffle: sometimes"}),
    Case("unknown-precision", 2, ["{spec}:19 precision", "'fp32', 'bf16' or 'fp16'", "got 'fp8'", "use one of the listed values"],
         extra="precision: fp8\n"),
    Case("unknown-device", 2, ["{spec}:2 device", "device 'gpu' is not one of auto, cpu, cuda, cuda:N, mps"],
         lines={2: "device: gpu"}),
    Case("lr-in-optimizer-kwargs", 2, ["{spec}:12 optimizer.kwargs", "the learning rate is what the sweep sets", "sweep.start_lr"],
         lines={12: "  kwargs: {momentum: 0.9, lr: 0.1}"}),
    # ---- the sweep ----
    Case("start-lr-zero", 2, ["{spec}:16 sweep.start_lr", "greater than 0", "got 0"], lines={16: "  start_lr: 0"}),
    Case("start-lr-negative", 2, ["{spec}:16 sweep.start_lr", "greater than 0", "got -0.001"], lines={16: "  start_lr: -1.0e-3"}),
    Case("end-lr-zero", 2, ["{spec}:17 sweep.end_lr", "greater than 0", "got 0"], lines={17: "  end_lr: 0"}),
    Case("start-lr-above-end-lr", 2, ["{spec}:15 sweep", "start_lr (1) must be below end_lr (0.1)"],
         lines={16: "  start_lr: 1.0", 17: "  end_lr: 0.1"}),
    Case("start-lr-equal-end-lr", 2, ["{spec}:15 sweep", "start_lr (0.1) must be below end_lr (0.1)"],
         lines={16: "  start_lr: 0.1", 17: "  end_lr: 0.1"}),
    Case("num-iter-one", 2, ["{spec}:18 sweep.num_iter", "greater than or equal to 2", "got 1", "use a larger value"],
         lines={18: "  num_iter: 1"}),
    Case("num-iter-zero", 2, ["{spec}:18 sweep.num_iter", "greater than or equal to 2", "got 0"], lines={18: "  num_iter: 0"}),
    Case("smoothing-one", 2, ["{spec}:19 sweep.smoothing", "less than 1", "got 1", "use a smaller value"],
         extra="  smoothing: 1\n"),
    Case("smoothing-negative", 2, ["{spec}:19 sweep.smoothing", "greater than or equal to 0", "got -0.5"],
         extra="  smoothing: -0.5\n"),
    Case("smoothing-above-one", 2, ["{spec}:19 sweep.smoothing", "less than 1", "got 1.5"], extra="  smoothing: 1.5\n"),
    # ---- names, with close matches ----
    Case("unknown-model", 2, ["{spec}:4 model.name", "unknown model 'resnet181'", "did you mean 'resnet18'"],
         lines={4: "  name: resnet181", 5: "  kwargs: {}"}),
    Case("unknown-dataset", 2, ["{spec}:7 data.name", "unknown dataset 'CIFAR11'", "did you mean 'CIFAR10'"],
         lines={7: "  name: CIFAR11", 8: "  kwargs: {}"}),
    Case("unknown-transform", 2, ["{spec}:10 data.transforms.0.name", "unknown transform 'RandomHorizontalFlp'",
                                  "did you mean 'RandomHorizontalFlip'"],
         lines={9: "  batch_size: 16\n  transforms: [{name: RandomHorizontalFlp}]"}),
    Case("unknown-optimizer", 2, ["{spec}:11 optimizer.name", "unknown optimizer 'Adamm'", "did you mean 'Adam'"],
         lines={11: "  name: Adamm", 12: "  kwargs: {}"}),
    Case("unknown-loss", 2, ["{spec}:14 loss.name", "unknown loss 'CrossEntropyLos'", "did you mean 'CrossEntropyLoss'"],
         lines={14: "  name: CrossEntropyLos"}),
    # ---- kwargs the target does not accept ----
    Case("optimizer-kwarg", 2, ["{spec}:12 optimizer.kwargs.momentim", "SGD does not accept the argument 'momentim'",
                                "did you mean 'momentum'?"], lines={12: "  kwargs: {momentim: 0.9}"}),
    Case("model-kwarg", 2, ["{spec}:5 model.kwargs.num_clases", "mlp does not accept the argument 'num_clases'",
                            "did you mean 'num_classes'?"], lines={5: "  kwargs: {in_features: 48, num_clases: 4}"}),
    Case("loss-kwarg", 2, ["{spec}:15 loss.kwargs.label_smothing", "does not accept the argument 'label_smothing'",
                           "did you mean 'label_smoothing'?"], lines={14: "  name: CrossEntropyLoss\n  kwargs: {label_smothing: 0.1}"}),
    Case("dataset-kwarg", 2, ["{spec}:8 data.kwargs.num_sample", "does not accept the argument 'num_sample'",
                              "did you mean 'num_samples'?"], lines={8: "  kwargs: {num_sample: 64}"}),
    Case("transform-kwarg", 2, ["{spec}:10 data.transforms.0.kwargs.pp", "does not accept the argument 'pp'", "did you mean 'p'?"],
         lines={9: "  batch_size: 16\n  transforms: [{name: RandomHorizontalFlip, kwargs: {pp: 0.5}}]"}),
    Case("dataset-missing-required-kwarg", 2, ["{spec}:8 data.kwargs", "needs the argument 'root'", "add `root:` under kwargs"],
         lines={7: "  name: MNIST", 8: "  kwargs: {}"}),
    # ---- import paths ----
    Case("import-module-missing", 2, ["{spec}:4 model.name", "module 'corpus_nowhere' not found", "check the spelling"],
         lines={4: "  name: corpus_nowhere:mlp"}),
    Case("import-attribute-missing", 2, ["{spec}:4 model.name", "'corpus_mods' has no attribute 'mpl'", "did you mean 'mlp'?"],
         lines={4: "  name: corpus_mods:mpl"}),
    Case("import-module-raises", 2, ["{spec}:4 model.name", "importing 'corpus_boom' raised RuntimeError: this module refuses to load",
                                     f"corpus_boom.py:{BOOM_LINE})", "fix that module"],
         lines={4: "  name: corpus_boom:mlp"}),
    Case("import-path-malformed", 2, ["{spec}:4 model.name", "must look like 'package.module:attribute'"],
         lines={4: "  name: 'corpus_mods:'"}),
    Case("import-not-callable", 2, ["{spec}:4 model.name", "'corpus_mods:NOT_CALLABLE' is a int", "name a class or function"],
         lines={4: "  name: corpus_mods:NOT_CALLABLE"}),
    Case("step-not-a-function", 2, ["{spec}:19 step", "is not a function", "function(model, batch, loss_fn) -> loss"],
         extra="step: corpus_mods:NOT_CALLABLE\n"),
    # ---- overrides and options ----
    Case("set-without-equals", 2, ["--set sweep.num_iter", "an override needs the form KEY=VALUE"], args=["--set", "sweep.num_iter"]),
    Case("set-unknown-key", 2, ["--set sweep.num_itr=5 (sweep.num_itr)", "unknown key 'num_itr'", "did you mean 'num_iter'?"],
         args=["--set", "sweep.num_itr=5"]),
    Case("set-unknown-section", 2, ["--set sweeep.num_iter=5 (sweeep)", "unknown key 'sweeep'", "did you mean 'sweep'?"],
         args=["--set", "sweeep.num_iter=5"]),
    Case("set-empty-key-part", 2, ["--set sweep..num_iter=5", "has an empty part"], args=["--set", "sweep..num_iter=5"]),
    Case("set-invalid-yaml-value", 2, ["--set sweep.num_iter=[5", "value is not valid YAML", "quote the value"],
         args=["--set", "sweep.num_iter=[5"]),
    Case("set-through-a-scalar", 2, ["--set sweep.num_iter.max=5", "sweep.num_iter is a int, not a mapping"],
         args=["--set", "sweep.num_iter.max=5"]),
    Case("set-bad-value", 2, ["--set sweep.end_lr=-1 (sweep.end_lr)", "greater than 0"], args=["--set", "sweep.end_lr=-1"]),
    Case("device-option-outside-contract", 2, ["--set device=tpu (device)", "'tpu' is not one of"], command="run",
         args=["--device", "tpu", "--out", "{tmp}/out"]),
    # ---- runtime: data ----
    Case("dataset-root-missing", 1, ["{spec}:6 data: MNIST could not be loaded from root '{tmp}/mnist-data'",
                                     "put the files there or set data.kwargs.download: true"],
         lines={7: "  name: MNIST", 8: "  kwargs: {root: '{tmp}/mnist-data'}"}, command="run", args=["--out", "{tmp}/out"]),
    Case("dataset-empty", 1, ["data: the dataset is empty", "check data.name and data.kwargs"],
         lines={8: "  kwargs: {num_samples: 0}"}, command="run", args=["--out", "{tmp}/out"]),
    Case("batch-larger-than-dataset", 1, ["{spec}:9 data.batch_size: 16 is larger than the dataset (10 samples)",
                                          "data.drop_last: true", "lower data.batch_size or set data.drop_last: false"],
         lines={8: "  kwargs: {num_samples: 10, num_classes: 4, channels: 3, height: 4, width: 4}"},
         command="run", args=["--out", "{tmp}/out"]),
    # ---- runtime: checkpoints ----
    Case("checkpoint-missing", 1, ["{spec}:6 model.checkpoint: '{tmp}/nowhere.pt' does not exist", "saved state_dict"],
         lines={5: "  kwargs: {in_features: 48, num_classes: 4}\n  checkpoint: '{tmp}/nowhere.pt'"},
         command="run", args=["--out", "{tmp}/out"]),
    Case("checkpoint-not-a-state-dict", 1, ["model.checkpoint: '{tmp}/list.pt' is not a state_dict",
                                            "torch.save(model.state_dict(), path)"],
         lines={5: "  kwargs: {in_features: 48, num_classes: 4}\n  checkpoint: '{tmp}/list.pt'"},
         command="run", args=["--out", "{tmp}/out"]),
    Case("checkpoint-not-weights", 1, ["model.checkpoint: '{tmp}/text.pt' cannot be loaded as weights", "not a file written by torch.save",
                                       "torch.save(model.state_dict(), path)"],
         lines={5: "  kwargs: {in_features: 48, num_classes: 4}\n  checkpoint: '{tmp}/text.pt'"},
         command="run", args=["--out", "{tmp}/out"]),
    Case("checkpoint-other-model", 1, ["model.checkpoint: '{tmp}/other.pt' does not match the model",
                                       "missing ['1.bias']", "unexpected ['encoder.weight']",
                                       "check model.name and model.kwargs, or set model.strict: false"],
         lines={5: "  kwargs: {in_features: 48, num_classes: 4}\n  checkpoint: '{tmp}/other.pt'"},
         command="run", args=["--out", "{tmp}/out"]),
    Case("checkpoint-wrong-shape", 1, ["model.checkpoint: '{tmp}/five.pt' does not fit the model",
                                       "1.weight (checkpoint [5, 48], model [4, 48])", "model.kwargs (e.g. num_classes)"],
         lines={5: "  kwargs: {in_features: 48, num_classes: 4}\n  checkpoint: '{tmp}/five.pt'"},
         command="run", args=["--out", "{tmp}/out"]),
    # ---- runtime: the first step ----
    Case("output-does-not-fit-loss", 1, ["{spec}:5 model.kwargs: the output of model 'corpus_mods:vector_out' has shape [16, 5]",
                                         "the targets of data 'synthetic' have shape [16] at the first step",
                                         "MSELoss compares them element by element",
                                         "set model.kwargs so the output has the targets' shape"],
         lines={4: "  name: corpus_mods:vector_out", 14: "  name: MSELoss"}, command="run", args=["--out", "{tmp}/out"]),
    Case("output-broadcast-by-a-silent-loss", 1, ["{spec}:5 model.kwargs: the output of model 'corpus_mods:vector_out' has shape "
                                                  "[16, 5]", "have shape [16]", "KLDivLoss compares them element by element"],
         lines={4: "  name: corpus_mods:vector_out", 14: "  name: KLDivLoss"}, command="run", args=["--out", "{tmp}/out"]),
    Case("step-output-does-not-fit-its-loss", 1, ["{spec}:19 step: in step 'corpus_mods:mse_step' a loss got an output of shape "
                                                  "[16, 5] and targets of shape [16] at the first step",
                                                  "the loss compares them element by element", "same shape in the step function"],
         lines={4: "  name: corpus_mods:vector_out"}, extra="step: corpus_mods:mse_step\n", command="run",
         args=["--out", "{tmp}/out"]),
    Case("input-does-not-fit-model", 1, ["the training step failed at the first step", "mat1 and mat2 shapes cannot be multiplied",
                                         "model 'corpus_mods:mlp'"],
         lines={5: "  kwargs: {in_features: 47, num_classes: 4}"}, command="run", args=["--out", "{tmp}/out"]),
    Case("user-forward-raises", 1, ["the training step failed at the first step: ValueError: forward cannot cope",
                                    f"corpus_mods.py:{FORWARD_LINE})"],
         lines={4: "  name: corpus_mods:FailingForward"}, command="run", args=["--out", "{tmp}/out"]),
    Case("user-init-raises", 1, ["model: building 'corpus_mods:FailingInit' failed: ValueError: bad layer sizes",
                                 f"corpus_mods.py:{INIT_LINE})"],
         lines={4: "  name: corpus_mods:FailingInit"}, command="run", args=["--out", "{tmp}/out"]),
    Case("user-dataset-raises", 1, ["data: reading a batch of 'corpus_mods:FailingItem' failed at the first step",
                                    "KeyError: 'image'", f"corpus_mods.py:{GETITEM_LINE})", "fix the dataset"],
         lines={7: "  name: corpus_mods:FailingItem", 8: "  kwargs: {}"}, command="run", args=["--out", "{tmp}/out"]),
    Case("user-dataset-raises-in-a-worker", 1, ["data: reading a batch of 'corpus_mods:FailingItem' failed at the first step",
                                                "KeyError: 'image'", f"corpus_mods.py:{GETITEM_LINE})"],
         lines={7: "  name: corpus_mods:FailingItem", 8: "  kwargs: {}", 9: "  batch_size: 16\n  num_workers: 1"},
         command="run", args=["--out", "{tmp}/out"]),
    Case("user-dataset-init-raises", 1, ["data: building 'corpus_mods:FailingSetup' failed: RuntimeError: labels.csv is missing",
                                         f"corpus_mods.py:{SETUP_LINE})"],
         lines={7: "  name: corpus_mods:FailingSetup", 8: "  kwargs: {}"}, command="run", args=["--out", "{tmp}/out"]),
    Case("model-not-a-module", 1, ["model: 'corpus_mods:not_a_model' returned a list, not a torch.nn.Module"],
         lines={4: "  name: corpus_mods:not_a_model"}, command="run", args=["--out", "{tmp}/out"]),
    Case("param-group-matches-nothing", 2, ["{spec}:13 optimizer.param_groups.0.params: 'head.*' matches no trainable parameter",
                                            "1.weight", "fix the glob"],
         lines={12: "  kwargs: {momentum: 0.9}\n  param_groups: [{params: 'head.*', lr_scale: 0.1}]"},
         command="run", args=["--out", "{tmp}/out"]),
    Case("param-group-matches-nothing-validate", 2, ["{spec}:13 optimizer.param_groups.0.params: 'head.*' matches no trainable "
                                                     "parameter", "1.weight", "fix the glob"],
         lines={12: "  kwargs: {momentum: 0.9}\n  param_groups: [{params: 'head.*', lr_scale: 0.1}]"}),
    Case("loss-non-finite-from-first-step", 3, ["no usable suggestion: the loss was non-finite (nan) from the first step",
                                                "lower sweep.start_lr", "inputs", "labels"],
         lines={14: "  name: corpus_mods:nan_loss"}, command="run", args=["--out", "{tmp}/out", "-q"], error_line=False),
    # ---- the output directory (a path that is a file: a usage error, exit 2) ----
    Case("out-is-a-file", 2, ["output.dir: '{tmp}/taken' exists and is not a directory", "choose another path with --out"],
         command="run", args=["--out", "{tmp}/taken"]),
    Case("out-under-a-file", 2, ["output.dir: '{tmp}/taken/sub' cannot be created because '{tmp}/taken' is a file",
                                 "choose another path with --out"], command="run", args=["--out", "{tmp}/taken/sub"]),
    Case("out-not-writable", 1, ["output.dir: '{tmp}/locked' is not writable", "choose another path with --out"],
         command="run", args=["--out", "{tmp}/locked/out"]),
    Case("out-would-overwrite-the-spec", 1, ["would overwrite an input of this run", "result.json", "choose another directory"],
         command="run", args=["--out", "{tmp}"]),
    Case("out-would-overwrite-the-checkpoint", 1, ["would overwrite an input of this run", "history.csv", "choose another directory"],
         lines={5: "  kwargs: {in_features: 48, num_classes: 4}\n  checkpoint: '{tmp}/ckpt/history.csv'"},
         command="run", args=["--out", "{tmp}/ckpt"]),
]


# ---- the fixture: user modules, checkpoints and files the cases refer to --------------------------------------


@pytest.fixture
def corpus(tmp_path, monkeypatch):
    """Run from tmp_path (beside the user modules); return tmp_path with every input file the cases need."""
    for name, source in MODULES.items():
        body = textwrap.dedent(source).lstrip("\n")
        (tmp_path / f"{name}.py").write_text(body, encoding="utf-8")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    (tmp_path / "text.pt").write_text("not a checkpoint at all")
    torch.save({"encoder.weight": torch.zeros(4, 48), "1.weight": torch.zeros(4, 48)}, tmp_path / "other.pt")
    five = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 5))
    torch.save(five.state_dict(), tmp_path / "five.pt")
    (tmp_path / "ckpt").mkdir()
    torch.save(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 4)).state_dict(), tmp_path / "ckpt" / "history.csv")
    (tmp_path / "taken").write_text("keep me")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield tmp_path
    for name in MODULES:
        sys.modules.pop(name, None)


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("error:")]


def fill(text: str, tmp: Path, spec: Path) -> str:
    return text.replace("{tmp}", str(tmp)).replace("{spec}", str(spec))


def invoke(runner, args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_exits_with_its_code_and_one_clear_line(case, corpus, cli_runner, monkeypatch):
    tmp = corpus
    name = "result.json" if case.id == "out-would-overwrite-the-spec" else "spec.yaml"
    spec = tmp / name
    if case.write:
        spec.write_text(fill(spec_with(case), tmp, spec), encoding="utf-8")
    args = [case.command, spec, *(fill(a, tmp, spec) for a in case.args)]
    if case.id == "out-not-writable":
        locked = tmp / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        if os.geteuid() == 0:  # root writes anywhere: deny it the way a read-only mount would
            real = os.access
            monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == locked else real(p, mode, **kw))

    result = invoke(cli_runner, args)

    assert result.exit_code == case.exit, result.stderr
    errors = error_lines(result.stderr)
    if case.error_line:
        assert len(errors) == 1, result.stderr
        message = errors[0]
    else:
        assert errors == [], result.stderr
        message = result.stderr
    for fact in case.facts:
        assert fill(fact, tmp, spec) in message, f"{fact!r} not in {message!r}"
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    assert isinstance(result.exception, (SystemExit, type(None))), repr(result.exception)
    if case.command == "run" and case.exit != 3:
        assert not (tmp / "out").exists(), "a failed run must not leave outputs behind"
    if case.id in ("out-is-a-file", "out-under-a-file"):
        assert (tmp / "taken").read_text() == "keep me"
    if case.id == "out-would-overwrite-the-checkpoint":
        assert torch.load(tmp / "ckpt" / "history.csv", weights_only=True)["1.weight"].shape == (4, 48)
        assert sorted(p.name for p in (tmp / "ckpt").iterdir()) == ["history.csv"]


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case_id", ["unknown-key-sweep", "checkpoint-missing", "user-forward-raises"])
def test_verbose_shows_the_traceback_and_keeps_the_exit_code(case_id, corpus, cli_runner):
    case = next(c for c in CASES if c.id == case_id)
    spec = corpus / "spec.yaml"
    spec.write_text(fill(spec_with(case), corpus, spec), encoding="utf-8")

    result = invoke(cli_runner, [case.command, spec, *(fill(a, corpus, spec) for a in case.args), "-v"])

    assert result.exit_code == case.exit
    assert "Traceback" in result.stderr
    assert len(error_lines(result.stderr)) == 1


def test_several_problems_give_one_error_line_each(corpus, cli_runner):
    spec = corpus / "spec.yaml"
    spec.write_text(spec_with(Case("x", 2, [], lines={2: "devise: cpu", 11: "  name: Adamm", 12: "  kwargs: {}",
                                                      18: "  num_iter: 1"})))

    result = invoke(cli_runner, ["validate", spec])

    assert result.exit_code == 2
    lines = error_lines(result.stderr)
    assert len(lines) == 3
    assert {line.split()[1] for line in lines} == {f"{spec}:2", f"{spec}:18", f"{spec}:11"}


# ---- faults in the sweep --------------------------------------------------------------------------------------


def test_cuda_asked_for_on_a_machine_without_cuda_exits_1(corpus, cli_runner, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    spec = corpus / "spec.yaml"
    spec.write_text(spec_with(Case("x", 1, [], lines={2: "device: cuda"})))

    result = invoke(cli_runner, ["run", spec, "--out", corpus / "out"])

    assert result.exit_code == 1
    lines = error_lines(result.stderr)
    assert len(lines) == 1
    assert f"{spec}:2 device: 'cuda' was asked for but CUDA is not available" in lines[0]
    assert "use --device cpu or device: auto" in lines[0]
    assert "Traceback" not in result.stderr


def test_cuda_out_of_memory_names_the_batch_size_and_what_to_try(corpus, cli_runner, monkeypatch):
    from lrfind_cli.engine import step as finder

    real = finder.default_step
    calls = []

    def out_of_memory(model, batch, loss_fn):
        calls.append(1)
        if len(calls) == 3:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return real(model, batch, loss_fn)

    monkeypatch.setattr(finder, "default_step", out_of_memory)
    spec = corpus / "spec.yaml"
    spec.write_text(spec_with(Case("x", 1, [])))

    result = invoke(cli_runner, ["run", spec, "--out", corpus / "out"])

    assert result.exit_code == 1
    lines = error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert "out of GPU memory at step 2 (of 0-5) with data.batch_size 16" in lines[0]
    assert "lower data.batch_size (e.g. --set data.batch_size=8)" in lines[0]
    assert "sweep.accumulation_steps" in lines[0] and "precision: bf16" in lines[0]
    assert "Traceback" not in result.stderr


def test_non_finite_loss_from_the_first_step_writes_the_result_and_explains(corpus, cli_runner):
    spec = corpus / "spec.yaml"
    spec.write_text(spec_with(Case("x", 3, [], lines={14: "  name: corpus_mods:nan_loss"}, extra="precision: bf16\n")))

    result = invoke(cli_runner, ["run", spec, "--out", corpus / "out"])

    assert result.exit_code == 3, result.stderr
    assert "suggested_lr: none" in result.stdout
    assert "the loss was non-finite (nan) from the first step" in result.stderr
    assert "precision: fp32 instead of bf16" in result.stderr
    doc = json.loads((corpus / "out" / "result.json").read_text())
    assert doc["suggested_lr"] is None and doc["num_steps"] == 1 and doc["history"]["loss"] == [None]
    assert "Traceback" not in result.stderr


def test_an_output_torch_would_broadcast_against_the_targets_exits_1_naming_model_kwargs(cli_runner, tmp_path):
    # the README's regression config with a 3-wide output for (N, 1) targets: torch would broadcast and only warn
    result = invoke(cli_runner, ["run", REPO / "configs" / "tabular-mse.yaml", "--set", "model.kwargs.out_features=3",
                                 "--set", "data.kwargs.num_samples=256", "--set", "device=cpu", "--out", tmp_path / "out"])

    assert result.exit_code == 1, result.stderr
    assert error_lines(result.stderr) == [
        "error: model.kwargs: the output of model 'mlp_regressor' has shape [128, 3] and the targets of data 'synthetic_tabular' "
        "have shape [128, 1] at the first step; MSELoss compares them element by element, and broadcasting one to the other "
        "would train on a wrong loss; set model.kwargs so the output has the targets' shape (e.g. out_features or num_classes), "
        "or reshape the targets in the dataset or a step function"]
    assert "warning:" not in result.stderr and not (tmp_path / "out").exists()


def test_a_library_warning_is_one_line(corpus, cli_runner):
    spec = corpus / "spec.yaml"
    # A model whose forward warns at every step, as libraries do about a deprecated argument: shown once, on one line.
    spec.write_text(spec_with(Case("x", 0, [], lines={4: "  name: corpus_mods:WarningForward"})))

    result = invoke(cli_runner, ["run", spec, "--out", corpus / "out"])

    assert result.exit_code in (0, 3), result.stderr
    warning = [line for line in result.stderr.splitlines() if line.startswith("warning: UserWarning")]
    assert len(warning) == 1 and f"UserWarning: this argument is deprecated ({corpus}/corpus_mods.py:{WARN_LINE})" in warning[0]
    assert "warnings.warn(" not in result.stderr  # no source excerpt


# ---- security ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tag", ["!!python/object/apply:os.mkdir", "!!python/object/new:os.mkdir", "!!python/name:os.mkdir"])
def test_python_yaml_tags_are_refused_as_a_spec_error_and_run_nothing(tag, corpus, cli_runner):
    marker = corpus / "yaml-ran-code"
    spec = corpus / "spec.yaml"
    spec.write_text(BASE + f"output: {{dir: {tag} ['{marker}']}}\n")

    result = invoke(cli_runner, ["validate", spec])

    assert result.exit_code == 2
    lines = error_lines(result.stderr)
    assert len(lines) == 1
    assert f"{spec}:19" in lines[0] and "is not allowed" in lines[0] and "yaml.safe_load" in lines[0]
    assert tag.split(":")[0].split(" ")[0] in lines[0]
    assert not marker.exists()


class _Payload:
    """Pickles as a call to os.mkdir(marker): loading it with plain pickle would run that call."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_pickled_checkpoint_with_an_arbitrary_object_is_refused_and_its_code_does_not_run(corpus, cli_runner):
    marker = corpus / "pickle-ran-code"
    state = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 4)).state_dict()
    torch.save({**state, "extra": _Payload(marker)}, corpus / "evil.pt")
    spec = corpus / "spec.yaml"
    checkpoint = f"  kwargs: {{in_features: 48, num_classes: 4}}\n  checkpoint: {corpus}/evil.pt"
    spec.write_text(spec_with(Case("x", 1, [], lines={5: checkpoint})))

    result = invoke(cli_runner, ["run", spec, "--out", corpus / "out"])

    assert result.exit_code == 1
    lines = error_lines(result.stderr)
    assert len(lines) == 1
    assert "holds Python objects besides tensors" in lines[0] and "weights_only=True" in lines[0]
    assert "\x1b" not in result.stderr
    assert not marker.exists(), "the checkpoint's code ran"
    assert not (corpus / "out").exists()


def test_a_missing_dataset_is_not_downloaded_without_download_true(corpus, cli_runner, monkeypatch):
    attempts = []

    def no_network(self, address):
        attempts.append(address)
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    spec = corpus / "spec.yaml"
    spec.write_text(spec_with(Case("x", 1, [], lines={7: "  name: MNIST", 8: f"  kwargs: {{root: '{corpus}/mnist-data'}}"})))

    result = invoke(cli_runner, ["run", spec, "--out", corpus / "out"])

    assert result.exit_code == 1
    assert "download: true" in result.stderr
    assert attempts == []
    assert not (corpus / "mnist-data").exists() or not any((corpus / "mnist-data").rglob("*.gz"))


def test_readme_says_plainly_that_import_paths_run_code():
    text = " ".join((REPO / "README.md").read_text(encoding="utf-8").split())
    assert "Import paths run code" in text
    assert "Treat a spec like code; only run specs you trust" in text
    assert "weights_only" in text


def test_an_import_path_really_runs_that_module_code(corpus, cli_runner):
    (corpus / "corpus_side_effect.py").write_text(
        f"from pathlib import Path\nPath({str(corpus / 'imported')!r}).write_text('ran')\n"
        "import torch\n\ndef mlp(**kw):\n    return torch.nn.Linear(48, 4)\n")
    spec = corpus / "spec.yaml"
    spec.write_text(spec_with(Case("x", 0, [], lines={4: "  name: corpus_side_effect:mlp", 5: "  kwargs: {}"})))
    try:
        result = invoke(cli_runner, ["validate", spec])
    finally:
        sys.modules.pop("corpus_side_effect", None)

    assert result.exit_code == 0, result.stderr
    assert (corpus / "imported").read_text() == "ran"
