"""The error types lrfind raises, each carrying the exit code the CLI maps it to."""

from __future__ import annotations

import os
import traceback
from dataclasses import dataclass

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_USAGE = 2
EXIT_NO_SUGGESTION = 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM


class LrfindError(Exception):
    """Base class: a failure with a one-line message meant for the user."""

    exit_code = EXIT_RUNTIME


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a spec: where it is, what is wrong, how to fix it."""

    where: str  # "spec.yaml:12 optimizer.kwargs.lr" (file:line and key path, as far as known)
    what: str
    fix: str = ""

    def __str__(self) -> str:
        text = f"{self.where}: {self.what}" if self.where else self.what
        return f"{text} ({self.fix})" if self.fix else text


class SpecError(LrfindError):
    """The spec (or an override, or a command-line option) is invalid; holds every problem found."""

    exit_code = EXIT_USAGE

    def __init__(self, problems: list[Problem] | Problem):
        self.problems = [problems] if isinstance(problems, Problem) else list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class RunError(LrfindError):
    """A failure while building objects or running the sweep (missing data, bad checkpoint, ...)."""

    exit_code = EXIT_RUNTIME


def short_message(exc: BaseException, limit: int = 240) -> str:
    """An exception's text on one line, cut to `limit` characters."""
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def user_frame(exc: BaseException) -> str:
    """' (at file:line)' for the innermost frame outside lrfind and installed packages, else ''."""
    here = os.path.dirname(__file__)
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        name = frame.filename
        if name.startswith(here) or "site-packages" in name or name.startswith("<"):
            continue
        return f" (at {name}:{frame.lineno})"
    return ""
