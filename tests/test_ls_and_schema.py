"""`lrfind ls KIND [GLOB]` lists what a name may be; `lrfind schema` prints the spec's JSON Schema, which the
example configs point editors at."""

import json

import pytest

from lrfind_cli.registry import KINDS, registry
from lrfind_cli.schema import MODELINE, SCHEMA_FILE
from tests.test_cli import REPO, invoke

CONFIGS = sorted((REPO / "configs").glob("*.yaml")) + sorted((REPO / "examples").glob("*/spec.yaml"))


@pytest.mark.parametrize(("args", "stdout"), [
    (["optimizers", "adam*"], "Adam\nAdamW\nAdamax\n"),
    (["losses", "*entropy*"], "CrossEntropyLoss\nLinearCrossEntropyLoss\n"),
    (["models", "tiny*"], "tiny_causal_lm\ntiny_mlp\n"),
    (["models", "ResNet1*"], "resnet101\nresnet152\nresnet18\n"),
    (["datasets", "synthetic*"], "synthetic\nsynthetic_sequences\nsynthetic_tabular\n"),
    (["datasets", "image*"], "ImageFolder\nImageNet\nImagenette\n"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_ls_prints_the_matching_names_one_per_line_on_stdout(cli_runner, args, stdout):
    result = invoke(cli_runner, ["ls", *args])

    assert result.exit_code == 0, result.stderr
    assert result.stdout == stdout
    assert result.stderr == ""


@pytest.mark.parametrize("kind", KINDS)
def test_ls_without_a_glob_lists_every_name_the_spec_accepts(cli_runner, kind):
    result = invoke(cli_runner, ["ls", kind])

    assert result.exit_code == 0
    assert result.stdout.splitlines() == registry(kind).list()
    assert len(result.stdout.splitlines()) >= 5


def test_every_listed_optimizer_is_accepted_by_validate(cli_runner):
    from lrfind_cli.registry import resolve_loss, resolve_optimizer

    for name in registry("optimizers").list():
        assert resolve_optimizer(name).__name__ == name
    for name in registry("losses").list():
        assert resolve_loss(name).__name__ == name


def test_ls_with_no_match_says_so_on_stderr_and_exits_0(cli_runner):
    result = invoke(cli_runner, ["ls", "models", "nosuch*"])

    assert result.exit_code == 0
    assert result.stdout == ""
    assert result.stderr == "no models match 'nosuch*'; run `lrfind ls models` for all of them\n"


def test_ls_of_an_unknown_kind_is_a_usage_error(cli_runner):
    result = invoke(cli_runner, ["ls", "gadgets"])

    assert result.exit_code == 2
    assert "'gadgets' is not one of 'models', 'datasets', 'optimizers', 'losses', 'transforms'" in result.stderr


def test_schema_prints_the_committed_schema_file(cli_runner):
    result = invoke(cli_runner, ["schema"])

    assert result.exit_code == 0
    assert result.stdout == (REPO / "configs" / SCHEMA_FILE).read_text(encoding="utf-8"), (
        "configs/lrfind.schema.json is stale: run `lrfind schema > configs/lrfind.schema.json`")


def test_schema_describes_the_spec_and_its_other_spellings(cli_runner):
    schema = json.loads(invoke(cli_runner, ["schema"]).stdout)

    assert schema["title"] == "lrfind spec" and schema["required"] == ["model"]
    assert schema["$defs"]["SweepSpec"]["additionalProperties"] is False
    assert set(schema["$defs"]["SweepSpec"]["properties"]) >= {"start_lr", "end_lr", "num_iter", "mode", "smoothing"}
    assert schema["properties"]["optimizer"]["anyOf"][:3] == [
        {"$ref": "#/$defs/OptimizerSpec"}, {"$ref": "#/$defs/HydraTarget"}, {"$ref": "#/$defs/LightningTarget"}]


def test_schema_does_not_import_torch():
    from tests.test_cli import python

    code = ("import sys\nfrom lrfind_cli import cli\nsys.argv = ['lrfind', 'schema']\ntry:\n    cli.main()\n"
            "except SystemExit:\n    pass\nassert 'torch' not in sys.modules\n")
    proc = python("-c", code)

    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("path", CONFIGS, ids=[str(p.relative_to(REPO)) for p in CONFIGS])
def test_every_example_points_editors_at_the_schema_on_its_second_line(path):
    second = path.read_text(encoding="utf-8").splitlines()[1]

    assert second.startswith("# yaml-language-server: $schema=")
    schema_path = (path.parent / second.split("$schema=", 1)[1]).resolve()  # relative to the config, as editors read it
    assert schema_path == (REPO / "configs" / SCHEMA_FILE).resolve()
    if path.parent.name == "configs":
        assert second == MODELINE


def test_an_unknown_name_without_a_close_match_points_at_lrfind_ls(cli_runner):
    from tests.test_cli import TINY, error_lines

    result = invoke(cli_runner, ["validate", TINY, "--set", "optimizer.name=Zorglub"])

    assert result.exit_code == 2
    assert error_lines(result.stderr) == ["error: --set optimizer.name=Zorglub (optimizer.name): unknown optimizer 'Zorglub' "
                                          "(run `lrfind ls optimizers` for the names, or give an import path module:attr)"]
