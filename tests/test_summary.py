"""The markdown summary for CI pages: appended to $GITHUB_STEP_SUMMARY when it is set, or to --summary FILE."""

import json
from pathlib import Path

from lrfind_cli.results import RangeTestResult
from lrfind_cli.suggest import Confidence
from lrfind_cli.summary import markdown_summary
from tests.test_cli import SHORT, TINY, invoke


def _result(**changes) -> RangeTestResult:
    values = dict(lrs=[1e-4, 1e-2, 1.0], losses=[2.0, 1.0, 3.0], smoothed=[2.0, 1.5, 2.0], status="diverged",
                  stop_reason="smoothed loss 9 diverged from best 1.5 at step 2, lr 1", method="onecycle",
                  suggestions={"onecycle": 0.0123, "constant": 0.0041, "steepest": 0.02, "valley": None, "minimum": 0.001},
                  suggested_lr=0.0123, device="cpu", duration_s=1.0, start_lr=1e-4, end_lr=10.0, num_iter=12, mode="exp",
                  lr_range=[0.0041, 0.0123], confidence=Confidence(flags=("noisy",)))
    return RangeTestResult(**{**values, **changes})


def test_the_summary_has_the_suggestion_range_schedule_flags_methods_and_outputs():
    text = markdown_summary(_result(), "tiny_mlp · SGD · synthetic (batch 32)", Path("lrfind-out/tiny"))

    assert text == """### lrfind: tiny_mlp · SGD · synthetic (batch 32)

**Suggested learning rate: `0.0123`** (the max_lr of a one-cycle schedule)

| | |
|---|---|
| lr range (base_lr .. max_lr) | `0.0041` .. `0.0123` |
| schedule | onecycle |
| status | diverged: smoothed loss 9 diverged from best 1.5 at step 2, lr 1 |
| steps | 3 of 12, lr 0.0001 .. 10 (exp) |
| low-confidence flags | noisy |
| outputs | `lrfind-out/tiny/` (result.json, history.csv, lr_find.png) |

| method | suggested lr |
|---|---|
| onecycle (chosen) | 0.0123 |
| constant | 0.0041 |
| steepest | 0.02 |
| valley | - |
| minimum | 0.001 |

"""


def test_without_a_suggestion_the_summary_says_so():
    text = markdown_summary(_result(suggested_lr=None, lr_range=None, suggestions={"onecycle": None}, confidence=Confidence()),
                            "t", Path("out"))

    assert "**Suggested learning rate: none** (no usable suggestion; see the status below)" in text
    assert "lr range" not in text and "| low-confidence flags | none |" in text and "| onecycle | - |" in text


def test_the_finetune_rate_is_listed_only_when_there_is_one():
    from lrfind_cli.output import human_summary
    from lrfind_cli.runner import RunOutcome

    methods = {"onecycle": 0.0123, "constant": 0.0041, "finetune": None, "steepest": 0.02, "valley": None, "minimum": 0.001}
    plain = _result(suggestions=methods)
    trained = _result(suggestions={**methods, "finetune": 0.003}, method="finetune", suggested_lr=0.003)

    assert "finetune" not in markdown_summary(plain, "t", Path("out"))
    assert "| finetune (chosen) | 0.003 |" in markdown_summary(trained, "t", Path("out"))
    assert "| valley | - |" in markdown_summary(plain, "t", Path("out"))  # other methods are listed without a value
    assert "finetune" not in human_summary(RunOutcome(plain, Path("out"), {}, {}))
    assert "  finetune  0.003" in human_summary(RunOutcome(trained, Path("out"), {}, {}))


def test_run_appends_the_summary_to_github_step_summary(cli_runner, tmp_path):
    page = tmp_path / "summary.md"
    page.write_text("earlier step\n")
    out = tmp_path / "out"

    result = invoke(cli_runner, ["run", TINY, *SHORT, "--out", out, "-q"], env={"GITHUB_STEP_SUMMARY": str(page)})

    assert result.exit_code == 0, result.stderr
    doc = json.loads((out / "result.json").read_text())
    expected = markdown_summary(RangeTestResult.from_dict(doc), "tiny_mlp · SGD · synthetic (batch 32)", out)
    assert page.read_text() == "earlier step\n" + expected
    assert f"**Suggested learning rate: `{doc['suggested_lr']:.4g}`**" in expected
    assert float(result.stdout) == doc["suggested_lr"]  # stdout is unchanged


def test_summary_option_writes_where_it_says_and_wins_over_the_environment(cli_runner, tmp_path):
    page, env_page = tmp_path / "mine.md", tmp_path / "env.md"

    result = invoke(cli_runner, ["run", TINY, *SHORT, "--out", tmp_path / "out", "-q", "--summary", page],
                    env={"GITHUB_STEP_SUMMARY": str(env_page)})

    assert result.exit_code == 0
    assert page.read_text().startswith("### lrfind: tiny_mlp · SGD · synthetic (batch 32)\n")
    assert not env_page.exists()


def test_a_summary_that_cannot_be_written_is_a_warning_not_a_failed_run(cli_runner, tmp_path):
    result = invoke(cli_runner, ["run", TINY, *SHORT, "--out", tmp_path / "out", "-q", "--summary", tmp_path])

    assert result.exit_code == 0
    assert f"warning: cannot append the summary to {tmp_path}: Is a directory; check --summary or $GITHUB_STEP_SUMMARY" \
        in result.stderr.splitlines()
