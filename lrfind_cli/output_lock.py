"""One run per output directory: an exclusive flock on DIR/.lrfind.lock while the run lasts.

Two runs writing to the same directory would race (the last to finish wins, and the files could mix runs), so
the second is refused at once. The kernel releases the lock when its holder ends, however it ends (even
killed with SIGKILL); a lock file left behind that way holds nothing. Where the system has no flock (Windows)
or the file system refuses one, the run goes on unlocked.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from .errors import RunError, SpecError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = ".lrfind.lock"


@contextlib.contextmanager
def output_dir_held(out: Path) -> Iterator[None]:
    """Create `out` if needed and hold it for this run; SpecError (exit 2) when another run holds it.

    On the way out the lock file is removed, and so are the directories this call created when they are
    still empty (a run that failed before writing leaves nothing behind).
    """
    created = _make_dirs(out)
    try:
        fd = _lock(out / LOCK_FILE)
    except BaseException:
        _remove_empty(created)
        raise
    try:
        yield
    finally:
        if fd is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(out / LOCK_FILE)  # while still held: a run waiting on this file checks it is still the one
            os.close(fd)
        _remove_empty(created)


def _lock(path: Path) -> int | None:
    """The descriptor of `path`, locked; None where locking is not available."""
    if fcntl is None:
        return None
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise SpecError.at("output.dir", f"{str(path.parent)!r} is in use by another lrfind run{holder}",
                               "wait for it to end, or choose another directory with --out") from None
        except OSError:
            return fd  # the file system does not lock (some network mounts): unlocked, as without flock
        if _same_file(fd, path):
            break
        os.close(fd)  # the holder removed the file as it ended: lock the one there now
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
    return fd


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def _holder(fd: int) -> str:
    """' (pid N on HOST)' from the lock file's content, '' if it says nothing yet."""
    parts = os.pread(fd, 200, 0).decode(errors="replace").split()
    return f" (pid {parts[0]} on {parts[1]})" if len(parts) == 2 else ""


def _make_dirs(out: Path) -> list[Path]:
    """mkdir -p `out`; the directories it created, deepest first."""
    missing = []
    probe = out
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunError(f"output.dir: cannot create {str(out)!r}: {exc.strerror or exc}; choose another path with --out",
                       key="output.dir") from None
    return missing


def _remove_empty(dirs: list[Path]) -> None:
    for directory in dirs:
        try:
            directory.rmdir()
        except OSError:
            return  # not empty (the outputs are there) or gone
