"""FSDP from the spec: the modules `distributed.shard` names, FSDP's own mixed precision, and fully_shard over the ranks."""

from __future__ import annotations

import fnmatch

import torch

from .errors import RunError
from .registry import did_you_mean

# torch.distributed.fsdp.fully_shard (FSDP2) is public from torch 2.6 (torch 2.4-2.5 kept it under _composable).
FSDP_TORCH = "2.6"


def fully_shard_api():
    """(fully_shard, MixedPrecisionPolicy) from torch.distributed.fsdp; RunError naming the torch version needed."""
    try:
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
    except ImportError:
        raise RunError(f"distributed.strategy: fsdp needs torch >= {FSDP_TORCH} (torch.distributed.fsdp.fully_shard); this is "
                       f"torch {torch.__version__}: upgrade torch or use distributed.strategy: ddp",
                       key="distributed.strategy") from None
    return fully_shard, MixedPrecisionPolicy


def shard_units(model: torch.nn.Module, patterns: list[str]) -> list[tuple[str, torch.nn.Module]]:
    """(name, module) of every submodule sharded as a unit of its own, children before their parents.

    A submodule is a unit when its class name matches one of the globs (case-insensitive, as `lrfind ls`)
    and it holds parameters; the root is not listed (`shard_model` shards it last, for whatever is left).
    RunError (key distributed.shard) for a glob that matches no module class of the model.
    """
    named = [(name, module) for name, module in model.named_modules() if name]
    for i, pattern in enumerate(patterns):
        if not any(_matches(module, pattern) for _, module in named):
            classes = sorted({type(module).__name__ for _, module in named if _has_parameters(module)})
            hint = did_you_mean(pattern, classes) or f"the model's classes with parameters: {', '.join(classes) or 'none'}"
            raise RunError(f"distributed.shard.{i}: {pattern!r} matches no module class of the model; {hint}",
                           key=f"distributed.shard.{i}")
    chosen = [(name, module) for name, module in named if _has_parameters(module) and any(_matches(module, p) for p in patterns)]
    return chosen[::-1]  # named_modules() is pre-order: reversed, every child comes before its parent


def _matches(module: torch.nn.Module, pattern: str) -> bool:
    return fnmatch.fnmatchcase(type(module).__name__.lower(), pattern.lower())


def _has_parameters(module: torch.nn.Module) -> bool:
    return next(module.parameters(), None) is not None


def shard_model(model: torch.nn.Module, patterns: list[str], precision: str, device: torch.device,
                world_size: int) -> torch.nn.Module:
    """Shard `model` with FSDP2 over `world_size` ranks on `device`'s type: each unit of `shard_units`, then the root.

    Call on every rank alike, inside the process group, before the optimizer is built (fully_shard
    replaces the parameters with DTensor shards); the model may sit on the CPU, as fully_shard moves each
    rank's shard to the device. Under bf16, FSDP's MixedPrecisionPolicy gathers and computes with bf16
    parameters (half the memory and traffic of fp32), reduces gradients in fp32 and keeps fp32 shards for
    the optimizer, and the root's outputs come back as fp32. The engine's autocast stays on as without
    FSDP, so the ops it keeps in fp32 (losses, softmax, norms on CUDA) stay there. Returns the same module.
    """
    from torch.distributed.device_mesh import init_device_mesh

    fully_shard, MixedPrecisionPolicy = fully_shard_api()
    mesh = init_device_mesh(device.type, (world_size,))
    if precision == "bf16":
        policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
        root_policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32, output_dtype=torch.float32)
    else:
        policy = root_policy = MixedPrecisionPolicy()
    for _, unit in shard_units(model, patterns):
        fully_shard(unit, mesh=mesh, mp_policy=policy)
    fully_shard(model, mesh=mesh, mp_policy=root_policy)
    return model
