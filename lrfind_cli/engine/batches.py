"""Batches for the sweep: an endless cycle over the loader, and putting back what iterating it changed."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch


class LoaderExhausted(ValueError):
    """The training data gave no batches (or could not be iterated again for another epoch)."""


def cycle(loader: Iterable) -> Iterator:
    """Yield batches forever, starting a new epoch whenever the loader runs out.

    A DistributedSampler is told each new epoch, so every pass over the data is shuffled anew.
    """
    sampler = getattr(loader, "sampler", None)
    set_epoch = getattr(sampler, "set_epoch", None)
    epoch = getattr(sampler, "epoch", 0)
    seen = 0
    while True:
        empty = True
        for batch in loader:
            empty = False
            seen += 1
            yield batch
        epoch += 1
        if callable(set_epoch):
            set_epoch(epoch)
        if empty and seen:
            raise LoaderExhausted(f"the data loader ran out after {seen} batches and cannot be iterated again (a one-shot iterator?); "
                                  "pass a re-iterable loader such as a DataLoader or a list, or lower num_iter")
        if empty:
            raise LoaderExhausted("the data loader yielded no batches (is the dataset smaller than one batch with drop_last?)")


def loader_state(loader: Any) -> Callable[[], None]:
    """Capture what iterating a DataLoader changes (its generators, a sampler's epoch); return the restorer."""
    found: dict[int, torch.Generator] = {}
    sampler = getattr(loader, "sampler", None)
    batch_sampler = getattr(loader, "batch_sampler", None)
    for owner in (loader, sampler, getattr(batch_sampler, "sampler", None)):
        generator = getattr(owner, "generator", None)
        if isinstance(generator, torch.Generator):
            found[id(generator)] = generator
    states = [(g, g.get_state()) for g in found.values()]
    epoch = getattr(sampler, "epoch", None)

    def restore() -> None:
        for generator, saved in states:
            generator.set_state(saved)
        if isinstance(epoch, int):
            sampler.epoch = epoch

    return restore


def steps_per_pass(loader: Any, accumulation_steps: int = 1) -> float | None:
    """Optimizer steps in one pass over the loader's data (its length over the accumulation); None without a length."""
    try:
        batches = len(loader)
    except TypeError:  # an IterableDataset's loader, a generator: a stream
        return None
    return batches / accumulation_steps if batches > 0 else None
