"""The shipped example specs in configs/: each validates and says on its first line how to run it."""

from pathlib import Path

import pytest

from lrfind_cli.spec import load_spec

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def test_there_are_example_configs():
    assert CONFIGS, "configs/*.yaml is empty"


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_example_config_validates_with_names_and_kwargs_checked(path, cli_repo, monkeypatch):
    monkeypatch.chdir(cli_repo)  # import paths such as tests.models:tiny_mlp are relative to the repository root

    loaded = load_spec(path)

    assert loaded.spec.model.name


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_example_config_starts_with_a_comment_saying_how_to_run_it(path):
    first = path.read_text(encoding="utf-8").splitlines()[0]

    assert first.startswith("#")
    assert f"lrfind run configs/{path.name}" in first
