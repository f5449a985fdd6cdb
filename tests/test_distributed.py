"""torchrun with 2 CPU processes (Gloo): one result, mean loss across ranks, exact restore, no hangs."""

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from lrfind_cli import range_test
from tests import ddp_worker

REPO = Path(__file__).resolve().parent.parent
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
# torchrun + 2 interpreters: generous, and only a guard against a hang.
LIMIT_S = 180


def torchrun(args: list[str], cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run(TORCHRUN + args, cwd=cwd, capture_output=True, text=True, timeout=LIMIT_S)


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


def test_a_rank_that_raises_ends_the_whole_run_with_a_non_zero_exit(tmp_path):
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


def test_a_two_rank_run_without_a_suggestion_exits_3_on_both_ranks_with_complete_outputs(tmp_path):
    # The first rank to exit non-zero makes the launcher SIGTERM the others: every rank must wait until rank 0
    # has written the outputs and printed its lines, then all exit with the same code.
    out = tmp_path / "out"
    flat = ["--set", "sweep.num_iter=12", "--set", "sweep.start_lr=1e-12", "--set", "sweep.end_lr=1e-10",
            "--set", "data.kwargs.num_samples=64", "--set", "data.shuffle=false"]
    proc = torchrun(["-m", "lrfind_cli", "run", "configs/tiny.yaml", "--set", "device=cpu", *flat, "--out", str(out), "-q"])

    codes = {int(rank): int(code) for rank, code in
             re.findall(r"rank\s*:\s*(\d+) \(local_rank.*?\n\s*exitcode\s*:\s*(-?\d+)", proc.stderr)}
    assert codes == {0: 3, 1: 3}, proc.stderr[-3000:]
    assert proc.stderr.count("no usable suggestion") == 2  # both ranks said why, neither was cut short
    assert sorted(p.name for p in out.iterdir()) == ["history.csv", "lr_find.png", "result.json"]
    doc = json.loads((out / "result.json").read_text())
    assert doc["suggested_lr"] is None and doc["num_steps"] == 12 and doc["world_size"] == 2
    assert len((out / "history.csv").read_text().splitlines()) == 13
    assert (out / "lr_find.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
