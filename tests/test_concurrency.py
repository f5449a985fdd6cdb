"""Nothing lost: atomic outputs, parallel runs into one directory, and a run writes only its declared files."""

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from lrfind_cli.cli import app
from lrfind_cli.errors import SpecError
from lrfind_cli.output_lock import output_dir_held
from lrfind_cli.results import write_atomic
from lrfind_cli.runner import run_spec
from lrfind_cli.spec import load_spec

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "tiny.yaml"
OUTPUTS = ["history.csv", "lr_find.png", "result.json"]


def reject_constant(token: str):
    raise AssertionError(f"non-finite number {token} in JSON")


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("LRFIND_DEBUG", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def test_runs_started_together_into_one_directory_each_finish_or_are_refused_never_mixed(tmp_path):
    out = tmp_path / "shared"
    procs = [
        subprocess.Popen([sys.executable, "-m", "lrfind_cli", "run", str(TINY), "--out", str(out), "--json",
                          "--set", f"seed={seed}", "--set", "sweep.num_iter=30"],
                         cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for seed in (1, 2)
    ]
    finished = [p.communicate(timeout=120) for p in procs]

    # whether they overlap depends on the machine: a run that overlaps another is refused, one that does not finishes
    codes = [proc.returncode for proc in procs]
    assert 0 in codes and set(codes) <= {0, 2}, finished
    documents = []
    for code, (stdout, stderr) in zip(codes, finished):
        assert "Traceback" not in stderr
        if code == 0:
            documents.append(json.loads(stdout))
        else:
            assert stdout == "" and f"error: output.dir: '{out}' is in use by another lrfind run (pid " in stderr
    assert sorted(p.name for p in out.iterdir()) == OUTPUTS  # no temp file, no lock file left behind
    final = json.loads((out / "result.json").read_text(encoding="utf-8"), parse_constant=reject_constant)
    assert final in documents  # one run's whole document, never a mix or a torn write
    rows = (out / "history.csv").read_text().splitlines()
    assert rows[0] == "step,lr,loss,smoothed" and len(rows) - 1 == final["num_steps"]
    assert (out / "lr_find.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


HOLDER = """
import sys
from pathlib import Path
from lrfind_cli.output_lock import output_dir_held
with output_dir_held(Path(sys.argv[1])):
    print("held", flush=True)
    sys.stdin.read()
"""


def test_a_run_into_a_directory_another_run_holds_is_refused_until_that_run_dies(tmp_path, cli_runner):
    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], cwd=REPO, env=_env(), stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"

        refused = cli_runner.invoke(app, ["run", str(TINY), "--set", "sweep.num_iter=20", "--out", str(out), "-q"])

        assert refused.exit_code == 2
        assert [line for line in refused.stderr.splitlines() if line.startswith("error:")] == [
            f"error: output.dir: '{out}' is in use by another lrfind run (pid {holder.pid} on {socket.gethostname()}) "
            "(wait for it to end, or choose another directory with --out)"]
        assert [p.name for p in out.iterdir()] == [".lrfind.lock"]  # nothing written
    finally:
        holder.kill()  # SIGKILL: no clean-up runs, the kernel drops the lock
        holder.wait()

    result = cli_runner.invoke(app, ["run", str(TINY), "--set", "sweep.num_iter=20", "--out", str(out), "-q"])

    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == OUTPUTS


def test_a_run_holds_its_output_directory_while_it_sweeps_and_frees_it_after(tmp_path):
    out = tmp_path / "out"
    loaded = load_spec(TINY, ["sweep.num_iter=20", f"output.dir={out}"])
    tried = []

    def on_step(info) -> None:
        if not tried:
            with pytest.raises(SpecError, match="is in use by another lrfind run"), output_dir_held(out):
                pass
            tried.append(info.step)

    run_spec(loaded, on_step=on_step)

    assert tried == [0]
    with output_dir_held(out):  # free again
        pass
    assert sorted(p.name for p in out.iterdir()) == OUTPUTS


def test_a_run_that_fails_leaves_no_directory_it_created(tmp_path, cli_runner):
    out = tmp_path / "new" / "out"

    result = cli_runner.invoke(app, ["run", str(TINY), "--set", "model.kwargs.in_features=47", "--out", str(out)])

    assert result.exit_code == 1
    assert list(tmp_path.iterdir()) == []


def test_write_atomic_from_many_threads_leaves_one_whole_version_and_no_temp_files(tmp_path):
    target = tmp_path / "result.json"
    payloads = [json.dumps({"writer": i, "data": [i] * 20000}).encode() for i in range(8)]
    errors = []

    def writer(data: bytes) -> None:
        try:
            for _ in range(5):
                write_atomic(target, data)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(p,)) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    assert target.read_bytes() in payloads
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path, monkeypatch):
    target = tmp_path / "result.json"
    target.write_text("old")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        write_atomic(target, b"new")

    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_run_writes_only_its_declared_outputs_and_leaves_its_inputs_alone(tmp_path, cli_runner, monkeypatch):
    spec = tmp_path / "inputs" / "spec.yaml"
    spec.parent.mkdir()
    checkpoint = tmp_path / "inputs" / "start.pt"
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 32), torch.nn.BatchNorm1d(32), torch.nn.ReLU(),
                                torch.nn.Linear(32, 4))
    torch.save(model.state_dict(), checkpoint)
    spec.write_text(TINY.read_text().replace("num_iter: 40", "num_iter: 20").replace(
        "  kwargs: {in_features: 48, num_classes: 4}", f"  kwargs: {{in_features: 48, num_classes: 4}}\n  checkpoint: '{checkpoint}'"),
        encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [str(REPO), *sys.path])
    before = _tree(tmp_path)

    result = cli_runner.invoke(app, ["run", str(spec), "--out", str(tmp_path / "out"), "-q"])

    assert result.exit_code in (0, 3), result.stderr
    after = _tree(tmp_path)
    new = sorted(set(after) - set(before))
    assert new == [f"out/{name}" for name in OUTPUTS]
    assert {k: after[k] for k in before} == before  # the spec and the checkpoint are byte for byte the same


@pytest.mark.parametrize("victim", ["spec", "checkpoint"])
def test_an_output_directory_that_would_overwrite_an_input_is_refused(tmp_path, cli_runner, monkeypatch, victim):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 32), torch.nn.BatchNorm1d(32), torch.nn.ReLU(),
                                torch.nn.Linear(32, 4))
    # A spec named result.json, or a checkpoint named history.csv: the run would write over it.
    spec = tmp_path / ("result.json" if victim == "spec" else "spec.yaml")
    checkpoint = tmp_path / "history.csv"
    torch.save(model.state_dict(), checkpoint)
    text = TINY.read_text().replace("num_iter: 40", "num_iter: 20")
    if victim == "checkpoint":
        text = text.replace("  kwargs: {in_features: 48, num_classes: 4}",
                            f"  kwargs: {{in_features: 48, num_classes: 4}}\n  checkpoint: '{checkpoint}'")
    spec.write_text(text, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [str(REPO), *sys.path])
    before = _tree(tmp_path)

    result = cli_runner.invoke(app, ["run", str(spec), "--out", str(tmp_path)])

    assert result.exit_code == 1
    assert "would overwrite an input of this run" in result.stderr
    assert _tree(tmp_path) == before
