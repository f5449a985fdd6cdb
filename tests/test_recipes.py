"""The README's recipes for your own data and models: each runs as written (examples/), and the README shows
the files as they are."""

import inspect
import json
import math
import re
import sys

import pytest
import torch

from lrfind_cli.build import build_dataset
from lrfind_cli.models import BUILTIN_MODELS
from lrfind_cli.spec import DataSpec
from tests.test_cli import REPO, invoke

EXAMPLES = REPO / "examples"
README = (REPO / "README.md").read_text(encoding="utf-8")


@pytest.fixture
def forget_modules():
    """Recipe modules are imported from beside their spec: forget them afterwards."""
    yield
    for name in ("my_csv", "hf_tiny"):
        sys.modules.pop(name, None)


def _run_json(runner, spec, out, *args, cwd=REPO):
    result = invoke(runner, ["run", spec, "--out", out, "--json", *args], cwd=cwd)
    assert result.exit_code in (0, 3), result.stderr
    return json.loads(result.stdout)


# ---- your own CSV ----------------------------------------------------------------------------------------------------


def test_csv_recipe_runs_from_its_directory(cli_runner, tmp_path, forget_modules):
    doc = _run_json(cli_runner, "spec.yaml", tmp_path / "out", "--set", "sweep.num_iter=20", cwd=EXAMPLES / "csv")

    assert doc["spec"]["data"] == {**doc["spec"]["data"], "name": "my_csv:load", "kwargs": {"path": "data.csv", "target": "y"}}
    assert doc["num_steps"] >= 2 and doc["global_batch_size"] == 32


def test_csv_recipe_reads_every_row_and_column(forget_modules, monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES / "csv"))
    from my_csv import load

    dataset = load(str(EXAMPLES / "csv" / "data.csv"))

    assert len(dataset) == 256
    x, y = dataset[0]
    assert x.shape == (3,) and y.shape == (1,) and x.dtype == torch.float32


# ---- ImageFolder with transforms ---------------------------------------------------------------------------------------


@pytest.fixture
def image_folder(tmp_path):
    """root/cat/*.png and root/dog/*.png: 12x10 RGB images, 6 per class."""
    from PIL import Image

    root = tmp_path / "images"
    for label, colour in (("cat", (200, 60, 60)), ("dog", (60, 60, 200))):
        (root / label).mkdir(parents=True)
        for i in range(6):
            Image.new("RGB", (12, 10), tuple(c + 5 * i for c in colour)).save(root / label / f"{i}.png")
    return root


def test_imagefolder_recipe_runs_with_its_transforms(cli_runner, tmp_path, image_folder):
    doc = _run_json(cli_runner, EXAMPLES / "imagefolder" / "spec.yaml", tmp_path / "out",
                    "--set", f"data.kwargs.root={image_folder}", "--set", "model.name=tiny_mlp",
                    "--set", "model.kwargs={in_features: 3072, num_classes: 2}", "--set", "data.batch_size=4",
                    "--set", "sweep.num_iter=6", "--set", "device=cpu")

    assert doc["spec"]["data"]["transforms"][0] == {"name": "Resize", "kwargs": {"size": [32, 32]}}
    assert doc["num_steps"] >= 2


def test_a_transforms_list_that_leaves_pil_images_gets_the_tensor_conversion_appended(image_folder):
    spec = DataSpec(name="ImageFolder", kwargs={"root": str(image_folder)},
                    transforms=[{"name": "Resize", "kwargs": {"size": [8, 8]}}, {"name": "RandomHorizontalFlip"}])

    dataset = build_dataset(spec)
    image, label = dataset[0]

    steps = [type(t).__name__ for t in dataset.transform.transforms]
    assert steps == ["Resize", "RandomHorizontalFlip", "ToImage", "ToDtype"]
    assert image.dtype == torch.float32 and image.shape == (3, 8, 8) and 0 <= image.min() <= image.max() <= 1


def test_a_transforms_list_that_converts_already_is_left_as_written(image_folder):
    spec = DataSpec(name="ImageFolder", kwargs={"root": str(image_folder)},
                    transforms=[{"name": "ToImage"}, {"name": "ToDtype", "kwargs": {"dtype": "float32", "scale": True}}])

    dataset = build_dataset(spec)

    assert [type(t).__name__ for t in dataset.transform.transforms] == ["ToImage", "ToDtype"]
    assert dataset[0][0].dtype == torch.float32


# ---- Hugging Face ------------------------------------------------------------------------------------------------------


@pytest.fixture
def no_network(monkeypatch):
    """Hugging Face's libraries told to stay offline, and any connection they try anyway recorded and refused."""
    import socket

    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(name, "1")
    attempts = []

    def refuse(sock, address, *args):
        attempts.append(address)
        raise OSError(f"the test forbids network access ({address!r})")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts


def test_huggingface_recipe_runs_offline(cli_runner, tmp_path, forget_modules, no_network):
    # transformers and datasets are in the `test` extra: this test runs wherever the tests do, never skipped
    doc = _run_json(cli_runner, EXAMPLES / "huggingface" / "spec.yaml", tmp_path / "out", "--set", "sweep.num_iter=8",
                    "--set", "device=cpu")

    assert no_network == []  # the GPT-2 is built from a config: nothing is fetched from a model hub
    assert doc["spec"]["model"]["name"] == "hf_tiny:tiny_gpt2"
    assert doc["spec"]["optimizer"]["name"] == "torch.optim:AdamW"
    assert doc["num_steps"] == 8 and all(math.isfinite(v) for v in doc["history"]["loss"])  # the model's own .loss


def test_huggingface_recipe_validates_without_transformers_installed(cli_runner, forget_modules, monkeypatch):
    for name in ("transformers", "datasets"):
        monkeypatch.setitem(sys.modules, name, None)  # `import transformers` now raises ImportError, as if not installed

    result = invoke(cli_runner, ["validate", EXAMPLES / "huggingface" / "spec.yaml"])

    assert result.exit_code == 0, result.stderr
    spec = EXAMPLES / "huggingface" / "spec.yaml"
    assert result.stderr == f"{spec}: valid (hf_tiny:tiny_gpt2, torch.optim:AdamW, hf_tiny:token_dataset)\n"


# ---- the README shows the files as they are -------------------------------------------------------------------------


def _shown_files() -> dict[str, str]:
    """Code blocks the README introduces with <!-- file: PATH -->."""
    return dict(re.findall(r"<!-- file: (\S+) -->\n```\w*\n(.*?)```", README, flags=re.S))


def test_readme_recipes_show_the_example_files_verbatim():
    shown = _shown_files()

    assert set(shown) >= {"examples/csv/my_csv.py", "examples/csv/spec.yaml", "examples/imagefolder/spec.yaml",
                          "examples/huggingface/hf_tiny.py", "examples/huggingface/spec.yaml"}
    for path, text in shown.items():
        assert (REPO / path).read_text(encoding="utf-8") == text, path


@pytest.mark.parametrize("name", sorted(BUILTIN_MODELS))
def test_readme_documents_every_builtin_models_arguments(name):
    params = inspect.signature(BUILTIN_MODELS[name]).parameters.values()
    shown = f"`{name}({', '.join(f'{p.name}={p.default!r}' for p in params)})`"

    assert shown in README
