"""Holding SIGINT and SIGTERM while something must not be left half-done (a restore, the output files)."""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any

_HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def signals_held():
    """Hold SIGINT and SIGTERM for the length of the block (e.g. while the model is put back, so a second
    Ctrl-C cannot leave it half-restored; while the outputs are written, so they are never half-written).

    Yields the list of (signal, previous handler) that arrived meanwhile; the handlers are back in
    place on exit. Only in the main thread (the only one Python delivers signals to).
    """
    held: list[tuple[int, Any]] = []
    if threading.current_thread() is not threading.main_thread():
        yield held
        return
    previous = {}
    for sig in _HELD_SIGNALS:
        handler = signal.getsignal(sig)
        if handler is None:  # installed outside Python: cannot be put back, so leave it alone
            continue
        previous[sig] = handler
        signal.signal(sig, lambda signum, frame: held.append((signum, previous[signum])))
    try:
        yield held
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def deliver(held: list[tuple[int, Any]]) -> None:
    """Run the handler of the first held signal as Python would have (it usually raises KeyboardInterrupt)."""
    signum, handler = held[0]
    if callable(handler):
        handler(signum, None)
    elif handler == signal.SIG_DFL:
        signal.raise_signal(signum)
