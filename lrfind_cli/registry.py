"""Names to objects: models, datasets, transforms, optimizers and losses, plus "module:attr" import paths."""

from __future__ import annotations

import difflib
import importlib
import inspect
import os
import re
import typing
from collections.abc import Callable
from typing import Any

import torch

from .data import BUILTIN_DATASETS
from .errors import RunError, short_message, user_frame
from .models import BUILTIN_MODELS
from .searchpath import search_path

Key = tuple  # a key path into the spec, e.g. ("optimizer", "kwargs")


class UnknownName(LookupError):
    """A name that does not resolve; str() is the message, `fix` the hint."""

    def __init__(self, what: str, fix: str = ""):
        super().__init__(what)
        self.fix = fix


def import_object(path: str) -> Any:
    """Import "package.module:attr.sub" and return the attribute (runs that module's code).

    The current directory is searched too, as it is for `python train.py`, so a spec can name
    a module that sits beside it; sys.path is as it was afterwards.
    """
    module_name, _, attr_path = path.partition(":")
    if not module_name or not attr_path:
        raise UnknownName(f"import path {path!r} must look like 'package.module:attribute'", "write module:attribute")
    try:
        with search_path(first=os.getcwd()):
            obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name and "." in module_name:
            # A dotted Hydra/Lightning target names a nested attribute ('pkg.mod.Class.create'): move one part over.
            outer, _, last = module_name.rpartition(".")
            return import_object(f"{outer}:{last}.{attr_path}")
        if exc.name and module_name.startswith(exc.name):
            fix = "check the spelling, install it, or run from the directory that contains it"
            raise UnknownName(f"module {module_name!r} not found", fix) from None
        raise UnknownName(f"importing {module_name!r} failed: {exc}", "install the missing package") from None
    except Exception as exc:  # user code raising on import
        raise UnknownName(f"importing {module_name!r} raised {type(exc).__name__}: {exc}{user_frame(exc)}", "fix that module") from None
    for part in attr_path.split("."):
        if not hasattr(obj, part):
            names = [n for n in dir(obj) if not n.startswith("_")]
            raise UnknownName(f"{module_name!r} has no attribute {attr_path!r}", _did_you_mean(part, names))
        obj = getattr(obj, part)
    return obj


# ---- resolution: name -> callable -------------------------------------------------------------


def resolve_model(name: str) -> Callable[..., torch.nn.Module]:
    """A built-in model name, "timm:NAME" (when timm is installed), a torchvision name, or an import path."""
    if name.lower().startswith("timm:"):
        return _timm_model(name[5:])
    if ":" in name:
        return import_object(name)
    if name.lower() in BUILTIN_MODELS:
        return BUILTIN_MODELS[name.lower()]
    from torchvision import models

    try:
        return models.get_model_builder(name.lower())
    except (ValueError, KeyError):
        raise UnknownName(f"unknown model {name!r}", _hint(name, list(BUILTIN_MODELS) + models.list_models(), "models")) from None


def _timm_model(name: str) -> Callable[..., torch.nn.Module]:
    try:
        import timm
    except ImportError:
        raise UnknownName(f"model 'timm:{name}' needs timm, which is not installed", "pip install timm") from None
    if not timm.is_model(name):
        raise UnknownName(f"unknown timm model {name!r}", _did_you_mean(name, timm.list_models()))

    def create(**kwargs: Any) -> torch.nn.Module:
        return timm.create_model(name, **kwargs)

    create.__qualname__ = f"timm:{name}"
    return create


def resolve_dataset(name: str) -> Callable[..., Any]:
    if ":" in name:
        return import_object(name)
    if name.lower() in BUILTIN_DATASETS:
        return BUILTIN_DATASETS[name.lower()]
    table = _torchvision_datasets()
    if name.lower() in table:
        return table[name.lower()]
    choices = list(BUILTIN_DATASETS) + sorted(cls.__name__ for cls in table.values())
    raise UnknownName(f"unknown dataset {name!r}", _hint(name, choices, "datasets"))


def resolve_transform(name: str) -> Callable[..., Any]:
    if ":" in name:
        return import_object(name)
    from torchvision.transforms import v2

    table = {n.lower(): getattr(v2, n) for n in dir(v2) if not n.startswith("_") and inspect.isclass(getattr(v2, n))}
    return _from_table(name, table, "transform", "transforms")


def resolve_optimizer(name: str) -> type[torch.optim.Optimizer]:
    return import_object(name) if ":" in name else _from_table(name, _optimizers(), "optimizer", "optimizers")


def resolve_loss(name: str) -> Callable[..., Any]:
    return import_object(name) if ":" in name else _from_table(name, _losses(), "loss", "losses")


def _from_table(name: str, table: dict[str, Any], what: str, kind: str) -> Any:
    """The class a built-in name (any case) stands for; UnknownName with the closest names otherwise."""
    if name.lower() in table:
        return table[name.lower()]
    raise UnknownName(f"unknown {what} {name!r}", _hint(name, [c.__name__ for c in table.values()], kind))


def list_names(kind: str) -> list[str]:
    """Every built-in name of one kind: models, datasets, transforms, optimizers or losses."""
    if kind == "models":
        from torchvision import models

        return list(BUILTIN_MODELS) + sorted(models.list_models())
    if kind == "datasets":
        return list(BUILTIN_DATASETS) + sorted(c.__name__ for c in _torchvision_datasets().values())
    if kind == "transforms":
        from torchvision.transforms import v2

        return sorted(n for n in dir(v2) if not n.startswith("_") and inspect.isclass(getattr(v2, n)))
    if kind == "optimizers":
        return sorted(c.__name__ for c in _optimizers().values())
    if kind == "losses":
        return sorted(c.__name__ for c in _losses().values())
    raise ValueError(f"unknown kind {kind!r}")


def _torchvision_datasets() -> dict[str, type]:
    from torchvision import datasets

    return {
        n.lower(): getattr(datasets, n)
        for n in dir(datasets)
        if inspect.isclass(getattr(datasets, n)) and issubclass(getattr(datasets, n), torch.utils.data.Dataset)
        and n not in ("VisionDataset", "DatasetFolder", "ImageFolder")
    } | {"imagefolder": datasets.ImageFolder, "datasetfolder": datasets.DatasetFolder}


def _optimizers() -> dict[str, type]:
    return {
        n.lower(): getattr(torch.optim, n)
        for n in dir(torch.optim)
        if inspect.isclass(getattr(torch.optim, n))
        and issubclass(getattr(torch.optim, n), torch.optim.Optimizer)
        and getattr(torch.optim, n) is not torch.optim.Optimizer
    }


def _losses() -> dict[str, type]:
    return {
        n.lower(): getattr(torch.nn, n)
        for n in dir(torch.nn)
        if n.endswith("Loss") and inspect.isclass(getattr(torch.nn, n)) and issubclass(getattr(torch.nn, n), torch.nn.Module)
    }


# ---- checking a raw spec before anything is built -----------------------------------------------

# Arguments lrfind passes itself, per section.
_SUPPLIED = {
    "model": set(),
    "data": {"transform"},
    "optimizer": {"params", "lr"},
    "loss": set(),
    "transform": set(),
}


def check_targets(raw: dict) -> list[tuple[Key, str, str]]:
    """Resolve every name in a raw spec dict and check its kwargs against the target's signature.

    Returns (key path, what, fix) for every problem; sections that are not well formed are skipped
    (the schema reports those).
    """
    problems: list[tuple[Key, str, str]] = []
    resolvers = {"model": resolve_model, "data": resolve_dataset, "optimizer": resolve_optimizer, "loss": resolve_loss}
    defaults = {"data": "synthetic", "optimizer": "SGD", "loss": "CrossEntropyLoss"}
    for section, resolve in resolvers.items():
        body = raw.get(section, {} if section in defaults else None)
        if not isinstance(body, dict):
            continue
        name = body.get("name", defaults.get(section))
        if name is None and section == "loss":
            continue
        problems += _check_one((section,), name, body.get("kwargs") or {}, resolve, _SUPPLIED[section])
    optimizer = raw.get("optimizer")
    groups = optimizer.get("param_groups") if isinstance(optimizer, dict) else None
    if isinstance(groups, list) and isinstance(optimizer.get("name", "SGD"), str):
        for i, group in enumerate(groups):
            if isinstance(group, dict):
                problems += _check_one(("optimizer", "param_groups", i), optimizer.get("name", "SGD"), group.get("kwargs") or {},
                                       resolve_optimizer, _SUPPLIED["optimizer"], name_key=("optimizer", "name"))
    step = raw.get("step")
    if isinstance(step, str):
        problems += _check_function(("step",), step, "name a function(model, batch, loss_fn) -> loss")
    collate = raw.get("data", {}).get("collate_fn") if isinstance(raw.get("data"), dict) else None
    if isinstance(collate, str):
        problems += _check_function(("data", "collate_fn"), collate, "name a function(samples: list) -> batch")
    transforms = raw.get("data", {}).get("transforms") if isinstance(raw.get("data"), dict) else None
    if isinstance(transforms, list):
        for i, item in enumerate(transforms):
            if isinstance(item, dict):
                problems += _check_one(("data", "transforms", i), item.get("name"), item.get("kwargs") or {},
                                       resolve_transform, _SUPPLIED["transform"])
    return problems


def _check_function(key: Key, path: str, fix: str) -> list[tuple[Key, str, str]]:
    """A problem when the import path does not resolve to something callable."""
    try:
        if not callable(import_object(path)):
            return [(key, f"{path!r} is not a function", fix)]
    except UnknownName as exc:
        return [(key, str(exc), exc.fix)]
    return []


def _check_one(key: Key, name: Any, kwargs: Any, resolve: Callable, supplied: set[str],
               name_key: Key | None = None) -> list[tuple[Key, str, str]]:
    if not isinstance(name, str) or not isinstance(kwargs, dict):
        return []
    try:
        target = resolve(name)
    except UnknownName as exc:
        return [] if name_key else [(key + ("name",), str(exc), exc.fix)]  # a name checked elsewhere is reported once
    if not callable(target):
        return [(key + ("name",), f"{name!r} is a {type(target).__name__}, not something that can be called", "name a class or function")]
    # A loss that is a function (not a class) is called as loss(output, target, **kwargs) at each step
    # (see build_loss): its required arguments come from the step, not from the spec.
    require = not (key == ("loss",) and not inspect.isclass(target))
    return [(key + ("kwargs",) + ((k,) if k else ()), what, fix)
            for k, what, fix in signature_problems(target, kwargs, supplied, require=require)]


def signature_problems(target: Callable, kwargs: dict, supplied: set[str], *, require: bool = True) -> list[tuple[str, str, str]]:
    """(kwarg, what, fix) for kwargs the target does not accept and (if `require`) required arguments not given."""
    params = _parameters(target)
    if params is None:
        return []
    accepts_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    known = {n for n, p in params.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    if accepts_any:
        # torchvision model builders take **kwargs and pass them to the class they return.
        returned = _return_class(target)
        if returned is None:
            return []
        inner = _parameters(returned) or {}
        if any(p.kind is p.VAR_KEYWORD for p in inner.values()):
            return []
        known |= set(inner)
    label = getattr(target, "__qualname__", getattr(target, "__name__", repr(target)))
    problems = []
    for k in kwargs:
        if k not in known:
            choices = sorted(known - supplied - {"self"})
            fix = _did_you_mean(str(k), choices) or f"{label} accepts: {', '.join(choices)}"
            problems.append((str(k), f"{label} does not accept the argument {k!r}", fix))
    if not accepts_any and require:
        for n, p in params.items():
            required = p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            if required and n not in kwargs and n not in supplied and n != "self":
                problems.append(("", f"{label} needs the argument {n!r}", f"add `{n}:` under kwargs"))
    return problems


def _parameters(target: Callable) -> dict[str, inspect.Parameter] | None:
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return None
    return dict(sig.parameters)


def _return_class(fn: Callable) -> type | None:
    try:
        hint = typing.get_type_hints(fn).get("return")
    except Exception:
        hint = inspect.signature(fn).return_annotation
    return hint if inspect.isclass(hint) else None


def _hint(name: str, choices: list[str], kind: str) -> str:
    """The close matches, or where to see every name: `lrfind ls KIND`."""
    return _did_you_mean(name, choices) or f"run `lrfind ls {kind}` for the names, or give an import path module:attr"


def _did_you_mean(name: str, choices: list[str]) -> str:
    lowered = {c.lower(): c for c in choices}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=3, cutoff=0.6)
    if close:
        return "did you mean " + " or ".join(repr(lowered[c]) for c in close) + "?"
    return ""


# ---- building objects from a validated spec -----------------------------------------------------


def build_model(spec) -> torch.nn.Module:
    """Construct the model named by a ModelSpec and load its checkpoint, if any."""
    factory = resolve_model(spec.name)
    model = call_user(factory, spec.kwargs, "model", f"building {spec.name!r}")
    if not isinstance(model, torch.nn.Module):
        raise RunError(f"model: {spec.name!r} returned a {type(model).__name__}, not a torch.nn.Module", key="model")
    if spec.checkpoint:
        load_checkpoint(model, spec.checkpoint, strict=spec.strict)
    return model


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
    takes_transform = "transform" in (_parameters(factory) or {})
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
    group whose glob matches its name; the ones no glob matches form a last group of scale 1.
    Frozen parameters (requires_grad=False) are left out, so they stay untouched. A `loss` module
    with trainable parameters (learned task weights, say) is trained too: its parameters form a
    group of their own, last, at scale 1, as a training script that optimizes them would.
    """
    import fnmatch

    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise RunError("model: it has no trainable parameters (all have requires_grad=False)", key="model")
    groups, scales = [], []
    rest = list(named)
    for i, group in enumerate(spec.param_groups or []):
        chosen = [(n, p) for n, p in rest if fnmatch.fnmatchcase(n, group.params)]
        if not chosen:
            sample = ", ".join(n for n, _ in named[:4])
            raise RunError(f"optimizer.param_groups.{i}.params: {group.params!r} matches no trainable parameter "
                           f"(names look like: {sample}); fix the glob")
        taken = {id(p) for _, p in chosen}
        rest = [(n, p) for n, p in rest if id(p) not in taken]
        groups.append({"params": [p for _, p in chosen], "lr": lr * group.lr_scale, **group.kwargs})
        scales.append(group.lr_scale)
    if rest:
        groups.append({"params": [p for _, p in rest], "lr": lr})
        scales.append(1.0)
    loss_params = loss_parameters(loss, model)
    if loss_params:
        groups.append({"params": loss_params, "lr": lr})
        scales.append(1.0)
    cls = resolve_optimizer(spec.name)
    optimizer = call_user(cls, {"params": groups, "lr": lr, **spec.kwargs}, "optimizer", f"building {spec.name!r}")
    return optimizer, scales


def loss_parameters(loss: Callable | None, model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The trainable parameters of a loss module that the model does not already hold."""
    if not isinstance(loss, torch.nn.Module):
        return []
    held = {id(p) for p in model.parameters()}
    return [p for p in loss.parameters() if p.requires_grad and id(p) not in held]


def build_loss(spec) -> Callable | None:
    """The loss callable, or None when the spec says `loss: null` (the model returns its loss)."""
    if spec is None:
        return None
    target = resolve_loss(spec.name)
    if inspect.isclass(target):
        return call_user(target, spec.kwargs, "loss", f"building {spec.name!r}")
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
