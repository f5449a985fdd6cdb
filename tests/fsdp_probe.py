"""Named by tests/test_fsdp.py's specs: an Adam that saves this rank's shards at its first step, its last and at exit.

`RecordingAdam(params, record_to=DIR, **adam_kwargs)` writes DIR/rank<R>.pt when the process ends (after lrfind's
restore): `held()` of the optimizer before the sweep's first update ("first"), before its last update ("last") and at
exit ("exit"), and how many optimizer steps it took ("steps"). benchmarks/gpu_check.sh reads the record too.
"""

from __future__ import annotations

import atexit
import os
from pathlib import Path

import torch


def _local(t: torch.Tensor) -> torch.Tensor:
    """A copy of the piece of `t` this rank holds: an FSDP shard's local tensor, or the tensor itself."""
    return (t.to_local() if hasattr(t, "to_local") else t).detach().clone()


def held(optimizer: torch.optim.Optimizer) -> dict:
    """Copies of this rank's pieces of every parameter the optimizer updates (in its order) and of their state."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    return {
        "params": [_local(p) for p in params],
        "sharded": [_local(p).numel() < p.numel() for p in params],
        "kinds": [type(p).__name__ for p in params],
        "state": [{k: _local(v) for k, v in optimizer.state[p].items()} for p in params],
    }


def identical(a: dict, b: dict) -> bool:
    """Whether two `held()` records hold the same bits: every parameter piece and every state tensor."""
    return len(a["params"]) == len(b["params"]) and all(torch.equal(x, y) for x, y in zip(a["params"], b["params"])) and all(
        s.keys() == t.keys() and all(torch.equal(s[k], t[k]) for k in s) for s, t in zip(a["state"], b["state"]))


class RecordingAdam(torch.optim.Adam):
    def __init__(self, params, record_to: str, **kwargs):
        super().__init__(params, **kwargs)
        self.record_to = Path(record_to)
        self.seen: dict = {"steps": 0}
        atexit.register(self._save)

    def step(self, closure=None):
        self.seen.setdefault("first", held(self))
        self.seen["last"] = held(self)
        self.seen["steps"] += 1
        return super().step(closure)

    def _save(self) -> None:
        self.seen["exit"] = held(self)
        torch.save(self.seen, self.record_to / f"rank{os.environ.get('RANK', '0')}.pt")
