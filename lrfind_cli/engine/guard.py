"""RestoreGuard: snapshot on entry, exact restore on exit whatever happened, and no signal lost on the way."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..signals import deliver, signals_held
from ..snapshot import Snapshot
from .costs import process_age


class RestoreGuard:
    """`with RestoreGuard(snapshot, restore_loader):` captures the state, and on exit puts it back bit-exactly.

    SIGINT and SIGTERM are held while restoring, so a second Ctrl-C cannot leave the model half-restored.
    A signal held while restoring after a failure is delivered at once (SIGTERM: exit 143 wins over the
    failure it interrupted); after a normal end, `late_interrupt()` delivers it on the restored state.
    It notes the times: `startup_s` (process start to the snapshot), `snapshot_s`, `captured_at`
    (perf_counter when training may begin) and `restore_s`.
    """

    def __init__(self, snapshot: Snapshot, restore_loader: Callable[[], None]):
        self.snapshot = snapshot
        self.restore_loader = restore_loader
        self.held: list[tuple[int, Any]] = []
        self.startup_s: float | None = None
        self.snapshot_s = self.restore_s = self.captured_at = 0.0

    def __enter__(self) -> RestoreGuard:
        self.startup_s, began = process_age(), time.perf_counter()
        try:
            self.snapshot.capture()  # touches nothing of the model's; an interrupt here only has to clean up
        except BaseException:
            self.snapshot.discard()
            raise
        self.captured_at = time.perf_counter()
        self.snapshot_s = self.captured_at - began
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        began = time.perf_counter()
        with signals_held() as held:
            self.snapshot.restore()
            self.snapshot.discard()
            self.restore_loader()
        self.restore_s = time.perf_counter() - began
        self.held = held
        if held and exc_type is not None and issubclass(exc_type, Exception):
            deliver(held)

    def late_interrupt(self) -> bool:
        """Deliver a signal that came while restoring after a normal end; True when it interrupted (KeyboardInterrupt)."""
        if not self.held:
            return False
        try:
            deliver(self.held)
        except KeyboardInterrupt:
            return True
        return False
