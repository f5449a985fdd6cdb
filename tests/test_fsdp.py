"""FSDP from the spec (distributed.strategy: fsdp): 2 Gloo processes on the CPU under torchrun through the command
line (exact restore of every shard, the unsharded run's curve, one exit code when a rank fails), and what one
process can check (units, FSDP's bf16 policy, exact restore of shards and optimizer state)."""

import json
import subprocess
import textwrap
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from lrfind_cli import range_test
from lrfind_cli.data import SyntheticSequences
from lrfind_cli.engine.step import autocast_for
from lrfind_cli.errors import RunError
from lrfind_cli.models import TinyCausalLM
from lrfind_cli.sharding import fully_shard_api, shard_model, shard_units
from tests.fsdp_probe import held, identical
from tests.test_cli import error_lines, invoke
from tests.test_distributed import REPO, rank_exit_codes, torchrun

LM = {"vocab_size": 64, "dim": 32, "depth": 2, "heads": 2, "max_len": 16}

# A small causal LM whose two transformer blocks are FSDP units; RecordingAdam saves each rank's shards (tests/fsdp_probe.py).
SPEC = """\
seed: 0
device: cpu
model:
  name: tiny_causal_lm
  kwargs: {vocab_size: 64, dim: 32, depth: 2, heads: 2, max_len: 16}
data:
  name: synthetic_sequences
  kwargs: {num_samples: 256, seq_len: 16, vocab_size: 64}
  batch_size: 8
optimizer:
  name: tests.fsdp_probe:RecordingAdam
  kwargs: {record_to: RECORD_TO}
loss: null
sweep: {start_lr: 1.0e-4, end_lr: 1.0, num_iter: 20, smoothing: 0.5}
distributed: {strategy: fsdp, shard: [TransformerEncoderLayer]}
"""


# ---- sharding, without a process group ----------------------------------------------------------------------------


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = torch.nn.Linear(4, 4)
        self.act = torch.nn.ReLU()


def test_shard_units_are_the_matching_classes_with_parameters_children_before_parents():
    model = torch.nn.Sequential(Block(), Block(), torch.nn.Linear(4, 2))

    units = [name for name, _ in shard_units(model, ["block", "Lin*"])]

    # every Linear comes before the Block holding it; ReLU (no parameters) and the root are never units
    assert units == ["2", "1.inner", "1", "0.inner", "0"]
    assert [name for name, _ in shard_units(model, ["*"])] == ["2", "1.inner", "1", "0.inner", "0"]
    assert shard_units(model, []) == []


def test_a_shard_glob_that_matches_no_class_names_its_key_and_the_closest_class():
    model = TinyCausalLM(**LM)

    with pytest.raises(RunError) as caught:
        shard_units(model, ["TransformerEncoderLayer", "TransformerEncoderLayr"])

    assert caught.value.key == "distributed.shard.1"
    assert "'TransformerEncoderLayr' matches no module class of the model" in str(caught.value)
    assert "did you mean 'TransformerEncoderLayer'" in str(caught.value)


def test_fsdp_on_a_torch_without_fully_shard_is_one_line_naming_the_version_needed(monkeypatch):
    import torch.distributed.fsdp as fsdp

    monkeypatch.delattr(fsdp, "fully_shard")

    with pytest.raises(RunError) as caught:
        fully_shard_api()

    assert caught.value.key == "distributed.strategy"
    assert f"needs torch >= 2.6 (torch.distributed.fsdp.fully_shard); this is torch {torch.__version__}" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_fsdp_outside_torchrun_is_a_usage_error_at_the_specs_line(cli_runner, tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text((REPO / "configs" / "tiny.yaml").read_text() + "distributed:\n  strategy: fsdp\n")
    line = len(spec.read_text().splitlines())

    result = invoke(cli_runner, ["run", spec, "--out", tmp_path / "out"])

    assert result.exit_code == 2, result.stderr
    assert error_lines(result.stderr) == [
        f"error: {spec}:{line} distributed.strategy: fsdp shards the model across the processes torchrun starts, and this run "
        "was not started by torchrun (run `torchrun --nproc_per_node N -m lrfind_cli run SPEC` (N may be 1), or set "
        "distributed.strategy: ddp)"]
    assert not (tmp_path / "out").exists()


def test_the_schema_offers_the_distributed_block():
    from lrfind_cli.schema import spec_schema

    schema = spec_schema()
    block = schema["$defs"]["DistributedSpec"]["properties"]
    assert block["strategy"]["enum"] == ["ddp", "fsdp"]
    assert "shard" in block and "distributed" in schema["properties"]


# ---- FSDP in one process (world size 1): mixed precision and exact restore ----------------------------------------


@pytest.fixture
def one_rank_group():
    """A Gloo process group of one rank in this process, torn down after the test."""
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def sharded_lm(precision: str = "fp32") -> torch.nn.Module:
    torch.manual_seed(0)
    return shard_model(TinyCausalLM(**LM), ["TransformerEncoderLayer"], precision, torch.device("cpu"), world_size=1)


def lm_loader() -> DataLoader:
    return DataLoader(SyntheticSequences(num_samples=64, seq_len=16, vocab_size=64), batch_size=8)


def test_fsdp_bf16_computes_with_bf16_parameters_keeps_fp32_shards_and_returns_fp32(one_rank_group):
    model = sharded_lm("bf16")
    shards = list(model.parameters())  # what the optimizer is built over
    seen = []
    block = model.blocks.layers[0]
    block.linear1.register_forward_pre_hook(lambda module, args: seen.append((module.weight.dtype, args[0].dtype)))

    with autocast_for(torch.device("cpu"), "bf16"):  # as the sweep's step runs it
        out = model(input_ids=next(iter(lm_loader()))["input_ids"])
    out["loss"].backward()

    assert seen == [(torch.bfloat16, torch.bfloat16)]
    assert {type(p).__name__ for p in shards} == {"DTensor"} and {p.dtype for p in shards} == {torch.float32}
    assert {p.grad.dtype for p in shards} == {torch.float32}
    assert out["loss"].dtype == torch.float32 and out["logits"].dtype == torch.float32


@pytest.mark.parametrize("snapshot", ["memory", "disk"])
def test_fsdp_restore_is_bit_exact_for_shards_and_optimizer_state(one_rank_group, snapshot):
    model = sharded_lm()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(**next(iter(lm_loader())))["loss"].backward()
    optimizer.step()  # optimizer state that the sweep changes and the restore must put back
    before = held(optimizer)
    storage = [t.to_local().data_ptr() for p in model.parameters() for t in (p, *optimizer.state[p].values())
               if hasattr(t, "to_local")]

    result = range_test(model, optimizer, lm_loader(), None, start_lr=1e-4, end_lr=1.0, num_iter=10, smoothing=0.5,
                        snapshot=snapshot)

    assert result.num_steps == 10
    assert set(before["kinds"]) == {"DTensor"} and all(before["state"])
    assert identical(before, held(optimizer))
    # restored in place, into each rank's own pieces: whatever else holds them sees the restored values
    assert storage == [t.to_local().data_ptr() for p in model.parameters() for t in (p, *optimizer.state[p].values())
                       if hasattr(t, "to_local")]


def test_the_snapshot_of_a_sharded_model_holds_each_ranks_pieces_in_host_memory(one_rank_group):
    from lrfind_cli.snapshot import ALIGN, Snapshot

    model = sharded_lm()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    tensors = [t.to_local() if hasattr(t, "to_local") else t for t in (*model.parameters(), *model.buffers())]

    snap = Snapshot(model, optimizer).capture()

    # one block of host memory holding this rank's local shards (not the full parameters), each at an aligned place
    assert snap.nbytes == sum(-(-t.numel() * t.element_size() // ALIGN) * ALIGN for t in tensors)
    assert snap._store.block.device.type == "cpu" and snap.host_bytes == snap.nbytes
    snap.discard()


# ---- through the command line: 2 Gloo ranks under torchrun --------------------------------------------------------


def fsdp_cli_run(tmp: Path, *overrides: str) -> tuple[subprocess.CompletedProcess, Path, dict, list[dict]]:
    """One torchrun of SPEC with `overrides`: the launcher's process, the output directory, result.json, and each rank's
    RecordingAdam record."""
    spec = tmp / "spec.yaml"
    spec.write_text(SPEC.replace("RECORD_TO", str(tmp)))
    proc = torchrun(["-m", "lrfind_cli", "run", str(spec), "--out", str(tmp / "out"), "-q", *overrides])
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp / "out" / "result.json").read_text())
    return proc, tmp / "out", result, [torch.load(tmp / f"rank{r}.pt", weights_only=False) for r in (0, 1)]


@pytest.fixture(scope="module")
def fsdp_run(tmp_path_factory):
    return fsdp_cli_run(tmp_path_factory.mktemp("fsdp"))


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    """The same spec, the model whole on every rank (DistributedDataParallel)."""
    return fsdp_cli_run(tmp_path_factory.mktemp("ddp"), "--set", "distributed.strategy=ddp")


def test_fsdp_from_the_spec_shards_every_parameter_and_restores_every_shard_bit_exactly(fsdp_run):
    *_, ranks = fsdp_run
    for record in ranks:
        first, last, end = record["first"], record["last"], record["exit"]
        assert set(first["kinds"]) == {"DTensor"} and all(first["sharded"])  # each rank held a piece of every parameter
        assert not identical(first, last)  # the sweep trained them
        assert identical(first, end)  # restored: every shard, every bit, and the fresh optimizer's (empty) state
    assert not torch.equal(ranks[0]["first"]["params"][0], ranks[1]["first"]["params"][0])  # different pieces


def test_fsdp_gives_the_curve_and_answer_of_the_unsharded_run_on_the_same_data(fsdp_run, ddp_run):
    (*_, sharded, _), (*_, whole, whole_ranks) = fsdp_run, ddp_run
    assert {r["first"]["kinds"][0] for r in whole_ranks} == {"Parameter"}  # the comparison run really was unsharded

    assert sharded["history"]["lr"] == whole["history"]["lr"]
    # The same global batches and the same averaged gradients: equal up to the order of float operations.
    assert sharded["history"]["loss"] == pytest.approx(whole["history"]["loss"], rel=1e-5, abs=1e-6)
    assert sharded["suggested_lr"] == pytest.approx(whole["suggested_lr"], rel=1e-5)


def test_fsdp_ranks_stop_together_and_the_outputs_are_written_once(fsdp_run):
    proc, out, result, ranks = fsdp_run
    assert result["world_size"] == 2 and result["spec"]["distributed"]["strategy"] == "fsdp"
    assert result["global_batch_size"] == 2 * 8
    assert sorted(p.name for p in out.iterdir()) == ["history.csv", "lr_find.png", "result.json"]
    # both ranks trained every step of the one history (the stop decision comes from the mean loss, the same on both)
    assert [record["steps"] for record in ranks] == [result["num_steps"]] * 2
    assert [float(line) for line in proc.stdout.split()] == [result["suggested_lr"]]  # rank 0 alone prints it


@pytest.mark.parametrize(("raised", "code"), [("ValueError('rank 1 fails on purpose')", 1), ("KeyboardInterrupt()", 130)])
def test_a_rank_that_fails_makes_every_rank_exit_with_its_code(tmp_path, raised, code):
    # Left alone, the other rank would end with its own code: 1 from a collective whose peer is gone, or 143 from
    # the launcher's SIGTERM, whichever comes first.
    (tmp_path / "failing_step.py").write_text(textwrap.dedent(f"""
        import os

        from lrfind_cli.engine import default_step

        calls = {{"n": 0}}


        def step(model, batch, loss_fn):
            calls["n"] += 1
            if os.environ["RANK"] == "1" and calls["n"] == 5:
                raise {raised}
            return default_step(model, batch, loss_fn)
    """))
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.replace("tests.fsdp_probe:RecordingAdam", "Adam").replace("  kwargs: {record_to: RECORD_TO}\n", "")
                    + "step: failing_step:step\n")

    proc = torchrun(["-m", "lrfind_cli", "run", str(spec), "--out", str(tmp_path / "out")], cwd=tmp_path)

    assert rank_exit_codes(proc.stderr) == {0: code, 1: code}, proc.stderr[-3000:]
    assert f"[rank 0] error: rank 1 ended first (exit {code}); this rank ends with the same code" in proc.stderr
    if code == 1:
        assert "[rank 1] error: the training step failed at step 4" in proc.stderr


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (benchmarks/gpu_check.sh runs it)")
def test_on_cuda_fsdp_shards_are_snapshotted_in_pinned_host_memory_and_restored_bit_exactly():
    from lrfind_cli.snapshot import Snapshot

    device = torch.device("cuda", 0)
    torch.cuda.set_device(device)
    dist.init_process_group("nccl", store=dist.HashStore(), rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        model = shard_model(TinyCausalLM(**LM), ["TransformerEncoderLayer"], "bf16", device, world_size=1)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        model(**{k: v.to(device) for k, v in next(iter(lm_loader())).items()})["loss"].backward()
        optimizer.step()
        before = held(optimizer)
        snap = Snapshot(model, optimizer).capture()
        assert snap._store.block.is_pinned() and snap.host_bytes == snap.nbytes  # the shards, in pinned host memory
        snap.discard()

        result = range_test(model, optimizer, lm_loader(), None, start_lr=1e-4, end_lr=1.0, num_iter=10, precision="bf16")

        assert result.num_steps == 10 and result.device.startswith("cuda")
        assert identical(before, held(optimizer))
    finally:
        dist.destroy_process_group()
