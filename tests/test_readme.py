"""The README's two set-up commands are the ones CI runs and the ones that run the main job."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```bash\n(python3 -m venv[^\n]*)\n```", text)


def test_readme_has_exactly_the_two_setup_commands():
    commands = _commands()
    assert len(commands) == 2, commands
    run, test = commands
    assert run.endswith("lrfind run configs/resnet.yaml")
    assert "pytest" in test and ".[test]" in test


def test_ci_runs_the_readme_test_command_verbatim():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert _commands()[1] in ci.splitlines()


def test_ci_treats_no_tests_collected_as_failure():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(r'"\$status" -eq 5', ci) and "exit 1" in ci


def test_main_job_spec_runs_offline_on_the_builtin_dataset():
    import yaml

    spec = yaml.safe_load((ROOT / "configs" / "resnet.yaml").read_text(encoding="utf-8"))
    assert spec["data"]["name"] == "synthetic"
    assert "download" not in str(spec)
