"""The spec's schema: pydantic models with extra="forbid" everywhere, so a misspelled key is an error."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def _not_a_bool(value: Any) -> Any:
    if isinstance(value, bool):  # YAML's true/false would pass as 1/0
        raise ValueError(f"expected a whole number, got {str(value).lower()}; write a whole number")
    return value


Whole = Annotated[int, BeforeValidator(_not_a_bool)]  # an int that refuses true/false


class _Strict(BaseModel):
    # extra="forbid": a misspelled key is an error, never silently ignored.
    model_config = ConfigDict(extra="forbid")


class ModelSpec(_Strict):
    name: str
    kwargs: dict[str, Any] = Field(default_factory=dict)
    checkpoint: str | None = None
    strict: bool = True  # checkpoint keys must match the model's exactly
    # the model starts from trained weights (null: yes with a checkpoint, a weight-loading kwarg or from_pretrained)
    trained: bool | None = None


class TransformSpec(_Strict):
    name: str
    kwargs: dict[str, Any] = Field(default_factory=dict)


class DataSpec(_Strict):
    name: str = "synthetic"
    kwargs: dict[str, Any] = Field(default_factory=dict)
    transforms: list[TransformSpec] | None = None
    collate_fn: str | None = None  # "package.module:function" that makes a batch from a list of samples (padding)
    batch_size: Whole = Field(128, ge=1)
    num_workers: Whole = Field(0, ge=0)
    shuffle: bool = True
    drop_last: bool = True


# The pydantic error type of a problem with one key below the field validated; its context's "key" names that key, so
# the problem is reported at the key's own line (an `lr:` inside a Hydra block, not the block's first line).
AT_KEY = "at_key"


def _without_lr(fix: str) -> AfterValidator:
    """Refuses optimizer kwargs with an 'lr' (the sweep sets every lr), saying `fix`, at the `lr` key itself."""

    def check(kwargs: dict[str, Any]) -> dict[str, Any]:
        if "lr" in kwargs:
            raise PydanticCustomError(AT_KEY, fix, {"key": "lr"})
        return kwargs

    return AfterValidator(check)


class ParamGroupSpec(_Strict):
    params: str  # a glob on parameter names, e.g. "backbone.*"
    lr_scale: float = Field(1.0, gt=0)
    kwargs: Annotated[dict[str, Any], _without_lr("a group's lr follows the sweep; remove 'lr' and use lr_scale")] = Field(
        default_factory=dict)


class OptimizerSpec(_Strict):
    name: str = "SGD"
    kwargs: Annotated[dict[str, Any], _without_lr("the learning rate is what the sweep sets; remove 'lr' and use "
                                                  "sweep.start_lr / sweep.end_lr")] = Field(default_factory=dict)
    # Parameters are matched to the first group whose glob fits; the rest form a group of scale 1.
    param_groups: list[ParamGroupSpec] | None = None


class LossSpec(_Strict):
    name: str = "CrossEntropyLoss"
    kwargs: dict[str, Any] = Field(default_factory=dict)


class ValSpec(_Strict):
    every: Whole = Field(10, ge=1)  # evaluate after every k-th optimizer step (and the last)
    batches: Whole = Field(2, ge=1)  # the fixed subsample: this many batches, drawn once with the seed
    fraction: float = Field(0.1, gt=0, lt=1)  # held out from the training set when no kwargs are given
    kwargs: dict[str, Any] | None = None  # else: a named split, e.g. {train: false}, merged into data.kwargs


class SweepSpec(_Strict):
    start_lr: float = Field(1e-7, gt=0)
    end_lr: float = Field(10.0, gt=0)
    num_iter: Whole = Field(100, ge=2)
    mode: Literal["exp", "linear"] = "exp"
    smoothing: float = Field(0.98, ge=0, lt=1)
    diverge_threshold: float = Field(4.0, gt=1)
    accumulation_steps: Whole = Field(1, ge=1)
    clip_grad_norm: float | None = Field(None, gt=0)  # once per optimizer step, after accumulation (and unscaling)
    clip_grad_value: float | None = Field(None, gt=0)
    train_mode: Literal["keep", "all"] = "keep"  # keep: modules in eval mode at the start stay in eval mode
    snapshot: Literal["memory", "disk"] = "memory"
    val: ValSpec | None = None  # validation-loss mode (off by default)
    repeats: Whole = Field(1, ge=1)  # range tests from the same start with different data order, combined

    @model_validator(mode="after")
    def _ordered(self) -> SweepSpec:
        if self.start_lr >= self.end_lr:
            raise ValueError(f"start_lr ({self.start_lr:g}) must be below end_lr ({self.end_lr:g})")
        return self


class PerformanceSpec(_Strict):
    channels_last: Literal["auto", True, False] = "auto"  # auto: on CUDA, for models with 2-D convolutions
    cudnn_benchmark: bool = True  # cuDNN autotune on CUDA: fastest kernels, tiny run-to-run differences
    # load the sweep's batches onto the device before it starts; auto: built-in data on CUDA, when they fit (data.py)
    device_batches: Literal["auto", True, False] = "auto"
    sync_every: Whole | None = Field(None, ge=1)  # steps between loss reads (null: 16, or on a CPU every 20 ms)


class VerifySpec(_Strict):
    # after the sweep: `candidates` short trainings around the rule's answer, `spacing_decades` apart
    candidates: Whole = Field(3, ge=2)
    spacing_decades: float = Field(0.5, gt=0)  # as measured in benchmarks/suggestion_quality.py
    num_steps: Whole | None = Field(None, ge=1)  # steps per candidate (null: sweep.num_iter)


ScheduleName = Literal["onecycle", "cosine", "constant", "wsd"]


class SuggestSpec(_Strict):
    # auto: the schedule-aware rule; or one classic method
    method: Literal["auto", "onecycle", "cosine", "constant", "wsd", "steepest", "valley", "minimum"] = "auto"
    schedule: ScheduleName = "onecycle"  # what suggested_lr is for (train.schedule says the same; this is its alias)
    verify: VerifySpec | None = None  # off by default: see README, "Verification"


class TrainSpec(_Strict):
    """The training the answer is for (lrfind_cli.plan.TrainPlan): its length, schedule and momentum cycling."""

    steps: Whole | None = Field(None, ge=1)  # optimizer steps of the planned run
    epochs: float | None = Field(None, gt=0)  # or passes over the data, turned into steps with the loader's length
    schedule: ScheduleName | None = None  # null: suggest.schedule (default onecycle)
    warmup: float | None = Field(None, ge=0)  # a share of the run (< 1) or a number of steps (>= 1); null: the schedule's own
    cooldown: float | None = Field(None, gt=0, le=1)  # wsd: the share of the run spent decaying; null: 0.2
    cycle_momentum: bool = True  # onecycle: OneCycleLR's cycle_momentum, as PyTorch defaults it

    @field_validator("epochs")
    @classmethod
    def _one_length(cls, epochs: float | None, info: ValidationInfo) -> float | None:
        if epochs is not None and info.data.get("steps") is not None:
            raise ValueError("give train.steps or train.epochs, not both")
        return epochs

    @field_validator("warmup")
    @classmethod
    def _warmup_inside_the_run(cls, warmup: float | None, info: ValidationInfo) -> float | None:
        steps = info.data.get("steps")
        if warmup is not None and steps is not None and warmup >= 1 and warmup >= steps:
            raise ValueError(f"a warm-up of {warmup:g} steps fills the whole run of {steps} steps; "
                             "give fewer steps, or a share of the run (< 1)")
        return warmup


class OutputSpec(_Strict):
    dir: str | None = None


class DistributedSpec(_Strict):
    # under torchrun: ddp keeps a whole model on every rank, fsdp shards it (torch.distributed.fsdp.fully_shard)
    strategy: Literal["ddp", "fsdp"] = "ddp"
    # fsdp only (ddp has no units, so a grid or --set may switch strategy alone): module class names or globs
    # ("TransformerEncoderLayer", "*Block"), each match sharded as a unit of its own, then the root; null: the root only
    shard: list[str] | None = None


class Spec(_Strict):
    seed: Whole = Field(0, ge=0)
    device: str = "auto"
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    model: ModelSpec
    data: DataSpec = Field(default_factory=DataSpec)
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec)
    loss: LossSpec | None = Field(default_factory=LossSpec)  # null: the model returns its own loss
    step: str | None = None  # "package.module:function" called as function(model, batch, loss_fn) -> loss
    sweep: SweepSpec = Field(default_factory=SweepSpec)
    performance: PerformanceSpec = Field(default_factory=PerformanceSpec)
    suggest: SuggestSpec = Field(default_factory=SuggestSpec)
    train: TrainSpec = Field(default_factory=TrainSpec)
    output: OutputSpec = Field(default_factory=OutputSpec)
    distributed: DistributedSpec = Field(default_factory=DistributedSpec)  # used under torchrun only
    # Dotted spec keys to lists of values: every combination runs as its own range test.
    grid: dict[str, list[Any]] | None = None

    @field_validator("grid")
    @classmethod
    def _grid(cls, grid: dict[str, list[Any]] | None) -> dict[str, list[Any]] | None:
        for key, values in (grid or {}).items():
            if not values:
                raise ValueError(f"grid.{_shown(key)} needs at least one value")
            if key.split(".")[0] in ("grid", "output"):
                raise ValueError(f"grid.{_shown(key)}: {key.split('.')[0]} cannot vary within one run")
        return grid

    @model_validator(mode="after")
    def _repeats_need_shuffle(self) -> Spec:
        if self.sweep.repeats > 1 and not self.data.shuffle:
            raise ValueError(f"sweep.repeats: {self.sweep.repeats} repeats differ only in data order, but data.shuffle is "
                             "false, so they would all be the same sweep; set data.shuffle: true or sweep.repeats: 1")
        return self

    @model_validator(mode="after")
    def _one_schedule(self) -> Spec:
        if self.train.schedule is not None and "schedule" in self.suggest.model_fields_set and self.train.schedule != self.suggest.schedule:
            raise ValueError(f"train.schedule: {self.train.schedule} differs from suggest.schedule ({self.suggest.schedule}), which "
                             "says the same thing; keep train.schedule and remove suggest.schedule")
        return self

    @property
    def schedule(self) -> str:
        """The schedule the answer is for: train.schedule, else suggest.schedule (its alias; default onecycle)."""
        return self.train.schedule or self.suggest.schedule

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not DEVICE_PATTERN.match(value):
            raise ValueError(f"device {value!r} is not one of auto, cpu, cuda, cuda:N, mps")
        return value


def _shown(text: str) -> str:
    """Text as it can stand in a one-line message: as it is if printable, else its repr (a key may hold a newline)."""
    return text if text.isprintable() else repr(text)
