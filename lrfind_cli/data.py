"""Built-in datasets (the learnable synthetic image set), data loaders and device choice."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

from .errors import RunError, SpecError


class SyntheticImages(Dataset):
    """A learnable, deterministic image-classification set shaped like CIFAR-10 by default.

    Each class has a smooth random template (low-resolution noise upsampled); a sample is its
    class template plus per-sample noise, squashed to [0, 1]. The default noise makes the classes
    overlap enough that a ResNet-18 needs a sensible learning rate to fit them (the loss falls
    from ln(10) over a few decades of lr, then diverges). The same arguments always give the same
    tensors, independent of the global random state.
    """

    def __init__(
        self,
        num_samples: int = 2048,
        num_classes: int = 10,
        channels: int = 3,
        height: int = 32,
        width: int = 32,
        noise: float = 3.0,
        seed: int = 0,
    ):
        if num_samples < 0 or num_classes < 1 or channels < 1 or height < 1 or width < 1:
            raise ValueError("num_samples must be >= 0 and num_classes, channels, height, width >= 1")
        gen = torch.Generator().manual_seed(seed)
        coarse = torch.randn(num_classes, channels, max(height // 4, 1), max(width // 4, 1), generator=gen)
        templates = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)
        self.targets = torch.randperm(num_samples, generator=gen) % num_classes
        pixels = templates[self.targets] + noise * torch.randn(num_samples, channels, height, width, generator=gen)
        self.data = torch.sigmoid(pixels)
        self.classes = [str(c) for c in range(num_classes)]

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.data[index], int(self.targets[index])


class SyntheticSequences(Dataset):
    """Text-like token sequences for causal language modelling, as dicts {"input_ids": LongTensor}.

    Tokens follow a fixed random bigram chain in which each token has a few likely successors, so
    a model can learn the next-token distribution (its entropy is well below log(vocab_size)).
    """

    def __init__(self, num_samples: int = 1024, seq_len: int = 64, vocab_size: int = 256, branching: int = 4, seed: int = 0):
        if num_samples < 0 or seq_len < 2 or vocab_size < 2 or branching < 1:
            raise ValueError("need num_samples >= 0, seq_len >= 2, vocab_size >= 2 and branching >= 1")
        gen = torch.Generator().manual_seed(seed)
        successors = torch.randint(0, vocab_size, (vocab_size, branching), generator=gen)
        tokens = torch.empty(num_samples, seq_len, dtype=torch.long)
        tokens[:, 0] = torch.randint(0, vocab_size, (num_samples,), generator=gen)
        for t in range(1, seq_len):
            pick = torch.randint(0, branching, (num_samples,), generator=gen)
            tokens[:, t] = successors[tokens[:, t - 1], pick]
        self.input_ids = tokens

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.input_ids[index]}


class SyntheticTabular(Dataset):
    """Tabular regression: features x ~ N(0, 1) and a smooth nonlinear target y (shape (1,)) plus noise."""

    def __init__(self, num_samples: int = 4096, num_features: int = 16, noise: float = 0.1, seed: int = 0):
        if num_samples < 0 or num_features < 1:
            raise ValueError("need num_samples >= 0 and num_features >= 1")
        gen = torch.Generator().manual_seed(seed)
        self.x = torch.randn(num_samples, num_features, generator=gen)
        w1 = torch.randn(num_features, generator=gen) / num_features**0.5
        w2 = torch.randn(num_features, generator=gen) / num_features**0.5
        clean = torch.sin(2 * self.x @ w1) + 0.5 * (self.x @ w2) ** 2
        self.y = (clean + noise * torch.randn(num_samples, generator=gen)).unsqueeze(1)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[index], self.y[index]


BUILTIN_DATASETS = {"synthetic": SyntheticImages, "synthetic_sequences": SyntheticSequences, "synthetic_tabular": SyntheticTabular}


def no_length_problem(name: str) -> tuple[str, str, str]:
    """(spec key, what, fix) for train.epochs on a dataset `name` without a length (a stream)."""
    return ("train.epochs", f"data {name!r} has no length (a stream), so epochs give no number of steps",
            "give train.steps instead")


def stream_problems(kind: type, *, shuffle: bool, val_fraction: bool, epochs: bool = False,
                    name: str = "") -> list[tuple[str, str, str]]:
    """(spec key, what, fix) for what a loader cannot do with a dataset of class `kind` when it is an IterableDataset.

    Such a dataset is a stream (PyTorch's IterableDataset: samples in its own order, no index, perhaps no
    length or end): a DataLoader cannot shuffle it (`shuffle`), no fraction of it can be held out for
    validation (`val_fraction`: sweep.val without a named split), and without a `__len__` its epochs
    (`epochs`: train.epochs given) are no number of steps. Nothing for a map-style dataset.
    """
    if not (isinstance(kind, type) and issubclass(kind, IterableDataset)):
        return []
    stream = f"{kind.__name__} is an IterableDataset (a stream read in its own order, without an index)"
    problems = [no_length_problem(name or kind.__name__)] if epochs and not hasattr(kind, "__len__") else []
    if shuffle:
        problems.append(("data.shuffle", f"{stream}, which a DataLoader cannot shuffle",
                         "set data.shuffle: false; a stream that should be shuffled shuffles itself, e.g. with a buffer"))
    if val_fraction:
        problems.append(("sweep.val.fraction", f"{stream}, so no fraction of it can be held out for validation",
                         "name a validation split with sweep.val.kwargs instead, e.g. {train: false}, merged into data.kwargs"))
    return problems


def make_loader(dataset: Dataset, *, batch_size: int, shuffle: bool, drop_last: bool, num_workers: int, seed: int,
                device: torch.device, rank: int = 0, world_size: int = 1, collate_fn: Callable | None = None) -> DataLoader:
    """A DataLoader whose order depends only on `seed`; pinned memory when feeding CUDA.

    `collate_fn` (None: PyTorch's default, which stacks) makes a batch from a list of samples, e.g. padding them.

    With world_size > 1 each rank reads its own shard through a DistributedSampler seeded alike.
    SpecError at data.shuffle for an IterableDataset with `shuffle` (`stream_problems`).
    """
    problems = stream_problems(type(dataset), shuffle=shuffle, val_fraction=False)
    if problems:
        raise SpecError.at(*problems[0])
    try:
        size = len(dataset)  # type: ignore[arg-type]
    except TypeError:
        size = None
    if size == 0:
        raise RunError("data: the dataset is empty; check data.name and data.kwargs (root, split, train)", key="data")
    if size is not None and drop_last and size // world_size < batch_size:
        per_rank = f" per rank ({world_size} ranks)" if world_size > 1 else ""
        raise RunError(
            f"data.batch_size: {batch_size} is larger than the dataset ({size // world_size} samples{per_rank}) with "
            "data.drop_last: true; lower data.batch_size or set data.drop_last: false"
        , key="data.batch_size")
    sampler = None
    if world_size > 1:
        from torch.utils.data.distributed import DistributedSampler

        sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed, drop_last=drop_last)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle if sampler is None else False,
        sampler=sampler,
        drop_last=drop_last,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        pin_memory=device.type == "cuda",
        generator=torch.Generator().manual_seed(seed),
        collate_fn=collate_fn,
    )


# performance.device_batches: auto keeps at most this many bytes of batches on the GPU (and at most a tenth of its free
# memory): a ResNet-sized sweep of 100 CIFAR-shaped batches of 128 takes 157 MB
RESIDENT_MAX_BYTES = 2**30


def resident_by_default(dataset: Dataset, batch_size: int, count: int, device: torch.device) -> bool:
    """Whether `count` batches of an in-memory dataset go onto `device` before the sweep (device_batches: auto).

    On CUDA, when they take at most RESIDENT_MAX_BYTES and a tenth of the free device memory: the sweep
    then reads them from device memory, with no loading, collation or host-to-device copy per step.
    The caller decides that the data is in memory and its batches are the same either way (built-in data).
    """
    if device.type != "cuda" or len(dataset) == 0:  # type: ignore[arg-type]
        return False
    needed = _bytes_of(dataset[0]) * batch_size * count
    free, _ = torch.cuda.mem_get_info(device)
    return needed <= min(RESIDENT_MAX_BYTES, free // 10)


def _bytes_of(sample) -> int:
    """Bytes of the tensors in a sample (a tensor, or tensors inside tuples, lists and dicts); 8 for anything else."""
    if isinstance(sample, torch.Tensor):
        return sample.numel() * sample.element_size()
    if isinstance(sample, dict):
        return sum(_bytes_of(v) for v in sample.values())
    if isinstance(sample, (list, tuple)):
        return sum(_bytes_of(v) for v in sample)
    return 8


def resident_batches(loader, count: int, device: torch.device) -> list:
    """The first `count` batches the loader gives (cycling through epochs), already moved to `device`.

    The sweep then reads them from device memory: no loading, collation or copying while it runs.
    """
    from .engine import cycle, to_device

    batches = cycle(loader)
    return [to_device(next(batches), device) for _ in range(count)]


def resolve_device(name: str) -> torch.device:
    """auto: cuda, then mps, then cpu. An explicit device that this machine lacks is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RunError(f"device: {name!r} was asked for but CUDA is not available on this machine; use --device cpu or device: auto",
                           key="device")
        if device.index is not None and device.index >= torch.cuda.device_count():
            count = torch.cuda.device_count()
            raise RunError(f"device: {name!r} does not exist ({count} CUDA devices); use cuda:0 .. cuda:{count - 1}", key="device")
    if device.type == "mps" and not _mps_available():
        raise RunError("device: 'mps' was asked for but MPS is not available on this machine; use --device cpu or device: auto",
                       key="device")
    return device


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())
