"""RangeTestResult, RunRecord and the output files: result.json (built by `to_document` alone) and history.csv, written atomically."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import math
import os
import platform
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from .suggest import Confidence, Suggestion, lowest, withheld
from .suggest import zero_lag as zero_lag_of

SCHEMA_VERSION = 1
RESULT_JSON = "result.json"
HISTORY_CSV = "history.csv"
PLOT_PNG = "lr_find.png"


class Repeat(NamedTuple):
    """One range test of several behind a result (sweep.repeats): the seed of its data order, and what it measured."""

    seed: int
    result: RangeTestResult


@dataclass(frozen=True)
class Timing:
    """Where a sweep's time went, in seconds (result.json's `timing`).

    startup_s      from the start of the process to the snapshot (imports, building, data; None where the
                   platform does not say when the process started)
    snapshot_s     taking the snapshot
    first_step_s   step 0, which pays for first calls (CUDA kernels, cuDNN autotuning, loader workers)
    steady_step_s  the median time per step after step 0, measured between reads of the losses (on a GPU,
                   16 steps at a time, so no step waits for the host)
    restore_s      putting everything back
    suggest_s      reading the suggestions off the curve
    """

    startup_s: float | None
    snapshot_s: float
    first_step_s: float | None
    steady_step_s: float | None
    restore_s: float
    suggest_s: float = 0.0


@dataclass(frozen=True)
class MemoryUse:
    """What a sweep held, in bytes (result.json's `memory`).

    peak_host_bytes    the process's peak resident set size up to the end of the sweep (None without getrusage)
    peak_device_bytes  the most CUDA memory tensors held in the process up to the end of the sweep (None off CUDA)
    snapshot_bytes     the size of the snapshot (parameters, gradients, buffers, optimizer state), in host
                       memory or on disk (sweep.snapshot)
    """

    peak_host_bytes: int | None
    peak_device_bytes: int | None
    snapshot_bytes: int


@dataclass
class RangeTestResult:
    """What a range test measured and suggests. `lrs[i]` is the learning rate that produced `losses[i]`."""

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    status: str  # completed | diverged | interrupted
    stop_reason: str
    suggestions: dict[str, float | None]
    method: str
    suggested_lr: float | None
    device: str
    duration_s: float
    start_lr: float
    end_lr: float
    num_iter: int
    mode: str
    group_scales: list[float] = field(default_factory=lambda: [1.0])
    val_losses: list[float | None] | None = None  # validation loss where measured (sweep.val), else None
    schedule: str = "onecycle"  # what suggested_lr is for: a one-cycle max_lr or a constant lr
    lr_range: list[float] | None = None  # [low, high] for cyclic schedules
    confidence: Confidence = field(default_factory=Confidence)
    schedules: dict[str, Suggestion] = field(default_factory=dict)  # the rule's answer under each schedule
    # sweep.repeats > 1: every range test behind this result, as (loader seed, result); the curve
    # above is the first one's, the suggestions come from all of them
    repeats: list[Repeat] = field(default_factory=list)
    # with a GradScaler: whether it skipped each step's update (inf/NaN gradients; the lr was never applied)
    skipped: list[bool] | None = None
    timing: Timing | None = None  # None for a result read back from a file that has none
    memory: MemoryUse | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # the zero-lag curve the rule read, step by step from step 0 (with repeats: of their mean); None: read the losses
    zero_lag: list[float] | None = None
    # the training the answers are for, as the rule used it (suggest.summary.training); empty when unknown
    train: dict[str, Any] = field(default_factory=dict)

    @property
    def curve(self) -> list[float | None]:
        """The zero-lag curve the rule reads, one value per step of `lrs` (None where it has none, and at a step the
        GradScaler skipped): the one curve `best`, the `minimum` method, the summary line, the live table and the
        plot's main line all come from."""
        lrs, _, losses = self.measured_curve
        values = self.zero_lag if self.zero_lag is not None else zero_lag_of(lrs, losses)[1].tolist()
        out: list[float | None] = [None] * len(self.lrs)
        for step, value in zip(_measured_steps(self.skipped, len(self.lrs)), values):
            out[step] = value
        return out

    def withdrawn(self, stop_reason: str | None = None) -> RangeTestResult:
        """This result as an interrupted run's: status interrupted, the history kept, no suggestion (every method's
        value null, flag interrupted): a partial curve gives no answer a script could take for a finished one's."""
        return dataclasses.replace(
            self, status="interrupted", stop_reason=stop_reason or self.stop_reason, suggested_lr=None, lr_range=None,
            suggestions=dict.fromkeys(self.suggestions), schedules={k: Suggestion(None, None, k) for k in self.schedules},
            confidence=withheld(self.confidence.repeats), extra=dict(self.extra))

    @property
    def num_steps(self) -> int:
        return len(self.lrs)

    @property
    def extended_steps(self) -> int:
        """Steps past end_lr: a loss that had not diverged by then was followed further (`engine.sweep.goes_on`)."""
        return max(0, self.num_steps - self.num_iter)

    @property
    def history(self) -> dict[str, list]:
        """lr, loss and smoothed per step, group_lrs (every param group's lr at each step), val_loss and skipped if measured."""
        history = {
            "lr": list(self.lrs),
            "loss": list(self.losses),
            "smoothed": list(self.smoothed),
            "group_lrs": [[lr * scale for scale in self.group_scales] for lr in self.lrs],
        }
        if self.val_losses is not None:
            history["val_loss"] = list(self.val_losses)
        if self.skipped is not None:
            history["skipped"] = list(self.skipped)
        history["zero_lag"] = self.curve
        return history

    @property
    def measured_curve(self) -> tuple[list[float], list[float], list[float]]:
        """(lrs, smoothed, losses) of the steps that are measurements (not skipped by the GradScaler): what the rule reads."""
        return measured(self.lrs, self.smoothed, self.losses, self.skipped)

    def note_skipped(self) -> None:
        """Flag `skipped_steps` in `confidence`, with the count in its note, when the GradScaler skipped steps (any repeat's)."""
        runs = [r for _, r in self.repeats] or [self]
        count = sum(sum(r.skipped or []) for r in runs)
        if count and "skipped_steps" not in self.confidence.flags:
            self.confidence = dataclasses.replace(self.confidence, flags=(*self.confidence.flags, "skipped_steps"), skipped_steps=count)

    @property
    def suggested_group_lrs(self) -> list[float] | None:
        """The suggested lr of each param group (the suggestion times the group's scale)."""
        if self.suggested_lr is None:
            return None
        return [self.suggested_lr * scale for scale in self.group_scales]

    @property
    def best(self) -> dict[str, float | None]:
        """The lowest point of the zero-lag curve the rule reads (`curve`): its lr and loss (None, None without one)."""
        found = lowest(self.lrs, self.curve)
        return {"lr": None, "loss": None} if found is None else {"lr": found[0], "loss": found[1]}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> RangeTestResult:
        """Rebuild a result from a result.json document (nulls become NaN where numbers are expected)."""
        history, sweep = doc["history"], doc.get("sweep", {})

        def numbers(values: list) -> list[float]:
            return [math.nan if v is None else float(v) for v in values]

        lrs = numbers(history["lr"])
        groups = history.get("group_lrs") or []
        # every group's lr is a fixed multiple of the swept lr: read the multiples off the first step
        scales = [g / lrs[0] for g in groups[0]] if groups and lrs and lrs[0] else [1.0]
        return cls(
            lrs=lrs, losses=numbers(history["loss"]), smoothed=numbers(history["smoothed"]),
            status=doc["status"], stop_reason=doc.get("stop_reason", ""), suggestions=doc.get("suggestions", {}),
            method=doc.get("method", ""), suggested_lr=doc.get("suggested_lr"), device=doc.get("device", ""),
            duration_s=doc.get("duration_s") or 0.0, start_lr=sweep.get("start_lr", lrs[0] if lrs else math.nan),
            end_lr=sweep.get("end_lr", lrs[-1] if lrs else math.nan), num_iter=sweep.get("num_iter", len(lrs)),
            mode=sweep.get("mode", "exp"), val_losses=history.get("val_loss"), skipped=history.get("skipped"),
            schedule=doc.get("schedule", "onecycle"),
            lr_range=doc.get("lr_range"), confidence=Confidence.from_json(doc.get("confidence")),
            schedules={name: Suggestion.from_json(name, entry) for name, entry in (doc.get("schedules") or {}).items()},
            group_scales=scales, zero_lag=_prefix(history.get("zero_lag"), history.get("skipped")), train=doc.get("train") or {},
            timing=Timing(**doc["timing"]) if doc.get("timing") else None,
            memory=MemoryUse(**doc["memory"]) if doc.get("memory") else None,
            repeats=[Repeat(entry.get("seed", i), cls.from_dict({**entry, "sweep": sweep}))
                     for i, entry in enumerate(doc.get("repeats") or [])],
        )

    def to_dict(self, spec: dict | None = None) -> dict[str, Any]:
        """The result.json document of this result alone (non-finite numbers become null); see `to_document`."""
        return to_document([RunRecord({}, self, world_size=None)], 0, spec)

    def fields(self, keys: tuple[str, ...] | None = None) -> dict[str, Any]:
        """This result's own fields as result.json names them, in its order (only `keys`, in their order, if given)."""
        doc = {
            "schema_version": SCHEMA_VERSION,
            "status": self.status,
            "suggested_lr": self.suggested_lr,
            "method": self.method,
            "suggestions": dict(self.suggestions),
            "schedule": self.schedule,
            "lr_range": self.lr_range,
            "confidence": self.confidence.to_json(),
            "schedules": {name: answer.to_json() for name, answer in self.schedules.items()},
            "train": dict(self.train),
            "suggested_group_lrs": self.suggested_group_lrs,
            "best": self.best,
            "num_steps": self.num_steps,
            "stop_reason": self.stop_reason,
            "device": self.device,
            "duration_s": round(self.duration_s, 3),
            "timing": _rounded(asdict(self.timing)) if self.timing is not None else None,
            "memory": asdict(self.memory) if self.memory is not None else None,
            "sweep": {"start_lr": self.start_lr, "end_lr": self.end_lr, "num_iter": self.num_iter, "mode": self.mode,
                      "extended_steps": self.extended_steps},
            "history": self.history,
        }
        return doc if keys is None else {k: doc[k] for k in keys}


# What each run of a grid, and each repeat of a run, shows of its result in result.json.
RUN_KEYS = ("status", "suggested_lr", "method", "suggestions", "lr_range", "schedules", "train", "confidence", "best", "num_steps",
            "sweep", "stop_reason", "timing", "memory", "history")
REPEAT_KEYS = ("status", "suggested_lr", "suggestions", "lr_range", "best", "num_steps", "stop_reason", "sweep", "timing", "history")
BEST_RUN_CRITERION = "lowest minimum of the zero-lag training loss (the curve the rule reads) among runs with a suggestion"


@dataclass
class RunRecord:
    """One run of a spec (one variant of a grid): the overrides that made it, its result, and the scale it ran at.

    `global_batch_size` is the samples behind each optimizer step (per-rank batch x ranks x accumulation).
    `world_size=None` means the scale is unknown (a result on its own, outside a run): result.json leaves it out.
    """

    overrides: dict[str, Any]
    result: RangeTestResult
    world_size: int | None = 1
    global_batch_size: int | None = None

    @property
    def scale(self) -> dict[str, Any]:
        return {} if self.world_size is None else {"world_size": self.world_size, "global_batch_size": self.global_batch_size}

    def entry(self) -> dict[str, Any]:
        """This run as an entry of result.json's `runs`."""
        return {"overrides": self.overrides, **self.result.fields(RUN_KEYS), **_repeats(self.result), **self.scale}


def to_document(runs: list[RunRecord], best: int, spec: dict | None = None, *, grid: bool = False,
                interrupted: str | None = None) -> dict[str, Any]:
    """result.json, the one place it is built: the best run's fields on top; with a grid, every run and which is on top.

    `interrupted` (an interrupted grid) replaces the top-level stop reason, makes the status "interrupted" and
    withdraws the top-level suggestion (`RangeTestResult.withdrawn`); each run keeps its own.
    Non-finite numbers become null.
    """
    top = runs[best]
    shown = top.result.withdrawn(interrupted) if interrupted is not None else top.result
    doc = {**shown.fields(), "spec": spec, "versions": versions(), **top.result.extra, **top.scale, **_repeats(top.result)}
    if grid:
        doc["best_run"] = {"index": best, "overrides": top.overrides, "criterion": BEST_RUN_CRITERION}
        doc["runs"] = [run.entry() for run in runs]
    return _finite(doc)


def _repeats(result: RangeTestResult) -> dict[str, Any]:
    """{"repeats": [...]} with each range test behind a result (its data-order seed first), or {} for a single one."""
    if not result.repeats:
        return {}
    return {"repeats": [{"seed": seed, **r.fields(REPEAT_KEYS)} for seed, r in result.repeats]}


def _prefix(values: list | None, skipped: list[bool] | None = None) -> list[float] | None:
    """A saved curve's measured steps up to the first null (None when the file has none: older files, read again
    from the losses). Steps the GradScaler skipped hold no value and are passed over."""
    if values is None:
        return None
    values = [values[i] for i in _measured_steps(skipped, len(values))]
    end = values.index(None) if None in values else len(values)
    return [float(v) for v in values[:end]]


def _measured_steps(skipped: list[bool] | None, n: int) -> list[int]:
    """The steps, of n, that are measurements: all but those the GradScaler skipped."""
    return [i for i in range(n) if not (skipped and i < len(skipped) and skipped[i])]


def versions() -> dict[str, str]:
    from . import __version__

    found = {"lrfind": __version__, "python": platform.python_version()}
    for name in ("torch", "torchvision", "numpy"):
        try:
            module = __import__(name)
            found[name] = getattr(module, "__version__", "unknown")
        except ImportError:
            pass
    return found


def to_json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, allow_nan=False) + "\n"


def history_csv(result: RangeTestResult) -> str:
    """step, lr, loss, smoothed per step; val_loss and skipped (1 where the GradScaler skipped the step) when measured."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    val, skipped = result.val_losses, result.skipped
    writer.writerow(["step", "lr", "loss", "smoothed"] + (["val_loss"] if val is not None else [])
                    + (["skipped"] if skipped is not None else []))
    for i, (lr, loss, smooth) in enumerate(zip(result.lrs, result.losses, result.smoothed)):
        extra = [_csv_number(val[i]) if val[i] is not None else ""] if val is not None else []
        extra += [int(skipped[i])] if skipped is not None else []
        writer.writerow([i, repr(lr), _csv_number(loss), _csv_number(smooth)] + extra)
    return buf.getvalue()


def measured(lrs: list[float], smoothed: list[float], losses: list[float],
             skipped: list[bool] | None) -> tuple[list[float], list[float], list[float]]:
    """(lrs, smoothed, losses) without the steps the GradScaler skipped: those did not apply their lr, so measure nothing."""
    kept = _measured_steps(skipped, len(lrs))
    return [lrs[i] for i in kept], [smoothed[i] for i in kept], [losses[i] for i in kept]


def write_outputs(result: RangeTestResult, out_dir: Path, document: dict[str, Any]) -> dict[str, Path]:
    """Write result.json (the given document) and history.csv into out_dir atomically; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / RESULT_JSON, "csv": out_dir / HISTORY_CSV}
    write_atomic(paths["csv"], history_csv(result).encode())
    write_atomic(paths["json"], to_json(document).encode())
    return paths


def write_atomic(path: Path, data: bytes) -> None:
    """Write via a uniquely named temp file in the same directory, then rename over the target."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the mode a plain open() would
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it: put it straight back
    os.umask(mask)
    return mask


def _rounded(seconds: dict[str, float | None]) -> dict[str, float | None]:
    return {k: None if v is None else round(v, 6) for k, v in seconds.items()}


def _csv_number(value: float) -> str:
    return repr(float(value)) if math.isfinite(value) else ""


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj
