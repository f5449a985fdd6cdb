"""Named by tests/test_fsdp.py's specs: an Adam that saves this rank's shards at its first step, its last and at exit.

`RecordingAdam(params, record_to=DIR, **adam_kwargs)` writes DIR/rank<R>.pt when the process ends (after lrfind's
restore): for each parameter, in the optimizer's order, the tensor this rank holds (an FSDP shard's local piece),
whether it is a shard, and the optimizer state, as they were before the sweep's first update ("first"), before its
last update ("last") and at exit ("exit"), and how many optimizer steps it took ("steps").
"""

from __future__ import annotations

import atexit
import os
from pathlib import Path

import torch


def _local(t: torch.Tensor) -> torch.Tensor:
    return t.to_local() if hasattr(t, "to_local") else t


class RecordingAdam(torch.optim.Adam):
    def __init__(self, params, record_to: str, **kwargs):
        super().__init__(params, **kwargs)
        self.record_to = Path(record_to)
        self.seen: dict = {"steps": 0}
        atexit.register(self._save)

    def step(self, closure=None):
        self.seen.setdefault("first", self.held())
        self.seen["last"] = self.held()
        self.seen["steps"] += 1
        return super().step(closure)

    def held(self) -> dict:
        """Copies of this rank's pieces of every parameter and of its optimizer state."""
        params = [p for group in self.param_groups for p in group["params"]]
        return {
            "params": [_local(p.detach()).clone() for p in params],
            "sharded": [_local(p).numel() < p.numel() for p in params],
            "kinds": [type(p).__name__ for p in params],
            "state": [{k: _local(v).clone() for k, v in self.state[p].items()} for p in params],
        }

    def _save(self) -> None:
        self.seen["exit"] = self.held()
        torch.save(self.seen, self.record_to / f"rank{os.environ.get('RANK', '0')}.pt")
