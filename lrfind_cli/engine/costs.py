"""What a sweep cost: where its time went (start-up, snapshot, first step, steady steps, restore) and its memory."""

from __future__ import annotations

import os
import statistics
import sys

import torch

from ..results import MemoryUse, Timing


def process_age() -> float | None:
    """Seconds since this process started (Linux: /proc, 10 ms resolution); None where the platform does not say."""
    try:
        with open("/proc/self/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
        with open("/proc/uptime") as fh:
            uptime = float(fh.read().split()[0])
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22 of proc(5): start time after boot, in ticks
    except (OSError, ValueError, IndexError, AttributeError):
        return None
    return max(uptime - started, 0.0)


def timing_of(startup_s: float | None, snapshot_s: float, captured_at: float, reads: list[tuple[int, float]],
              restore_s: float, suggest_s: float = 0.0) -> Timing:
    """The sweep's time, from the moments the guard and the loss reader noted.

    `reads` holds (steps trained, perf_counter) at each read of the losses; the first read comes right
    after step 0, so step 0's time runs from `captured_at` to it. A read waits for the device, so the
    time between two reads is what the steps between them took (on a GPU, 16 steps at a time):
    `steady_step_s` is the median over the later reads of those times per step.
    """
    first = reads[0][1] - captured_at if reads and reads[0][0] == 1 else None
    per_step = [(t1 - t0) / (n1 - n0) for (n0, t0), (n1, t1) in zip(reads, reads[1:]) if n1 > n0]
    return Timing(startup_s=startup_s, snapshot_s=snapshot_s, first_step_s=first,
                  steady_step_s=statistics.median(per_step) if per_step else None, restore_s=restore_s, suggest_s=suggest_s)


def memory_of(device: torch.device, snapshot_bytes: int) -> MemoryUse:
    """Peak host memory (the process's peak resident set so far), peak CUDA memory allocated so far (None elsewhere)."""
    return MemoryUse(peak_host_bytes=peak_host_bytes(), snapshot_bytes=snapshot_bytes,
                     peak_device_bytes=torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None)


def peak_host_bytes() -> int | None:
    """The process's peak resident set size in bytes (getrusage's ru_maxrss); None where there is no getrusage."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # kilobytes on Linux, bytes on macOS
