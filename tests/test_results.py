"""RangeTestResult.to_dict (the result.json contract), the atomic writers, history.csv and the PNG plot."""

import csv
import json
import math
import os

import pytest

from lrfind_cli.plot import save_plot
from lrfind_cli.results import HISTORY_CSV, PLOT_PNG, RESULT_JSON, RangeTestResult, history_csv, to_json, write_atomic, write_outputs
from lrfind_cli.suggest import zero_lag

CONTRACT_KEYS = {
    "schema_version", "status", "suggested_lr", "method", "suggestions", "history", "best", "num_steps", "stop_reason",
    "device", "duration_s", "spec", "versions",
}


def make_result(lrs=None, losses=None, smoothed=None, **overrides) -> RangeTestResult:
    lrs = [1e-4, 1e-3, 1e-2, 1e-1, 1.0] if lrs is None else lrs
    losses = [2.0, 1.5, 0.9, 1.2, 5.0][: len(lrs)] if losses is None else losses
    smoothed = list(losses) if smoothed is None else smoothed
    fields = {
        "lrs": list(lrs), "losses": list(losses), "smoothed": list(smoothed), "status": "diverged",
        "stop_reason": "smoothed loss diverged", "suggestions": {"steepest": 1e-3, "valley": 2e-3, "minimum": 1e-3},
        "method": "steepest", "suggested_lr": 1e-3, "device": "cpu", "duration_s": 1.23456, "start_lr": lrs[0] if lrs else 1e-4,
        "end_lr": 1.0, "num_iter": 5, "mode": "exp",
    }
    fields.update(overrides)
    return RangeTestResult(**fields)


def nan_result() -> RangeTestResult:
    return make_result(
        losses=[2.0, 1.5, 0.9, float("inf"), float("nan")],
        smoothed=[2.0, 1.8, 1.4, float("inf"), float("nan")],
        suggestions={"steepest": None, "valley": float("nan"), "minimum": 9e-4},
        method="minimum",
        suggested_lr=9e-4,
        stop_reason="non-finite loss (nan) at step 4",
    )


# ---------------------------------------------------------------- result.json


def test_to_dict_has_every_contract_key():
    doc = make_result().to_dict(spec={"seed": 0})
    assert doc.keys() >= CONTRACT_KEYS
    assert doc["schema_version"] == 1
    assert doc["status"] == "diverged"
    assert doc["suggested_lr"] == 1e-3
    assert doc["method"] == "steepest"
    assert doc["suggestions"] == {"steepest": 1e-3, "valley": 2e-3, "minimum": 1e-3}
    assert set(doc["history"]) == {"lr", "loss", "smoothed", "group_lrs", "zero_lag"}
    assert doc["history"]["group_lrs"] == [[lr] for lr in doc["history"]["lr"]]
    assert doc["suggested_group_lrs"] == [1e-3]
    assert len(doc["history"]["lr"]) == len(doc["history"]["loss"]) == len(doc["history"]["smoothed"]) == 5
    assert doc["history"]["lr"] == [1e-4, 1e-3, 1e-2, 1e-1, 1.0]
    # best: the lowest point of the zero-lag curve the rule reads (not of the EMA), which history.zero_lag holds
    curve = zero_lag(doc["history"]["lr"], doc["history"]["loss"])[1]
    assert doc["history"]["zero_lag"] == pytest.approx(list(curve))
    assert doc["best"] == {"lr": doc["history"]["lr"][int(curve.argmin())], "loss": pytest.approx(curve.min())}
    assert doc["num_steps"] == 5
    assert doc["stop_reason"] == "smoothed loss diverged"
    assert doc["device"] == "cpu"
    assert doc["duration_s"] == pytest.approx(1.23456, abs=1e-3)
    assert doc["spec"] == {"seed": 0}
    assert {"lrfind", "python", "torch", "numpy"} <= doc["versions"].keys()


@pytest.mark.parametrize("status", ["completed", "diverged", "interrupted"])
def test_status_is_carried_through(status):
    assert make_result(status=status).to_dict()["status"] == status


def test_non_finite_numbers_become_null():
    doc = nan_result().to_dict()
    text = json.dumps(doc, allow_nan=False)  # would raise on NaN/Infinity
    back = json.loads(text)
    assert back["history"]["loss"] == [2.0, 1.5, 0.9, None, None]
    assert back["history"]["smoothed"] == [2.0, 1.8, 1.4, None, None]
    assert back["suggestions"] == {"steepest": None, "valley": None, "minimum": 9e-4}
    curve = zero_lag([1e-4, 1e-3, 1e-2], [2.0, 1.5, 0.9])[1]  # the finite prefix, re-smoothed
    assert back["history"]["zero_lag"][:3] == pytest.approx(list(curve)) and back["history"]["zero_lag"][3:] == [None, None]
    assert back["best"] == {"lr": 1e-2, "loss": pytest.approx(curve.min())}
    assert back["num_steps"] == 5


def test_all_non_finite_curve_has_null_best():
    nan = float("nan")
    result = make_result(lrs=[1e-3, 1e-2], losses=[nan, nan], smoothed=[nan, nan], suggested_lr=None,
                         suggestions={"steepest": None, "valley": None, "minimum": None})
    doc = json.loads(to_json(result.to_dict()))
    assert doc["best"] == {"lr": None, "loss": None}
    assert doc["suggested_lr"] is None


def test_to_json_refuses_nan_in_a_raw_document():
    with pytest.raises(ValueError):
        to_json({"x": float("nan")})


def test_to_dict_of_a_real_range_test_is_json_clean(engine_loader):
    import torch

    from lrfind_cli import range_test

    torch.manual_seed(0)
    model = torch.nn.Linear(12, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    result = range_test(model, opt, engine_loader(), torch.nn.CrossEntropyLoss(), start_lr=1e-4, end_lr=1.0, num_iter=10)
    doc = json.loads(to_json(result.to_dict(spec={"seed": 0})))
    assert doc.keys() >= CONTRACT_KEYS
    assert doc["history"]["lr"][0] == 1e-4
    assert doc["num_steps"] == len(doc["history"]["loss"]) == 10


# ---------------------------------------------------------------- files


def test_write_outputs_writes_json_and_csv_and_no_temp_files(tmp_path):
    result = nan_result()
    out = tmp_path / "out" / "nested"
    paths = write_outputs(result, out, result.to_dict(spec={"seed": 0}))
    assert paths["json"] == out / RESULT_JSON
    assert paths["csv"] == out / HISTORY_CSV
    assert sorted(os.listdir(out)) == sorted([RESULT_JSON, HISTORY_CSV])
    doc = json.loads(paths["json"].read_text())
    assert doc["history"]["loss"] == [2.0, 1.5, 0.9, None, None]
    rows = list(csv.reader(paths["csv"].read_text().splitlines()))
    assert rows[0] == ["step", "lr", "loss", "smoothed"]
    assert len(rows) == 1 + result.num_steps
    assert [int(r[0]) for r in rows[1:]] == list(range(result.num_steps))
    assert [float(r[1]) for r in rows[1:]] == result.lrs
    assert [float(r[2]) for r in rows[1:3]] == [2.0, 1.5]
    assert rows[4][2] == "" and rows[5][2] == "" and rows[5][3] == ""  # non-finite -> empty cell


def test_history_csv_round_trips_exact_floats():
    lrs = [1e-7, 1.2345678901234567e-5, 0.1]
    result = make_result(lrs=lrs, losses=[2.0000000000000004, 1.0, 0.5], smoothed=[2.0, 1.1, 0.6])
    rows = list(csv.DictReader(history_csv(result).splitlines()))
    assert [float(r["lr"]) for r in rows] == lrs
    assert float(rows[0]["loss"]) == 2.0000000000000004


def test_write_outputs_overwrites_previous_files(tmp_path):
    write_outputs(make_result(), tmp_path, {"run": 1})
    write_outputs(make_result(lrs=[1e-3, 1e-2], losses=[1.0, 0.5]), tmp_path, {"run": 2})
    assert json.loads((tmp_path / RESULT_JSON).read_text()) == {"run": 2}
    assert len((tmp_path / HISTORY_CSV).read_text().splitlines()) == 3
    assert sorted(os.listdir(tmp_path)) == sorted([RESULT_JSON, HISTORY_CSV])


def test_write_atomic_failure_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "result.json"
    target.write_bytes(b"old")
    with pytest.raises(TypeError):
        write_atomic(target, "not bytes")  # the write fails half way
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["result.json"]


# ---------------------------------------------------------------- plot


def assert_png(path):
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 1000


def test_save_plot_writes_a_png(tmp_path):
    path = save_plot(make_result(), tmp_path / PLOT_PNG, title="tiny")
    assert path == tmp_path / PLOT_PNG
    assert_png(path)
    assert os.listdir(tmp_path) == [PLOT_PNG]


def test_save_plot_handles_nan_and_inf(tmp_path):
    assert_png(save_plot(nan_result(), tmp_path / PLOT_PNG))


def test_save_plot_handles_a_two_point_curve(tmp_path):
    result = make_result(lrs=[1e-3, 1e-2], losses=[1.0, 0.8], suggested_lr=None, method="auto",
                         suggestions={"steepest": None, "valley": None, "minimum": None})
    assert_png(save_plot(result, tmp_path / PLOT_PNG))


def test_save_plot_handles_linear_mode(tmp_path):
    lrs = [0.1, 0.2, 0.3, 0.4, 0.5]
    result = make_result(lrs=lrs, mode="linear", suggestions={"steepest": 0.2, "valley": 0.25, "minimum": 0.03},
                         suggested_lr=0.2)
    assert_png(save_plot(result, tmp_path / PLOT_PNG))


def test_save_plot_handles_an_all_nan_curve(tmp_path):
    nan = float("nan")
    result = make_result(lrs=[1e-3, 1e-2], losses=[nan, nan], smoothed=[nan, nan], suggested_lr=None, method="auto",
                         suggestions={"steepest": None, "valley": None, "minimum": None})
    assert_png(save_plot(result, tmp_path / PLOT_PNG))


def test_save_plot_handles_negative_and_flat_curves(tmp_path):
    negative = make_result(losses=[-1.0, -2.0, -3.0, -2.5, 4.0])
    assert_png(save_plot(negative, tmp_path / "negative.png"))
    flat = make_result(losses=[1.0] * 5, suggested_lr=None, suggestions={"steepest": None, "valley": None, "minimum": None})
    assert_png(save_plot(flat, tmp_path / "flat.png"))


def test_no_nan_anywhere_in_the_written_json(tmp_path):
    result = nan_result()
    paths = write_outputs(result, tmp_path, result.to_dict())
    text = paths["json"].read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert math.isclose(json.loads(text)["suggested_lr"], 9e-4)


def test_from_dict_keeps_the_parameter_group_scales():
    from lrfind_cli.results import RangeTestResult

    result = RangeTestResult(lrs=[1e-4, 1e-3], losses=[2.0, 1.5], smoothed=[2.0, 1.7], status="completed", stop_reason="",
                             suggestions={}, method="onecycle", suggested_lr=1e-3, device="cpu", duration_s=0.1,
                             start_lr=1e-4, end_lr=1e-3, num_iter=2, mode="exp", group_scales=[0.1, 1.0])
    back = RangeTestResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert back.group_scales == pytest.approx([0.1, 1.0])
    assert back.suggested_group_lrs == pytest.approx(result.suggested_group_lrs)


def test_outputs_get_the_mode_a_plain_open_would_give(tmp_path):
    old = os.umask(0o022)
    try:
        write_atomic(tmp_path / "result.json", b"{}")
    finally:
        os.umask(old)
    assert (tmp_path / "result.json").stat().st_mode & 0o777 == 0o644
