"""Building what a validated spec names: model (and checkpoint), dataset and transforms, optimizer, loss, step, collate."""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .data import BUILTIN_DATASETS
from .errors import RunError, SpecError, short_message, user_frame
from .failures import refuse_broadcasting
from .registry import import_object, resolve_dataset, resolve_loss, resolve_model, resolve_optimizer, resolve_transform
from .targets import parameters_of


def build_model(spec) -> torch.nn.Module:
    """Construct the model named by a ModelSpec and load its checkpoint, if any."""
    factory = resolve_model(spec.name)
    model = call_user(factory, spec.kwargs, "model", f"building {spec.name!r}")
    if not isinstance(model, torch.nn.Module):
        raise RunError(f"model: {spec.name!r} returned a {type(model).__name__}, not a torch.nn.Module", key="model")
    if spec.checkpoint:
        load_checkpoint(model, spec.checkpoint, strict=spec.strict)
    return model


# model kwargs that load trained weights when set: torchvision's `weights` / `weights_backbone`, timm's and
# older torchvision's `pretrained`
WEIGHT_KWARGS = ("weights", "weights_backbone", "pretrained")


def starts_trained(spec) -> bool:
    """Whether the model a ModelSpec builds holds trained weights.

    `model.trained` when the spec sets it; otherwise True with a `checkpoint`, a weight-loading kwarg
    (WEIGHT_KWARGS) set to anything but None/False/"", or a factory named `...from_pretrained`, and
    False for every other model: a built-in, torchvision, timm or import-path model starts untrained
    unless the spec says so (a factory of your own that loads weights itself needs `model.trained: true`).
    Only a trained model's flat-then-rising curve gets the fine-tuning rate (`suggest.rule`).
    """
    if spec.trained is not None:
        return spec.trained
    if spec.checkpoint or "from_pretrained" in spec.name:
        return True
    return any(spec.kwargs.get(key) not in (None, False, "") for key in WEIGHT_KWARGS)


def _read_state_dict(path: str) -> dict[str, torch.Tensor]:
    """The state_dict in a checkpoint file, or RunError saying how to fix the file.

    A dict holding it under 'state_dict', 'model_state_dict' or 'model' (a training checkpoint) is unwrapped.
    """
    if not os.path.isfile(path):
        raise RunError(f"model.checkpoint: {path!r} does not exist; give the path of a saved state_dict", key="model.checkpoint")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise _unloadable(path, exc) from None
    if isinstance(state, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise RunError(f"model.checkpoint: {path!r} is not a state_dict (a mapping of names to tensors); "
                       "save it with torch.save(model.state_dict(), path)", key="model.checkpoint")
    return state


def _unloadable(path: str, exc: Exception) -> RunError:
    """Why torch.load refused a checkpoint, in one line."""
    text = _plain(str(exc))
    found = re.search(r"GLOBAL ([\w.]+)", text)
    if "weights only load failed" in text.lower() and found:
        # torch's own text is long and carries terminal escape codes: say what it means in one line.
        return RunError(f"model.checkpoint: {path!r} holds Python objects besides tensors ({found.group(1)}; a whole "
                        "model saved with torch.save(model)?), which loading with weights_only=True refuses; "
                        "save it with torch.save(model.state_dict(), path)", key="model.checkpoint")
    if "weights only load failed" in text.lower() or "zip archive" in text.lower():
        return RunError(f"model.checkpoint: {path!r} cannot be loaded as weights: it is not a file written by "
                        "torch.save (or it is truncated); save it with torch.save(model.state_dict(), path)", key="model.checkpoint")
    return RunError(f"model.checkpoint: {path!r} cannot be loaded as weights ({type(exc).__name__}: "
                    f"{_plain(short_message(exc))}); save it with torch.save(model.state_dict(), path)", key="model.checkpoint")


def load_checkpoint(model: torch.nn.Module, path: str, strict: bool = True) -> None:
    """Load a state_dict (weights_only) into the model; with strict, every key must match."""
    state = _read_state_dict(path)
    expected = model.state_dict()
    missing, unexpected = _key_diff(expected, state)
    if strict and (missing or unexpected):
        raise RunError(f"model.checkpoint: {path!r} does not match the model: missing {_listing(missing)}, "
                       f"unexpected {_listing(unexpected)}; check model.name and model.kwargs, or set model.strict: false",
                       key="model.checkpoint")
    if not strict and len(missing) == len(expected):
        raise RunError(f"model.checkpoint: {path!r} shares no key with the model (the model's keys look like "
                       f"{_listing(list(expected), 3)}, the checkpoint's like {_listing(list(state), 3)}); "
                       "check model.name and model.kwargs, or strip a prefix such as 'module.' from the checkpoint's keys",
                       key="model.checkpoint")
    shapes = [f"{k} (checkpoint {list(state[k].shape)}, model {list(v.shape)})"
              for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if shapes:
        raise RunError(f"model.checkpoint: {path!r} does not fit the model: shape mismatch for {_listing(shapes, quote=False)}; "
                       "check model.kwargs (e.g. num_classes), or remove those entries from the checkpoint", key="model.checkpoint")
    try:
        model.load_state_dict(state, strict=strict)
    except RuntimeError as exc:
        raise RunError(f"model.checkpoint: {path!r} does not match the model: {short_message(exc)}", key="model.checkpoint") from None


def build_dataset(spec) -> Any:
    """Construct the dataset named by a DataSpec, with its transforms."""
    factory = resolve_dataset(spec.name)
    kwargs = dict(spec.kwargs)
    is_torchvision = not (":" in spec.name or spec.name.lower() in BUILTIN_DATASETS)
    transform = build_transforms(spec.transforms, default=is_torchvision)
    takes_transform = "transform" in (parameters_of(factory) or {})
    if transform is not None and takes_transform:
        kwargs["transform"] = transform
    try:
        # Missing files of a torchvision dataset: say where they should be. A user's dataset failing is its own error.
        missing = (RuntimeError, FileNotFoundError) if is_torchvision else ()
        dataset = call_user(factory, kwargs, "data", f"building {spec.name!r}", reraise=missing)
    except (RuntimeError, FileNotFoundError) as exc:
        root = str(kwargs.get("root", ""))
        raise RunError(
            f"data: {spec.name} could not be loaded from root {os.path.abspath(root)!r} ({short_message(exc)}); "
            "put the files there or set data.kwargs.download: true (needs network)"
        , key="data") from None
    if transform is not None and not takes_transform:
        dataset = TransformedDataset(dataset, transform)
    if spec.transforms is not None:
        finish_with_tensors(dataset, transform)
    return dataset


def build_transforms(items, *, default: bool) -> Callable | None:
    from torchvision.transforms import v2

    if items is None:
        # Images from torchvision datasets arrive as PIL images: make float tensors in [0, 1].
        return v2.Compose(_to_float_tensor()) if default else None
    steps = [call_user(resolve_transform(t.name), t.kwargs, "data.transforms", f"building {t.name!r}") for t in items]
    return v2.Compose(steps)


def _to_float_tensor() -> list:
    from torchvision.transforms import v2

    return [v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]


def finish_with_tensors(dataset: Any, transform: Any) -> None:
    """A `transforms` list whose output is still a PIL image gets ToImage + ToDtype(float32, scale=True) appended.

    Without them the batch cannot be collated; the first sample tells (the list is not guessed from names,
    since a user's own transform may convert too).
    """
    from PIL import Image

    steps = getattr(transform, "transforms", None)
    if not isinstance(steps, list):
        return
    try:
        sample = dataset[0]
    except Exception:
        return  # an empty or unusual dataset: the sweep reports its own error, with the step it happened at
    first = sample[0] if isinstance(sample, (tuple, list)) and sample else sample
    if isinstance(first, Image.Image):
        steps.extend(_to_float_tensor())


class TransformedDataset(torch.utils.data.Dataset):
    """Applies a transform to the input of each (input, target, ...) sample of a dataset."""

    def __init__(self, dataset, transform):
        self.dataset, self.transform = dataset, transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index):
        sample = self.dataset[index]
        return (self.transform(sample[0]), *sample[1:])


def build_optimizer(spec, model: torch.nn.Module, lr: float,
                    loss: Callable | None = None) -> tuple[torch.optim.Optimizer, list[float]]:
    """The optimizer over the model's trainable parameters, and each param group's lr scale.

    Without `param_groups` there is one group. With them, each trainable parameter joins the first
    group whose glob matches its name (`assign_groups`); the ones no glob matches form a last group of scale 1.
    Frozen parameters (requires_grad=False) are left out, so they stay untouched. A `loss` module
    with trainable parameters (learned task weights, say) is trained too: its parameters form a
    group of their own, last, at scale 1, as a training script that optimizes them would.
    Raises SpecError at `optimizer.param_groups.N.params` for a glob that matches no trainable parameter.
    """
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise RunError("model: it has no trainable parameters (all have requires_grad=False)", key="model")
    grouping = assign_groups(named, spec.param_groups or [])
    if grouping.problems:
        raise SpecError.at(*grouping.problems[0])
    groups, scales = [], []
    for group, members in zip(spec.param_groups or [], grouping.members):
        groups.append({"params": [p for _, p in members], "lr": lr * group.lr_scale, **group.kwargs})
        scales.append(group.lr_scale)
    if grouping.rest:
        groups.append({"params": [p for _, p in grouping.rest], "lr": lr})
        scales.append(1.0)
    loss_params = loss_parameters(loss, model)
    if loss_params:
        groups.append({"params": loss_params, "lr": lr})
        scales.append(1.0)
    cls = resolve_optimizer(spec.name)
    optimizer = call_user(cls, {"params": groups, "lr": lr, **spec.kwargs}, "optimizer", f"building {spec.name!r}")
    return optimizer, scales


@dataclass
class Grouping:
    """Trainable (name, parameter) pairs split by the param groups' globs; `problems`: (key, what, fix) per empty group."""

    members: list[list[tuple[str, torch.nn.Parameter]]]  # one list per group, in the spec's order
    rest: list[tuple[str, torch.nn.Parameter]]  # matched by no glob: the last group, at scale 1
    problems: list[tuple[str, str, str]]


def assign_groups(named: list[tuple[str, torch.nn.Parameter]], groups: list) -> Grouping:
    """Each parameter to the first ParamGroupSpec whose glob (fnmatch, case-sensitive) matches its name.

    A group whose glob matches no parameter left by the groups before it is a problem at its `params` key.
    """
    import fnmatch

    members, rest = [], list(named)
    for group in groups:
        chosen = [(n, p) for n, p in rest if fnmatch.fnmatchcase(n, group.params)]
        taken = {id(p) for _, p in chosen}
        rest = [(n, p) for n, p in rest if id(p) not in taken]
        members.append(chosen)
    sample = ", ".join(n for n, _ in named[:4])
    problems = [(f"optimizer.param_groups.{i}.params", f"{group.params!r} matches no trainable parameter (names look like: {sample})",
                 "fix the glob") for i, (group, chosen) in enumerate(zip(groups, members)) if not chosen]
    return Grouping(members, rest, problems)


def loss_parameters(loss: Callable | None, model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The trainable parameters of a loss module that the model does not already hold."""
    if not isinstance(loss, torch.nn.Module):
        return []
    held = {id(p) for p in model.parameters()}
    return [p for p in loss.parameters() if p.requires_grad and id(p) not in held]


def build_loss(spec) -> Callable | None:
    """The loss callable, or None when the spec says `loss: null` (the model returns its loss).

    An element-wise torch loss (MSELoss, ...) raises failures.OutputMisfit for an output and targets of two shapes.
    """
    if spec is None:
        return None
    target = resolve_loss(spec.name)
    if inspect.isclass(target):
        loss = call_user(target, spec.kwargs, "loss", f"building {spec.name!r}")
        refuse_broadcasting(loss)
        return loss
    if spec.kwargs:
        import functools

        return functools.partial(target, **spec.kwargs)
    return target


def build_step(path: str | None) -> Callable | None:
    """The custom step function named by `step:`, or None for the default step."""
    return import_object(path) if path else None


def build_collate(path: str | None) -> Callable | None:
    """The collate function named by `data.collate_fn`, or None for the DataLoader's default."""
    return import_object(path) if path else None


def call_user(factory: Callable, kwargs: dict, key: str, what: str, reraise: tuple = ()) -> Any:
    """Call the constructor of spec key `key`; its failure becomes a one-line RunError naming the user's code."""
    try:
        return factory(**{k: _from_yaml(k, v) for k, v in kwargs.items()})
    except reraise:
        raise
    except Exception as exc:
        raise RunError(f"{key}: {what} failed: {type(exc).__name__}: {short_message(exc)}{user_frame(exc)}", key=key) from exc


def _from_yaml(key: str, value: Any) -> Any:
    """YAML has no torch dtypes: a `dtype: float32` argument becomes torch.float32."""
    if key == "dtype" and isinstance(value, str):
        dtype = getattr(torch, value.removeprefix("torch."), None)
        if isinstance(dtype, torch.dtype):
            return dtype
        raise ValueError(f"dtype {value!r} is not a torch dtype (e.g. float32, bfloat16)")
    return value


def _key_diff(expected: dict, given: dict) -> tuple[list[str], list[str]]:
    """Every key of `expected` missing from `given`, and every key of `given` that `expected` lacks."""
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    return missing, unexpected


def _listing(items: list[str], limit: int = 5, quote: bool = True) -> str:
    """The first `limit` items, and how many more there are: "['a', 'b'] and 7 more"; "none" for no item."""
    if not items:
        return "none"
    shown = repr(items[:limit]) if quote else ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _plain(text: str) -> str:
    """Text without terminal escape sequences (some library messages embed them)."""
    import re

    return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text)
