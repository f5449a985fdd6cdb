"""Interrupts: SIGINT and SIGTERM mid-sweep restore the model, write a partial result and exit 130 / 143.

The command-line tests start a real `python -m lrfind_cli run` and send it a real signal once the sweep has
begun (the model writes a marker file at its third training step and sleeps a little at each, so the signal
always lands mid-sweep). The Python API test sends SIGINT to this process from inside a step and checks that
the weights are restored bit for bit.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
NUM_ITER = 3000  # at 20 ms a step: a minute, far longer than the test waits before it signals

SLOW_MODEL = '''
    import pathlib
    import time

    import torch

    MARKER = pathlib.Path(__file__).with_name("training-started")


    class SlowMLP(torch.nn.Module):
        """A linear classifier that marks the start of training and takes 20 ms a step."""

        def __init__(self, in_features=48, num_classes=4):
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(in_features, num_classes))
            self.calls = 0

        def forward(self, x):
            self.calls += 1
            if self.calls == 3:
                MARKER.write_text("started")
            time.sleep(0.02)
            return self.net(x)
'''

SPEC = f"""
seed: 0
device: cpu
model:
  name: slow_model:SlowMLP
  kwargs: {{in_features: 48, num_classes: 4}}
data:
  name: synthetic
  kwargs: {{num_samples: 128, num_classes: 4, channels: 3, height: 4, width: 4, noise: 0.5}}
  batch_size: 16
optimizer:
  name: SGD
sweep:
  start_lr: 1.0e-6
  end_lr: 1.0e-3
  num_iter: {NUM_ITER}
"""


def reject_constant(token: str):
    raise AssertionError(f"non-finite number {token} in JSON")


def start_run(tmp_path: Path, extra: list[str]) -> subprocess.Popen:
    (tmp_path / "slow_model.py").write_text(textwrap.dedent(SLOW_MODEL).lstrip(), encoding="utf-8")
    (tmp_path / "spec.yaml").write_text(SPEC.lstrip(), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("LRFIND_DEBUG", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)

    def default_sigint() -> None:
        # A shell without job control starts background jobs with SIGINT ignored, and Python keeps it
        # ignored; the default lets Python turn SIGINT into KeyboardInterrupt as it does in a terminal.
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    return subprocess.Popen([sys.executable, "-m", "lrfind_cli", "run", "spec.yaml", "--out", "out", *extra], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)


def wait_for_training(proc: subprocess.Popen, marker: Path, limit_s: float = 60.0) -> None:
    deadline = time.monotonic() + limit_s
    while not marker.exists():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the run ended (exit {proc.returncode}) before the sweep began:\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the sweep did not begin within a minute")
        time.sleep(0.02)


@pytest.mark.parametrize(("signum", "code", "extra"), [
    (signal.SIGINT, 130, []),
    (signal.SIGTERM, 143, ["--json"]),
    (signal.SIGINT, 130, ["-q"]),
], ids=["SIGINT", "SIGTERM-json", "SIGINT-quiet"])
def test_a_signal_mid_sweep_writes_a_partial_result_and_exits_with_its_code(tmp_path, signum, code, extra):
    proc = start_run(tmp_path, extra)
    wait_for_training(proc, tmp_path / "training-started")

    proc.send_signal(signum)
    try:
        stdout, stderr = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the run did not stop after the signal")

    assert proc.returncode == code, stderr
    out = tmp_path / "out"
    doc = json.loads((out / "result.json").read_text(encoding="utf-8"), parse_constant=reject_constant)
    assert doc["status"] == "interrupted"
    assert doc["stop_reason"].startswith("interrupted after")
    # a partial curve gives no number a CI step could take for a finished sweep's (issue 21, item 3)
    assert doc["suggested_lr"] is None and all(v is None for v in doc["suggestions"].values())
    assert doc["confidence"]["flags"] == ["interrupted"]
    assert 2 <= doc["num_steps"] < NUM_ITER
    history = doc["history"]
    assert len(history["lr"]) == len(history["loss"]) == len(history["smoothed"]) == doc["num_steps"]
    assert history["lr"][0] == pytest.approx(1e-6)
    png = (out / "lr_find.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000
    rows = (out / "history.csv").read_text().splitlines()
    assert len(rows) == doc["num_steps"] + 1
    assert sorted(p.name for p in out.iterdir()) == ["history.csv", "lr_find.png", "result.json"]  # no temp files left
    assert "interrupted: partial result in out; the model was restored" in stderr
    assert "Traceback" not in stderr and "error:" not in stderr
    if "--json" in extra:
        assert json.loads(stdout) == doc
    else:
        assert stdout == ""


def test_sigint_through_the_python_api_restores_the_weights_and_keeps_the_partial_result():
    from lrfind_cli import RangeTestInterrupted, range_test

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.BatchNorm1d(16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = torch.randn(64, 8), torch.randint(0, 3, (64,))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer_before = json.dumps(optimizer.state_dict()["param_groups"])
    steps = []

    def step(model, batch, loss_fn):
        steps.append(1)
        if len(steps) == 6:
            os.kill(os.getpid(), signal.SIGINT)  # a real signal: Python raises KeyboardInterrupt here
            time.sleep(1)  # the handler runs before this returns
        return loss_fn(model(batch[0]), batch[1])

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(RangeTestInterrupted) as caught:
            range_test(model, optimizer, loader, torch.nn.functional.cross_entropy, start_lr=1e-4, end_lr=10, num_iter=50,
                       step_fn=step)
    finally:
        signal.signal(signal.SIGINT, previous)

    result = caught.value.result
    assert result.status == "interrupted" and result.num_steps == 5
    after = model.state_dict()
    assert after.keys() == before.keys()
    for name, tensor in before.items():
        assert torch.equal(after[name], tensor), name
    assert json.dumps(optimizer.state_dict()["param_groups"]) == optimizer_before
    assert optimizer.state_dict()["state"] == {}  # momentum buffers the sweep created are gone again
