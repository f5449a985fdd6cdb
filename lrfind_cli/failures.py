"""A failure while training, as one line: at which step, what failed (in the user's code), and how to fix it.

One failure PyTorch lets pass is made one here: a model output whose shape differs from the targets' where the
loss compares them element by element (torch broadcasts them, at most with a warning, and trains on a wrong loss).
"""

from __future__ import annotations

import contextlib
import os
import re
import warnings
from collections.abc import Callable, Iterator

from .errors import RunError, short_message, user_frame
from .spec import Spec

# torch.nn losses that compare the output with the targets element by element, so both must have one shape; torch
# broadcasts a mismatch silently (KLDivLoss, PoissonNLLLoss, ...) or with a UserWarning (MSELoss, L1Loss, ...).
ELEMENTWISE_LOSSES = ("L1Loss", "MSELoss", "SmoothL1Loss", "HuberLoss", "BCELoss", "BCEWithLogitsLoss", "KLDivLoss",
                      "PoissonNLLLoss", "SoftMarginLoss", "MultiLabelSoftMarginLoss", "HingeEmbeddingLoss")
# torch's own words for such a mismatch: the UserWarning of F.mse_loss & co. (an error while the sweep runs,
# `misfits_raise`), and the ValueErrors of F.binary_cross_entropy(_with_logits)
_TORCH_MISFIT = re.compile(r"target size \(torch\.Size\(\[([\d, ]*)\]\)\).*?input size \(torch\.Size\(\[([\d, ]*)\]\)\)",
                           re.IGNORECASE)


class OutputMisfit(ValueError):
    """The model's output and the targets differ in shape where the loss compares them element by element."""

    def __init__(self, loss: str, output: tuple[int, ...], target: tuple[int, ...]):
        super().__init__(f"{loss} got an output of shape {list(output)} and targets of shape {list(target)}")
        self.loss, self.output, self.target = loss, output, target

    @classmethod
    def of(cls, exc: BaseException, loss: str) -> OutputMisfit | None:
        """`exc` itself, or the misfit torch's message describes (None when it describes none)."""
        if isinstance(exc, OutputMisfit):
            return exc
        found = _TORCH_MISFIT.search(str(exc))
        if found is None:
            return None
        target, output = (tuple(int(n) for n in group.split(",") if n.strip()) for group in found.groups())
        return cls(loss, output, target)


def refuse_broadcasting(loss) -> None:
    """Make an element-wise torch.nn loss module (ELEMENTWISE_LOSSES) raise OutputMisfit for output and targets of two shapes.

    A forward pre-hook on the module, so it holds wherever the loss is called (the sweep, the verification).
    """
    import torch

    if not (isinstance(loss, torch.nn.Module) and type(loss).__module__.startswith("torch.nn")
            and type(loss).__name__ in ELEMENTWISE_LOSSES):
        return

    def same_shape(module, args) -> None:
        if len(args) >= 2 and all(isinstance(a, torch.Tensor) for a in args[:2]) and args[0].shape != args[1].shape:
            raise OutputMisfit(type(module).__name__, tuple(args[0].shape), tuple(args[1].shape))

    loss.register_forward_pre_hook(same_shape)


@contextlib.contextmanager
def misfits_raise() -> Iterator[None]:
    """While the sweep runs, torch's broadcasting warning (an element-wise loss called by a user's step or loss) is an error."""
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=r"Using a target size .* that is different to the input size", category=UserWarning)
        yield


def training_error(exc: BaseException, step: int | None, spec: Spec, device) -> BaseException:
    """The one-line RunError for a failure while sweeping at `step` (None: not from training, then the exception itself)."""
    import torch

    num_iter = spec.sweep.num_iter
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        batch = spec.data.batch_size
        return RunError(f"out of GPU memory {_step_text(step, num_iter)} with data.batch_size {batch} on {device}; lower "
                        f"data.batch_size (e.g. --set data.batch_size={max(batch // 2, 1)}) and raise "
                        "sweep.accumulation_steps to keep the effective batch, or use precision: bf16")
    from .snapshot import SnapshotTooLarge

    if isinstance(exc, SnapshotTooLarge):
        return RunError(str(exc), key="sweep.snapshot")
    if step is None:
        return exc  # not from training (an argument check or a bug of ours): reported as unexpected
    at = _step_text(step, num_iter)
    from .engine import LoaderExhausted, StepOutputError

    if isinstance(exc, LoaderExhausted):
        return RunError(f"data: {spec.data.name!r} {at}: {exc}", key="data")
    if isinstance(exc, StepOutputError):
        return RunError(_step_output_message(exc, spec, at), key="step" if exc.source == "step" and spec.step else "loss")
    misfit = OutputMisfit.of(exc, f"loss {spec.loss.name!r}" if spec.loss and not spec.step else "the loss")
    if misfit is not None:
        return RunError(_misfit_message(misfit, spec, at), key="step" if spec.step else "model.kwargs")
    what, where = _plain_failure(exc)
    if _in_data_loading(exc):
        return RunError(f"data: reading a batch of {spec.data.name!r} failed {at}: {what}{where}; fix the dataset "
                        "(its __getitem__ or data.transforms), data.kwargs, or data.collate_fn", key="data")
    return RunError(f"the training step failed {at}: {what}{where}; {_failure_hint(what, spec)}")


def _step_output_message(exc, spec: Spec, at: str) -> str:
    """The step (or the loss the default step calls) returned no scalar tensor: name it and what it returned."""
    if exc.source == "step" and spec.step:
        return (f"step: {spec.step!r} returned {exc.returned} {at}, where the batch's loss is needed as a scalar tensor; "
                "make it return the loss for every batch (a batch cannot be skipped)")
    name = spec.loss.name if spec.loss else "?"
    return (f"loss: {name!r} returned {exc.returned} {at}, where a scalar loss is needed; reduce it to one number "
            "(e.g. loss.kwargs.reduction: mean) or compute the loss in a step function")


def _misfit_message(misfit: OutputMisfit, spec: Spec, at: str) -> str:
    """An output that does not fit an element-wise loss: both shapes, why it matters, what to change."""
    why = f"{misfit.loss} compares them element by element, and broadcasting one to the other would train on a wrong loss"
    output, target = list(misfit.output), list(misfit.target)
    if spec.step:
        return (f"step: in step {spec.step!r} a loss got an output of shape {output} and targets of shape {target} {at}; "
                f"{why}; make them the same shape in the step function")
    return (f"model.kwargs: the output of model {spec.model.name!r} has shape {output} and the targets of data "
            f"{spec.data.name!r} have shape {target} {at}; {why}; set model.kwargs so the output has the targets' shape "
            "(e.g. out_features or num_classes), or reshape the targets in the dataset or a step function")


def _failure_hint(what: str, spec: Spec) -> str:
    """How to fix a failed training step, chosen from PyTorch's message (the first rule that matches)."""
    for pattern, hint in _HINTS:
        if pattern.search(what):
            return hint(spec)
    return f"check that the output of model {spec.model.name!r} fits {_loss_name(spec)} and the batches of data {spec.data.name!r}"


def _loss_name(spec: Spec) -> str:
    return f"loss {spec.loss.name!r}" if spec.loss else "the loss the model returns"


def _batch_of_one_hint(spec: Spec) -> str:
    if spec.data.batch_size == 1:
        return "BatchNorm in training mode needs more than 1 sample per batch; raise data.batch_size"
    return ("a batch of a single sample reached BatchNorm in training mode (the last, incomplete batch of an epoch); "
            "set data.drop_last: true, or a data.batch_size that leaves no batch of 1")


def _dtype_hint(spec: Spec) -> str:
    return (f"the dtypes do not fit: check the targets of data {spec.data.name!r} against {_loss_name(spec)} "
            "(CrossEntropyLoss and NLLLoss take class indices as int64; MSELoss, L1Loss and BCEWithLogitsLoss take "
            "float targets) and the inputs against the model's dtype; convert them in the dataset or a step function")


def _shape_hint(spec: Spec) -> str:
    return (f"check that the output of model {spec.model.name!r} fits {_loss_name(spec)} and the batches of data "
            f"{spec.data.name!r} (e.g. model.kwargs.num_classes)")


def _no_grad_hint(spec: Spec) -> str:
    where = f"step {spec.step!r}" if spec.step else f"model {spec.model.name!r}"
    return (f"the loss has no gradient: {where} computed it without autograd (torch.no_grad(), .detach(), .item(), "
            "or a model whose trainable parameters do not reach the loss); return the loss as computed")


_HINTS: tuple[tuple[re.Pattern, Callable[[Spec], str]], ...] = (
    (re.compile(r"Expected more than 1 value per channel"), _batch_of_one_hint),
    (re.compile(r"does not require grad"), _no_grad_hint),
    (re.compile(r"dtype|scalar type|can't be cast|not implemented for '", re.IGNORECASE), _dtype_hint),
    (re.compile(r"shape|size|out of bounds|must match|dimension|Target -?\d+", re.IGNORECASE), _shape_hint),
)


def _step_text(step: int | None, num_iter: int) -> str:
    """'at the first step' or 'at step 7 (of 0-99)' for a training failure at `step`; 'in the sweep' when not known.

    Steps are numbered from 0 everywhere (history.csv, result.json, the live table, stop reasons).
    """
    if step is None:
        return "in the sweep"
    return "at the first step" if step == 0 else f"at step {step} (of 0-{num_iter - 1})"


def _plain_failure(exc: BaseException) -> tuple[str, str]:
    """('Type: message', ' (at file:line)') for a failure in user code, without the tool's internals.

    An error in a DataLoader worker arrives with the worker's traceback as text: its last line is the
    error and its last 'File ..., line N' the place, so no traceback reaches the user.
    """
    text = str(exc)
    if "Original Traceback" in text:
        places = re.findall(r'File "([^"]+)", line (\d+)', text)
        user = [p for p in places if not _is_library(p[0])]
        last = [line.strip() for line in text.strip().splitlines() if line.strip()][-1]
        where = f" (at {user[-1][0]}:{user[-1][1]})" if user else ""
        return short_message(Exception(last)), where
    return f"{type(exc).__name__}: {short_message(exc)}", user_frame(exc)


def _in_data_loading(exc: BaseException) -> bool:
    """True when the failure came from inside a DataLoader fetching a batch (the dataset's own code)."""
    import traceback

    marker = os.sep + os.path.join("torch", "utils", "data") + os.sep
    return any(marker in frame.filename for frame in traceback.extract_tb(exc.__traceback__))


def _is_library(filename: str) -> bool:
    return "site-packages" in filename or os.path.dirname(__file__) in filename or filename.startswith("<")
