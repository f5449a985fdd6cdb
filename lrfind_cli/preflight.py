"""What `run` would refuse once it builds, found from a validated spec without training or loading anything big.

- `optimizer.param_groups`: every glob against the trainable parameters of the model built on the meta device
  (no memory, no initialisation work; the checkpoint and weight-loading kwargs are left out: they change no
  parameter's name or requires_grad);
- a dataset class that is an IterableDataset (a stream) against `data.shuffle`, `sweep.val.fraction` and, without a
  length, `train.epochs`.

Where a check cannot tell without building for real (a constructor that fails on the meta device, a model from
`from_pretrained`, a dataset made by a function without a return annotation), it says nothing, and `run` refuses
at the same key, with the same words, when it builds (`build.assign_groups`, `data.stream_problems`).
"""

from __future__ import annotations

import inspect
import warnings

import torch

from .build import WEIGHT_KWARGS, assign_groups, build_model
from .data import stream_problems
from .registry import UnknownName, resolve_dataset
from .spec import ModelSpec, Spec, key_tuple
from .targets import return_class


def preflight_problems(spec: Spec) -> list[tuple[tuple, str, str]]:
    """(key path, what, fix) for every problem `run` would meet building what `spec` names."""
    found = _param_group_problems(spec) + _dataset_problems(spec)
    return [(key_tuple(key), what, fix) for key, what, fix in found]


def _param_group_problems(spec: Spec) -> list[tuple[str, str, str]]:
    if not spec.optimizer.param_groups:
        return []
    model = meta_model(spec.model)
    if model is None:
        return []
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return assign_groups(named, spec.optimizer.param_groups).problems if named else []


def meta_model(spec: ModelSpec) -> torch.nn.Module | None:
    """The model a ModelSpec names, built on the meta device without weights; None when that cannot be done."""
    if "from_pretrained" in spec.name:
        return None  # reads (or downloads) weights on any device
    kwargs = {k: v for k, v in spec.kwargs.items() if k not in WEIGHT_KWARGS}
    try:
        with warnings.catch_warnings(), torch.device("meta"):
            warnings.simplefilter("ignore")  # the real build shows them
            return build_model(spec.model_copy(update={"kwargs": kwargs, "checkpoint": None}))
    except Exception:  # a constructor that needs real tensors (.item(), a file): run builds it and checks then
        return None


def _dataset_problems(spec: Spec) -> list[tuple[str, str, str]]:
    try:
        target = resolve_dataset(spec.data.name)
    except UnknownName:
        return []  # reported by the name check
    kind = target if inspect.isclass(target) else return_class(target)
    val = spec.sweep.val
    return stream_problems(kind, shuffle=spec.data.shuffle, val_fraction=val is not None and val.kwargs is None,
                           epochs=spec.train.epochs is not None, name=spec.data.name) if kind else []
