"""Exact capture and restore of training state: model, optimizer, grad scaler and RNG states."""

from __future__ import annotations

import copy
import os
import random
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch


@dataclass
class _RngState:
    python: Any
    numpy: Any
    torch: torch.Tensor
    cuda: list[torch.Tensor] | None


@dataclass
class Snapshot:
    """State taken at the start of a range test; `restore()` puts it back bit-exactly.

    Tensors are copied to CPU memory (pinned when they live on CUDA), or written to a
    private temporary file with `to_disk=True`, so the snapshot never doubles GPU memory.
    A `loss` module (one with parameters or buffers of its own) is captured and restored with the model.
    """

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scaler: Any = None
    to_disk: bool = False
    loss: torch.nn.Module | None = None
    _tensors: dict[str, Any] | None = field(default=None, repr=False)
    _modes: dict[str, bool] = field(default_factory=dict, repr=False)
    _rng: _RngState | None = field(default=None, repr=False)
    _dir: str | None = field(default=None, repr=False)

    def _modules(self) -> torch.nn.Module:
        """The model, or the model and the loss side by side (a container that leaves both untouched)."""
        if self.loss is None or self.loss is self.model:
            return self.model
        return torch.nn.ModuleDict({"model": self.model, "loss": self.loss})

    def capture(self) -> Snapshot:
        tracked = self._modules()
        state = {
            "params": {n: _to_cpu(p) for n, p in tracked.named_parameters()},
            "grads": {n: None if p.grad is None else _to_cpu(p.grad) for n, p in tracked.named_parameters()},
            "buffers": {n: _to_cpu(b) for n, b in tracked.named_buffers()},
            "optimizer": _map_tensors(self.optimizer.state_dict(), _to_cpu),
            "scaler": copy.deepcopy(self.scaler.state_dict()) if self.scaler is not None else None,
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()  # the pinned copies above were non-blocking
        self._modes = {n: m.training for n, m in tracked.named_modules()}
        self._rng = _RngState(
            python=random.getstate(),
            numpy=np.random.get_state(),
            torch=torch.get_rng_state(),
            cuda=torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None,
        )
        if self.to_disk:
            self._dir = tempfile.mkdtemp(prefix="lrfind-snapshot-")
            torch.save(state, os.path.join(self._dir, "state.pt"))
            self._tensors = None
        else:
            self._tensors = state
        return self

    def restore(self) -> None:
        """Put every captured value back; may be called more than once."""
        if self._rng is None:
            raise RuntimeError("restore() called before capture()")
        state = self._load()
        tracked = self._modules()
        with torch.no_grad():
            params = dict(tracked.named_parameters())
            for name, saved in state["params"].items():
                params[name].copy_(saved)
            for name, saved in state["grads"].items():
                param = params[name]
                if saved is None:
                    param.grad = None
                elif param.grad is None or param.grad.shape != saved.shape:
                    param.grad = saved.to(param.device, copy=True)
                else:
                    param.grad.copy_(saved)
            buffers = dict(tracked.named_buffers())
            for name, saved in state["buffers"].items():
                buffers[name].copy_(saved)
        # load_state_dict may keep references to the tensors it is given: hand it a copy so the
        # snapshot survives further training and can be restored again.
        self.optimizer.load_state_dict(_map_tensors(state["optimizer"], lambda t: t.clone()))
        if self.scaler is not None and state["scaler"]:
            self.scaler.load_state_dict(copy.deepcopy(state["scaler"]))
        for name, module in tracked.named_modules():
            if name in self._modes:
                module.training = self._modes[name]
        random.setstate(self._rng.python)
        np.random.set_state(self._rng.numpy)
        torch.set_rng_state(self._rng.torch)
        if self._rng.cuda is not None:
            torch.cuda.set_rng_state_all(self._rng.cuda)

    def discard(self) -> None:
        """Free the snapshot (removes the temporary file of a disk snapshot)."""
        self._tensors = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def _load(self) -> dict:
        if self._tensors is not None:
            return self._tensors
        if self._dir is None:
            raise RuntimeError("the snapshot was discarded")
        return torch.load(os.path.join(self._dir, "state.pt"), map_location="cpu", weights_only=False)


def _to_cpu(t: torch.Tensor) -> torch.Tensor:
    t = t.detach()
    if _is_dtensor(t):
        # An FSDP shard: DTensor's own copy moves only this rank's piece to host memory (pinned, from CUDA) and keeps
        # its layout, which restore's copy_ and the optimizer's load_state_dict need. (DTensor.from_local would move it back.)
        return t.to("cpu", non_blocking=True, copy=True)
    if t.device.type == "cuda":
        out = torch.empty(t.shape, dtype=t.dtype, device="cpu", pin_memory=True)
        out.copy_(t, non_blocking=True)
        return out
    return t.to("cpu", copy=True)


def _is_dtensor(t: torch.Tensor) -> bool:
    dtensors = sys.modules.get("torch.distributed.tensor")  # imported by whoever made a DTensor; not imported here
    return dtensors is not None and isinstance(t, dtensors.DTensor)


def _map_tensors(obj: Any, fn) -> Any:
    if isinstance(obj, torch.Tensor):
        return fn(obj)
    if isinstance(obj, dict):
        return {k: _map_tensors(v, fn) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_map_tensors(v, fn) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_map_tensors(v, fn) for v in obj)
    return copy.deepcopy(obj)
