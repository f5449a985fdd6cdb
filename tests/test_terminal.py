"""The terminal (issue 15): a first line before torch loads, ETA, one step numbering, clean help, refused flag
combinations, `--set` into lists, and spec errors reported without importing torch."""

import csv
import io
import json
import re
import sys

import pytest
from rich.console import Console

from lrfind_cli.ui import LiveReporter
from tests.test_cli import REPO, SHORT, TINY, error_lines, invoke, python

ETA = r"\d+:\d\d:\d\d"


@pytest.fixture(scope="module")
def plain(cli_runner, tmp_path_factory):
    """`lrfind run configs/tiny.yaml` for 20 steps (SHORT) without a terminal: the plain progress lines."""
    out = tmp_path_factory.mktemp("terminal") / "out"
    return invoke(cli_runner, ["run", TINY, *SHORT, "--out", out]), out


# ---- a first line before torch loads -----------------------------------------------------------------------------

# Records what reached stderr when `torch` is first imported, then runs the CLI to the end.
FIRST_LINE_PROBE = """
import io, sys
from lrfind_cli import cli
captured = io.StringIO()
seen = []

class Spy:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" and not seen:
            seen.append(captured.getvalue())
        return None

sys.meta_path.insert(0, Spy())
real, sys.stderr = sys.stderr, captured
sys.argv = ["lrfind", *sys.argv[1:]]
try:
    cli.main()
except SystemExit as exc:
    code = exc.code
sys.stderr = real
print(repr(seen[0] if seen else None))
print(code)
"""


def test_run_prints_a_first_line_on_stderr_before_torch_is_imported(tmp_path):
    proc = python("-c", FIRST_LINE_PROBE, "run", "configs/tiny.yaml", *SHORT, "--out", str(tmp_path / "out"))

    before_torch, code = proc.stdout.splitlines()[-2:]
    assert code == "0", proc.stderr
    assert before_torch == repr("configs/tiny.yaml: loading torch to check names and build the run\n")


def test_quiet_and_json_runs_print_no_first_line(cli_runner, tmp_path):
    result = invoke(cli_runner, ["run", TINY, *SHORT, "--out", tmp_path / "out", "-q"])

    assert result.exit_code == 0
    assert "loading torch" not in result.stderr


# ---- spec errors without torch -------------------------------------------------------------------------------------

NO_TORCH_PROBE = """
import sys
from lrfind_cli import cli
sys.argv = ["lrfind", *sys.argv[1:]]
try:
    cli.main()
except SystemExit as exc:
    print("exit", exc.code, "torch imported:", "torch" in sys.modules)
"""


@pytest.mark.parametrize(("command", "torch_imported"), [("run", False), ("validate", True)])
def test_key_and_type_errors_exit_2_and_run_stops_before_torch_is_imported(command, torch_imported, cli_write_spec):
    # run stops at once; validate goes on to check the names that are right (torch), so it reports everything in one pass
    spec = cli_write_spec("model: {name: tiny_mlp}\nsweep:\n  num_iters: 3\n  start_lr: fast\n")

    proc = python("-c", NO_TORCH_PROBE, command, str(spec))

    assert proc.stdout == f"exit 2 torch imported: {torch_imported}\n"
    assert error_lines(proc.stderr) == [
        f"error: {spec}:4 sweep.start_lr: Input should be a valid number, unable to parse string as a number (got 'fast') "
        "(write a number such as 1.0e-4)",
        f"error: {spec}:3 sweep.num_iters: unknown key 'num_iters' (did you mean 'num_iter'?)",
    ]


def test_validate_reports_a_key_typo_and_an_optimizer_kwarg_typo_in_one_pass(cli_write_spec):
    spec = cli_write_spec("model: {name: tiny_mlp}\noptimizer:\n  name: SGD\n  kwargs: {momentun: 0.9}\nsweep:\n  num_iters: 3\n")

    validated = python("-c", NO_TORCH_PROBE, "validate", str(spec))
    ran = python("-c", NO_TORCH_PROBE, "run", str(spec))

    assert validated.stdout == "exit 2 torch imported: True\n"
    assert error_lines(validated.stderr) == [
        f"error: {spec}:6 sweep.num_iters: unknown key 'num_iters' (did you mean 'num_iter'?)",
        f"error: {spec}:4 optimizer.kwargs.momentun: SGD does not accept the argument 'momentun' (did you mean 'momentum'?)",
    ]
    assert ran.stdout == "exit 2 torch imported: False\n"  # run stops at the key typo, before torch loads
    assert error_lines(ran.stderr) == [error_lines(validated.stderr)[0]]


def test_names_are_checked_once_the_structure_is_valid(cli_write_spec):
    spec = cli_write_spec("model: {name: tiny_mlp}\noptimizer: {name: Adamm}\n")

    proc = python("-c", NO_TORCH_PROBE, "validate", str(spec))

    assert proc.stdout == "exit 2 torch imported: True\n"
    assert error_lines(proc.stderr) == [
        f"error: {spec}:2 optimizer.name: unknown optimizer 'Adamm' (did you mean 'Adam' or 'RAdam' or 'NAdam'?)"]


# ---- progress: ETA and one step numbering ----------------------------------------------------------------------


def test_plain_progress_lines_number_steps_from_0_and_end_with_an_eta(plain):
    result, out = plain
    lines = [line for line in result.stderr.splitlines() if line.startswith("step ")]

    assert lines, result.stderr
    for line in lines:
        # 20 steps planned, more when the sweep went on past end_lr (it had not diverged there)
        match = re.fullmatch(rf"step +(\d+) \((\d+)/2\d\)  lr \S+  loss \S+  smoothed \S+  best \S+ @ \S+  eta (-:--:--|{ETA})", line)
        assert match, line
        step, done, eta = int(match.group(1)), int(match.group(2)), match.group(3)
        assert done == step + 1
        assert (eta == "-:--:--") == (step == 0)


def test_progress_steps_are_the_steps_of_history_csv_and_of_the_stop_reason(plain):
    result, out = plain
    with (out / "history.csv").open(newline="") as fh:
        rows = {int(r["step"]): float(r["lr"]) for r in csv.DictReader(fh)}
    doc = json.loads((out / "result.json").read_text())

    for line in result.stderr.splitlines():
        match = re.match(r"step +(\d+) \(\d+/2\d\)  lr (\S+)", line)
        if match:
            assert f"{rows[int(match.group(1))]:.3e}" == match.group(2)  # step N here is row step=N there
    last = re.findall(r"step +(\d+) \(", result.stderr)[-1]
    assert int(last) == max(rows) == doc["num_steps"] - 1
    if doc["status"] == "diverged":
        assert f"at step {max(rows)}," in doc["stop_reason"]


class Info:
    def __init__(self, step: int, num_iter: int = 5):
        self.step, self.num_iter = step, num_iter
        self.lr, self.loss, self.smoothed, self.best_loss, self.best_lr = 0.001 * (step + 1), 2.0, 2.0, 2.0, 0.001


def _terminal() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, force_terminal=True, width=120, color_system=None), buffer


def _shown(renderable) -> str:
    """What a terminal shows for one renderable (no escape codes)."""
    console, buffer = _terminal()
    console.print(renderable)
    return buffer.getvalue()


def test_the_live_table_numbers_steps_from_0_and_the_bar_shows_an_eta_while_it_runs():
    console, buffer = _terminal()

    with LiveReporter(console, "title", 5) as reporter:
        for step in range(3):
            reporter.on_step(Info(step))
        running = _shown(reporter.progress)

    text = buffer.getvalue()
    final = text[text.rindex("title"):]
    assert re.search(r"│ +0 │ 1\.000e-03 │", final) and re.search(r"│ +2 │ 3\.000e-03 │", final)
    assert not re.search(r"│ +3 │", final)
    assert re.search(rf"3/5 {ETA} eta {ETA}", running), running


@pytest.mark.parametrize(("steps", "word"), [(3, "stopped"), (5, "done")])
def test_the_bar_left_on_screen_after_the_sweep_shows_no_eta(steps, word):
    """A sweep that diverged at step 2 of 5 left "eta 0:00:30" frozen on the last frame; now the bar says it ended."""
    console, buffer = _terminal()

    with LiveReporter(console, "title", 5) as reporter:
        for step in range(steps):
            reporter.on_step(Info(step))

    text = buffer.getvalue()
    bar = text[text.rindex("sweep "):].splitlines()[0]
    assert re.search(rf"{steps}/5 {ETA} {word}$", bar.rstrip()), bar
    assert "eta" not in bar


def test_a_new_repeat_after_an_ended_sweep_shows_its_eta_again():
    console, _ = _terminal()
    with LiveReporter(console, "title", 5) as reporter:
        reporter.on_step(Info(0))
        reporter.progress.update(reporter.task, ended=True)
        reporter.on_repeat(1, 2)
        reporter.on_step(Info(0))
        reporter.on_step(Info(1))

        assert re.search(rf"2/5 {ETA} eta {ETA}", _shown(reporter.progress))


class RoundLosses(Info):
    def __init__(self, step: int, num_iter: int = 5):
        super().__init__(step, num_iter)
        self.loss, self.smoothed, self.best_loss = 1.0, 0.5, 2.5e-5


def test_losses_are_printed_with_four_significant_digits_trailing_zeros_kept():
    """`loss 1` for 1.000 read as a rounded or integer loss; every loss prints 4 significant digits."""
    plain = io.StringIO()
    with LiveReporter(Console(file=plain, force_terminal=False, width=200), "title", 5) as reporter:
        reporter.on_step(RoundLosses(0))
    console, buffer = _terminal()
    with LiveReporter(console, "title", 5) as reporter:
        reporter.on_step(RoundLosses(0))

    # best: the lowest point of the zero-lag curve of the losses seen (here the one loss, 1.000), not the EMA's
    assert "  loss 1.000  smoothed 0.5000  best 1.000 @ " in plain.getvalue()
    assert re.search(r"│ +0 │ 1\.000e-03 │ 1\.000 │ +0\.5000 │ 1\.000 @ 1\.00e-03 │", buffer.getvalue())


def test_the_live_table_is_drawn_a_few_times_a_second_not_at_every_step(monkeypatch):
    from lrfind_cli import ui

    clock = {"now": 0.0}
    monkeypatch.setattr(ui.time, "monotonic", lambda: clock["now"])  # steps of 1 ms; a frame costs 10 ms
    frames = []
    real = LiveReporter._render

    def render(self):
        frames.append(clock["now"])
        clock["now"] += 0.010
        return real(self)

    monkeypatch.setattr(LiveReporter, "_render", render)
    console = Console(file=io.StringIO(), force_terminal=True, width=120, color_system=None)
    with LiveReporter(console, "title", 2000) as reporter:
        for step in range(2000):
            reporter.on_step(Info(step, 2000))
            clock["now"] += 0.001
    # 2 s of steps, and a frame at most every max(1/8 s, 50 x its cost) = 0.5 s or more, then the last one at the end
    draws = [t for i, t in enumerate(frames) if i == 0 or t - frames[i - 1] > 0.015]  # rich may build a frame twice
    gaps = [b - a for a, b in zip(draws, draws[1:-1])]
    assert 4 <= len(draws) <= 7 and all(gap >= 0.5 for gap in gaps), draws
    assert len(frames) * 0.010 / clock["now"] < 0.05  # drawing took a few percent of the time, not a frame per step


def test_a_training_failure_names_the_step_as_history_csv_does():
    from lrfind_cli.failures import _step_text

    assert _step_text(2, 6) == "at step 2 (of 0-5)"  # the step TrainingFailed carries


# ---- help ---------------------------------------------------------------------------------------------------------


def test_run_help_has_no_type_noise_and_one_exit_code_per_line(cli_runner):
    result = invoke(cli_runner, ["run", "--help"])

    assert result.exit_code == 0
    assert "<bool>" not in result.stdout and "<list[str]>" not in result.stdout and "<str>" not in result.stdout
    lines = result.stdout.splitlines()
    for line in ["  --set KEY=VALUE  Override a spec key, e.g. --set sweep.num_iter=50 or --set",
                 "  --out DIR        Output directory (default: lrfind-out/<spec stem>).",
                 "  --device DEVICE  auto, cpu, cuda, cuda:N or mps.",
                 "  --json           Print result.json on stdout and nothing else (not with -q).",
                 "  -q, --quiet      No live output; print only the suggested lr (not with",
                 "  Exit codes:",
                 "    0    a suggestion was found",
                 "    1    runtime failure (missing data, bad checkpoint, model and loss misfit)",
                 "    2    usage or spec error (nothing was trained)",
                 "    3    finished without a usable suggestion (result.json is still written)",
                 "    130  interrupted by Ctrl-C, 143 by SIGTERM (partial result, model restored)"]:
        assert line in lines, line
    assert all(len(line) <= 80 for line in lines)  # nothing wraps in an 80-column terminal


def test_help_through_a_pipe_keeps_the_exit_codes_on_their_lines():
    proc = python("-m", "lrfind_cli", "run", "--help")

    assert proc.returncode == 0
    assert "\n    2    usage or spec error (nothing was trained)\n" in proc.stdout
    assert "<bool>" not in proc.stdout


# ---- refused combinations: exit 2 ---------------------------------------------------------------------------------


def test_json_with_quiet_exits_2_before_anything_runs(cli_runner, tmp_path):
    result = invoke(cli_runner, ["run", TINY, "--json", "-q", "--out", tmp_path / "out"])

    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == ("error: --json and --quiet: --json prints the whole result on stdout, -q only the learning rate "
                             "(use one of them)\n")
    assert not (tmp_path / "out").exists()


def test_out_pointing_at_a_file_is_a_usage_error(cli_runner, tmp_path):
    target = tmp_path / "taken"
    target.write_text("keep me")

    result = invoke(cli_runner, ["run", TINY, *SHORT, "--out", target])

    assert result.exit_code == 2
    assert error_lines(result.stderr) == [f"error: output.dir: {str(target)!r} exists and is not a directory "
                                          "(choose another path with --out)"]
    assert target.read_text() == "keep me"


# ---- --set: list items, and errors that name the override ----------------------------------------------------------

GROUPS = """
model: {name: tiny_mlp, kwargs: {in_features: 48, num_classes: 4}}
data:
  kwargs: {num_samples: 64, num_classes: 4, channels: 3, height: 4, width: 4}
  batch_size: 16
optimizer:
  param_groups:
    - {params: "1.*", lr_scale: 0.1}
sweep: {num_iter: 6, start_lr: 1.0e-4}
"""


def test_set_reaches_a_list_item_by_index(cli_runner, cli_write_spec, tmp_path):
    spec = cli_write_spec(GROUPS)

    result = invoke(cli_runner, ["run", spec, "--set", "optimizer.param_groups.0.lr_scale=0.5", "--out", tmp_path / "out", "--json"])

    assert result.exit_code in (0, 3), result.stderr
    doc = json.loads(result.stdout)
    assert doc["spec"]["optimizer"]["param_groups"][0]["lr_scale"] == 0.5
    lrs = doc["history"]["group_lrs"]
    assert all(abs(group[0] / group[1] - 0.5) < 1e-9 for group in lrs)


@pytest.mark.parametrize(("override", "line"), [
    ("sweep.start_lr=20", "error: --set sweep.start_lr=20 (sweep): start_lr (20) must be below end_lr (10)"),
    ("optimizer.param_groups.0.lr_scale=-1", "error: --set optimizer.param_groups.0.lr_scale=-1 "
     "(optimizer.param_groups.0.lr_scale): Input should be greater than 0 (got -1) (use a larger value)"),
    ("optimizer.param_groups.3.lr_scale=1", "error: --set optimizer.param_groups.3.lr_scale=1: optimizer.param_groups is a "
     "list of 1 items, so '3' is not an index in it (use an index from 0 to 0)"),
    ("optimizer.kwargs.momentun=0.9", "error: --set optimizer.kwargs.momentun=0.9 (optimizer.kwargs.momentun): SGD does not "
     "accept the argument 'momentun' (did you mean 'momentum'?)"),
])
def test_set_errors_name_the_override_never_a_line_of_the_file(cli_runner, cli_write_spec, override, line):
    spec = cli_write_spec(GROUPS)

    result = invoke(cli_runner, ["validate", spec, "--set", override])

    assert result.exit_code == 2
    assert error_lines(result.stderr) == [line]


def test_set_into_a_list_the_spec_does_not_have_says_so(cli_runner):
    result = invoke(cli_runner, ["validate", TINY, "--set", "optimizer.param_groups.0.lr_scale=0.5"])

    assert result.exit_code == 2
    assert error_lines(result.stderr) == [
        "error: --set optimizer.param_groups.0.lr_scale=0.5: optimizer.param_groups is not set, so it has no item 0 "
        "(set the whole list in the spec file or with --set optimizer.param_groups=[...])"]


# ---- configs from any directory --------------------------------------------------------------------------------


def test_example_configs_name_nothing_from_tests():
    for path in sorted((REPO / "configs").glob("*.yaml")):
        assert "tests." not in path.read_text(encoding="utf-8"), path


def test_tiny_config_runs_from_another_directory(tmp_path):
    proc = python("-m", "lrfind_cli", "run", str(TINY), *SHORT, "--out", str(tmp_path / "out"), "-q", cwd=tmp_path)

    assert proc.returncode == 0, proc.stderr
    assert float(proc.stdout) > 0


def test_an_import_path_may_name_a_module_beside_the_spec(tmp_path, cli_runner):
    here = tmp_path / "project"
    here.mkdir()
    (here / "beside_spec_model.py").write_text("from lrfind_cli.models import tiny_mlp as build\n")
    (here / "spec.yaml").write_text("model: {name: 'beside_spec_model:build'}\n")

    try:
        result = invoke(cli_runner, ["validate", here / "spec.yaml"], cwd=tmp_path)
    finally:
        sys.modules.pop("beside_spec_model", None)

    assert result.exit_code == 0, result.stderr
    assert result.stderr == f"{here / 'spec.yaml'}: valid (beside_spec_model:build, SGD, synthetic)\n"


def test_top_level_help_lists_examples_and_exit_codes_on_lines_that_fit_80_columns(cli_runner):
    result = invoke(cli_runner, ["--help"])

    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert "    lrfind ls optimizers" in lines
    assert "  Exit codes: 0 suggestion, 1 runtime failure, 2 usage or spec error," in lines
    assert "  3 no usable suggestion, 130/143 interrupted (see `lrfind run --help`)." in lines
    assert all(len(line) <= 80 for line in lines)
