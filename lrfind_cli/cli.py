"""The `lrfind` command line: parses argv, calls the runner, maps errors to exit codes. No torch at import."""

from __future__ import annotations

import os
import sys
import traceback
import warnings
from pathlib import Path
from typing import Annotated, Optional

import typer

from . import __version__
from .errors import EXIT_INTERRUPTED, EXIT_NO_SUGGESTION, EXIT_RUNTIME, EXIT_TERMINATED, LrfindError, short_message

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Find a good learning rate with Leslie Smith's range test, driven by a YAML spec.",
    epilog="Examples:  lrfind run configs/resnet.yaml  |  lrfind run spec.yaml --set sweep.num_iter=50 -q  |  "
    "lrfind validate spec.yaml",
)

SpecArg = Annotated[Path, typer.Argument(help="The YAML spec file.", metavar="SPEC", show_default=False)]
SetOpt = Annotated[
    Optional[list[str]],  # noqa: UP045 - typer needs Optional on Python 3.10
    typer.Option("--set", help="Override a spec key, e.g. --set sweep.num_iter=50 (repeatable; value is YAML).",
                 show_default=False),
]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Show tracebacks on errors.")]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"lrfind {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False,
) -> None:
    """Find a good learning rate with Leslie Smith's range test, driven by a YAML spec."""


@app.command()
def run(
    spec: SpecArg,
    set_: SetOpt = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Output directory (default: lrfind-out/<spec stem>).")] = None,  # noqa: UP045
    device: Annotated[Optional[str], typer.Option("--device", help="auto, cpu, cuda, cuda:N or mps.")] = None,  # noqa: UP045
    json_out: Annotated[bool, typer.Option("--json", help="Print result.json on stdout and nothing else.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No live output; print only the suggested lr.")] = False,
    verbose: VerboseOpt = False,
) -> None:
    """Run the range test: sweep, restore, suggest; write result.json, history.csv and lr_find.png.

    Exit codes: 0 suggestion found, 1 runtime failure, 2 usage or spec error, 3 no usable
    suggestion, 130 interrupted (Ctrl-C), 143 terminated (SIGTERM); both write the partial result.

    Examples:

      lrfind run configs/resnet.yaml

      LR=$(lrfind run configs/resnet.yaml -q --set sweep.num_iter=60)

      lrfind run spec.yaml --json --device cpu --out results/
    """
    overrides = list(set_ or [])
    if device is not None:
        overrides.append(f"device={device}")
    if out is not None:
        overrides.append(f"output.dir={_yaml_string(str(out))}")
    _guarded(verbose, lambda: _run(spec, overrides, json_out, quiet, verbose))


@app.command()
def validate(spec: SpecArg, set_: SetOpt = None, verbose: VerboseOpt = False) -> None:
    """Check a spec without training: keys, types, names, and kwargs against each target's signature.

    Examples:

      lrfind validate configs/resnet.yaml

      lrfind validate spec.yaml --set optimizer.name=AdamW
    """

    def check() -> None:
        from .spec import load_spec

        loaded = load_spec(spec, list(set_ or []))
        _say(f"{spec}: valid ({loaded.spec.model.name}, {loaded.spec.optimizer.name}, {loaded.spec.data.name})")

    _guarded(verbose, check)


@app.command()
def compare(
    results: Annotated[list[Path], typer.Argument(help="result.json files (or directories holding one).", metavar="RESULT",
                                                  show_default=False)],
    out: Annotated[Path, typer.Option("--out", help="Where to write the overlaid plot.")] = Path("compare.png"),
    json_out: Annotated[bool, typer.Option("--json", help="Print the table as JSON on stdout.")] = False,
    verbose: VerboseOpt = False,
) -> None:
    """Overlay saved results (other specs, machines or days) in one plot and print their suggestions.

    Examples:

      lrfind compare lrfind-out/resnet lrfind-out/resnet-adamw --out compare.png

      lrfind compare a/result.json b/result.json --json
    """
    _guarded(verbose, lambda: _compare(results, out, json_out))


def _compare(paths: list[Path], out: Path, json_out: bool) -> None:
    import json

    from .errors import Problem as _Problem
    from .errors import SpecError
    from .results import RESULT_JSON, RangeTestResult

    curves, rows = [], []
    for given in paths:
        path = given / RESULT_JSON if given.is_dir() else given
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            # a grid result holds one run per variant: each is compared on its own
            entries = [(f"{given} [{', '.join(f'{k}={v}' for k, v in run['overrides'].items())}]",
                        RangeTestResult.from_dict({**doc, **run})) for run in doc.get("runs") or []]
            entries = entries or [(str(given), RangeTestResult.from_dict(doc))]
        except FileNotFoundError:
            raise SpecError(_Problem(str(path), "no such result file", "pass result.json files or their directories")) from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SpecError(_Problem(str(path), f"not an lrfind result.json ({short_message(exc)})",
                                     "pass files written by `lrfind run`")) from None
        for label, result in entries:
            curves.append((label, result))
            rows.append({"result": label, "status": result.status, "suggested_lr": result.suggested_lr, "method": result.method,
                         "best_loss": result.best["loss"], "best_lr": result.best["lr"], "num_steps": result.num_steps,
                         "global_batch_size": doc.get("global_batch_size")})
    from .plot import save_plot

    out.parent.mkdir(parents=True, exist_ok=True)
    save_plot(curves, out, "lrfind compare")
    if json_out:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
    else:
        width = max(len(r["result"]) for r in rows)
        sys.stdout.write(f"{'result':<{width}}  {'suggested_lr':>12}  {'method':<9} {'best loss':>10}  {'at lr':>9}  status\n")
        for r in rows:
            lr = "-" if r["suggested_lr"] is None else f"{r['suggested_lr']:.4g}"
            best = "-" if r["best_loss"] is None else f"{r['best_loss']:.4g}"
            at = "-" if r["best_lr"] is None else f"{r['best_lr']:.3g}"
            sys.stdout.write(f"{r['result']:<{width}}  {lr:>12}  {r['method']:<9} {best:>10}  {at:>9}  {r['status']}\n")
    _say(f"wrote {out}")


class _Terminated(KeyboardInterrupt):
    """SIGTERM, turned into an interrupt so the sweep stops, restores and writes its partial result."""


def _run(spec_path: Path, overrides: list[str], json_out: bool, quiet: bool, verbose: bool = False) -> None:
    from .distributed import env_rank
    from .spec import load_spec

    # Under torchrun, rank 0 alone draws and prints; the other ranks stay silent unless -v.
    main_rank = env_rank() == 0
    if not main_rank and not verbose:
        quiet, json_out = True, False

    terminated = {"seen": False}

    def on_sigterm(signum, frame) -> None:
        terminated["seen"] = True
        raise _Terminated()

    import signal

    signal.signal(signal.SIGTERM, on_sigterm)  # before the (slow) loading, so an early SIGTERM also exits 143
    loaded = load_spec(spec_path, overrides)
    from .runner import Interrupted, run_spec, title_of
    from .ui import LiveReporter

    console = _stderr()
    try:
        if quiet or json_out:
            outcome = run_spec(loaded)
        else:
            with LiveReporter(console, title_of(loaded), loaded.spec.sweep.num_iter) as reporter:
                outcome = run_spec(loaded, on_step=reporter.on_step, on_variant=reporter.on_variant,
                                   on_repeat=reporter.on_repeat)
    except Interrupted as stop:
        if json_out and main_rank:
            sys.stdout.write(stop.outcome.json_text)
        _say(f"interrupted: partial result in {stop.outcome.out_dir}; the model was restored")
        raise typer.Exit(EXIT_TERMINATED if terminated["seen"] else EXIT_INTERRUPTED) from None
    except LrfindError as exc:
        exc.args = (_located(str(exc), loaded),)
        raise
    result = outcome.result
    if not main_rank:
        pass
    elif json_out:
        sys.stdout.write(outcome.json_text)
    elif quiet:
        if result.suggested_lr is not None:
            sys.stdout.write(f"{result.suggested_lr!r}\n")
    else:
        _print_summary(outcome)
    if main_rank and result.suggested_lr is not None:
        from .suggest import LOW_CONFIDENCE

        for flag, note in zip(result.confidence.get("flags", []), result.confidence.get("notes", [])):
            _say(f"warning: {'low confidence' if flag in LOW_CONFIDENCE else 'note'} ({flag}): {note}")
    if result.suggested_lr is None:
        _say(_no_suggestion(result, loaded.spec.precision))
    _exit_together(EXIT_NO_SUGGESTION if result.suggested_lr is None else 0)


def _exit_together(code: int) -> None:
    """End the run with `code`; under torchrun every rank first waits for the others, so all exit at once alike."""
    from .distributed import end_together

    if end_together(code):
        raise typer.Exit(code)


def _located(message: str, loaded) -> str:
    """A runtime message that starts with a spec key ("data.batch_size: ...") gets the file:line of that key.

    Only for keys written in the spec file: a key set by --set, --out or --device, or absent, is left as it is.
    """
    import re

    match = re.match(r"([a-z_]+(?:\.\w+)*): ", message)
    if not match:
        return message
    key = tuple(int(p) if p.isdigit() else p for p in match.group(1).split("."))
    line = loaded.lines.get(key)
    varied = list(loaded.overridden) + [tuple(k.split(".")) for k in (loaded.spec.grid or {})]
    if line is None or any(key[: len(k)] == k or k[: len(key)] == key for k in varied):
        return message
    return f"{loaded.path}:{line} {message}"


def _no_suggestion(result, precision: str) -> str:
    """Why there is no suggestion, and what to try, on one line."""
    import math

    if result.losses and not any(math.isfinite(loss) for loss in result.losses):
        # The sweep stops at the first non-finite loss: here that was step 0, before anything was measured.
        fp = f", or use precision: fp32 instead of {precision}" if precision != "fp32" else ""
        return (f"no usable suggestion: the loss was non-finite ({result.losses[0]}) from the first step, at lr "
                f"{result.lrs[0]:.3g}, so nothing was measured; lower sweep.start_lr, check the data for NaN or infinite "
                f"inputs and for labels the loss cannot take (e.g. out of range), or load a model.checkpoint that is not "
                f"already broken{fp}")
    from .suggest import FLAG_NOTES

    flags = result.confidence.get("flags") or []
    # the message says what the flag in result.json says: too few points, or no fall beyond noise
    why = FLAG_NOTES["too_few_points" if "too_few_points" in flags else "flat_curve"]
    return f"no usable suggestion after {result.num_steps} steps ({result.stop_reason}): {why}"


def _print_summary(outcome) -> None:
    result = outcome.result
    out = sys.stdout
    shown = "none" if result.suggested_lr is None else format(result.suggested_lr, ".4g")
    from .suggest import SCHEDULE_NAMES

    out.write(f"suggested_lr: {shown} ({SCHEDULE_NAMES.get(result.method, result.method)})\n")
    if result.lr_range:
        out.write(f"lr_range: {result.lr_range[0]:.4g} .. {result.lr_range[1]:.4g} (base_lr .. max_lr for a cyclic schedule)\n")
    for name, lr in result.suggestions.items():
        out.write(f"  {name:<9} {'-' if lr is None else format(lr, '.4g')}\n")
    quality = result.confidence
    if quality.get("repeats", 1) > 1:
        spread = quality.get("spread_decades")
        shown_spread = "-" if spread is None else f"{spread:.2f} decades"
        out.write(f"repeats: {quality['repeats']}, spread of the suggestion {shown_spread}\n")
    best = result.best
    if best["lr"] is not None:
        out.write(f"best smoothed loss {best['loss']:.4g} at lr {best['lr']:.4g}\n")
    out.write(f"{result.status}: {result.stop_reason}\n")
    runs = outcome.document.get("runs")
    if runs:
        best = outcome.document["best_run"]
        out.write(f"grid: {len(runs)} runs; on top: run {best['index'] + 1} ({best['criterion']})\n")
        for i, run in enumerate(runs):
            lr = "-" if run["suggested_lr"] is None else format(run["suggested_lr"], ".4g")
            label = ", ".join(f"{k}={v}" for k, v in run["overrides"].items())
            out.write(f"  run {i + 1}: {label:<40} suggested_lr {lr:<10} {run['status']}\n")
    out.write(f"outputs: {outcome.out_dir}/ (result.json, history.csv, lr_find.png)\n")


def _guarded(verbose: bool, action) -> None:
    """Run a command body; turn errors into one clear line each on stderr and the contract's exit code."""
    debug = verbose or os.environ.get("LRFIND_DEBUG", "") not in ("", "0")
    try:
        with warnings.catch_warnings():
            if not debug:
                warnings.showwarning = _warning_line  # a library's warning: one line, not its source excerpt
            action()
    except typer.Exit:
        raise
    except LrfindError as exc:
        if debug:
            traceback.print_exc()  # -v shows the traceback; the exit code stays the contract's
        for line in str(exc).splitlines():
            _say(f"error: {line}")
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt as exc:
        _say("interrupted")
        raise typer.Exit(EXIT_TERMINATED if isinstance(exc, _Terminated) else EXIT_INTERRUPTED) from None
    except Exception as exc:
        if debug:
            traceback.print_exc()  # -v shows the traceback; the exit code stays the contract's
        _say(f"error: unexpected {type(exc).__name__}: {short_message(exc)} (run with -v or LRFIND_DEBUG=1 for the traceback)")
        raise typer.Exit(EXIT_RUNTIME) from None


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    _say(f"warning: {category.__name__}: {short_message(message)} ({filename}:{lineno})")


def _stderr():
    from rich.console import Console

    return Console(stderr=True)


def _say(text: str) -> None:
    """One plain line on stderr: no markup, no highlighting, never wrapped; under torchrun it names the rank."""
    if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:
        text = f"[rank {os.environ.get('RANK', '?')}] {text}"
    _stderr().print(text, highlight=False, markup=False, soft_wrap=True)


def _yaml_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def main() -> None:
    app(prog_name="lrfind")


if __name__ == "__main__":
    main()
