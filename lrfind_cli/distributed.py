"""torchrun glue: the process group from the environment, per-rank devices, the rank-0 rule, and one exit code for all ranks."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

from .errors import RunError

# A rank that waits longer than this for the others gives up (a peer that died usually closes its
# connections first, which ends the wait at once).
TIMEOUT_S = 300


@dataclass(frozen=True)
class DistContext:
    rank: int
    world_size: int
    local_rank: int
    backend: str

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_rank() -> int:
    """This process's rank as torchrun sets it (0 outside torchrun)."""
    return int(os.environ.get("RANK", "0") or 0)


def launched_by_torchrun() -> bool:
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ and "MASTER_ADDR" in os.environ


def setup(device_name: str):
    """Join the process group torchrun describes; return (DistContext, device), or (None, None) outside torchrun.

    Each rank gets its own device: cuda:LOCAL_RANK when CUDA is used (NCCL), else the CPU (Gloo).
    """
    if not launched_by_torchrun():
        return None, None
    import torch
    import torch.distributed as dist

    from .data import resolve_device

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name)
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise RunError(f"device: local rank {local_rank} has no GPU ({torch.cuda.device_count()} visible); "
                           "start at most one process per GPU (--nproc_per_node) or use --device cpu", key="device")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    elif device.type == "cpu":
        backend = "gloo"
    else:
        raise RunError(f"device: {device.type} is not supported with torchrun; use cuda or cpu", key="device")
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=timedelta(seconds=TIMEOUT_S))
        import atexit

        atexit.register(teardown)
    return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, backend), device


def all_finished(ctx: DistContext | None, failed: bool = False) -> bool:
    """Wait until every rank gets here; return True when any rank says it failed.

    Rank 0 calls this once it has written the outputs, so the other ranks, which call it at once,
    wait for complete files; and the launcher sees no rank exit (which makes it SIGTERM the rest)
    before then. Outside torchrun it returns `failed` at once.
    """
    if ctx is None:
        return failed
    import torch
    import torch.distributed as dist

    device = torch.device("cuda", ctx.local_rank) if ctx.backend == "nccl" else torch.device("cpu")
    flag = torch.tensor([1 if failed else 0], dtype=torch.int32, device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


def end_together(code: int) -> int:
    """The last step of a run under torchrun: every rank has printed what it prints, so all exit with `code` now.

    SIGTERM is ignored from here on: the launcher sends it to the ranks still alive as soon as one
    rank exits with a non-zero code (3: no suggestion), and the outputs are complete, so nothing is
    left for it to interrupt but the exit code.
    """
    import signal

    import torch.distributed as dist

    if launched_by_torchrun() and dist.is_available() and dist.is_initialized():
        dist.barrier()
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    return code


# The first rank to end on an error writes "RANK CODE" here, in the launcher's store; the key is per run and attempt.
FAILURE_KEY = "lrfind/failed/{run}/{attempt}"
STORE_TIMEOUT_S = 5  # the store lives in the launcher, which outlives the ranks; an unreachable one is not waited for


def shared_failure(code: int) -> tuple[int, str]:
    """The exit code of a rank that ends on an error or an interrupt, agreed with the others: (code, why, or '').

    Under torchrun the first rank to end so writes its code to the launcher's store (the TCPStore at
    MASTER_ADDR:MASTER_PORT); every rank that ends after it, whether it failed in turn (a collective
    whose peer is gone) or was stopped by the launcher's SIGTERM, exits with that code too, so the
    launcher's per-rank summary shows one code. SIGTERM is ignored from here on: this rank is ending
    already. Outside torchrun, or when the store cannot be reached, `code` is returned as it is.
    """
    if not launched_by_torchrun():
        return code, ""
    import signal

    import torch.distributed as dist

    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    key = FAILURE_KEY.format(run=os.environ.get("TORCHELASTIC_RUN_ID", ""), attempt=os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
    mine = f"{env_rank()} {code}"
    try:
        store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), is_master=False,
                              timeout=timedelta(seconds=STORE_TIMEOUT_S), wait_for_workers=False)
        first = store.compare_set(key, "", mine).decode()  # set unless a rank ended before
    except (RuntimeError, ValueError, OSError):  # no store to agree through: this rank's own code
        return code, ""
    if first == mine:
        return code, ""
    rank, _, agreed = first.partition(" ")
    return int(agreed), f"rank {rank} ended first (exit {agreed}); this rank ends with the same code"


def teardown() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
