"""From a validated spec to built objects, the sweep, and the written outputs."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import Interrupted, LrfindError, Problem, RunError, SpecError
from .failures import misfits_raise, training_error
from .plot import save_plot
from .results import HISTORY_CSV, PLOT_PNG, RESULT_JSON, RangeTestResult, Repeat, RunRecord, to_document, to_json, write_outputs
from .searchpath import beside
from .signals import deliver, signals_held
from .spec import LoadedSpec, Spec, variant_label

if TYPE_CHECKING:
    from .engine import SweepConfig
    from .plan import TrainPlan

OUTPUT_FILES = (RESULT_JSON, HISTORY_CSV, PLOT_PNG)  # the only files a run writes


@dataclass
class RunOutcome:
    result: RangeTestResult
    out_dir: Path
    paths: dict[str, Path]
    document: dict[str, Any]

    @property
    def json_text(self) -> str:
        return to_json(self.document)


def output_dir(loaded: LoadedSpec) -> Path:
    """output.dir if set, else lrfind-out/<spec file stem>; refused early if unusable."""
    chosen = loaded.spec.output.dir
    out = Path(chosen) if chosen else Path("lrfind-out") / loaded.path.stem
    # A path that is a file is a usage error (exit 2), found before anything is built.
    if out.exists() and not out.is_dir():
        raise SpecError(Problem("output.dir", f"{str(out)!r} exists and is not a directory", "choose another path with --out"),
                        key="output.dir")
    probe = out
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise SpecError(Problem("output.dir", f"{str(out)!r} cannot be created because {str(probe)!r} is a file, not a "
                                "directory", "choose another path with --out"), key="output.dir")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise RunError(f"output.dir: {str(probe)!r} is not writable; choose another path with --out", key="output.dir")
    inputs = {loaded.path.resolve()}
    if loaded.spec.model.checkpoint:
        inputs.add(Path(loaded.spec.model.checkpoint).resolve())
    for name in OUTPUT_FILES:
        if (out / name).resolve() in inputs:
            raise RunError(f"output.dir: writing {name} there would overwrite an input of this run ({out / name}); "
                           "choose another directory with --out", key="output.dir")
    return out


def title_of(loaded: LoadedSpec) -> str:
    s = loaded.spec
    batch = "" if s.grid and "data.batch_size" in s.grid else f" (batch {s.data.batch_size})"
    return f"{s.model.name} · {s.optimizer.name} · {s.data.name}{batch}"


def run_spec(loaded: LoadedSpec, on_step: Callable | None = None, on_variant: Callable | None = None,
             on_repeat: Callable | None = None, on_snapshot: Callable[[int, str], None] | None = None) -> RunOutcome:
    """Build everything the spec names, run the range test(s), and write result.json, history.csv and the plot.

    With a `grid:`, every variant runs in turn from the same initial state (the same seed builds the
    same model); `on_variant(index, count, label)` is called before each. With sweep.repeats,
    `on_repeat(index, count)` is called before each repeat of each variant. `on_snapshot(bytes, mode)`
    hears the size of each sweep's snapshot before it is taken.
    """
    from . import distributed
    from .data import resolve_device

    spec = loaded.spec
    out_dir = output_dir(loaded)
    ctx, device = distributed.setup(spec.device)  # (None, None) unless started by torchrun
    if ctx is None:
        _refuse_fsdp_alone(loaded)
    device = device or resolve_device(spec.device)
    with contextlib.ExitStack() as stack:
        _hold(stack, out_dir, ctx)
        # the spec's import paths may name modules beside it (also imported while training); torch's warning that a
        # loss broadcasts the output against targets of another shape is an error
        stack.enter_context(beside(loaded.path))
        stack.enter_context(misfits_raise())
        return _run_variants(loaded, out_dir, ctx, device, on_step, on_variant, on_repeat, on_snapshot)


def _hold(stack: contextlib.ExitStack, out_dir: Path, ctx) -> None:
    """Hold the output directory for the rest of the run (rank 0: `output_lock`); every rank learns when it is refused."""
    from .distributed import all_finished
    from .output_lock import output_dir_held

    refused = None
    if ctx is None or ctx.is_main:
        try:
            stack.enter_context(output_dir_held(out_dir))
        except LrfindError as exc:
            refused = exc
    if all_finished(ctx, failed=refused is not None):
        raise refused or SpecError.at("output.dir", f"rank 0 could not hold {str(out_dir)!r} for this run",
                                      "see rank 0's error")


def _run_variants(loaded: LoadedSpec, out_dir: Path, ctx, device, on_step: Callable | None, on_variant: Callable | None,
                  on_repeat: Callable | None, on_snapshot: Callable | None) -> RunOutcome:
    """Every variant in turn, then the outputs; an interrupt writes what was measured and raises Interrupted with it."""
    runs: list[RunRecord] = []
    for index, (overrides, variant) in enumerate(loaded.variants):
        try:
            if on_variant is not None:
                on_variant(index, len(loaded.variants), variant_label(overrides))
            result = _sweep(variant, device, ctx, on_step, on_repeat, on_snapshot)
        except KeyboardInterrupt as stop:
            partial = getattr(stop, "result", None)  # the engine's Interrupted carries what it measured
            if partial is not None:
                runs.append(_record(overrides, partial, variant, ctx))
            elif not runs:
                raise  # nothing measured yet: nothing to write
            raise Interrupted(outcome=_write(loaded, runs, out_dir, ctx, interrupted=True)) from None
        runs.append(_record(overrides, result, variant, ctx))
    return _write(loaded, runs, out_dir, ctx)


def _refuse_fsdp_alone(loaded: LoadedSpec) -> None:
    """SpecError when a variant asks for FSDP outside torchrun: there are no ranks to shard the model across."""
    if any(variant.distributed.strategy == "fsdp" for _, variant in loaded.variants):
        raise SpecError(Problem("distributed.strategy", "fsdp shards the model across the processes torchrun starts, and this "
                                "run was not started by torchrun", "run `torchrun --nproc_per_node N -m lrfind_cli run SPEC` "
                                "(N may be 1), or set distributed.strategy: ddp"), key="distributed.strategy")


@dataclass
class Built:
    """What one (variant) spec names, built on the sweep's device: everything the sweep and the verification train."""

    model: Any
    optimizer: Any
    scales: list[float]
    loss_fn: Any
    step_fn: Any
    dataset: Any
    collate_fn: Any
    val_fn: Callable | None
    performance: dict[str, bool]


def sweep_config(spec: Spec) -> SweepConfig:
    """The engine's SweepConfig for a spec (the spec's own ranges were checked when it was loaded)."""
    from .build import starts_trained
    from .engine import SweepConfig

    sweep = spec.sweep
    return SweepConfig(
        start_lr=sweep.start_lr, end_lr=sweep.end_lr, num_iter=sweep.num_iter, mode=sweep.mode, smoothing=sweep.smoothing,
        diverge_threshold=sweep.diverge_threshold, accumulation_steps=sweep.accumulation_steps,
        max_grad_norm=sweep.clip_grad_norm, max_grad_value=sweep.clip_grad_value, train_mode=sweep.train_mode,
        precision=spec.precision, snapshot=sweep.snapshot, suggest_method=spec.suggest.method, schedule=spec.schedule,
        sync_every=spec.performance.sync_every, val_every=sweep.val.every if sweep.val else 10,
        warm_start=starts_trained(spec.model),
    )


def train_plan(spec: Spec, built: Built, device, ctx) -> TrainPlan:
    """The training the answer is for (spec.train), its epochs turned into steps with the data's length.

    One pass is the training loader's batches (this rank's shard under torchrun, as its sampler counts them) over
    the accumulation steps (`batches.steps_per_pass`, as the engine counts them); a dataset without a length (a
    stream) has no passes, and `train.epochs` is then a SpecError (give train.steps).
    """
    from .data import no_length_problem
    from .engine.batches import steps_per_pass
    from .plan import TrainPlan

    train = spec.train
    per_pass = steps_per_pass(_loader(spec, built, device, ctx, spec.seed), spec.sweep.accumulation_steps)
    steps = train.steps
    if train.epochs is not None:
        if per_pass is None:
            raise SpecError.at(*no_length_problem(spec.data.name))
        steps = max(1, math.ceil(train.epochs * per_pass))
        if train.warmup is not None and train.warmup >= 1 and train.warmup >= steps:
            raise SpecError.at("train.warmup", f"a warm-up of {train.warmup:g} steps fills the whole run of {steps} steps "
                               f"({train.epochs:g} epochs)", "give fewer steps, or a share of the run (< 1)")
    return TrainPlan(spec.schedule, steps=steps, warmup=train.warmup, cooldown=train.cooldown,
                     cycle_momentum=train.cycle_momentum, steps_per_pass=per_pass)


def _sweep(spec: Spec, device, ctx, on_step: Callable | None, on_repeat: Callable | None = None,
           on_snapshot: Callable | None = None) -> RangeTestResult:
    """The range test(s) for one (variant) spec: build, sweep, restore; errors become one-line RunErrors.

    With sweep.repeats N > 1 the same model and optimizer are swept N times, each from the restored
    start, with data order seed, seed + 1, ...; `on_repeat(index, N)` is called before each and the
    results are combined (`repeats.combine`).
    """
    from .engine import TrainingFailed, check_arguments, run_sweep

    built = _build(spec, device, ctx)
    config = dataclasses.replace(sweep_config(spec), plan=train_plan(spec, built, device, ctx))
    check_arguments(built.model, built.optimizer, built.dataset, built.loss_fn, step_fn=built.step_fn)
    runs: list[Repeat] = []
    for repeat in range(spec.sweep.repeats):
        seed = spec.seed + repeat
        loader = _repeat_loader(spec, built, config, device, ctx, repeat, runs, on_repeat)
        try:
            result = run_sweep(built.model, built.optimizer, loader, built.loss_fn, config, step_fn=built.step_fn,
                               on_step=on_step, val_fn=built.val_fn, group_scales=built.scales, on_snapshot=on_snapshot)
        except Interrupted as stop:
            runs.append(Repeat(seed, stop.result))
            stop.result = _combined(spec, runs, built, config)
            raise
        except TrainingFailed as failed:
            raise training_error(failed.__cause__, failed.step, spec, device) from failed.__cause__
        except Exception as exc:
            error = training_error(exc, None, spec, device)
            if error is exc:
                raise
            raise error from exc
        runs.append(Repeat(seed, result))
    result = _combined(spec, runs, built, config)
    if spec.suggest.verify is not None and result.suggested_lr is not None:
        _verify(spec, result, built, _loader(spec, built, device, ctx, spec.seed), config)
    return result


def _build(spec: Spec, device, ctx) -> Built:
    """Seed every generator with spec.seed, then build model, data, loss, optimizer and step.

    Under torchrun the model is wrapped in DDP, or with distributed.strategy fsdp sharded before the
    optimizer is built (FSDP replaces the parameters with shards): it is built on the CPU and each rank
    moves only its shards to the device, so a model larger than one device's memory fits.
    """
    import numpy as np
    import torch

    from .build import build_collate, build_dataset, build_loss, build_model, build_optimizer, build_step

    random.seed(spec.seed)
    np.random.seed(spec.seed)
    torch.manual_seed(spec.seed)
    sharded = ctx is not None and spec.distributed.strategy == "fsdp"
    model = build_model(spec.model)
    if not sharded:
        model = model.to(device)
    dataset = build_dataset(spec.data)
    val_batches = None
    if spec.sweep.val is not None:
        dataset, val_batches = _validation_split(spec, dataset, device)
    fast = _fast_paths(spec, model, device, dataset)
    loss_fn = _loss_on(build_loss(spec.loss), device)
    if sharded:
        from .sharding import shard_model

        model = shard_model(model, spec.distributed.shard or [], spec.precision, device, ctx.world_size)
    optimizer, scales = build_optimizer(spec.optimizer, model, spec.sweep.start_lr, loss_fn)
    if ctx is not None:
        model, loss_fn = _data_parallel(model, loss_fn, device, replicate_model=not sharded)
    step_fn = build_step(spec.step)
    val_fn = _val_fn(val_batches, loss_fn, step_fn) if val_batches is not None else None
    return Built(model, optimizer, scales, loss_fn, step_fn, dataset, build_collate(spec.data.collate_fn), val_fn, fast)


def _loader(spec: Spec, built: Built, device, ctx, seed: int, resident: bool = False):
    """The training batches in the order `seed` draws them (this rank's shard under torchrun); on the device with `resident`."""
    from .data import make_loader, resident_batches

    rank, world = (ctx.rank, ctx.world_size) if ctx else (0, 1)
    data = spec.data
    loader = make_loader(built.dataset, batch_size=data.batch_size, shuffle=data.shuffle, drop_last=data.drop_last,
                         num_workers=data.num_workers, seed=seed, device=device, rank=rank, world_size=world,
                         collate_fn=built.collate_fn)
    if resident and built.performance["device_batches"]:
        loader = resident_batches(loader, _resident_batch_count(spec), device)
    return loader


def _resident_batch_count(spec: Spec) -> int:
    """Batches for every step the sweep may take, past end_lr too (so the history is the same as without device_batches)."""
    steps = spec.sweep.num_iter + len(sweep_config(spec).extension())
    return steps * spec.sweep.accumulation_steps


def _repeat_loader(spec: Spec, built: Built, config: SweepConfig, device, ctx, repeat: int, runs: list[Repeat],
                   on_repeat: Callable | None):
    """The loader of one repeat, after `on_repeat`; a Ctrl-C here, between repeats, ends with the repeats measured so far."""
    try:
        if on_repeat is not None:
            on_repeat(repeat, spec.sweep.repeats)
        return _loader(spec, built, device, ctx, spec.seed + repeat, resident=True)
    except KeyboardInterrupt:
        if not runs:
            raise
        partial = _combined(spec, runs, built, config)
        reason = f"interrupted before repeat {repeat + 1} of {spec.sweep.repeats}; {partial.stop_reason}"
        raise Interrupted(result=partial.withdrawn(reason)) from None


def _combined(spec: Spec, runs: list[Repeat], built: Built, config: SweepConfig) -> RangeTestResult:
    """One result from the repeats measured so far, with the fast paths that were on."""
    from .plan import momentum_free
    from .repeats import combine

    result = combine(runs, spec.suggest.method, config.schedule, config.warm_start, config.plan, momentum_free(built.optimizer))
    result.extra["performance"] = built.performance
    return result


def _verify(spec: Spec, result: RangeTestResult, built: Built, loader, config: SweepConfig) -> None:
    """suggest.verify: short trainings from the restored start around the rule's answer; their parabola's vertex,
    moved to the planned length, becomes suggested_lr.

    The candidates bracket the rule's answer for a training of verify's own length (num_steps), train under the
    planned schedule as PyTorch runs it (momentum cycling included), and are scored by their final validation
    loss with sweep.val, else by the mean of their last training losses; the model is restored after each.
    `verify.choose` takes the vertex of a parabola in log10(lr) through the scores, and `for_planned_training`
    moves it by the length law from num_steps to the planned steps. Under torchrun the ranks average their
    scores, so all of them pick the same rate. The rule's answer stays in `suggestions`; result.json's
    `verify` block lists the candidates, their losses, the vertex and the correction.
    """
    from .suggest import horizon
    from .verify import bracket, choose, for_planned_training, verify_candidates

    settings, sweep, plan = spec.suggest.verify, spec.sweep, config.plan
    schedule = result.schedule
    num_steps = settings.num_steps or sweep.num_iter
    planned = result.train.get("steps") or horizon.DEFAULT_STEPS
    shift = horizon.length_decades(planned, plan.steps_per_pass) - horizon.length_decades(num_steps, plan.steps_per_pass)
    centre = result.suggested_lr * 10**shift  # the rule's answer for a training of num_steps
    val_fn = built.val_fn
    outcome = verify_candidates(
        built.model, built.optimizer, loader, built.loss_fn, bracket(centre, settings.candidates, settings.spacing_decades),
        num_steps=num_steps, schedule=schedule, plan=plan, val_fn=val_fn, step_fn=built.step_fn, group_scales=built.scales,
        snapshot=sweep.snapshot, precision=spec.precision, accumulation_steps=sweep.accumulation_steps,
        max_grad_norm=sweep.clip_grad_norm, max_grad_value=sweep.clip_grad_value, train_mode=sweep.train_mode,
    )
    losses = _mean_across_ranks(outcome.losses)  # every rank picks from the same scores
    vertex = choose(outcome.candidates, losses)
    chosen = None if vertex is None else for_planned_training(vertex, num_steps, dataclasses.replace(plan, steps=planned))
    result.extra["verify"] = {"rule_lr": result.suggested_lr, "rule": result.method, "schedule": schedule,
                              "candidates": outcome.candidates, "losses": losses, "num_steps": outcome.num_steps,
                              "steps_trained": outcome.steps_trained, "momentum_cycled": outcome.momentum_cycled,
                              "vertex_lr": vertex, "planned_steps": planned, "length_correction_decades": -shift,
                              "measured_on": "validation loss" if val_fn is not None else "training loss (mean of the last tenth)"}
    if chosen is not None:
        result.suggestions["verify"] = result.suggested_lr = chosen
        result.method = "verify"


def _mean_across_ranks(values: list[float]) -> list[float]:
    """The mean of each value across torchrun ranks (as they are when not distributed)."""
    import torch

    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64)
    if dist.get_backend() == "nccl":
        tensor = tensor.cuda()
    dist.all_reduce(tensor)
    return [float(v) for v in (tensor / dist.get_world_size()).cpu()]


def _loss_on(loss_fn, device):
    """A loss module (with parameters or buffers of its own, perhaps) on the sweep's device; a function as it is."""
    import torch

    return loss_fn.to(device) if isinstance(loss_fn, torch.nn.Module) else loss_fn


def _data_parallel(model, loss_fn, device, replicate_model: bool = True):
    """The model (unless sharded already), and a loss with trainable parameters, in DistributedDataParallel.

    Their gradients are averaged across ranks; a loss's own parameters (a few numbers) stay replicated under FSDP too.
    """
    from torch.nn.parallel import DistributedDataParallel

    from .build import loss_parameters

    ids = [device.index] if device.type == "cuda" else None
    if loss_parameters(loss_fn, model):
        loss_fn = DistributedDataParallel(loss_fn, device_ids=ids)
    return (DistributedDataParallel(model, device_ids=ids) if replicate_model else model), loss_fn


def _validation_split(spec: Spec, dataset, device):
    """(training set, fixed validation batches on the device) for sweep.val.

    Without val.kwargs a seeded `fraction` of the training set is held out (and not trained on): a
    SpecError at sweep.val.fraction for a stream (an IterableDataset), which has no fraction to hold out.
    With them, the dataset is built again with data.kwargs updated by val.kwargs (a named split).
    Either way `batches` batches are drawn once, with the spec's seed (a stream's first ones, in its
    own order), and kept on the device.
    """
    import itertools

    import torch
    from torch.utils.data import DataLoader, IterableDataset, Subset

    from .build import build_collate, build_dataset
    from .data import stream_problems
    from .engine import to_device

    val = spec.sweep.val
    gen = torch.Generator().manual_seed(spec.seed)
    if val.kwargs is not None:
        held_out = build_dataset(spec.data.model_copy(update={"kwargs": {**spec.data.kwargs, **val.kwargs}}))
    else:
        problems = stream_problems(type(dataset), shuffle=False, val_fraction=True)
        if problems:
            raise SpecError.at(*problems[0])
        order = torch.randperm(len(dataset), generator=gen).tolist()
        cut = max(1, int(round(val.fraction * len(dataset))))
        held_out, dataset = Subset(dataset, order[:cut]), Subset(dataset, order[cut:])
    if not isinstance(held_out, IterableDataset):
        held_out = Subset(held_out, torch.randperm(len(held_out), generator=gen)[: val.batches * spec.data.batch_size].tolist())
    loader = DataLoader(held_out, batch_size=spec.data.batch_size, collate_fn=build_collate(spec.data.collate_fn))
    batches = [to_device(b, device) for b in itertools.islice(loader, val.batches)]
    if not batches:
        raise RunError("sweep.val: the validation split is empty; raise sweep.val.fraction or check sweep.val.kwargs", key="sweep.val")
    return dataset, batches


def _val_fn(batches: list, loss_fn, step_fn) -> Callable:
    """The mean loss over the fixed validation batches, computed with the sweep's own step."""
    from .engine import default_step, scalar_loss

    step = step_fn or default_step

    def evaluate(model):
        return sum(scalar_loss(step(model, batch, loss_fn), step, loss_fn).float() for batch in batches) / len(batches)

    return evaluate


def _fast_paths(spec, model, device, dataset) -> dict[str, bool]:
    """Switch on channels_last and cuDNN autotune where they help (CUDA), choose device batches; report what is on.

    device_batches auto: built-in data (in memory, no transforms: the same batches either way) on CUDA,
    when the sweep's batches fit (`data.resident_by_default`).
    """
    import torch

    from .data import BUILTIN_DATASETS, resident_by_default

    perf = spec.performance
    cuda = device.type == "cuda"
    has_conv = any(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    channels_last = (cuda and has_conv) if perf.channels_last == "auto" else bool(perf.channels_last)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if cuda and perf.cudnn_benchmark:
        torch.backends.cudnn.benchmark = True
    device_batches = perf.device_batches
    if device_batches == "auto":
        builtin = spec.data.name.lower() in BUILTIN_DATASETS and spec.data.transforms is None
        device_batches = builtin and resident_by_default(dataset, spec.data.batch_size, _resident_batch_count(spec), device)
    return {"channels_last": channels_last, "cudnn_benchmark": cuda and perf.cudnn_benchmark, "device_batches": bool(device_batches)}


def _record(overrides: dict[str, Any], result: RangeTestResult, spec: Spec, ctx) -> RunRecord:
    """A run with how many processes ran it and the samples behind each optimizer step (per-rank batch x ranks x accumulation)."""
    world = ctx.world_size if ctx else 1
    return RunRecord(overrides, result, world, spec.data.batch_size * world * spec.sweep.accumulation_steps)


def best_run(runs: list[RunRecord]) -> int:
    """The index of the run with a suggestion whose zero-lag loss (`RangeTestResult.best`) reached the lowest minimum.

    Runs without a suggestion count only when no run has one; the first run if no run has a minimum.
    """
    scored = [(run.result.suggested_lr is None, run.result.best["loss"], i) for i, run in enumerate(runs)
              if run.result.best["loss"] is not None]
    return min(scored)[2] if scored else 0


def _write(loaded: LoadedSpec, runs: list[RunRecord], out_dir: Path, ctx,
           interrupted: bool = False) -> RunOutcome:
    """Write the outputs (rank 0 only: other ranks hold the same result and write nothing).

    The top level of result.json is the best run's; with a grid, `runs` lists every variant and
    `best_run` says which one is on top and why. An interrupted grid says so at the top level too.
    """
    index = best_run(runs)
    result = runs[index].result
    note = f"interrupted with {len(runs)} of {len(loaded.variants)} runs measured (the last may be partial)"
    document = to_document(runs, index, loaded.spec.model_dump(mode="json"), grid=bool(loaded.spec.grid),
                           interrupted=note if interrupted and loaded.spec.grid else None)
    # After a normal end every rank waits here until rank 0 has written the files (an interrupted run
    # does not: its ranks may be stopped at different collectives).
    from .distributed import all_finished

    together = ctx if not interrupted else None
    if ctx is not None and not ctx.is_main:
        if all_finished(together):
            raise RunError(f"output.dir: rank 0 could not write the outputs to {str(out_dir)!r} (its error says why)", key="output.dir")
        return RunOutcome(result=result, out_dir=out_dir, paths={}, document=document)
    try:
        with signals_held() as held:  # all three files, or a signal waits: never a result without its plot
            paths = write_outputs(result, out_dir, document)
            curves = [(variant_label(run.overrides) if loaded.spec.grid else "", run.result) for run in runs]
            paths["png"] = save_plot(curves, out_dir / PLOT_PNG, title_of(loaded))
    except Exception as exc:
        all_finished(together, failed=True)
        if isinstance(exc, OSError):
            raise RunError(f"output.dir: cannot write to {str(out_dir)!r}: {exc.strerror or exc}; "
                           "choose another path with --out", key="output.dir") from None
        raise
    all_finished(together)
    if held:
        deliver(held)  # Ctrl-C or SIGTERM while writing: the outputs are complete, now it acts
    return RunOutcome(result=result, out_dir=out_dir, paths=paths, document=document)
