"""The README's CI recipes, run as written: a job that gets no learning rate fails, one that gets a rate trains with it.

Each recipe is taken from the README's "In CI" section and run in a scratch directory the way its CI runs
it: a shell block with `bash -e`, a GitHub Actions job step by step (each `run:` as `bash -e {0}`, as Actions
does when no shell is named; `${{ steps.ID.outputs.KEY }}` from the step's $GITHUB_OUTPUT file; a failed
step skips the later ones unless `if: always()`). `lrfind` is the real command line; `pip` does nothing and
`train.py` records the learning rate it was given. The spec each recipe names is replaced, in the scratch
directory, by a tiny one that gets an answer, gets none (exit 3), has a typo (exit 2) or a missing checkpoint
(exit 1).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
TINY = yaml.safe_load((REPO / "configs" / "tiny.yaml").read_text(encoding="utf-8"))

# spec changes to tiny.yaml, and the exit code lrfind gives for each
CASES = {
    # tiny.yaml's 40 steps: at 30 its BatchNorm MLP does not diverge even past end_lr, which gives no answer
    "answer": ({"sweep": {**TINY["sweep"], "num_iter": 40}}, 0),
    # lr <= 1e-10 cannot move float32 weights and every step sees the same 32 samples: a flat curve, no answer
    "no answer": ({"sweep": {"start_lr": 1e-12, "end_lr": 1e-10, "num_iter": 20},
                   "data": {**TINY["data"], "kwargs": {**TINY["data"]["kwargs"], "num_samples": 32}, "shuffle": False}}, 3),
    "spec error": ({"sweep": {**TINY["sweep"], "num_iters": 30}}, 2),
    "runtime failure": ({"model": {**TINY["model"], "checkpoint": "missing.pt"}}, 1),
}
TRAIN_PY = "import sys\nopen('trained.txt', 'a').write(' '.join(sys.argv[1:]) + '\\n')\n"


def ci_section() -> str:
    start = README.index("\n## In CI\n")
    end = README.find("\n## ", start + 1)
    return README[start: end if end != -1 else None]


def recipes() -> list[tuple[str, str]]:
    """(kind, text) of every fenced block in the README's CI section: "bash" scripts and "yaml" Actions steps."""
    return re.findall(r"```(bash|yaml)\n(.*?)```", ci_section(), flags=re.S)


@dataclass
class Job:
    """How a CI job ended: the exit code of the first failed step (0 if none) and the lrs train.py was given."""

    exit_code: int
    trained_with: list[str]
    log: str


def scratch(tmp_path: Path, recipe: str, case: str) -> tuple[Path, dict[str, str]]:
    """A working directory holding the case's spec under every path the recipe runs, train.py, and shims on PATH."""
    changes, _ = CASES[case]
    spec = yaml.safe_dump({**TINY, **changes})
    for path in re.findall(r"lrfind run (\S+)", recipe):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(spec, encoding="utf-8")
    (tmp_path / "train.py").write_text(TRAIN_PY, encoding="utf-8")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shims = {"lrfind": f'exec {shlex.quote(sys.executable)} -m lrfind_cli "$@"',
             "python": f'exec {shlex.quote(sys.executable)} "$@"',
             "pip": 'echo "pip $* (skipped in the test)" >&2'}
    for name, body in shims.items():
        (bin_dir / name).write_text(f"#!/usr/bin/env bash\n{body}\n", encoding="utf-8")
        (bin_dir / name).chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "LRFIND_"))}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", PYTHONPATH=str(REPO),
               GITHUB_STEP_SUMMARY=str(tmp_path / "summary.md"))
    return tmp_path, env


def bash_e(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    path = cwd / "step.sh"
    path.write_text(script, encoding="utf-8")
    return subprocess.run(["bash", "-e", str(path)], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def trained(cwd: Path) -> list[str]:
    path = cwd / "trained.txt"
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def run_shell(script: str, cwd: Path, env: dict[str, str]) -> Job:
    proc = bash_e(script, cwd, env)
    return Job(proc.returncode, trained(cwd), proc.stderr)


def run_actions(steps_yaml: str, cwd: Path, env: dict[str, str]) -> Job:
    """The job's `run:` steps in order, as GitHub Actions runs them (`uses:` steps have nothing to run here)."""
    outputs: dict[str, dict[str, str]] = {}
    failed, log = 0, ""
    for i, step in enumerate(yaml.safe_load(steps_yaml)):
        if "run" not in step or (failed and step.get("if") != "always()"):
            continue
        script = re.sub(r"\$\{\{\s*steps\.([\w-]+)\.outputs\.([\w-]+)\s*\}\}",
                        lambda m: outputs.get(m.group(1), {}).get(m.group(2), ""), step["run"])
        output_file = cwd / f"github_output_{i}"
        output_file.touch()
        proc = bash_e(script, cwd, {**env, "GITHUB_OUTPUT": str(output_file)})
        log += proc.stderr
        outputs[step.get("id", str(i))] = dict(line.split("=", 1) for line in output_file.read_text().splitlines() if "=" in line)
        failed = failed or proc.returncode
    return Job(failed, trained(cwd), log)


def run_recipe(kind: str, text: str, cwd: Path, env: dict[str, str]) -> Job:
    return run_shell(text, cwd, env) if kind == "bash" else run_actions(text, cwd, env)


def test_the_readme_has_a_shell_recipe_and_an_actions_job_that_run_lrfind():
    kinds = [kind for kind, text in recipes() if "lrfind run" in text]
    assert sorted(kinds) == ["bash", "yaml"], recipes()


@pytest.mark.parametrize(("kind", "text"), recipes(), ids=[f"{kind}-block-{i}" for i, (kind, _) in enumerate(recipes())])
@pytest.mark.parametrize("case", list(CASES))
def test_a_readme_ci_recipe_fails_the_job_unless_lrfind_gives_a_rate(kind, text, case, tmp_path):
    expected = CASES[case][1]
    cwd, env = scratch(tmp_path, text, case)

    job = run_recipe(kind, text, cwd, env)

    if expected == 0:
        assert job.exit_code == 0, job.log
        assert len(job.trained_with) == 1, job.log
        lr = float(job.trained_with[0].removeprefix("--lr ").strip())  # a number, never an empty rate
        assert 0 < lr < 10, job.trained_with
    else:
        assert job.exit_code == expected, job.log  # the job stops with lrfind's own exit code ...
        assert job.trained_with == [], job.log  # ... before training with an empty rate
