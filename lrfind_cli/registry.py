"""Names to objects: one Registry per kind (models, datasets, transforms, optimizers, losses), and "module:attr" import paths."""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .data import BUILTIN_DATASETS
from .errors import Problem, SpecError, user_frame
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


# ---- one registry per kind ------------------------------------------------------------------------


@dataclass(frozen=True)
class Registry:
    """The built-in names of one kind of spec entry: `get(name)` gives the object, `list(glob)` the names.

    `get` takes any case, and any "package.module:attr" import path too; an unknown name answers with
    the closest valid names (or where to list them all).
    """

    kind: str  # as `lrfind ls` names it: "optimizers"
    what: str  # as an error names one: "optimizer"
    table: Callable[[], dict[str, Any]]  # lower-case name -> object, built when asked (torchvision imports slowly)
    listing: Callable[[], list[str]]  # every name, in the order `lrfind ls` shows them
    hints: Callable[[], list[str]] | None = None  # the names close matches are drawn from (default: the listing)

    def get(self, name: str) -> Any:
        if ":" in name:
            return import_object(name)
        table = self.table()
        if name.lower() in table:
            return table[name.lower()]
        raise UnknownName(f"unknown {self.what} {name!r}", _hint(name, (self.hints or self.listing)(), self.kind))

    def list(self, pattern: str | None = None) -> list[str]:
        """The names matching a case-insensitive glob ("adam*", "*Loss"), all names without one, in listing order."""
        names = self.listing()
        if pattern is None:
            return names
        return [n for n in names if fnmatch.fnmatchcase(n.lower(), pattern.lower())]


class ModelRegistry(Registry):
    """Models: the built-in ones, torchvision's builders, and timm's as "timm:NAME" when timm is installed."""

    def get(self, name: str) -> Callable[..., torch.nn.Module]:
        if name.lower().startswith("timm:"):
            return _timm_model(name[5:])
        if ":" in name or name.lower() in BUILTIN_MODELS:
            return super().get(name)
        from torchvision import models

        try:
            return models.get_model_builder(name.lower())
        except (ValueError, KeyError):
            raise UnknownName(f"unknown model {name!r}", _hint(name, list(BUILTIN_MODELS) + models.list_models(), "models")) from None

    def list(self, pattern: str | None = None) -> list[str]:
        """As for every kind; timm's names (as "timm:NAME") only when the glob asks for them."""
        names = super().list(pattern)
        if pattern is None or not pattern.lower().startswith("timm:"):
            return names
        try:
            import timm
        except ImportError:
            raise SpecError(Problem(f"lrfind ls models {pattern!r}", "timm is not installed", "pip install timm")) from None
        return names + [f"timm:{n}" for n in timm.list_models() if fnmatch.fnmatchcase(f"timm:{n}".lower(), pattern.lower())]


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


def _model_names() -> list[str]:
    from torchvision import models

    return list(BUILTIN_MODELS) + sorted(models.list_models())


def _datasets() -> dict[str, Any]:
    return dict(BUILTIN_DATASETS) | _torchvision_datasets()


def _dataset_names() -> list[str]:
    return list(BUILTIN_DATASETS) + sorted(c.__name__ for c in _torchvision_datasets().values())


def _transforms() -> dict[str, Any]:
    from torchvision.transforms import v2

    return {n.lower(): getattr(v2, n) for n in dir(v2) if not n.startswith("_") and inspect.isclass(getattr(v2, n))}


def _transform_names() -> list[str]:
    from torchvision.transforms import v2

    return sorted(n for n in dir(v2) if not n.startswith("_") and inspect.isclass(getattr(v2, n)))


def _class_names(table: Callable[[], dict[str, Any]]) -> Callable[[], list[str]]:
    return lambda: sorted(c.__name__ for c in table().values())


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


REGISTRIES: dict[str, Registry] = {
    "models": ModelRegistry("models", "model", lambda: dict(BUILTIN_MODELS), _model_names),
    "datasets": Registry("datasets", "dataset", _datasets, _dataset_names),
    "transforms": Registry("transforms", "transform", _transforms, _transform_names, hints=_class_names(_transforms)),
    "optimizers": Registry("optimizers", "optimizer", _optimizers, _class_names(_optimizers)),
    "losses": Registry("losses", "loss", _losses, _class_names(_losses)),
}
KINDS = tuple(REGISTRIES)


def registry(kind: str) -> Registry:
    """The registry of one kind: models, datasets, transforms, optimizers or losses."""
    if kind not in REGISTRIES:
        raise ValueError(f"unknown kind {kind!r}; one of {', '.join(KINDS)}")
    return REGISTRIES[kind]


def resolve_model(name: str) -> Callable[..., torch.nn.Module]:
    """A built-in model name, "timm:NAME" (when timm is installed), a torchvision name, or an import path."""
    return REGISTRIES["models"].get(name)


def resolve_dataset(name: str) -> Callable[..., Any]:
    return REGISTRIES["datasets"].get(name)


def resolve_transform(name: str) -> Callable[..., Any]:
    return REGISTRIES["transforms"].get(name)


def resolve_optimizer(name: str) -> type[torch.optim.Optimizer]:
    return REGISTRIES["optimizers"].get(name)


def resolve_loss(name: str) -> Callable[..., Any]:
    return REGISTRIES["losses"].get(name)


def _hint(name: str, choices: list[str], kind: str) -> str:
    """The close matches, or where to see every name: `lrfind ls KIND`."""
    return did_you_mean(name, choices) or f"run `lrfind ls {kind}` for the names, or give an import path module:attr"


def did_you_mean(name: str, choices: list[str]) -> str:
    lowered = {c.lower(): c for c in choices}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=3, cutoff=0.6)
    if close:
        return "did you mean " + " or ".join(repr(lowered[c]) for c in close) + "?"
    return ""
