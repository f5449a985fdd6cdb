"""The command-line contract (DESIGN.md sections 3 and 4): streams, exit codes, error lines and the output files."""

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lrfind_cli import __version__
from lrfind_cli.cli import app

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "tiny.yaml"
SHORT = ["--set", "sweep.num_iter=20"]  # tiny.yaml at 20 steps (the rule needs 20 points): about a second on a CPU
CONTRACT_KEYS = {
    "schema_version", "status", "suggested_lr", "method", "suggestions", "history", "best",
    "num_steps", "stop_reason", "device", "duration_s", "spec", "versions",
}
ESC = "\x1b"
# Each step sees the same 32 samples and lr <= 1e-10 cannot move float32 weights: the loss is flat.
FLAT_LOSS = ["--set", "sweep.num_iter=20", "--set", "sweep.start_lr=1e-12", "--set", "sweep.end_lr=1e-10",
             "--set", "data.kwargs.num_samples=32", "--set", "data.shuffle=false"]


def invoke(runner, args, *, cwd=REPO, env=None):
    """Run the app in-process from `cwd`, leaving the working directory and sys.path as they were."""
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(cwd)
        mp.setattr(sys, "path", list(sys.path))
        return runner.invoke(app, [str(a) for a in args], env=env)


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("error:")]


def assert_no_traceback(result) -> None:
    assert "Traceback" not in result.stdout and "Traceback" not in result.stderr
    assert isinstance(result.exception, (SystemExit, type(None))), repr(result.exception)


def python(*args, cwd=REPO, timeout=120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("LRFIND_DEBUG", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def reject_constant(token: str):
    raise AssertionError(f"non-finite number {token} in JSON")


def load_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"), parse_constant=reject_constant)


# ---- runs shared by several tests (one sweep each) ------------------------------------------------


@pytest.fixture(scope="module")
def plain_run(cli_runner, tmp_path_factory):
    """`lrfind run configs/tiny.yaml --set sweep.num_iter=20 --out DIR` with the live (non-terminal) progress."""
    out = tmp_path_factory.mktemp("plain") / "out"
    return invoke(cli_runner, ["run", TINY, *SHORT, "--out", out]), out


@pytest.fixture(scope="module")
def json_run(cli_runner, tmp_path_factory):
    out = tmp_path_factory.mktemp("json") / "out"
    return invoke(cli_runner, ["run", TINY, *SHORT, "--out", out, "--json"]), out


@pytest.fixture(scope="module")
def quiet_run(cli_runner, tmp_path_factory):
    """`-q` without --out, run from an empty directory: outputs go to lrfind-out/<spec stem> there."""
    cwd = tmp_path_factory.mktemp("quiet")
    return invoke(cli_runner, ["run", TINY, *SHORT, "-q"], cwd=cwd), cwd / "lrfind-out" / "tiny"


# ---- help and version -------------------------------------------------------------------------------


def test_version_prints_the_version_on_stdout(cli_runner):
    result = invoke(cli_runner, ["--version"])

    assert result.exit_code == 0
    assert result.stdout == f"lrfind {__version__}\n"
    assert result.stderr == ""


def test_help_exits_zero_and_lists_the_commands(cli_runner):
    result = invoke(cli_runner, ["--help"])

    assert result.exit_code == 0
    assert "run" in result.stdout and "validate" in result.stdout


def test_run_help_documents_the_options_and_exit_codes(cli_runner):
    result = invoke(cli_runner, ["run", "--help"])

    assert result.exit_code == 0
    for option in ("--set", "--out", "--device", "--json", "--quiet"):
        assert option in result.stdout


def test_help_and_version_do_not_import_torch():
    code = (
        "import sys\n"
        "from lrfind_cli import cli\n"
        "for argv in (['--help'], ['--version'], ['run', '--help'], ['validate', '--help']):\n"
        "    sys.argv = ['lrfind', *argv]\n"
        "    try:\n"
        "        cli.main()\n"
        "    except SystemExit as exc:\n"
        "        assert exc.code in (0, None), (argv, exc.code)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    proc = python("-c", code)

    assert proc.returncode == 0, proc.stderr
    assert f"lrfind {__version__}" in proc.stdout


def test_python_dash_m_prints_the_version():
    proc = python("-m", "lrfind_cli", "--version")

    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"lrfind {__version__}"


# ---- a successful run ---------------------------------------------------------------------------------


def test_run_exits_zero_and_writes_the_three_outputs(plain_run):
    result, out = plain_run

    assert result.exit_code == 0, result.stderr
    assert {p.name for p in out.iterdir() if not p.name.startswith(".")} >= {"result.json", "history.csv", "lr_find.png"}
    assert (out / "lr_find.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]  # atomic writes leave no temp files


def test_result_json_has_the_contract_keys(plain_run):
    doc = load_json(plain_run[1] / "result.json")

    assert set(doc) >= CONTRACT_KEYS
    assert doc["status"] in ("completed", "diverged")
    assert set(doc["history"]) >= {"lr", "loss", "smoothed"}
    assert set(doc["best"]) >= {"lr", "loss"}
    assert doc["device"] == "cpu"
    assert doc["duration_s"] >= 0
    assert doc["versions"]["lrfind"] == __version__
    assert isinstance(doc["stop_reason"], str) and doc["stop_reason"]


def test_result_json_spec_is_the_resolved_spec_with_overrides(plain_run):
    result, out = plain_run
    spec = load_json(out / "result.json")["spec"]

    assert spec["sweep"]["num_iter"] == 20
    assert spec["sweep"]["start_lr"] == 1e-4
    assert spec["model"]["name"] == "tiny_mlp"  # built-in since issue 15, so the config runs from any directory
    assert spec["output"]["dir"] == str(out)
    assert spec["suggest"]["method"] == "auto"  # a default filled in


def test_history_starts_at_start_lr_rises_strictly_and_has_equal_lengths(plain_run):
    doc = load_json(plain_run[1] / "result.json")
    history = doc["history"]
    lrs = history["lr"]

    assert lrs[0] == 1e-4
    assert all(a < b for a, b in zip(lrs, lrs[1:]))
    assert len(lrs) == len(history["loss"]) == len(history["smoothed"]) == doc["num_steps"]
    extended = doc["sweep"]["extended_steps"]  # steps past end_lr: the loss had not started to diverge there
    assert 2 <= doc["num_steps"] <= 20 + extended and extended == max(0, doc["num_steps"] - 20)
    if doc["num_steps"] >= 20:
        assert math.isclose(lrs[19], 10.0)
    if doc["status"] == "completed" and not extended:
        assert doc["num_steps"] == 20 and math.isclose(lrs[-1], 10.0)


def test_suggested_lr_is_finite_within_the_swept_range_and_named_by_method(plain_run):
    doc = load_json(plain_run[1] / "result.json")
    lr = doc["suggested_lr"]

    assert isinstance(lr, float) and math.isfinite(lr)
    assert 1e-4 <= lr <= 10.0
    assert doc["suggestions"][doc["method"]] == lr


def test_result_json_contains_no_nan_or_infinity_tokens(plain_run):
    text = (plain_run[1] / "result.json").read_text(encoding="utf-8")

    for token in ("NaN", "Infinity"):
        assert token not in text


def test_history_csv_has_one_row_per_step_matching_result_json(plain_run):
    out = plain_run[1]
    doc = load_json(out / "result.json")
    with (out / "history.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))

    assert list(rows[0]) == ["step", "lr", "loss", "smoothed"]
    assert [int(r["step"]) for r in rows] == list(range(doc["num_steps"]))
    assert [float(r["lr"]) for r in rows] == doc["history"]["lr"]


def test_run_prints_the_summary_on_stdout_and_progress_on_stderr(plain_run):
    result, out = plain_run
    doc = load_json(out / "result.json")

    assert f"suggested_lr: {doc['suggested_lr']:.4g}" in result.stdout
    assert "20/20" not in result.stdout
    assert "step" in result.stderr and "20/20" in result.stderr


def test_stderr_has_no_ansi_escape_codes_without_a_terminal(plain_run):
    result, _ = plain_run

    assert result.stderr  # there is progress output to check
    assert ESC not in result.stderr
    assert ESC not in result.stdout


def test_run_through_a_pipe_prints_plain_text(tmp_path):
    proc = python("-m", "lrfind_cli", "run", str(TINY), *SHORT, "--out", str(tmp_path / "out"))

    assert proc.returncode == 0, proc.stderr
    assert ESC not in proc.stderr and ESC not in proc.stdout
    assert proc.stdout.startswith("suggested_lr: ")
    assert "Traceback" not in proc.stderr


def test_json_stdout_is_exactly_the_result_json_document(json_run):
    result, out = json_run

    assert result.exit_code == 0, result.stderr
    on_stdout = json.loads(result.stdout, parse_constant=reject_constant)  # the whole of stdout is one document
    assert on_stdout == load_json(out / "result.json")
    assert result.stdout.strip().startswith("{") and result.stdout.strip().endswith("}")


def test_quiet_stdout_is_one_line_with_the_suggested_lr(quiet_run):
    result, out = quiet_run

    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    assert float(lines[0]) == load_json(out / "result.json")["suggested_lr"]


def test_quiet_has_no_live_output_on_stderr(quiet_run):
    result, out = quiet_run

    # only the low-confidence warnings the result records, one line each
    flags = load_json(out / "result.json")["confidence"]["flags"]
    lines = result.stderr.splitlines()
    assert len(lines) == len(flags)
    from lrfind_cli.suggest import LOW_CONFIDENCE

    kinds = ["low confidence" if flag in LOW_CONFIDENCE else "note" for flag in flags]
    assert all(line.startswith(f"warning: {kind} ({flag}): ") for line, flag, kind in zip(lines, flags, kinds))


def test_default_output_dir_is_lrfind_out_slash_spec_stem(quiet_run):
    _, out = quiet_run

    assert (out / "result.json").is_file() and (out / "history.csv").is_file() and (out / "lr_find.png").is_file()


# ---- validate ---------------------------------------------------------------------------------------------


def test_validate_a_good_spec_exits_zero_with_nothing_on_stdout(cli_runner):
    result = invoke(cli_runner, ["validate", TINY])

    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert "valid" in result.stderr


def test_validate_applies_overrides(cli_runner):
    result = invoke(cli_runner, ["validate", TINY, "--set", "optimizer.name=AdamW", "--set", "optimizer.kwargs={}"])

    assert result.exit_code == 0, result.stderr
    assert "AdamW" in result.stderr


@pytest.fixture
def misspelled_spec(cli_write_spec):
    return cli_write_spec("""
    model:
      name: 'tests.models:tiny_mlp'
    sweep:
      start_lr: 1.0e-4
      num_iters: 10
    """)


def test_validate_misspelled_key_exits_2_naming_key_and_line_without_traceback(cli_runner, misspelled_spec):
    result = invoke(cli_runner, ["validate", misspelled_spec])

    assert result.exit_code == 2
    assert error_lines(result.stderr) == [
        f"error: {misspelled_spec}:5 sweep.num_iters: unknown key 'num_iters' (did you mean 'num_iter'?)"
    ]
    assert result.stdout == ""
    assert_no_traceback(result)


def test_every_spec_problem_is_its_own_error_line(cli_runner, cli_write_spec):
    path = cli_write_spec("model: {name: 'tests.models:tiny_mlp'}\ndevic: cpu\nsweep: {num_iters: 3}\noptimizer: {name: Adamm}\n")

    result = invoke(cli_runner, ["validate", path])

    assert result.exit_code == 2
    lines = error_lines(result.stderr)
    assert len(lines) == 3
    assert any(f"{path}:2 devic" in line for line in lines)
    assert any(f"{path}:3 sweep.num_iters" in line for line in lines)
    assert any(f"{path}:4 optimizer.name" in line for line in lines)


def test_validate_missing_spec_file_exits_2(cli_runner, tmp_path):
    result = invoke(cli_runner, ["validate", tmp_path / "missing.yaml"])

    assert result.exit_code == 2
    assert "not found" in result.stderr
    assert_no_traceback(result)


# ---- usage and spec errors in run: exit 2, nothing trained -------------------------------------------------


def test_run_with_an_unknown_optimizer_exits_2_before_training(cli_runner, tmp_path):
    out = tmp_path / "out"

    result = invoke(cli_runner, ["run", TINY, *SHORT, "--set", "optimizer.name=Adamm", "--out", out])

    assert result.exit_code == 2
    assert "unknown optimizer 'Adamm'" in result.stderr and "did you mean 'Adam'" in result.stderr
    assert not out.exists()
    assert_no_traceback(result)


def test_set_without_equals_sign_exits_2(cli_runner, tmp_path):
    out = tmp_path / "out"

    result = invoke(cli_runner, ["run", TINY, "--set", "sweep.num_iter", "--out", out])

    assert result.exit_code == 2
    assert error_lines(result.stderr) and "KEY=VALUE" in result.stderr
    assert not out.exists()
    assert_no_traceback(result)


def test_device_option_outside_the_contract_exits_2(cli_runner, tmp_path):
    result = invoke(cli_runner, ["run", TINY, *SHORT, "--device", "gpu", "--out", tmp_path / "out"])

    assert result.exit_code == 2
    assert "device" in result.stderr
    assert_no_traceback(result)


# ---- runtime failures: exit 1, one line --------------------------------------------------------------------


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_device_cuda_without_cuda_exits_1_with_one_line_naming_cuda(cli_runner, tmp_path):
    result = invoke(cli_runner, ["run", TINY, *SHORT, "--device", "cuda", "--out", tmp_path / "out"])

    assert result.exit_code == 1
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and "CUDA" in lines[0]
    assert_no_traceback(result)


def test_out_pointing_at_an_existing_file_exits_2_and_leaves_the_file_alone(cli_runner, tmp_path):
    # An --out that is a file is a usage error (issue 15), refused before any training.
    target = tmp_path / "taken"
    target.write_text("keep me")

    result = invoke(cli_runner, ["run", TINY, *SHORT, "--out", target])

    assert result.exit_code == 2
    lines = error_lines(result.stderr)
    assert len(lines) == 1
    assert str(target) in lines[0] and "not a directory" in lines[0]
    assert target.read_text() == "keep me"
    assert_no_traceback(result)


def test_model_output_that_does_not_fit_the_loss_exits_1_with_one_line(cli_runner, tmp_path):
    # tiny_mlp with 3 outputs, data with 4 classes: CrossEntropyLoss gets a target out of range.
    result = invoke(cli_runner, ["run", TINY, *SHORT, "--set", "model.kwargs.num_classes=3", "--out", tmp_path / "out"])

    assert result.exit_code == 1
    lines = error_lines(result.stderr)
    assert len(lines) == 1
    assert "num_classes" in lines[0] and "CrossEntropyLoss" in lines[0]
    assert_no_traceback(result)


# ---- exit 3: finished without a usable suggestion ------------------------------------------------------------


def test_flat_loss_exits_3_with_result_json_written_and_suggested_lr_null(cli_runner, tmp_path):
    out = tmp_path / "out"

    result = invoke(cli_runner, ["run", TINY, *FLAT_LOSS, "--out", out, "--json"])

    assert result.exit_code == 3, result.stderr
    doc = load_json(out / "result.json")
    assert doc["suggested_lr"] is None
    # flat at end_lr, so the sweep went on (19 steps: 2 decades at the schedule's rate), flat still
    assert doc["status"] == "completed" and doc["num_steps"] == 20 + 19 == 20 + doc["sweep"]["extended_steps"]
    assert doc["confidence"]["flags"] == ["extended", "flat_curve"]
    assert json.loads(result.stdout) == doc
    assert "no usable suggestion" in result.stderr
    assert_no_traceback(result)


def test_flat_loss_with_quiet_prints_no_learning_rate(cli_runner, tmp_path):
    result = invoke(cli_runner, ["run", TINY, *FLAT_LOSS, "--out", tmp_path / "out", "-q"])

    assert result.exit_code == 3
    assert result.stdout == ""


def test_learning_rates_too_small_to_learn_exit_3(cli_runner, tmp_path):
    out = tmp_path / "out"

    result = invoke(cli_runner, ["run", TINY, *SHORT, "--set", "sweep.start_lr=1e-12", "--set", "sweep.end_lr=1e-10",
                                 "--out", out, "-q"])

    assert load_json(out / "result.json")["suggested_lr"] is None
    assert result.exit_code == 3


# ---- tracebacks only on request --------------------------------------------------------------------------


@pytest.fixture
def broken_loader(monkeypatch):
    """Make loading a spec fail with an unexpected (internal) exception."""

    def explode(*args, **kwargs):
        raise ZeroDivisionError("internal slip")

    monkeypatch.setattr("lrfind_cli.spec.load_spec", explode)


def test_internal_error_is_one_line_without_traceback_by_default(cli_runner, broken_loader):
    result = invoke(cli_runner, ["validate", TINY])

    assert result.exit_code == 1
    assert error_lines(result.stderr) == [
        "error: unexpected ZeroDivisionError: internal slip (run with -v or LRFIND_DEBUG=1 for the traceback)"
    ]
    assert_no_traceback(result)


@pytest.mark.parametrize(("flags", "env"), [(["-v"], None), (["--verbose"], None), ([], {"LRFIND_DEBUG": "1"})],
                         ids=["-v", "--verbose", "LRFIND_DEBUG"])
def test_internal_error_shows_the_traceback_when_asked(cli_runner, broken_loader, flags, env):
    result = invoke(cli_runner, ["validate", TINY, *flags], env=env)

    assert result.exit_code == 1
    assert "Traceback" in result.stderr and "ZeroDivisionError: internal slip" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(("flags", "env"), [(["-v"], None), ([], {"LRFIND_DEBUG": "1"})], ids=["-v", "LRFIND_DEBUG"])
def test_spec_error_with_traceback_asked_for_keeps_exit_code_2(cli_runner, misspelled_spec, flags, env):
    result = invoke(cli_runner, ["validate", misspelled_spec, *flags], env=env)

    assert result.exit_code == 2
    assert "Traceback" in result.stderr
    assert f"error: {misspelled_spec}:5 sweep.num_iters" in result.stderr


def test_lrfind_debug_zero_means_off(cli_runner, misspelled_spec):
    result = invoke(cli_runner, ["validate", misspelled_spec], env={"LRFIND_DEBUG": "0"})

    assert result.exit_code == 2
    assert_no_traceback(result)



@pytest.mark.parametrize("key", ["seed", "data.batch_size", "sweep.num_iter", "sweep.repeats", "performance.sync_every"])
def test_true_or_false_is_not_a_whole_number(cli_runner, key):
    result = cli_runner.invoke(app, ["validate", "configs/tiny.yaml", "--set", f"{key}=true"])
    assert result.exit_code == 2
    assert f"({key}): expected a whole number, got true" in result.stderr


def test_a_classic_method_on_a_flat_curve_gives_no_suggestion(cli_runner, tmp_path):
    result = cli_runner.invoke(app, ["run", "configs/tiny.yaml", "-q", "--set", "suggest.method=valley", "--set",
                                     "sweep.start_lr=1e-7", "--set", "sweep.end_lr=1e-6", "--out", str(tmp_path)])
    assert result.exit_code == 3, result.stderr
    assert result.stdout == "" and "no usable suggestion" in result.stderr
    doc = json.loads((tmp_path / "result.json").read_text())
    assert doc["suggested_lr"] is None and doc["method"] == "valley"
