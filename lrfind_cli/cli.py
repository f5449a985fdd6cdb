"""The `lrfind` command line: parses argv and calls; what it prints goes through `Output`. No torch at import."""

from __future__ import annotations

import enum
import os
import traceback
import warnings
from pathlib import Path
from typing import Annotated, Optional

import typer

from . import __version__
from .errors import EXIT_NO_SUGGESTION, Interrupted, LrfindError, Problem, SpecError, ending
from .output import Output

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
    from .distributed import env_rank

    # Under torchrun, rank 0 alone draws and prints; the other ranks stay silent unless -v.
    output = Output.resolve(json_out, quiet, main=env_rank() == 0, verbose=verbose)

    def go() -> None:
        if json_out and quiet:
            raise SpecError(Problem("--json and --quiet", "--json prints the whole result on stdout, -q only the learning rate",
                                    "use one of them"))
        _run(spec, overrides, output, summary)

    _guarded(output, verbose, go)


@app.command()
def validate(spec: SpecArg, set_: SetOpt = None, verbose: VerboseOpt = False) -> None:
    """Check a spec without training: keys, types, names, kwargs against each target's signature, and what run
    would refuse once it builds (param_groups globs, a stream's data.shuffle); every problem in one pass.

    Examples:

      lrfind validate configs/resnet.yaml

      lrfind validate spec.yaml --set optimizer.name=AdamW
    """

    output = Output()

    def check() -> None:
        from .spec import load_spec

        loaded = load_spec(spec, list(set_ or []), complete=True)
        output.say(f"{spec}: valid ({loaded.spec.model.name}, {loaded.spec.optimizer.name}, {loaded.spec.data.name})")

    _guarded(output, verbose, check)


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

    output = Output()

    def show() -> None:
        from .registry import registry

        names = registry(kind.value).list(pattern)
        if names:
            output.names(names)
        else:
            output.say(f"no {kind.value} match {pattern!r}; run `lrfind ls {kind.value}` for all of them")

    _guarded(output, verbose, show)


@app.command()
def schema() -> None:
    """Print the spec's JSON Schema (for editor completion and checks of spec files).

    Save it beside your specs and point your editor at it with a first line such as
    `# yaml-language-server: $schema=./lrfind.schema.json` (the YAML extension of VS Code and others).

    Examples:

      lrfind schema > lrfind.schema.json
    """
    from .schema import schema_text

    Output().data(schema_text())


@app.command()
def compare(
    results: Annotated[list[Path], typer.Argument(help="result.json files (or directories holding one).", metavar="RESULT",
                                                  show_default=False)],
    out: Annotated[Optional[Path], typer.Option("--out", metavar="FILE",  # noqa: UP045
                                                help="Write the overlaid plot to FILE (a PNG); without it no file is written.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the table as JSON on stdout.")] = False,
    verbose: VerboseOpt = False,
) -> None:
    """Print the suggestions of saved results (other specs, machines or days) side by side; with --out, overlay their curves.

    Nothing is written unless --out names the plot's file.

    Examples:

      lrfind compare lrfind-out/resnet lrfind-out/resnet-adamw --out compare.png

      lrfind compare a/result.json b/result.json --json
    """
    output = Output.resolve(json_out)

    def overlay() -> None:
        from .compare import compare_results

        output.compare(compare_results(results, out))
        if out is not None:
            output.say(f"wrote {out}")

    _guarded(output, verbose, overlay)


def _run(spec_path: Path, overrides: list[str], output: Output, summary: Path | None = None) -> None:
    from .spec import load_spec

    terminated = _exit_143_on_sigterm()  # before the (slow) loading, so an early SIGTERM also exits 143
    # Keys and types are checked without torch; the line below shows before torch takes seconds to load.
    loaded = load_spec(spec_path, overrides, on_targets=output.first_line(spec_path))
    try:
        outcome = _sweep_with_progress(loaded, output)
    except KeyboardInterrupt as stop:
        partial = getattr(stop, "outcome", None)
        if partial is not None:
            output.partial(partial)
            output.markdown(summary, partial, loaded)
        if terminated["seen"] or partial is not None:
            raise Interrupted(outcome=partial, terminated=terminated["seen"]) from None
        raise
    except LrfindError as exc:
        exc.where = loaded.written_at(exc.key) if exc.key else ""
        raise
    output.markdown(summary, outcome, loaded)
    output.outcome(outcome)
    result = outcome.result
    if result.suggested_lr is None:
        from .diagnosis import no_suggestion

        output.say(no_suggestion(result, loaded.spec.precision))
    _exit_together(EXIT_NO_SUGGESTION if result.suggested_lr is None else 0)


def _exit_143_on_sigterm() -> dict[str, bool]:
    """Turn SIGTERM into an interrupt (so the sweep restores and writes its partial result); the dict says whether it came."""
    import signal

    terminated = {"seen": False}

    def on_sigterm(signum, frame) -> None:
        terminated["seen"] = True
        raise Interrupted(terminated=True)

    signal.signal(signal.SIGTERM, on_sigterm)
    return terminated


def _sweep_with_progress(loaded, output: Output):
    """run_spec, with the live table on stderr in human mode."""
    from .runner import run_spec, title_of
    from .ui import LiveReporter

    if not output.live:
        return run_spec(loaded)
    with LiveReporter(output.console, title_of(loaded), loaded.spec.sweep.num_iter) as reporter:
        return run_spec(loaded, on_step=reporter.on_step, on_variant=reporter.on_variant, on_repeat=reporter.on_repeat,
                        on_snapshot=output.snapshot)


def _exit_together(code: int) -> None:
    """End the run with `code`; under torchrun every rank first waits for the others, so all exit at once alike."""
    from .distributed import end_together

    if end_together(code):
        raise typer.Exit(code)


def _guarded(output: Output, verbose: bool, action) -> None:
    """Run a command body; an error ends it with the lines and the exit code of the one error table (`errors.ending`)."""
    debug = verbose or os.environ.get("LRFIND_DEBUG", "") not in ("", "0")
    try:
        with warnings.catch_warnings():
            if not debug:
                warnings.showwarning = output.python_warning  # a library's warning: one line, not its source excerpt
            action()
    except typer.Exit:
        raise
    except (Exception, KeyboardInterrupt) as exc:
        from .distributed import shared_failure

        end = ending(exc)
        if debug and end.traceback:
            traceback.print_exc()  # -v shows the traceback; the exit code stays the contract's
        code, why = shared_failure(end.code)  # under torchrun: the first failing rank's code, on every rank
        output.error(end)
        if why:
            output.say(f"error: {why}")
        raise typer.Exit(code) from None


def _yaml_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def main() -> None:
    app(prog_name="lrfind")


if __name__ == "__main__":
    main()
