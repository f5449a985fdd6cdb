"""Exact capture and in-place restore of training state: model, optimizer, grad scaler and RNG states."""

from __future__ import annotations

import copy
import os
import random
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

ALIGN = 64  # bytes: each tensor's place in the snapshot starts at a multiple of this, so typed views of it are aligned
CHUNK = 64 * 2**20  # bytes staged at once between a device tensor and the disk file (a disk snapshot's host-memory peak)


class SnapshotTooLarge(RuntimeError):
    """The snapshot would not fit where it is kept (host memory, or the temporary directory's disk); raised before capture."""


@dataclass(frozen=True)
class _Slot:
    """Where one tensor's values sit in the snapshot: `nbytes` from `offset`, read back as `dtype` of `shape`."""

    offset: int
    nbytes: int
    dtype: torch.dtype
    shape: torch.Size


@dataclass(frozen=True)
class _Saved:
    """A tensor of the training state as it was at the capture (restored into, in place) and where its values are kept."""

    target: torch.Tensor
    slot: _Slot


@dataclass(frozen=True)
class _HostCopy:
    """A value the snapshot keeps as a plain CPU copy (a sparse or quantized tensor, say), and the device it goes back to."""

    value: torch.Tensor
    device: torch.device

    def back(self) -> torch.Tensor:
        return self.value.to(self.device, copy=True)


@dataclass
class _OptimizerEntry:
    """One parameter's optimizer state: its dict at the capture, its tensors (restored in place), its other values."""

    param: torch.Tensor
    state: dict
    tensors: dict[Any, _Saved]
    others: dict[Any, Any]


@dataclass
class _Plan:
    """What a snapshot of the state holds, and where: every tensor's slot, the values kept as copies, the size in bytes."""

    saved: list[_Saved] = field(default_factory=list)
    kept: list[tuple[torch.Tensor, _HostCopy | None]] = field(default_factory=list)  # copies made at the capture
    grads: list[tuple[torch.Tensor, torch.Tensor | None]] = field(default_factory=list)  # every parameter's grad object
    optimizer: list[_OptimizerEntry] = field(default_factory=list)
    nbytes: int = 0  # the slots' extent: the bytes the store holds

    def add(self, tensor: torch.Tensor) -> _Saved | None:
        """Give `tensor` a slot; one that is not `_plain` is kept as a host copy instead (None)."""
        local = _local(tensor)
        if not _plain(local):
            self.kept.append((tensor, None))
            return None
        nbytes = local.numel() * local.element_size()
        saved = _Saved(tensor, _Slot(self.nbytes, nbytes, local.dtype, local.shape))
        self.saved.append(saved)
        self.nbytes += -(-nbytes // ALIGN) * ALIGN
        return saved

    @property
    def kept_bytes(self) -> int:
        return sum(_local(t).numel() * _local(t).element_size() for t, _ in self.kept)

    @property
    def pinned(self) -> bool:
        """Whether staging through pinned host memory speeds up the copies (some tensor lives on CUDA)."""
        return torch.cuda.is_available() and any(_local(s.target).device.type == "cuda" for s in self.saved)


@dataclass
class Snapshot:
    """State taken at the start of a range test; `restore()` puts it back bit-exactly, into the same tensors.

    Parameters, gradients, buffers and the optimizer's state tensors get their values back in place, so
    anything else holding them (a second reference, a captured CUDA graph of a capturable optimizer) sees
    the restored values; a gradient or optimizer state the sweep created is dropped again. The values are
    kept in one block of CPU memory (pinned when some tensor lives on CUDA), so the snapshot never
    doubles GPU memory; with `to_disk=True` they are written to a private temporary file tensor by
    tensor and read back the same way, straight into the tensors, so a disk snapshot holds at most one
    CHUNK in host memory (a CPU tensor's bytes go to and from the file directly). The gradients the sweep
    made are freed before anything is read back, so a restore peaks at what training held.
    A `loss` module (one with parameters or buffers of its own) is captured and restored with the model.
    `nbytes` (the snapshot's size) is known before the capture; `host_bytes` and `peak_host_bytes` count
    the host memory it holds now and the most it held at once.
    """

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scaler: Any = None
    to_disk: bool = False
    loss: torch.nn.Module | None = None
    peak_host_bytes: int = field(default=0, init=False)
    _plan: _Plan | None = field(default=None, init=False, repr=False)
    _size: int | None = field(default=None, init=False, repr=False)  # nbytes, once captured
    _store: MemoryStore | DiskStore | None = field(default=None, init=False, repr=False)
    _groups: list[dict] = field(default_factory=list, init=False, repr=False)
    _scaler: dict | None = field(default=None, init=False, repr=False)
    _modes: dict[str, bool] = field(default_factory=dict, init=False, repr=False)
    _rng: _RngState | None = field(default=None, init=False, repr=False)

    @property
    def nbytes(self) -> int:
        """The snapshot's size in bytes (model, gradients, buffers, optimizer state), the same before and after the capture."""
        if self._size is None:
            plan = self._plan or self._walk()
            return plan.nbytes + plan.kept_bytes
        return self._size

    @property
    def host_bytes(self) -> int:
        """Bytes of host memory the snapshot holds now: all of it in memory, only its host copies on disk."""
        if self._plan is None or self._store is None:
            return 0
        return self._store.held_bytes + self._plan.kept_bytes

    def check(self, on_size: Callable[[int, str], None] | None = None,
              available: Callable[[bool], int | None] | None = None) -> None:
        """Before the capture: tell `on_size(bytes, "memory" | "disk")` the size; SnapshotTooLarge if it will not fit.

        `available(to_disk)` says how many bytes are free where the snapshot goes (default `available_bytes`).
        """
        nbytes = self.nbytes
        if on_size is not None:
            on_size(nbytes, "disk" if self.to_disk else "memory")
        check_fits(nbytes, self.to_disk, (available or available_bytes)(self.to_disk))

    def capture(self) -> Snapshot:
        plan = self._walk()
        self._store = (DiskStore if self.to_disk else MemoryStore)(plan.nbytes, plan.pinned, self._account)
        self._plan = plan
        self._size = plan.nbytes + plan.kept_bytes
        self._account(0)
        for saved in plan.saved:
            self._store.write(saved.slot, _local(saved.target))
        plan.kept = [(t, _HostCopy(t.detach().to("cpu", copy=True), t.device)) for t, _ in plan.kept]
        for entry in plan.optimizer:
            entry.others = {k: _map_tensors(v, _host_copy) for k, v in entry.others.items()}
        self._store.finish()
        self._account(0)
        self._groups = [{k: copy.deepcopy(v) for k, v in g.items() if k != "params"} for g in self.optimizer.param_groups]
        self._scaler = copy.deepcopy(self.scaler.state_dict()) if self.scaler is not None else None
        self._modes = {n: m.training for n, m in self._modules().named_modules()}
        self._rng = _RngState.now()
        return self

    def restore(self) -> None:
        """Put every captured value back, in place; may be called more than once."""
        if self._rng is None:
            raise RuntimeError("restore() called before capture()")
        if self._plan is None or self._store is None:
            raise RuntimeError("the snapshot was discarded")
        plan = self._plan
        with torch.no_grad():
            for param, _ in plan.grads:
                param.grad = None  # the sweep's gradients go first: the restore then peaks at what training held
            for saved in plan.saved:
                self._store.read(saved.slot, _local(saved.target))
            for target, kept in plan.kept:
                target.copy_(kept.value)
            self._store.finish()
            for param, grad in plan.grads:
                param.grad = grad
        self._account(0)
        self._restore_optimizer(plan)
        if self.scaler is not None and self._scaler:
            self.scaler.load_state_dict(copy.deepcopy(self._scaler))  # fills its scale and growth tensors in place
        for name, module in self._modules().named_modules():
            if name in self._modes:
                module.training = self._modes[name]
        self._rng.restore()

    def discard(self) -> None:
        """Free the snapshot (removes the temporary file of a disk snapshot)."""
        if self._store is not None:
            self._store.close()
        self._store = None
        self._plan = None

    def _modules(self) -> torch.nn.Module:
        """The model, or the model and the loss side by side (a container that leaves both untouched)."""
        if self.loss is None or self.loss is self.model:
            return self.model
        return torch.nn.ModuleDict({"model": self.model, "loss": self.loss})

    def _walk(self) -> _Plan:
        """Where each tensor of the state will go (nothing is copied yet)."""
        plan = _Plan()
        tracked = self._modules()
        for _, param in tracked.named_parameters():
            plan.add(param)
            plan.grads.append((param, param.grad))
            if param.grad is not None:
                plan.add(param.grad)
        for _, buffer in tracked.named_buffers():
            plan.add(buffer)
        state = self.optimizer.state
        for param in _optimizer_params(self.optimizer):
            if param not in state:
                continue  # no state yet: whatever the sweep creates is dropped again
            values = state[param]
            tensors = {k: plan.add(v) for k, v in values.items() if isinstance(v, torch.Tensor) and _plain(_local(v))}
            plan.optimizer.append(_OptimizerEntry(param, values, tensors, {k: v for k, v in values.items() if k not in tensors}))
        return plan

    def _restore_optimizer(self, plan: _Plan) -> None:
        """The optimizer's state dicts and param groups as they were: same dicts, same tensors, values put back."""
        state = self.optimizer.state
        kept = {id(entry.param) for entry in plan.optimizer}
        for param in [p for p in state if id(p) not in kept]:
            del state[param]  # state the sweep created
        for entry in plan.optimizer:
            values = entry.state
            values.clear()
            values.update({k: saved.target for k, saved in entry.tensors.items()})
            values.update({k: _map_tensors(v, _HostCopy.back) for k, v in entry.others.items()})
            state[entry.param] = values
        for group, saved in zip(self.optimizer.param_groups, self._groups):
            for key in [k for k in group if k != "params" and k not in saved]:
                del group[key]
            for key, value in saved.items():
                current = group.get(key)
                if _same_kind(current, value):
                    current.copy_(value)  # a tensor lr, say, that a compiled step holds
                else:
                    group[key] = copy.deepcopy(value)

    def _account(self, transient: int) -> None:
        """Note the host memory held now (the store, the copies, and `transient` bytes of staging) against the peak."""
        self.peak_host_bytes = max(self.peak_host_bytes, self.host_bytes + transient)


@dataclass
class _RngState:
    python: Any
    numpy: Any
    torch: torch.Tensor
    cuda: list[torch.Tensor] | None

    @classmethod
    def now(cls) -> _RngState:
        cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
        return cls(random.getstate(), np.random.get_state(), torch.get_rng_state(),
                   torch.cuda.get_rng_state_all() if cuda else None)

    def restore(self) -> None:
        random.setstate(self.python)
        np.random.set_state(self.numpy)
        torch.set_rng_state(self.torch)
        if self.cuda is not None:
            torch.cuda.set_rng_state_all(self.cuda)


class MemoryStore:
    """A snapshot's values in one block of CPU memory (pinned for CUDA tensors: one allocation, fast async copies)."""

    def __init__(self, nbytes: int, pinned: bool, account: Callable[[int], None] | None = None):
        self.block = torch.empty(nbytes, dtype=torch.uint8, pin_memory=pinned)  # all it holds: nothing else to account
        self.cuda = pinned  # copies to and from CUDA run asynchronously until finish()

    @property
    def held_bytes(self) -> int:
        return 0 if self.block is None else self.block.numel()

    def _view(self, slot: _Slot) -> torch.Tensor:
        return self.block[slot.offset:slot.offset + slot.nbytes].view(slot.dtype).view(slot.shape)

    def write(self, slot: _Slot, tensor: torch.Tensor) -> None:
        self._view(slot).copy_(tensor, non_blocking=self.cuda)

    def read(self, slot: _Slot, tensor: torch.Tensor) -> None:
        tensor.copy_(self._view(slot), non_blocking=self.cuda)

    def finish(self) -> None:
        """Wait for the asynchronous copies to and from CUDA."""
        if self.cuda:
            torch.cuda.synchronize()

    def close(self) -> None:
        self.block = None


class DiskStore:
    """A snapshot's values in a private temporary file, written and read tensor by tensor at their slots.

    A CPU tensor's bytes go between the file and the tensor's own memory (in its memory order, so a
    channels_last weight needs no copy either); a device tensor's go through a staging buffer of at most
    CHUNK bytes (pinned for CUDA). A tensor with gaps or overlaps in memory goes through a dense copy.
    `account(bytes)` is told the host memory this store holds for the moment (staging and copies).
    """

    held_bytes = 0  # between operations, nothing: the values are in the file

    def __init__(self, nbytes: int, pinned: bool, account: Callable[[int], None]):
        self.dir = tempfile.mkdtemp(prefix="lrfind-snapshot-")
        self.path = os.path.join(self.dir, "state.bin")
        self.pinned = pinned
        self.account = account
        self.file = open(self.path, "wb")  # noqa: SIM115 - open from the capture until finish()
        self.staging: torch.Tensor | None = None

    def write(self, slot: _Slot, tensor: torch.Tensor) -> None:
        self.file.seek(slot.offset)
        flat = _memory_bytes(tensor)
        if flat is None:  # gaps or overlaps: write a dense copy
            flat = _memory_bytes(tensor.contiguous())
            self._held(slot.nbytes if tensor.device.type == "cpu" else 0)
        if flat.device.type == "cpu":
            self.file.write(flat.numpy())
            return
        for start in range(0, slot.nbytes, CHUNK):
            part = self._stage(min(CHUNK, slot.nbytes - start))
            part.copy_(flat[start:start + part.numel()])
            self.file.write(part.numpy())

    def read(self, slot: _Slot, tensor: torch.Tensor) -> None:
        if self.file is None:
            self.file = open(self.path, "rb")  # noqa: SIM115 - open until finish()
        self.file.seek(slot.offset)
        flat = _memory_bytes(tensor)
        dense = None
        if flat is None:  # gaps or overlaps: read into a dense copy, then copy that in
            dense = torch.empty(slot.shape, dtype=slot.dtype, device=tensor.device)
            flat = _memory_bytes(dense)
            self._held(slot.nbytes if tensor.device.type == "cpu" else 0)
        if flat.device.type == "cpu":
            _read_exactly(self.file, flat.numpy())
        else:
            for start in range(0, slot.nbytes, CHUNK):
                part = self._stage(min(CHUNK, slot.nbytes - start))
                _read_exactly(self.file, part.numpy())
                flat[start:start + part.numel()].copy_(part)
        if dense is not None:
            tensor.copy_(dense)

    def _stage(self, nbytes: int) -> torch.Tensor:
        """The first `nbytes` of the staging buffer, grown as needed up to CHUNK."""
        if self.staging is None or self.staging.numel() < nbytes:
            self.staging = None
            self.staging = torch.empty(min(CHUNK, max(nbytes, 1)), dtype=torch.uint8, pin_memory=self.pinned)
            self._held(0)
        return self.staging[:nbytes]

    def _held(self, copy_bytes: int) -> None:
        self.account((0 if self.staging is None else self.staging.numel()) + copy_bytes)

    def finish(self) -> None:
        """Close the file and free the staging buffer (after the capture, and after each restore)."""
        if self.file is not None:
            self.file.close()
            self.file = None
        self.staging = None

    def close(self) -> None:
        self.finish()
        shutil.rmtree(self.dir, ignore_errors=True)


def available_bytes(to_disk: bool) -> int | None:
    """Bytes free where a snapshot would be kept: the temporary directory's disk, or host memory; None when unknown.

    Host memory is Linux's MemAvailable (what can be allocated without swapping), bounded by the cgroup
    v2 limit of a container; elsewhere it is unknown.
    """
    if to_disk:
        return shutil.disk_usage(tempfile.gettempdir()).free
    try:
        with open("/proc/meminfo") as fh:
            free = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):
        return None
    try:
        with open("/sys/fs/cgroup/memory.max") as fh_max, open("/sys/fs/cgroup/memory.current") as fh_now:
            limit = fh_max.read().strip()
            if limit != "max":
                free = min(free, int(limit) - int(fh_now.read()))
    except (OSError, ValueError):
        pass
    return free


def check_fits(nbytes: int, to_disk: bool, available: int | None) -> None:
    """SnapshotTooLarge, one line with the fix, when a snapshot of `nbytes` exceeds what is `available` (None: unknown)."""
    if available is None or nbytes <= available:
        return
    if to_disk:
        raise SnapshotTooLarge(f"sweep.snapshot: disk needs {size_text(nbytes)} in {tempfile.gettempdir()} and only "
                               f"{size_text(available)} is free there; point TMPDIR at a larger disk")
    raise SnapshotTooLarge(f"sweep.snapshot: memory needs {size_text(nbytes)} of host memory for the snapshot and only "
                           f"{size_text(available)} is available; use sweep.snapshot: disk (snapshot='disk' in Python), "
                           "a temporary file read back tensor by tensor")


def size_text(nbytes: int) -> str:
    """Bytes as a person reads them: '382.0 MB' (decimal units, as `ls -h --si` and rich print them)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes} bytes"


def _optimizer_params(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    """The optimizer's parameters in group order, each once."""
    seen: dict[int, torch.Tensor] = {}
    for group in optimizer.param_groups:
        for param in group["params"]:
            seen.setdefault(id(param), param)
    return list(seen.values())


def _local(tensor: torch.Tensor) -> torch.Tensor:
    """The plain tensor that holds `tensor`'s values in this process: a DTensor's local shard, anything else detached."""
    tensor = tensor.detach()
    to_local = getattr(tensor, "to_local", None)  # torch.distributed.tensor.DTensor (FSDP2 parameters and state)
    return to_local() if callable(to_local) else tensor


def _plain(tensor: torch.Tensor) -> bool:
    """A dense tensor of a built-in dtype on a real device: its bytes are its values (else it is kept as a host copy)."""
    return (type(tensor) is torch.Tensor and tensor.layout == torch.strided and not tensor.is_quantized
            and not tensor.is_nested and tensor.device.type != "meta")


def _memory_bytes(tensor: torch.Tensor) -> torch.Tensor | None:
    """`tensor`'s bytes in memory order as a flat uint8 view (any dense layout, channels_last too); None with gaps or overlaps."""
    order = sorted(range(tensor.dim()), key=lambda d: -tensor.stride(d))
    dense = tensor.permute(order)
    if not dense.is_contiguous():
        return None
    return dense.reshape(-1).view(torch.uint8)


def _read_exactly(file, buffer: np.ndarray) -> None:
    view = memoryview(buffer).cast("B")
    while view.nbytes:
        got = file.readinto(view)
        if not got:
            raise OSError(f"the snapshot file {file.name} ended early (was the temporary directory cleaned?)")
        view = view[got:]


def _same_kind(current: Any, saved: Any) -> bool:
    """Two tensors the saved one can be copied into in place."""
    return (isinstance(current, torch.Tensor) and isinstance(saved, torch.Tensor) and current.shape == saved.shape
            and current.dtype == saved.dtype)


def _host_copy(tensor: torch.Tensor) -> _HostCopy:
    return _HostCopy(tensor.detach().to("cpu", copy=True), tensor.device)


def _map_tensors(obj: Any, fn) -> Any:
    """`obj` with fn applied to every tensor (or _HostCopy) inside dicts, lists and tuples; everything else deep-copied."""
    if isinstance(obj, (torch.Tensor, _HostCopy)):
        return fn(obj)
    if isinstance(obj, dict):
        return {k: _map_tensors(v, fn) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_map_tensors(v, fn) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_map_tensors(v, fn) for v in obj)
    return copy.deepcopy(obj)
