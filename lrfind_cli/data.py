"""Built-in datasets (the learnable synthetic image set), data loaders and device choice."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset

from .errors import RunError


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


BUILTIN_DATASETS = {"synthetic": SyntheticImages}


def make_loader(dataset: Dataset, *, batch_size: int, shuffle: bool, drop_last: bool, num_workers: int, seed: int,
                device: torch.device) -> DataLoader:
    """A DataLoader whose order depends only on `seed`; pinned memory when feeding CUDA."""
    try:
        size = len(dataset)  # type: ignore[arg-type]
    except TypeError:
        size = None
    if size == 0:
        raise RunError("data: the dataset is empty; check data.name and data.kwargs (root, split, train)")
    if size is not None and drop_last and size < batch_size:
        raise RunError(
            f"data.batch_size: {batch_size} is larger than the dataset ({size} samples) with data.drop_last: true; "
            "lower data.batch_size or set data.drop_last: false"
        )
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=drop_last,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        pin_memory=device.type == "cuda",
        generator=torch.Generator().manual_seed(seed),
    )


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
            raise RunError(f"device: {name!r} was asked for but CUDA is not available on this machine; use --device cpu or device: auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            count = torch.cuda.device_count()
            raise RunError(f"device: {name!r} does not exist ({count} CUDA devices); use cuda:0 .. cuda:{count - 1}")
    if device.type == "mps" and not _mps_available():
        raise RunError("device: 'mps' was asked for but MPS is not available on this machine; use --device cpu or device: auto")
    return device


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())
