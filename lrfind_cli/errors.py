"""The errors lrfind raises and the one table from an error to what the user reads and the exit code."""

from __future__ import annotations

import os
import traceback
from dataclasses import dataclass
from typing import Any

EXIT_RUNTIME = 1
EXIT_USAGE = 2
EXIT_NO_SUGGESTION = 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM


class LrfindError(Exception):
    """Base class: a failure with a one-line message meant for the user.

    `key` is the spec key the message is about ("data.batch_size"), when there is one: the command line
    puts the file:line of that key in front of the message (`where`) when the key is written in the spec file.
    """

    exit_code = EXIT_RUNTIME

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key
        self.where = ""  # "spec.yaml:12", set by whoever knows the spec file


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

    def __init__(self, problems: list[Problem] | Problem, key: str | None = None):
        self.problems = [problems] if isinstance(problems, Problem) else list(problems)
        super().__init__("\n".join(str(p) for p in self.problems), key)

    @classmethod
    def at(cls, key: str, what: str, fix: str = "") -> SpecError:
        """The problem of spec key `key` (dotted) found after loading, as `key: what (fix)`; the command line puts the
        key's file:line in front when the spec file has it."""
        return cls(Problem(key, what, fix), key=key)


class RunError(LrfindError):
    """A failure while building objects or running the sweep (missing data, bad checkpoint, ...)."""

    exit_code = EXIT_RUNTIME


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) stopped the work; the model is restored and what was measured comes along.

    `result`: the partial RangeTestResult (from the engine); `outcome`: the partial run as written (from the
    runner, with its output directory); `terminated`: SIGTERM rather than Ctrl-C (exit 143, not 130).
    """

    def __init__(self, result: Any = None, outcome: Any = None, terminated: bool = False):
        super().__init__("range test interrupted")
        self.result = result
        self.outcome = outcome
        self.terminated = terminated


@dataclass(frozen=True)
class Ending:
    """How a command ends on an error: the lines for stderr, the exit code, and whether -v shows a traceback."""

    lines: list[str]
    code: int
    traceback: bool = False


def ending(exc: BaseException) -> Ending:
    """The one table from the error that ended a command to the lines the user reads and the contract's exit code."""
    if isinstance(exc, KeyboardInterrupt):
        code = EXIT_TERMINATED if getattr(exc, "terminated", False) else EXIT_INTERRUPTED
        outcome = getattr(exc, "outcome", None)
        if outcome is not None:
            return Ending([f"interrupted: partial result in {outcome.out_dir}; the model was restored"], code)
        return Ending(["interrupted"], code)
    if isinstance(exc, LrfindError):
        text = f"{exc.where} {exc}" if exc.where else str(exc)
        return Ending([f"error: {line}" for line in text.splitlines()], exc.exit_code, traceback=True)
    return Ending([f"error: unexpected {type(exc).__name__}: {short_message(exc)} (run with -v or LRFIND_DEBUG=1 for the traceback)"],
                  EXIT_RUNTIME, traceback=True)


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
