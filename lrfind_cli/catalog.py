"""What a name in a spec may be: one small registry per kind, listed by `lrfind ls KIND [GLOB]`."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass

from .errors import Problem, SpecError

KINDS = ("models", "datasets", "optimizers", "losses", "transforms")


@dataclass(frozen=True)
class Registry:
    """The names one kind of spec entry may take (besides any "package.module:attr" import path)."""

    kind: str
    names: Callable[[str], list[str]]  # every name, given the glob (timm's names are listed only when asked for)

    def list(self, pattern: str | None = None) -> list[str]:
        """The names matching a case-insensitive glob ("adam*", "*Loss"), all names without one, in listing order."""
        names = self.names(pattern or "*")
        if pattern is None:
            return names
        return [n for n in names if fnmatch.fnmatchcase(n.lower(), pattern.lower())]


def registry(kind: str) -> Registry:
    """The registry of one kind (imports torch and torchvision when listed)."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; one of {', '.join(KINDS)}")
    return Registry(kind, _model_names if kind == "models" else lambda _pattern: _builtin_names(kind))


def _builtin_names(kind: str) -> list[str]:
    from .registry import list_names

    return list_names(kind)


def _model_names(pattern: str) -> list[str]:
    """Built-in and torchvision models; timm's (as "timm:NAME") when the glob asks for them and timm is installed."""
    names = _builtin_names("models")
    if pattern.lower().startswith("timm:"):
        try:
            import timm
        except ImportError:
            raise SpecError(Problem(f"lrfind ls models {pattern!r}", "timm is not installed", "pip install timm")) from None
        names += [f"timm:{n}" for n in timm.list_models()]
    return names
