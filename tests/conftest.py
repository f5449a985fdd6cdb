"""Shared pytest fixtures. Engine fixtures (tiny data, tiny models) are prefixed `engine_`."""

import pytest
import torch


@pytest.fixture
def engine_data():
    """A deterministic, learnable 3-class problem: 96 samples of 12 features."""
    g = torch.Generator().manual_seed(1234)
    x = torch.randn(96, 12, generator=g)
    w = torch.randn(12, 3, generator=g)
    y = (x @ w).argmax(dim=1)
    return x, y


@pytest.fixture
def engine_loader(engine_data):
    """Factory: a DataLoader over `engine_data` (shuffling draws from the global torch RNG)."""

    def make(batch_size: int = 16, shuffle: bool = False, n: int | None = None, drop_last: bool = False):
        x, y = engine_data
        if n is not None:
            x, y = x[:n], y[:n]
        dataset = torch.utils.data.TensorDataset(x, y)
        return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last)

    return make


@pytest.fixture
def engine_bn_model():
    """Factory: a tiny MLP for `engine_data` with two BatchNorm layers and dropout, seeded."""

    def make(seed: int = 0, dropout: float = 0.25) -> torch.nn.Module:
        torch.manual_seed(seed)
        return torch.nn.Sequential(
            torch.nn.Linear(12, 16),
            torch.nn.BatchNorm1d(16),
            torch.nn.ReLU(),
            torch.nn.Dropout(dropout),
            torch.nn.Linear(16, 16),
            torch.nn.BatchNorm1d(16),
            torch.nn.ReLU(),
            torch.nn.Linear(16, 3),
        )

    return make


# ---- spec and command-line fixtures (prefixed `cli_`) -------------------------------------------


@pytest.fixture(scope="session")
def cli_repo():
    """The repository root (configs/ and the `tests.models` import path are relative to it)."""
    from pathlib import Path

    return Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def cli_runner():
    """A typer CliRunner (stdout and stderr kept apart) unaffected by debug or colour settings of the outer shell."""
    from typer.testing import CliRunner

    return CliRunner(env={"LRFIND_DEBUG": None, "FORCE_COLOR": None, "TTY_COMPATIBLE": None, "TTY_INTERACTIVE": None})


@pytest.fixture
def cli_write_spec(tmp_path):
    """Factory: write dedented YAML to tmp_path/<name> and return the path.

    One leading newline is dropped, so line 1 of the file is the first line after the opening quotes.
    """
    import textwrap

    def write(text: str, name: str = "spec.yaml"):
        body = textwrap.dedent(text)
        if body.startswith("\n"):
            body = body[1:]
        path = tmp_path / name
        path.write_text(body, encoding="utf-8")
        return path

    return write


@pytest.fixture
def cli_user_module(tmp_path, monkeypatch):
    """Factory: write tmp_path/<name>.py, run the test from tmp_path (as a user beside their spec would); return the name.

    Import paths in a spec run user code, so sys.path is restored and the modules forgotten afterwards.
    """
    import importlib
    import sys
    import textwrap

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    names = []

    def write(name: str, source: str) -> str:
        body = textwrap.dedent(source)
        if body.startswith("\n"):
            body = body[1:]  # as in cli_write_spec: line 1 is the first line after the opening quotes
        (tmp_path / f"{name}.py").write_text(body, encoding="utf-8")
        importlib.invalidate_caches()
        names.append(name)
        return name

    yield write
    for name in names:
        sys.modules.pop(name, None)
