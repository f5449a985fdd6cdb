"""Names to objects: one Registry per kind (models, datasets, transforms, optimizers, losses), and "module:attr" import paths."""

from __future__ import annotations

import difflib
import importlib
import inspect
import os
from collections.abc import Callable
from typing import Any

import torch

from .data import BUILTIN_DATASETS
from .errors import user_frame
from .models import BUILTIN_MODELS
from .searchpath import search_path


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
            raise UnknownName(f"{module_name!r} has no attribute {attr_path!r}", did_you_mean(part, names))
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
        raise UnknownName(f"unknown timm model {name!r}", did_you_mean(name, timm.list_models()))

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


def _hint(name: str, choices: list[str], kind: str) -> str:
    """The close matches, or where to see every name: `lrfind ls KIND`."""
    return did_you_mean(name, choices) or f"run `lrfind ls {kind}` for the names, or give an import path module:attr"


def did_you_mean(name: str, choices: list[str]) -> str:
    lowered = {c.lower(): c for c in choices}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=3, cutoff=0.6)
    if close:
        return "did you mean " + " or ".join(repr(lowered[c]) for c in close) + "?"
    return ""
