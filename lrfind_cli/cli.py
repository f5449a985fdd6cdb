"""The `lrfind` command line: parses argv, calls the runner, maps errors to exit codes. No torch at import."""

from __future__ import annotations

import os
import sys
import traceback
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

SpecArg = Annotated[Path, typer.Argument(help="The YAML spec file.", show_default=False)]
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
    suggestion, 130 interrupted.

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


class _Terminated(KeyboardInterrupt):
    """SIGTERM, turned into an interrupt so the sweep stops, restores and writes its partial result."""


def _run(spec_path: Path, overrides: list[str], json_out: bool, quiet: bool, verbose: bool = False) -> None:
    from .distributed import env_rank
    from .spec import load_spec

    # Under torchrun, rank 0 alone draws and prints; the other ranks stay silent unless -v.
    main_rank = env_rank() == 0
    if not main_rank and not verbose:
        quiet, json_out = True, False

    loaded = load_spec(spec_path, overrides)
    terminated = {"seen": False}

    def on_sigterm(signum, frame) -> None:
        terminated["seen"] = True
        raise _Terminated()

    import signal

    signal.signal(signal.SIGTERM, on_sigterm)
    from .runner import Interrupted, run_spec, title_of
    from .ui import LiveReporter

    console = _stderr()
    try:
        if quiet or json_out:
            outcome = run_spec(loaded)
        else:
            with LiveReporter(console, title_of(loaded), loaded.spec.sweep.num_iter) as reporter:
                outcome = run_spec(loaded, on_step=reporter.on_step)
    except Interrupted as stop:
        if json_out and main_rank:
            sys.stdout.write(stop.outcome.json_text)
        _say(f"interrupted: partial result in {stop.outcome.out_dir}; the model was restored")
        raise typer.Exit(EXIT_TERMINATED if terminated["seen"] else EXIT_INTERRUPTED) from None
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
    if result.suggested_lr is None:
        _say(f"no usable suggestion: the loss never fell clearly ({result.stop_reason}); widen the range "
             "(sweep.start_lr / sweep.end_lr) or raise sweep.num_iter")
        raise typer.Exit(EXIT_NO_SUGGESTION)


def _print_summary(outcome) -> None:
    result = outcome.result
    out = sys.stdout
    out.write(f"suggested_lr: {result.suggested_lr:.4g} ({result.method})\n")
    for name, lr in result.suggestions.items():
        out.write(f"  {name:<9} {'-' if lr is None else format(lr, '.4g')}\n")
    best = result.best
    if best["lr"] is not None:
        out.write(f"best smoothed loss {best['loss']:.4g} at lr {best['lr']:.4g}\n")
    out.write(f"{result.status}: {result.stop_reason}\n")
    out.write(f"outputs: {outcome.out_dir}/ (result.json, history.csv, lr_find.png)\n")


def _guarded(verbose: bool, action) -> None:
    """Run a command body; turn errors into one clear line each on stderr and the contract's exit code."""
    debug = verbose or os.environ.get("LRFIND_DEBUG", "") not in ("", "0")
    try:
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
