"""The `lrfind` command line: parses argv, calls the runner, maps errors to exit codes. No torch at import."""

from __future__ import annotations

import enum
import os
import sys
import traceback
import warnings
from pathlib import Path
from typing import Annotated, Optional

import typer

from . import __version__
from .errors import (
    EXIT_INTERRUPTED,
    EXIT_NO_SUGGESTION,
    EXIT_RUNTIME,
    EXIT_TERMINATED,
    EXIT_USAGE,
    LrfindError,
    short_message,
)

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: no `<bool>` type column, and paragraphs marked \b keep their lines
    help="Find a good learning rate with Leslie Smith's range test, driven by a YAML spec.",
    epilog="\b\nExamples:\n  lrfind run configs/resnet.yaml\n  lrfind run spec.yaml --set sweep.num_iter=50 -q\n"
    "  lrfind validate spec.yaml\n  lrfind ls optimizers\n\n"
    "\b\nExit codes: 0 suggestion, 1 runtime failure, 2 usage or spec error,\n"
    "3 no usable suggestion, 130/143 interrupted (see `lrfind run --help`).",
)

SpecArg = Annotated[Path, typer.Argument(help="The YAML spec file.", metavar="SPEC", show_default=False)]
SetOpt = Annotated[
    Optional[list[str]],  # noqa: UP045 - typer needs Optional on Python 3.10
    typer.Option("--set", metavar="KEY=VALUE", show_default=False,
                 help="Override a spec key, e.g. --set sweep.num_iter=50 or --set optimizer.param_groups.0.lr_scale=0.5 "
                 "(repeatable; the value is YAML)."),
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
    out: Annotated[Optional[Path], typer.Option("--out", metavar="DIR",  # noqa: UP045
                                                help="Output directory (default: lrfind-out/<spec stem>).")] = None,
    device: Annotated[Optional[str], typer.Option("--device", metavar="DEVICE",  # noqa: UP045
                                                  help="auto, cpu, cuda, cuda:N or mps.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print result.json on stdout and nothing else (not with -q).")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No live output; print only the suggested lr (not with --json).")] = False,
    summary: Annotated[Optional[Path], typer.Option("--summary", metavar="FILE",  # noqa: UP045
                                                    help="Append a markdown summary to FILE (default: $GITHUB_STEP_SUMMARY "
                                                    "when set).")] = None,
    verbose: VerboseOpt = False,
) -> None:
    """Run the range test: sweep, restore, suggest; write result.json, history.csv and lr_find.png.

    \b
    Exit codes:
      0    a suggestion was found
      1    runtime failure (missing data, bad checkpoint, model and loss misfit)
      2    usage or spec error (nothing was trained)
      3    finished without a usable suggestion (result.json is still written)
      130  interrupted by Ctrl-C, 143 by SIGTERM (partial result, model restored)

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
    if json_out and quiet:
        _say("error: --json and --quiet: --json prints the whole result on stdout, -q only the learning rate "
             "(use one of them)")
        raise typer.Exit(EXIT_USAGE)
    _guarded(verbose, lambda: _run(spec, overrides, json_out, quiet, verbose, summary))


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


class Kind(str, enum.Enum):
    models = "models"
    datasets = "datasets"
    optimizers = "optimizers"
    losses = "losses"
    transforms = "transforms"


@app.command("ls")
def ls(
    kind: Annotated[Kind, typer.Argument(help="What to list.", metavar="KIND", show_default=False)],
    pattern: Annotated[Optional[str], typer.Argument(help="A case-insensitive glob, e.g. 'adam*' or '*Loss'.",  # noqa: UP045
                                                     metavar="GLOB", show_default=False)] = None,
    verbose: VerboseOpt = False,
) -> None:
    """List the names a spec may use for models, datasets, optimizers, losses or transforms, one per line.

    Any "package.module:attr" import path works too; `timm:NAME` models when timm is installed
    (list them with a glob such as 'timm:resnet*').

    Examples:

      lrfind ls optimizers

      lrfind ls models 'resnet*'

      lrfind ls losses '*entropy*'
    """

    def show() -> None:
        from .catalog import registry

        names = registry(kind.value).list(pattern)
        if names:
            sys.stdout.write("".join(f"{name}\n" for name in names))
        else:
            _say(f"no {kind.value} match {pattern!r}; run `lrfind ls {kind.value}` for all of them")

    _guarded(verbose, show)


@app.command()
def schema() -> None:
    """Print the spec's JSON Schema (for editor completion and checks of spec files).

    Save it beside your specs and point your editor at it with a first line such as
    `# yaml-language-server: $schema=./lrfind.schema.json` (the YAML extension of VS Code and others).

    Examples:

      lrfind schema > lrfind.schema.json
    """
    from .schema import schema_text

    sys.stdout.write(schema_text())


@app.command()
def compare(
    results: Annotated[list[Path], typer.Argument(help="result.json files (or directories holding one).", metavar="RESULT",
                                                  show_default=False)],
    out: Annotated[Path, typer.Option("--out", metavar="FILE", help="Where to write the overlaid plot.")] = Path("compare.png"),
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
                        RangeTestResult.from_dict({**doc, **run}), {**doc, **run}) for run in doc.get("runs") or []]
            entries = entries or [(str(given), RangeTestResult.from_dict(doc), doc)]
        except FileNotFoundError:
            raise SpecError(_Problem(str(path), "no such result file", "pass result.json files or their directories")) from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SpecError(_Problem(str(path), f"not an lrfind result.json ({short_message(exc)})",
                                     "pass files written by `lrfind run`")) from None
        for label, result, entry in entries:
            curves.append((label, result))
            rows.append({"result": label, "status": result.status, "suggested_lr": result.suggested_lr, "method": result.method,
                         "best_loss": result.best["loss"], "best_lr": result.best["lr"], "num_steps": result.num_steps,
                         "global_batch_size": entry.get("global_batch_size")})
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


def _run(spec_path: Path, overrides: list[str], json_out: bool, quiet: bool, verbose: bool = False,
         summary: Path | None = None) -> None:
    from .distributed import env_rank
    from .spec import load_spec

    # Under torchrun, rank 0 alone draws and prints; the other ranks stay silent unless -v.
    main_rank = env_rank() == 0
    if not main_rank and not verbose:
        quiet, json_out = True, False
    terminated = _exit_143_on_sigterm()  # before the (slow) loading, so an early SIGTERM also exits 143
    # Keys and types are checked without torch; the line below shows before torch takes seconds to load.
    loaded = load_spec(spec_path, overrides, on_targets=_first_line(spec_path, silent=quiet or json_out))
    from .runner import Interrupted

    try:
        outcome = _sweep_with_progress(loaded, live=not (quiet or json_out))
    except Interrupted as stop:
        if json_out and main_rank:
            sys.stdout.write(stop.outcome.json_text)
        _write_summary(summary, stop.outcome, loaded, main_rank)
        _say(f"interrupted: partial result in {stop.outcome.out_dir}; the model was restored")
        raise typer.Exit(EXIT_TERMINATED if terminated["seen"] else EXIT_INTERRUPTED) from None
    except LrfindError as exc:
        exc.args = (_located(str(exc), loaded),)
        raise
    _write_summary(summary, outcome, loaded, main_rank)
    if main_rank:
        _print_outcome(outcome, json_out, quiet)
    result = outcome.result
    if result.suggested_lr is None:
        _say(_no_suggestion(result, loaded.spec.precision))
    _exit_together(EXIT_NO_SUGGESTION if result.suggested_lr is None else 0)


def _exit_143_on_sigterm() -> dict[str, bool]:
    """Turn SIGTERM into an interrupt (so the sweep restores and writes its partial result); the dict says whether it came."""
    import signal

    terminated = {"seen": False}

    def on_sigterm(signum, frame) -> None:
        terminated["seen"] = True
        raise _Terminated()

    signal.signal(signal.SIGTERM, on_sigterm)
    return terminated


def _sweep_with_progress(loaded, live: bool):
    """run_spec, with the live table on stderr unless `live` is off (-q, --json, other ranks)."""
    from .runner import run_spec, title_of
    from .ui import LiveReporter

    if not live:
        return run_spec(loaded)
    with LiveReporter(_stderr(), title_of(loaded), loaded.spec.sweep.num_iter) as reporter:
        return run_spec(loaded, on_step=reporter.on_step, on_variant=reporter.on_variant, on_repeat=reporter.on_repeat)


def _print_outcome(outcome, json_out: bool, quiet: bool) -> None:
    """Rank 0's output: the JSON document, the bare lr (-q), or the summary; then the confidence warnings."""
    result = outcome.result
    if json_out:
        sys.stdout.write(outcome.json_text)
    elif quiet:
        if result.suggested_lr is not None:
            sys.stdout.write(f"{result.suggested_lr!r}\n")
    else:
        _print_summary(outcome)
    if result.suggested_lr is not None:
        from .suggest import LOW_CONFIDENCE

        for flag, note in zip(result.confidence.get("flags", []), result.confidence.get("notes", [])):
            _say(f"warning: {'low confidence' if flag in LOW_CONFIDENCE else 'note'} ({flag}): {note}")


def _exit_together(code: int) -> None:
    """End the run with `code`; under torchrun every rank first waits for the others, so all exit at once alike."""
    from .distributed import end_together

    if end_together(code):
        raise typer.Exit(code)


def _first_line(spec_path: Path, silent: bool):
    """What to say before torch loads (seconds on a small machine), so the screen is not blank; None when silent."""
    if silent:
        return None
    return lambda: _say(f"{spec_path}: loading torch to check names and build the run")


def _write_summary(option: Path | None, outcome, loaded, main_rank: bool) -> None:
    """Append the markdown summary for CI (rank 0 only); one that cannot be written is a warning, not a failed run."""
    from .runner import title_of
    from .summary import append_summary, markdown_summary, summary_path

    path = summary_path(option)
    if path is None or not main_rank:
        return
    text = markdown_summary(outcome.result, title_of(loaded), outcome.out_dir, len(outcome.document.get("runs") or []))
    try:
        append_summary(path, text)
    except OSError as exc:
        _say(f"warning: cannot append the summary to {path}: {exc.strerror or exc}; check --summary or $GITHUB_STEP_SUMMARY")


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
