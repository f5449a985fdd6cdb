"""Where a spec's import paths are looked for: sys.path widened for the length of a block, then put back."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def search_path(first: str | None = None, last: str | None = None) -> Iterator[None]:
    """sys.path with `first` in front and `last` at the end while the block runs; afterwards exactly those entries go again.

    Only what was added is taken out, so a path the imported code adds itself stays; a user's notebook
    or program that imports lrfind finds sys.path as it left it.
    """
    added: list[tuple[str, bool]] = []
    if first and first not in sys.path:
        sys.path.insert(0, first)
        added.append((first, True))
    if last and last not in sys.path:
        sys.path.append(last)
        added.append((last, False))
    try:
        yield
    finally:
        for entry, at_front in added:
            with contextlib.suppress(ValueError):
                if at_front:
                    sys.path.remove(entry)
                else:  # the last occurrence: the one appended
                    del sys.path[len(sys.path) - 1 - sys.path[::-1].index(entry)]


def beside(spec_path: Path) -> contextlib.AbstractContextManager[None]:
    """Let import paths in a spec name modules that sit beside it, from any working directory (after the cwd)."""
    return search_path(last=str(Path(spec_path).resolve().parent))
