"""Grids of range tests, validation-loss mode and `lrfind compare`."""

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lrfind_cli.cli import app
from lrfind_cli.plot import legend_labels
from lrfind_cli.results import RangeTestResult

REPO = Path(__file__).resolve().parent.parent
TINY = "configs/tiny.yaml"
WD_GRID = "grid={optimizer.kwargs.weight_decay: [0, 1.0e-4, 1.0e-3]}"


def run(*args: str):
    result = CliRunner().invoke(app, ["run", *args])
    return result


def test_weight_decay_grid_gives_one_result_with_three_runs_and_one_plot_with_three_curves(tmp_path):
    result = run(TINY, "--set", WD_GRID, "--set", "sweep.num_iter=20", "--out", str(tmp_path), "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert [r["overrides"] for r in doc["runs"]] == [{"optimizer.kwargs.weight_decay": wd} for wd in (0, 1.0e-4, 1.0e-3)]
    for run_doc in doc["runs"]:
        assert run_doc["suggested_lr"] is not None and run_doc["num_steps"] == 20 + run_doc["sweep"]["extended_steps"]
        assert set(run_doc) >= {"suggestions", "best", "stop_reason", "history", "status"}
    best = doc["best_run"]
    assert doc["suggested_lr"] == doc["runs"][best["index"]]["suggested_lr"]
    assert best["criterion"] == "lowest minimum of the zero-lag training loss (the curve the rule reads) among runs with a suggestion"
    assert doc["runs"][best["index"]]["best"]["loss"] == min(r["best"]["loss"] for r in doc["runs"] if r["suggested_lr"])
    assert (tmp_path / "lr_find.png").read_bytes().startswith(b"\x89PNG")
    curves = [(", ".join(f"{k}={v}" for k, v in r["overrides"].items()), RangeTestResult.from_dict({**doc, **r})) for r in doc["runs"]]
    labels = legend_labels(curves)
    assert len(labels) == 3 and all("weight_decay" in label for label in labels)


def test_every_grid_run_starts_from_the_same_initial_state(tmp_path):
    result = run(TINY, "--set", "grid={suggest.method: [valley, minimum]}", "--set", "sweep.num_iter=20", "--out", str(tmp_path),
                 "--json")
    assert result.exit_code == 0, result.stderr
    first, second = json.loads(result.stdout)["runs"]
    assert first["history"] == second["history"]
    assert (first["method"], second["method"]) == ("valley", "minimum")


def test_larger_batches_diverge_at_larger_learning_rates(tmp_path):
    result = run("configs/grid-batch-size.yaml", "--set", "sweep.val=null", "--out", str(tmp_path), "--json")
    assert result.exit_code == 0, result.stderr
    runs = json.loads(result.stdout)["runs"]
    assert [r["overrides"]["data.batch_size"] for r in runs] == [16, 64, 256]
    assert all(r["status"] == "diverged" for r in runs)
    divergence = [r["history"]["lr"][-1] for r in runs]
    assert divergence[0] < divergence[1] < divergence[2]
    suggested = [r["suggested_lr"] for r in runs]  # and the answer follows, as the README says
    assert suggested[0] < suggested[1] < suggested[2]


def test_grid_variants_are_all_validated_before_anything_runs(tmp_path):
    result = run(TINY, "--set", "grid={optimizer.kwargs.momentun: [0.9], data.batch_size: [16, 0]}", "--out", str(tmp_path))
    assert result.exit_code == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert any("momentun" in e and "every grid variant" in e and "did you mean 'momentum'" in e for e in errors)
    assert any("data.batch_size" in e and "data.batch_size=0" in e for e in errors)
    assert not (tmp_path / "result.json").exists()


def test_validation_mode_records_val_loss_every_k_steps(tmp_path):
    result = run(TINY, "--set", "sweep.num_iter=23", "--set", "sweep.val={every: 5, batches: 1, fraction: 0.2}",
                 "--out", str(tmp_path), "--json")
    assert result.exit_code in (0, 3), result.stderr  # 3: no divergence even past end_lr (tiny's BatchNorm, 23 steps)
    history = json.loads(result.stdout)["history"]
    measured = [i for i, v in enumerate(history["val_loss"]) if v is not None]
    # every 5th step and the last planned one; steps past end_lr (when the sweep went on) keep the rhythm
    assert measured == [i for i in range(len(history["loss"])) if i % 5 == 0 or i == 22] and measured[:6] == [0, 5, 10, 15, 20, 22]
    assert all(v > 0 for v in history["val_loss"] if v is not None)
    with open(tmp_path / "history.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert rows[0].keys() >= {"val_loss"} and rows[5]["val_loss"] != "" and rows[1]["val_loss"] == ""


def test_validation_split_is_held_out_of_training(tmp_path):
    # the same spec with and without val mode trains on different data: the held-out part is not trained on
    plain = json.loads(run(TINY, "--set", "sweep.num_iter=8", "--out", str(tmp_path / "a"), "--json").stdout)
    held = json.loads(run(TINY, "--set", "sweep.num_iter=8", "--set", "sweep.val={fraction: 0.5}", "--out", str(tmp_path / "b"),
                          "--json").stdout)
    assert plain["history"]["loss"] != held["history"]["loss"]


@pytest.fixture(scope="module")
def two_results(tmp_path_factory):
    """Two saved results (SGD: a directory, Adam: its result.json), run once for the tests that read them."""
    tmp_path = tmp_path_factory.mktemp("results")
    for name, optimizer in (("sgd", "SGD"), ("adam", "Adam")):
        result = run(TINY, "--set", "sweep.num_iter=20", "--set", f"optimizer.name={optimizer}", "--set", "optimizer.kwargs={}",
                     "--out", str(tmp_path / name), "-q")
        assert result.exit_code == 0, result.stderr
    return tmp_path / "sgd", tmp_path / "adam" / "result.json"


def test_compare_overlays_two_saved_results_and_prints_their_suggestions(two_results, tmp_path):
    out = tmp_path / "cmp" / "compare.png"
    result = CliRunner().invoke(app, ["compare", str(two_results[0]), str(two_results[1]), "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].split()[:2] == ["result", "suggested_lr"]
    assert str(two_results[0]) in lines[1] and str(two_results[1]) in lines[2]
    assert out.read_bytes().startswith(b"\x89PNG")
    rows = json.loads(CliRunner().invoke(app, ["compare", *map(str, two_results), "--out", str(out), "--json"]).stdout)
    saved = json.loads((two_results[0] / "result.json").read_text())
    assert rows[0]["suggested_lr"] == saved["suggested_lr"] and len(rows) == 2


@pytest.mark.parametrize("mode", [[], ["--json"]], ids=["table", "json"])
def test_compare_without_out_prints_the_table_and_writes_no_file(two_results, tmp_path, monkeypatch, mode):
    here = tmp_path / "cwd"
    here.mkdir()
    monkeypatch.chdir(here)

    result = CliRunner().invoke(app, ["compare", *map(str, two_results), *mode])

    assert result.exit_code == 0, result.stderr
    assert list(here.iterdir()) == [] and "wrote" not in result.stderr
    rows = json.loads(result.stdout) if mode else result.stdout.strip().splitlines()[1:]
    assert len(rows) == 2


@pytest.mark.parametrize("target", ["a directory", "one of the results being compared"])
def test_compare_refuses_an_out_that_is_a_directory_or_one_of_its_results(two_results, tmp_path, target):
    out = tmp_path if target == "a directory" else two_results[1]
    before = two_results[1].read_bytes()

    result = CliRunner().invoke(app, ["compare", *map(str, two_results), "--out", str(out)])

    assert result.exit_code == 2
    assert [line for line in result.stderr.splitlines() if line.startswith("error:")] == [
        f"error: --out {out}: is {target} (" + ("give the path of the PNG to write, e.g. compare.png)" if target == "a directory"
                                              else "give another path for the plot)")]
    assert two_results[1].read_bytes() == before


def test_compare_refuses_a_file_that_is_not_a_result(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    result = CliRunner().invoke(app, ["compare", str(bad), "--out", str(tmp_path / "c.png")])
    assert result.exit_code == 2
    assert "not an lrfind result.json" in result.stderr and "Traceback" not in result.stderr


def test_compare_lists_every_run_of_a_grid_result(tmp_path):
    grid = run(TINY, "--set", "grid={optimizer.kwargs.weight_decay: [0, 1.0e-3]}", "--set", "sweep.num_iter=20",
               "--out", str(tmp_path / "grid"), "-q")
    assert grid.exit_code == 0, grid.stderr
    result = CliRunner().invoke(app, ["compare", str(tmp_path / "grid"), "--out", str(tmp_path / "c.png"), "--json"])
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["result"] for r in rows] == [f"{tmp_path / 'grid'} [optimizer.kwargs.weight_decay={wd}]" for wd in (0, 0.001)]
    assert (tmp_path / "c.png").read_bytes().startswith(b"\x89PNG")


def test_compare_gives_each_grid_run_its_own_global_batch_size(tmp_path):
    grid = run(TINY, "--set", "grid={data.batch_size: [8, 16]}", "--set", "sweep.num_iter=10", "--set", "sweep.accumulation_steps=2",
               "--out", str(tmp_path / "grid"), "-q")
    assert grid.exit_code in (0, 3), grid.stderr
    doc = json.loads((tmp_path / "grid" / "result.json").read_text())
    assert [(r["global_batch_size"], r["world_size"]) for r in doc["runs"]] == [(16, 1), (32, 1)]
    result = CliRunner().invoke(app, ["compare", str(tmp_path / "grid"), "--out", str(tmp_path / "c.png"), "--json"])
    assert result.exit_code == 0, result.stderr
    assert [r["global_batch_size"] for r in json.loads(result.stdout)] == [16, 32]
