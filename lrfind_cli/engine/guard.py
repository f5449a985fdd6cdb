"""RestoreGuard: snapshot on entry, exact restore on exit whatever happened, and no signal lost on the way."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..signals import deliver, signals_held
from ..snapshot import Snapshot


class RestoreGuard:
    """`with RestoreGuard(snapshot, restore_loader):` captures the state, and on exit puts it back bit-exactly.

    SIGINT and SIGTERM are held while restoring, so a second Ctrl-C cannot leave the model half-restored.
    A signal held while restoring after a failure is delivered at once (SIGTERM: exit 143 wins over the
    failure it interrupted); after a normal end, `late_interrupt()` delivers it on the restored state.
    """

    def __init__(self, snapshot: Snapshot, restore_loader: Callable[[], None]):
        self.snapshot = snapshot
        self.restore_loader = restore_loader
        self.held: list[tuple[int, Any]] = []

    def __enter__(self) -> RestoreGuard:
        try:
            self.snapshot.capture()  # touches nothing of the model's; an interrupt here only has to clean up
        except BaseException:
            self.snapshot.discard()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        with signals_held() as held:
            self.snapshot.restore()
            self.snapshot.discard()
            self.restore_loader()
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
