"""result.json says what a sweep cost: a `timing` block (start-up, snapshot, first step, steady step, restore) and a `memory` block."""

import json
import sys

import pytest
import torch

from lrfind_cli import range_test
from lrfind_cli.engine.costs import process_age, timing_of
from lrfind_cli.results import RangeTestResult
from lrfind_cli.snapshot import Snapshot


def test_step_times_come_from_the_reads_which_wait_for_the_device():
    # step 0 ends at the first read (10.5 after the capture at 10.0); later reads cover 4, 4 and 1 steps
    reads = [(1, 10.5), (5, 11.3), (9, 12.1), (10, 12.4)]
    timing = timing_of(startup_s=3.0, snapshot_s=0.1, captured_at=10.0, reads=reads, restore_s=0.2)
    assert timing.first_step_s == pytest.approx(0.5)
    assert timing.steady_step_s == pytest.approx(0.2)  # median of 0.2, 0.2 and 0.3 per step
    assert (timing.startup_s, timing.snapshot_s, timing.restore_s) == (3.0, 0.1, 0.2)
    assert timing_of(None, 0.1, 10.0, [(1, 10.5)], 0.2).steady_step_s is None  # one step: no steady state


def test_the_losses_are_read_right_after_step_0_so_its_time_is_known(engine_bn_model, engine_loader):
    model = engine_bn_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    trained, reported = [], []

    def step_fn(model, batch, loss_fn):
        trained.append(1)
        return loss_fn(model(batch[0]), batch[1])

    result = range_test(model, optimizer, engine_loader(), torch.nn.CrossEntropyLoss(), start_lr=1e-4, end_lr=1e-2,
                        num_iter=20, sync_every=8, step_fn=step_fn, on_step=lambda info: reported.append((info.step, len(trained))))
    assert reported[0] == (0, 1)  # step 0 was read before step 1 trained
    assert reported[1] == (1, 8)  # then every 8 steps, as asked
    timing = result.timing
    assert timing.first_step_s > 0 and timing.steady_step_s > 0 and timing.suggest_s > 0
    assert timing.snapshot_s >= 0 and timing.restore_s >= 0
    assert timing.startup_s is None or timing.startup_s > 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the process start time is read from /proc")
def test_the_process_age_is_known_on_linux():
    assert 0 < process_age() < 24 * 3600 * 365


def test_the_memory_block_gives_the_snapshot_size_and_the_peaks(engine_bn_model, engine_loader):
    model = engine_bn_model()
    optimizer = torch.optim.Adam(model.parameters())
    size = Snapshot(model, optimizer).nbytes
    params = sum(p.numel() * 4 for p in model.parameters())
    result = range_test(model, optimizer, engine_loader(), torch.nn.CrossEntropyLoss(), start_lr=1e-4, end_lr=1e-2, num_iter=5)
    memory = result.memory
    assert memory.snapshot_bytes == size >= params  # parameters and buffers (Adam had no state yet)
    assert memory.peak_device_bytes is None  # on the CPU
    assert memory.peak_host_bytes is None or memory.peak_host_bytes > 0
    doc = result.to_dict()
    assert set(doc["timing"]) == {"startup_s", "snapshot_s", "first_step_s", "steady_step_s", "restore_s", "suggest_s"}
    assert doc["memory"] == {"peak_host_bytes": memory.peak_host_bytes, "peak_device_bytes": None, "snapshot_bytes": size}
    again = RangeTestResult.from_dict(json.loads(json.dumps(doc)))
    assert again.memory == memory and again.timing.restore_s == round(result.timing.restore_s, 6)


def test_the_command_line_states_the_snapshot_size_before_the_sweep(cli_runner, tmp_path):
    from lrfind_cli.cli import app

    result = cli_runner.invoke(app, ["run", "configs/tiny.yaml", "--out", str(tmp_path / "out"), "--set", "sweep.num_iter=20"])
    assert result.exit_code == 0, result.stderr
    lines = result.stderr.splitlines()
    said = [i for i, line in enumerate(lines) if line.startswith("snapshot: ")]
    doc = json.loads((tmp_path / "out" / "result.json").read_text())
    assert len(said) == 1 and said[0] < next(i for i, line in enumerate(lines) if line.startswith("step "))
    assert "into CPU memory (sweep.snapshot: memory)" in lines[said[0]]
    assert doc["memory"]["snapshot_bytes"] > 0 and doc["timing"]["first_step_s"] > 0


def test_a_snapshot_that_will_not_fit_is_refused_with_one_line_naming_disk(cli_runner, tmp_path, monkeypatch):
    from lrfind_cli import snapshot
    from lrfind_cli.cli import app

    monkeypatch.setattr(snapshot, "available_bytes", lambda to_disk: 1000)
    result = cli_runner.invoke(app, ["run", "configs/tiny.yaml", "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "sweep.snapshot: disk" in errors[0] and "only 1.0 kB is available" in errors[0]
    assert "step " not in result.stderr and not (tmp_path / "out" / "result.json").exists()
