"""torchrun with 2 CPU processes (Gloo): one result, mean loss across ranks, exact restore, no hangs, one exit code,
and the README's CI recipe for the launcher's exit code."""

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from lrfind_cli import distributed, range_test
from tests import ddp_worker

REPO = Path(__file__).resolve().parent.parent
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
# torchrun + 2 interpreters: generous, and only a guard against a hang.
LIMIT_S = 180


def torchrun(args: list[str], cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run(TORCHRUN + args, cwd=cwd, capture_output=True, text=True, timeout=LIMIT_S)


def rank_exit_codes(launcher_stderr: str) -> dict[int, int]:
    """Each rank's exit code, from the launcher's failure summary on stderr."""
    found = re.findall(r"rank\s*:\s*(\d+) \(local_rank.*?\n\s*exitcode\s*:\s*(-?\d+)", launcher_stderr)
    return {int(rank): int(code) for rank, code in found}


def test_two_rank_cli_run_writes_one_result_with_world_size_2(tmp_path):
    out = tmp_path / "out"
    # 40 steps: at 20, tiny's BatchNorm MLP does not diverge even two decades past end_lr, and gives no answer
    proc = torchrun(["-m", "lrfind_cli", "run", "configs/tiny.yaml", "--set", "device=cpu", "--set", "sweep.num_iter=40",
                     "--out", str(out), "-q"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads((out / "result.json").read_text())
    assert doc["world_size"] == 2
    assert doc["global_batch_size"] == 2 * doc["spec"]["data"]["batch_size"]
    assert doc["num_steps"] == 40 + doc["sweep"]["extended_steps"]
    assert sorted(p.name for p in out.iterdir()) == ["history.csv", "lr_find.png", "result.json"]
    # rank 0 alone prints: exactly one suggested learning rate on stdout
    assert [float(line) for line in proc.stdout.split()] == [doc["suggested_lr"]]


@pytest.fixture(scope="module")
def worker_ranks(tmp_path_factory) -> list[dict]:
    """Both ranks' reports from one torchrun of tests/ddp_worker.py with a per-rank batch of 16."""
    out = tmp_path_factory.mktemp("ddp")
    proc = torchrun([str(REPO / "tests" / "ddp_worker.py"), str(out), "16"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    return [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]


def test_every_rank_restores_exactly_and_records_the_same_mean_loss(worker_ranks):
    ranks = worker_ranks
    assert all(r["restored"] for r in ranks)
    assert all(r["world"] == 2 for r in ranks)
    assert ranks[0]["loss"] == ranks[1]["loss"]  # the stop decision comes from identical numbers
    assert len(ranks[0]["loss"]) >= 20  # and so does the decision to go on past end_lr


def test_two_ranks_of_batch_b_match_one_rank_of_batch_2b(worker_ranks):
    two_ranks = worker_ranks[0]
    # DistributedSampler without shuffling gives rank r the samples r, r+2, ...: together the first 2B samples.
    net = ddp_worker.model()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loader = DataLoader(ddp_worker.data(), batch_size=32, shuffle=False)
    one_rank = range_test(net, opt, loader, torch.nn.CrossEntropyLoss(), start_lr=1e-4, end_lr=1.0, num_iter=20, smoothing=0.5)
    assert two_ranks["lr"] == one_rank.lrs
    assert two_ranks["loss"] == pytest.approx(one_rank.losses, rel=1e-4, abs=1e-6)


def test_a_rank_that_raises_ends_every_rank_with_its_exit_code(tmp_path):
    (tmp_path / "failing_step.py").write_text(textwrap.dedent("""
        import os

        def step(model, batch, loss_fn):
            if os.environ.get("RANK") == "1":
                raise ValueError("rank 1 fails on purpose")
            inputs, targets = batch
            return loss_fn(model(inputs), targets)
    """))
    spec = tmp_path / "spec.yaml"
    spec.write_text((REPO / "configs" / "tiny.yaml").read_text() + "step: failing_step:step\n")
    (tmp_path / "tests").symlink_to(REPO / "tests")  # tiny.yaml names tests.models:tiny_mlp
    proc = torchrun(["-m", "lrfind_cli", "run", str(spec), "--set", "device=cpu", "--out", str(tmp_path / "out")], cwd=tmp_path)
    assert proc.returncode != 0
    assert "rank 1 fails on purpose" in proc.stderr
    assert rank_exit_codes(proc.stderr) == {0: 1, 1: 1}, proc.stderr[-3000:]


def test_a_two_rank_run_without_a_suggestion_exits_3_on_both_ranks_with_complete_outputs(tmp_path):
    # The first rank to exit non-zero makes the launcher SIGTERM the others: every rank must wait until rank 0
    # has written the outputs and printed its lines, then all exit with the same code.
    out = tmp_path / "out"
    flat = ["--set", "sweep.num_iter=12", "--set", "sweep.start_lr=1e-12", "--set", "sweep.end_lr=1e-10",
            "--set", "data.kwargs.num_samples=64", "--set", "data.shuffle=false"]
    proc = torchrun(["-m", "lrfind_cli", "run", "configs/tiny.yaml", "--set", "device=cpu", *flat, "--out", str(out), "-q"])

    assert rank_exit_codes(proc.stderr) == {0: 3, 1: 3}, proc.stderr[-3000:]
    assert proc.stderr.count("no usable suggestion") == 2  # both ranks said why, neither was cut short
    assert sorted(p.name for p in out.iterdir()) == ["history.csv", "lr_find.png", "result.json"]
    doc = json.loads((out / "result.json").read_text())
    assert doc["suggested_lr"] is None and doc["num_steps"] == 12 and doc["world_size"] == 2
    assert len((out / "history.csv").read_text().splitlines()) == 13
    assert (out / "lr_find.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---- one exit code for every rank ----------------------------------------------------------------------------------


@pytest.fixture
def launcher_store(monkeypatch):
    """A TCPStore like the launcher's, and the environment torchrun gives its ranks; SIGTERM's handler put back after."""
    store = dist.TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False)
    for key, value in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(store.port), "WORLD_SIZE": "2",
                       "TORCHELASTIC_RUN_ID": "test-run", "TORCHELASTIC_RESTART_COUNT": "0"}.items():
        monkeypatch.setenv(key, value)
    handler = signal.getsignal(signal.SIGTERM)
    yield store
    signal.signal(signal.SIGTERM, handler)


def test_every_rank_ending_after_a_failure_takes_the_first_failing_ranks_code(launcher_store, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    assert distributed.shared_failure(1) == (1, "")  # rank 1 fails first: its own code, recorded
    monkeypatch.setenv("RANK", "0")

    # rank 0, stopped by the launcher's SIGTERM (143) or failing in a collective with rank 1 gone (1), ends with 1
    assert distributed.shared_failure(143) == (1, "rank 1 ended first (exit 1); this rank ends with the same code")
    assert distributed.shared_failure(1)[0] == 1
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN  # ending already: a late SIGTERM cannot change the code


def test_a_rank_keeps_its_own_code_outside_torchrun_or_without_a_store(launcher_store, monkeypatch):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.delenv("MASTER_ADDR")
    assert distributed.shared_failure(130) == (130, "")  # not under torchrun

    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    launcher_store.set(distributed.FAILURE_KEY.format(run="test-run", attempt="0"), "1 2")
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    assert distributed.shared_failure(1) == (1, "")  # a failure of an earlier attempt does not count

    monkeypatch.setenv("MASTER_PORT", "1")  # nothing listens there
    monkeypatch.setattr(distributed, "STORE_TIMEOUT_S", 0.5)
    assert distributed.shared_failure(1) == (1, "")


# ---- the README's CI recipe under the launcher ---------------------------------------------------------------------

RECIPE = REPO / "examples" / "torchrun-ci" / "find-lr.sh"
# Each rank sees the same 32 samples and lr <= 1e-10 cannot move float32 weights: the loss is flat, there is no answer.
FLAT = """\
seed: 0
device: cpu
model: {name: tiny_mlp, kwargs: {in_features: 48, num_classes: 4}}
data:
  name: synthetic
  kwargs: {num_samples: 64, num_classes: 4, channels: 3, height: 4, width: 4, noise: 0.5}
  batch_size: 32
  shuffle: false
sweep: {start_lr: 1.0e-12, end_lr: 1.0e-10, num_iter: 12}
"""


def run_recipe(spec: Path, out: Path, cwd: Path) -> subprocess.CompletedProcess:
    """examples/torchrun-ci/find-lr.sh as the README shows it, with 2 processes; torchrun and python from this venv."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(["bash", str(RECIPE), str(spec), str(out), "2"], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=LIMIT_S)


def test_the_readme_torchrun_recipe_tells_no_answer_from_a_failure(tmp_path):
    spec = tmp_path / "flat.yaml"
    spec.write_text(FLAT)

    no_answer = run_recipe(spec, tmp_path / "no-answer", REPO)
    assert no_answer.returncode == 3, no_answer.stderr[-3000:]
    assert no_answer.stdout == ""
    assert rank_exit_codes(no_answer.stderr) == {0: 3, 1: 3}  # what the launcher itself reports as exit 1

    spec.write_text(FLAT + "bogus_key: 1\n")  # every rank exits 2 before training: no result.json
    failed = run_recipe(spec, tmp_path / "failed", REPO)
    assert failed.returncode == 1, failed.stderr[-3000:]
    assert not (tmp_path / "failed").exists()

    again = run_recipe(spec, tmp_path / "no-answer", REPO)  # an earlier run's result.json is never read as this run's
    assert again.returncode == 2 and "exists already" in again.stderr
