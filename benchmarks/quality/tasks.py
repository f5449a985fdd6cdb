"""The benchmark's tasks: small models, data, optimizers and losses, each with a family and a fixed half.

Every task is a small, fully deterministic training problem: data from scikit-learn's bundled sets
(no downloads), torchvision's FakeData, or generated (teacher networks, synthetic sequences, the
package's SyntheticImages/SyntheticTabular). Grid training (`train_run`), Prodigy runs and range tests
(`range_curve`) live in ground_truth.py; this module only says what a task is.

The design/test split is a rule in the code, fixed before any tuning: `half(name)` is "design" when
the last hex digit of sha256(name) is even, else "test". Nothing about a task's results enters it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from lrfind_cli.data import SyntheticImages, SyntheticSequences, SyntheticTabular

GROUND_TRUTH_VERSION = 2
FAMILIES = ("mlp", "linear", "cnn", "resnet", "transformer", "rnn", "embedding")


def half(name: str) -> str:
    """'design' or 'test': the parity of the last hex digit of sha256(name); fixed before any tuning."""
    return "design" if int(hashlib.sha256(name.encode()).hexdigest()[-1], 16) % 2 == 0 else "test"


# ---------------------------------------------------------------- data

Data = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]  # x_train, y_train, x_val, y_val


def _split(x: torch.Tensor, y: torch.Tensor, seed: int = 0, val_fraction: float = 0.25):
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    n_val = int(len(x) * val_fraction)
    return x[perm[n_val:]], y[perm[n_val:]], x[perm[:n_val]], y[perm[:n_val]]


def _standardise(xt, xv):
    mean, std = xt.mean(0, keepdim=True), xt.std(0, keepdim=True)
    std = torch.where(std < 1e-3, torch.ones_like(std), std)  # constant columns (digits' border pixels) stay as they are
    return (xt - mean) / std, (xv - mean) / std


def _sklearn(name: str):
    from sklearn import datasets  # the bundled files only: load_*, never fetch_*

    x, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y)


def _noisy_labels(y: torch.Tensor, classes: int, fraction: float, seed: int) -> torch.Tensor:
    """Replace `fraction` of the labels by uniformly random classes (training labels only)."""
    if fraction <= 0:
        return y
    gen = torch.Generator().manual_seed(seed)
    flip = torch.rand(len(y), generator=gen) < fraction
    return torch.where(flip, torch.randint(0, classes, (len(y),), generator=gen), y)


def sk_classes(name: str, label_noise: float = 0.0, image: bool = False) -> Callable[[], Data]:
    def load():
        x, y = _sklearn(name)
        xt, yt, xv, yv = _split(x, y.long())
        xt, xv = _standardise(xt, xv)
        yt = _noisy_labels(yt, int(y.max()) + 1, label_noise, 5)
        if image:  # digits as 1x8x8 images
            xt, xv = xt.reshape(-1, 1, 8, 8), xv.reshape(-1, 1, 8, 8)
        return xt, yt, xv, yv

    return load


def sk_binary_float(name: str) -> Callable[[], Data]:
    """A two-class set with float targets of shape (n, 1), for BCEWithLogits."""
    def load():
        x, y = _sklearn(name)
        xt, yt, xv, yv = _split(x, y.float().unsqueeze(1))
        xt, xv = _standardise(xt, xv)
        return xt, yt, xv, yv

    return load


def sk_regression(name: str) -> Callable[[], Data]:
    def load():
        if name == "linnerud":
            from sklearn import datasets

            raw = datasets.load_linnerud()
            x, y = torch.tensor(raw.data, dtype=torch.float32), torch.tensor(raw.target, dtype=torch.float32)
        else:
            x, y = _sklearn(name)
            y = y.float()
        y = y.reshape(len(y), -1)
        xt, yt, xv, yv = _split(x, y)
        xt, xv = _standardise(xt, xv)
        mean, std = yt.mean(0, keepdim=True), yt.std(0, keepdim=True)
        return xt, (yt - mean) / std, xv, (yv - mean) / std

    return load


def teacher_classes_data(n: int, features: int, classes: int, seed: int, label_noise: float = 0.0) -> Callable[[], Data]:
    def load():
        x, y = _teacher_classes(n, features, classes, seed)
        xt, yt, xv, yv = _split(x, y)
        return xt, _noisy_labels(yt, classes, label_noise, seed + 1), xv, yv

    return load


def _teacher_classes(n: int, features: int, classes: int, seed: int):
    """Labels from a random teacher network with a little label noise: a stand-in for a small real set."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=gen)
    w1 = torch.randn(features, 32, generator=gen)
    w2 = torch.randn(32, classes, generator=gen)
    logits = torch.tanh(x @ w1 / features**0.5) @ w2 * 2.0
    y = (logits + 0.5 * torch.randn(n, classes, generator=gen)).argmax(1)
    return x, y


def teacher_regression_data(n: int, features: int, outputs: int, noise: float, seed: int, scale: float = 1.0) -> Callable[[], Data]:
    """y = tanh(x W1) W2 + noise, targets multiplied by `scale` (not standardised: loss scale varies by task)."""
    def load():
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn(n, features, generator=gen)
        w1 = torch.randn(features, 24, generator=gen) / features**0.5
        w2 = torch.randn(24, outputs, generator=gen) / 24**0.5
        y = (torch.tanh(2 * x @ w1) @ w2 + noise * torch.randn(n, outputs, generator=gen)) * scale
        return _split(x, y)

    return load


def tabular_data():
    ds = SyntheticTabular(num_samples=4096, num_features=16, noise=0.1, seed=0)
    return _split(ds.x, ds.y)


def blobs_data():
    return _split(*_teacher_classes(6000, 20, 5, 21))


def images_data(channels: int, noise: float, n: int = 3000, size: int = 16, label_noise: float = 0.0) -> Callable[[], Data]:
    def load():
        ds = SyntheticImages(num_samples=n, num_classes=10, channels=channels, height=size, width=size, noise=noise, seed=3)
        xt, yt, xv, yv = _split(ds.data, ds.targets.long())
        mean, std = xt.mean(), xt.std()
        return (xt - mean) / std, _noisy_labels(yt, 10, label_noise, 9), (xv - mean) / std, yv

    return load


def fakedata_teacher(n: int, size: int, classes: int, seed: int) -> Callable[[], Data]:
    """torchvision FakeData images (random pixels) labelled by a fixed random teacher CNN: learnable, offline."""
    def load():
        from torchvision.datasets import FakeData
        from torchvision.transforms.functional import pil_to_tensor

        ds = FakeData(size=n, image_size=(1, size, size), num_classes=classes, random_offset=seed)
        x = torch.stack([pil_to_tensor(ds[i][0]) for i in range(n)]).float() / 255.0
        x = (x - x.mean()) / x.std()
        gen = torch.Generator().manual_seed(seed)
        teacher = nn.Sequential(nn.AvgPool2d(2), nn.Conv2d(1, 8, 3, padding=1), nn.Tanh(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                                nn.Linear(32, classes))
        with torch.no_grad():
            for p in teacher.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 1.5)
            y = (teacher(x) + 0.3 * torch.randn(n, classes, generator=gen)).argmax(1)
        return _split(x, y)

    return load


def lm_data(n: int, seq_len: int, vocab: int, branching: int, seed: int) -> Callable[[], Data]:
    """Next-token prediction on SyntheticSequences: inputs tokens[:-1], targets tokens[1:]."""
    def load():
        ids = SyntheticSequences(num_samples=n, seq_len=seq_len + 1, vocab_size=vocab, branching=branching, seed=seed).input_ids
        return _split(ids[:, :-1], ids[:, 1:])

    return load


def _token_bags(n: int, seq_len: int, vocab: int, outputs: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Generator]:
    """(ids (n, seq_len), a teacher's scores (vocab, outputs), the generator to draw the label noise from)."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (n, seq_len), generator=gen)
    return ids, torch.randn(vocab, outputs, generator=gen), gen


def token_classes_data(n: int, seq_len: int, vocab: int, classes: int, seed: int) -> Callable[[], Data]:
    """Random token sequences; the class is the argmax of a teacher's score summed over tokens (plus noise)."""
    def load():
        ids, scores, gen = _token_bags(n, seq_len, vocab, classes, seed)
        y = (scores[ids].sum(1) / seq_len**0.5 + 0.5 * torch.randn(n, classes, generator=gen)).argmax(1)
        return _split(ids, y)

    return load


def token_multilabel_data(n: int, seq_len: int, vocab: int, labels: int, seed: int) -> Callable[[], Data]:
    """Bags of tokens with several independent binary labels (float targets, for BCEWithLogits)."""
    def load():
        ids, scores, gen = _token_bags(n, seq_len, vocab, labels, seed)
        y = (scores[ids].mean(1) * seq_len**0.5 + 0.3 * torch.randn(n, labels, generator=gen) > 0).float()
        return _split(ids, y)

    return load


def memory_regression_data(n: int, seq_len: int, lag: int, seed: int) -> Callable[[], Data]:
    """Sequences of numbers; target sum_t x[t] * x[t - lag] / sqrt(T): needs memory across steps."""
    def load():
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn(n, seq_len, 1, generator=gen)
        y = (x[:, lag:, 0] * x[:, :-lag, 0]).sum(1, keepdim=True) / seq_len**0.5
        return _split(x, y + 0.1 * torch.randn(n, 1, generator=gen))

    return load


def ratings_data(users: int, items: int, n: int, rank: int, noise: float, seed: int) -> Callable[[], Data]:
    """Matrix completion: (user, item) pairs and a rating from a low-rank teacher plus noise."""
    def load():
        gen = torch.Generator().manual_seed(seed)
        u, v = torch.randn(users, rank, generator=gen), torch.randn(items, rank, generator=gen)
        pairs = torch.stack([torch.randint(0, users, (n,), generator=gen), torch.randint(0, items, (n,), generator=gen)], 1)
        y = (u[pairs[:, 0]] * v[pairs[:, 1]]).sum(1, keepdim=True) / rank**0.5 + noise * torch.randn(n, 1, generator=gen)
        return _split(pairs, y)

    return load


# ---------------------------------------------------------------- models


def mlp(sizes: list[int], dropout: float = 0.0) -> Callable[[], nn.Module]:
    def build():
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-2], sizes[1:-1]):
            layers += [nn.Linear(a, b), nn.ReLU()] + ([nn.Dropout(dropout)] if dropout else [])
        layers.append(nn.Linear(sizes[-2], sizes[-1]))
        return nn.Sequential(*layers)

    return build


def small_cnn(channels: int = 3, classes: int = 10) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(channels, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 4 * 4, classes),
    )


def pooled_cnn(channels: int, classes: int, width: int = 16) -> nn.Module:
    """Two conv layers and global average pooling: works on any image size (8x8 digits, 12x12 FakeData)."""
    return nn.Sequential(
        nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, padding=1, stride=2), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, classes),
    )


class Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.skip = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                                                                     nn.BatchNorm2d(cout))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.skip(x))


def tiny_resnet(channels: int = 1, classes: int = 10, width: int = 16) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
        Block(width, width, 1), Block(width, 2 * width, 2),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(2 * width * 4, classes),
    )


class TinyTransformer(nn.Module):
    """Token or feature inputs -> a pre-norm transformer encoder -> per-position (lm) or mean-pooled outputs."""

    def __init__(self, outputs: int, *, vocab: int = 0, features: int = 0, seq_len: int = 16, d: int = 32, layers: int = 1,
                 causal: bool = False, pooled: bool = True):
        super().__init__()
        self.embed = nn.Embedding(vocab, d) if vocab else nn.Linear(features, d)
        self.pos = nn.Parameter(torch.randn(seq_len, d) * 0.02)
        layer = nn.TransformerEncoderLayer(d, nhead=2, dim_feedforward=2 * d, dropout=0.0, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, outputs)
        self.causal, self.pooled = causal, pooled

    def forward(self, x):
        h = self.embed(x) + self.pos[: x.shape[1]]
        mask = nn.Transformer.generate_square_subsequent_mask(x.shape[1]) if self.causal else None
        h = self.norm(self.encoder(h, mask=mask, is_causal=self.causal))
        return self.head(h.mean(1) if self.pooled else h)


class TinyRNN(nn.Module):
    """Embedding or linear input -> LSTM/GRU -> head on the last state (pooled) or every state (lm)."""

    def __init__(self, cell: str, outputs: int, *, vocab: int = 0, features: int = 0, hidden: int = 32, pooled: bool = True):
        super().__init__()
        self.embed = nn.Embedding(vocab, hidden) if vocab else nn.Linear(features, hidden)
        self.rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[cell](hidden, hidden, batch_first=True)
        self.head = nn.Linear(hidden, outputs)
        self.pooled = pooled

    def forward(self, x):
        h, _ = self.rnn(self.embed(x))
        return self.head(h[:, -1] if self.pooled else h)


class BagClassifier(nn.Module):
    """EmbeddingBag (mean of token vectors) -> linear: fastText-style text classification."""

    def __init__(self, vocab: int, outputs: int, d: int = 16):
        super().__init__()
        self.bag = nn.EmbeddingBag(vocab, d, mode="mean")
        self.head = nn.Linear(d, outputs)

    def forward(self, ids):
        return self.head(self.bag(ids))


class MatrixFactorisation(nn.Module):
    """User and item embeddings with biases; the rating is their dot product."""

    def __init__(self, users: int, items: int, d: int = 16):
        super().__init__()
        self.user, self.item = nn.Embedding(users, d), nn.Embedding(items, d)
        self.user_bias, self.item_bias = nn.Embedding(users, 1), nn.Embedding(items, 1)
        for e in (self.user, self.item):
            nn.init.normal_(e.weight, std=0.1)
        for e in (self.user_bias, self.item_bias):
            nn.init.zeros_(e.weight)

    def forward(self, pairs):
        u, i = pairs[:, 0], pairs[:, 1]
        return (self.user(u) * self.item(i)).sum(1, keepdim=True) + self.user_bias(u) + self.item_bias(i)


# ---------------------------------------------------------------- tasks

OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "rmsprop": torch.optim.RMSprop,
              "adagrad": torch.optim.Adagrad}
# Where each optimizer's grid starts (log10 bounds, 4.5 decades): a generic prior, not a per-task choice.
# ground_truth.py widens a grid by half a decade at a time while its best point is at an edge.
GRIDS = {"sgd": (-3.5, 1.0), "adagrad": (-3.5, 1.0), "adam": (-4.5, 0.0), "adamw": (-4.5, 0.0), "rmsprop": (-5.0, -0.5)}


class SequenceCE(nn.Module):
    """Cross-entropy over every position of (batch, time, vocab) logits."""

    def forward(self, logits, targets):
        return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


LOSSES = {"ce": nn.CrossEntropyLoss, "mse": nn.MSELoss, "huber": nn.HuberLoss, "smoothl1": nn.SmoothL1Loss,
          "bce": nn.BCEWithLogitsLoss, "ce_seq": SequenceCE}


@dataclass
class Task:
    name: str
    family: str
    describe: str
    data: Callable[[], Data]
    build: Callable[[], nn.Module]
    optimizer: str
    opt_kwargs: dict
    loss: str
    batch_size: int
    steps: int
    grid: tuple[float, float] | None = None  # log10 bounds of the starting grid (quarter-decade points); None: GRIDS
    quick: bool = False
    extra: dict = field(default_factory=dict)
    round: int = 1  # 1: the first 34 tasks (their test half was read once, with the shipped constants); 2-4: added later
    fresh: Any = None  # round 6 (fresh_tasks.py): a FreshSource drawing new training data at every step

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"unknown family {self.family!r}")
        if self.grid is None:
            self.grid = GRIDS[self.optimizer]

    @property
    def half(self) -> str:
        return half(self.name)

    def grid_lrs(self) -> list[float]:
        lo, hi = self.grid
        return [float(10 ** (lo + 0.25 * k)) for k in range(int(round((hi - lo) / 0.25)) + 1)]

    def loss_fn(self) -> nn.Module:
        return LOSSES[self.loss]()

    def make_optimizer(self, params, lr: float) -> torch.optim.Optimizer:
        return OPTIMIZERS[self.optimizer](params, lr=lr, **self.opt_kwargs)

    def cycles_momentum(self) -> bool:
        """OneCycleLR cycles momentum only where the optimizer already has some (never turns plain SGD into momentum SGD)."""
        if self.optimizer in ("adam", "adamw"):
            return True
        return self.optimizer == "sgd" and self.opt_kwargs.get("momentum", 0) > 0

    def key(self) -> str:
        """A hash of what defines the task's training; a stored ground truth with another key is stale."""
        text = json.dumps([GROUND_TRUTH_VERSION, self.describe, self.optimizer, self.opt_kwargs, self.loss, self.batch_size,
                           self.steps, self.extra], sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:10]


def _t(name, family, describe, data, build, optimizer, opt_kwargs, loss, batch, steps, **kw) -> Task:
    return Task(name, family, describe, data, build, optimizer, opt_kwargs, loss, batch, steps, **kw)


TASKS: list[Task] = [
    # the seven tasks of the first benchmark (unchanged definitions; their old grids)
    _t("digits-mlp-sgd", "mlp", "digits MLP 64-128-10, SGD m=0.9, CE, batch 32", sk_classes("digits"), mlp([64, 128, 10]),
       "sgd", {"momentum": 0.9}, "ce", 32, 300, grid=(-4.0, 1.0), quick=True),
    _t("diabetes-mlp-adamw", "mlp", "diabetes MLP 10-64-64-1, AdamW wd=0.01, MSE, batch 16", sk_regression("diabetes"),
       mlp([10, 64, 64, 1]), "adamw", {"weight_decay": 0.01}, "mse", 16, 300, grid=(-5.0, 0.0), quick=True),
    _t("tabular-mlp-rmsprop", "mlp", "SyntheticTabular MLP 16-64-64-1, RMSprop, MSE, batch 64", tabular_data, mlp([16, 64, 64, 1]),
       "rmsprop", {}, "mse", 64, 300, grid=(-5.5, -0.5), quick=True),
    _t("cancer-mlp-adam", "mlp", "breast cancer MLP 30-32-2, Adam, CE, batch 16", sk_classes("breast_cancer"), mlp([30, 32, 2]),
       "adam", {}, "ce", 16, 200, grid=(-5.0, 0.0)),
    _t("blobs-mlp-sgd-b128", "mlp", "teacher-net classes MLP 20-128-128-5, SGD m=0.9 wd=5e-4, CE, batch 128", blobs_data,
       mlp([20, 128, 128, 5]), "sgd", {"momentum": 0.9, "weight_decay": 5e-4}, "ce", 128, 300, grid=(-3.5, 1.5)),
    _t("images-cnn-sgd", "cnn", "SyntheticImages 3x16x16 noise 6 small CNN, SGD m=0.9, CE, batch 64", images_data(3, 6.0),
       lambda: small_cnn(3), "sgd", {"momentum": 0.9}, "ce", 64, 250, grid=(-3.5, 1.0)),
    _t("images-resnet-adam", "resnet", "SyntheticImages 1x16x16 noise 4 tiny ResNet (BN), Adam, CE, batch 32", images_data(1, 4.0),
       lambda: tiny_resnet(1), "adam", {}, "ce", 32, 200, grid=(-4.5, -0.5)),
    # --- added for issue 12: new data, families, optimizers, losses, batch sizes, label noise
    # mlp
    _t("iris-mlp-nesterov-b8", "mlp", "iris MLP 4-32-3, SGD Nesterov m=0.9, CE, batch 8", sk_classes("iris"), mlp([4, 32, 3]),
       "sgd", {"momentum": 0.9, "nesterov": True}, "ce", 8, 200),
    _t("wine-mlp-adagrad", "mlp", "wine MLP 13-64-3, Adagrad, CE, batch 16", sk_classes("wine"), mlp([13, 64, 3]),
       "adagrad", {}, "ce", 16, 200),
    _t("diabetes-mlp-huber-rmsprop", "mlp", "diabetes MLP 10-64-1, RMSprop, Huber, batch 32", sk_regression("diabetes"),
       mlp([10, 64, 1]), "rmsprop", {}, "huber", 32, 200),
    _t("linnerud-mlp-adam-b8", "mlp", "linnerud (20 samples) MLP 3-16-3, Adam, MSE, batch 8", sk_regression("linnerud"),
       mlp([3, 16, 3]), "adam", {}, "mse", 8, 150),
    _t("teacher-mlp-noisy-adamw-b256", "mlp", "teacher classes (30% label noise) MLP 20-64-64-4 dropout 0.1, AdamW wd=0.05, CE, batch 256",
       teacher_classes_data(8000, 20, 4, 31, label_noise=0.3), mlp([20, 64, 64, 4], dropout=0.1), "adamw", {"weight_decay": 0.05},
       "ce", 256, 200),
    _t("teacher-mlp-regression-sgd-b512", "mlp", "teacher regression (targets x10) MLP 12-64-2, SGD m=0.9, MSE, batch 512",
       teacher_regression_data(8000, 12, 2, 0.2, 32, scale=10.0), mlp([12, 64, 2]), "sgd", {"momentum": 0.9}, "mse", 512, 200),
    _t("digits-mlp-plain-sgd-b8", "mlp", "digits (20% label noise) MLP 64-64-10, plain SGD, CE, batch 8",
       sk_classes("digits", label_noise=0.2), mlp([64, 64, 10]), "sgd", {}, "ce", 8, 250),
    # linear models
    _t("wine-logreg-sgd", "linear", "wine logistic regression 13-3, plain SGD, CE, batch 16", sk_classes("wine"), mlp([13, 3]),
       "sgd", {}, "ce", 16, 150),
    _t("cancer-logreg-bce-rmsprop", "linear", "breast cancer logistic regression 30-1, RMSprop, BCEWithLogits, batch 64",
       sk_binary_float("breast_cancer"), mlp([30, 1]), "rmsprop", {}, "bce", 64, 150),
    _t("teacher-linear-huber-adam", "linear", "teacher regression (targets x3) linear 12-2, Adam, Huber, batch 128",
       teacher_regression_data(4000, 12, 2, 0.3, 33, scale=3.0), mlp([12, 2]), "adam", {}, "huber", 128, 150),
    # cnn
    _t("digits-cnn-nesterov", "cnn", "digits 1x8x8 pooled CNN, SGD Nesterov m=0.9, CE, batch 32", sk_classes("digits", image=True),
       lambda: pooled_cnn(1, 10), "sgd", {"momentum": 0.9, "nesterov": True}, "ce", 32, 200),
    _t("fakedata-cnn-adam", "cnn", "FakeData 1x12x12 + teacher-CNN labels, pooled CNN width 8, Adam, CE, batch 64",
       fakedata_teacher(2000, 12, 4, 41), lambda: pooled_cnn(1, 4, width=8), "adam", {}, "ce", 64, 150),
    _t("images-cnn-rmsprop-b16", "cnn", "SyntheticImages 1x12x12 noise 3 pooled CNN, RMSprop, CE, batch 16",
       images_data(1, 3.0, n=1500, size=12), lambda: pooled_cnn(1, 10), "rmsprop", {}, "ce", 16, 200),
    _t("images-cnn-adagrad-noisy", "cnn", "SyntheticImages 1x12x12 noise 2 (25% label noise) pooled CNN, Adagrad, CE, batch 64",
       images_data(1, 2.0, n=2000, size=12, label_noise=0.25), lambda: pooled_cnn(1, 10), "adagrad", {}, "ce", 64, 200),
    # resnet with batchnorm
    _t("digits-resnet-sgd", "resnet", "digits 1x8x8 tiny ResNet (BN) width 8, SGD m=0.9 wd=5e-4, CE, batch 64",
       sk_classes("digits", image=True), lambda: tiny_resnet(1, 10, width=8), "sgd", {"momentum": 0.9, "weight_decay": 5e-4}, "ce",
       64, 150),
    _t("images-resnet-nesterov-b128", "resnet", "SyntheticImages 1x8x8 noise 3 tiny ResNet (BN) width 8, SGD Nesterov, CE, batch 128",
       images_data(1, 3.0, n=3000, size=8), lambda: tiny_resnet(1, 10, width=8), "sgd", {"momentum": 0.9, "nesterov": True}, "ce",
       128, 100),
    _t("fakedata-resnet-adamw-b16", "resnet", "FakeData 1x8x8 + teacher-CNN labels, tiny ResNet (BN) width 8, AdamW wd=0.01, CE, batch 16",
       fakedata_teacher(1500, 8, 3, 42), lambda: tiny_resnet(1, 3, width=8), "adamw", {"weight_decay": 0.01}, "ce", 16, 100),
    # transformer
    _t("seq-transformer-lm-adam", "transformer",
       "SyntheticSequences LM (vocab 32, len 16), 1-layer causal transformer d=32, Adam, CE, batch 32",
       lm_data(2000, 16, 32, 3, 51), lambda: TinyTransformer(32, vocab=32, causal=True, pooled=False), "adam", {}, "ce_seq", 32, 200),
    _t("tokens-transformer-adamw-b128", "transformer",
       "token bags (vocab 64, len 16, 4 classes), 1-layer transformer d=32, AdamW, CE, batch 128",
       token_classes_data(4000, 16, 64, 4, 52), lambda: TinyTransformer(4, vocab=64), "adamw", {"weight_decay": 0.01}, "ce", 128, 120),
    _t("digits-transformer-sgd", "transformer", "digits as 8 rows of 8 pixels, 1-layer transformer d=32, SGD m=0.9, CE, batch 64",
       lambda: (lambda d: (d[0].reshape(-1, 8, 8), d[1], d[2].reshape(-1, 8, 8), d[3]))(sk_classes("digits")()),
       lambda: TinyTransformer(10, features=8, seq_len=8, layers=1), "sgd", {"momentum": 0.9}, "ce", 64, 150),
    # rnn
    _t("seq-lstm-lm-adam", "rnn", "SyntheticSequences LM (vocab 32, len 16), LSTM 32, Adam, CE, batch 32", lm_data(2000, 16, 32, 3, 61),
       lambda: TinyRNN("lstm", 32, vocab=32, pooled=False), "adam", {}, "ce_seq", 32, 200),
    _t("memory-gru-huber-rmsprop", "rnn", "lag-3 product sums over 12 steps, GRU 32, RMSprop, Huber, batch 64",
       memory_regression_data(3000, 12, 3, 62), lambda: TinyRNN("gru", 1, features=1), "rmsprop", {}, "huber", 64, 150),
    _t("tokens-lstm-sgd-b16", "rnn", "token bags (vocab 32, len 12, 3 classes), LSTM 32, SGD m=0.9, CE, batch 16",
       token_classes_data(2000, 12, 32, 3, 63), lambda: TinyRNN("lstm", 3, vocab=32), "sgd", {"momentum": 0.9}, "ce", 16, 200),
    # embeddings
    _t("bag-embbag-adagrad", "embedding", "token bags (vocab 500, len 20, 5 classes), EmbeddingBag 16, Adagrad, CE, batch 64",
       token_classes_data(5000, 20, 500, 5, 71), lambda: BagClassifier(500, 5), "adagrad", {}, "ce", 64, 200),
    _t("bag-multilabel-bce-sgd", "embedding",
       "token bags (vocab 300, len 16), 6 binary labels, EmbeddingBag 16, plain SGD, BCEWithLogits, batch 32",
       token_multilabel_data(4000, 16, 300, 6, 72), lambda: BagClassifier(300, 6), "sgd", {}, "bce", 32, 200),
    _t("ratings-mf-adam-b512", "embedding", "ratings (200 users x 300 items, rank 4), matrix factorisation d=16, Adam, MSE, batch 512",
       ratings_data(200, 300, 20000, 4, 0.3, 73), lambda: MatrixFactorisation(200, 300), "adam", {}, "mse", 512, 200),
    _t("ratings-mf-smoothl1-nesterov", "embedding",
       "ratings (100 users x 100 items, rank 3), matrix factorisation d=8, SGD Nesterov, SmoothL1, batch 128",
       ratings_data(100, 100, 6000, 3, 0.2, 74), lambda: MatrixFactorisation(100, 100, d=8), "sgd", {"momentum": 0.9, "nesterov": True},
       "smoothl1", 128, 200),
]

# --- round 2 (added after the first reading of the test half, defined before any of their results were seen).
# Their test-half members were scored once with the rule as shipped (constants fixed before they existed).
# Names fix the half by the same sha256 rule.
ROUND_2: list[Task] = [
    _t("wine-mlp-momentum-b32", "mlp", "wine MLP 13-32-32-3, SGD m=0.9, CE, batch 32", sk_classes("wine"), mlp([13, 32, 32, 3]),
       "sgd", {"momentum": 0.9}, "ce", 32, 150),
    _t("digits-mlp-adam-b64", "mlp", "digits MLP 64-256-10, Adam, CE, batch 64", sk_classes("digits"), mlp([64, 256, 10]),
       "adam", {}, "ce", 64, 200),
    _t("cancer-mlp-rmsprop-b32", "mlp", "breast cancer MLP 30-64-64-2, RMSprop, CE, batch 32", sk_classes("breast_cancer"),
       mlp([30, 64, 64, 2]), "rmsprop", {}, "ce", 32, 150),
    _t("diabetes-mlp-huber-momentum-b64", "mlp", "diabetes MLP 10-32-1, SGD m=0.9, Huber, batch 64", sk_regression("diabetes"),
       mlp([10, 32, 1]), "sgd", {"momentum": 0.9}, "huber", 64, 200),
    _t("teacher-mlp-adam-b256", "mlp", "teacher classes MLP 20-128-4, Adam, CE, batch 256", teacher_classes_data(8000, 20, 4, 81),
       mlp([20, 128, 4]), "adam", {}, "ce", 256, 150),
    _t("tabular-mlp-huber-adamw-b8", "mlp", "SyntheticTabular MLP 16-32-1, AdamW wd=0.01, Huber, batch 8", tabular_data,
       mlp([16, 32, 1]), "adamw", {"weight_decay": 0.01}, "huber", 8, 200),
    _t("iris-logreg-adam-b8", "linear", "iris logistic regression 4-3, Adam, CE, batch 8", sk_classes("iris"), mlp([4, 3]),
       "adam", {}, "ce", 8, 150),
    _t("teacher-linear-mse-nesterov-b64", "linear", "teacher regression linear 12-2, SGD Nesterov m=0.9, MSE, batch 64",
       teacher_regression_data(4000, 12, 2, 0.3, 82), mlp([12, 2]), "sgd", {"momentum": 0.9, "nesterov": True}, "mse", 64, 150),
    _t("images-cnn-adam-b32", "cnn", "SyntheticImages 3x16x16 noise 6 small CNN, Adam, CE, batch 32", images_data(3, 6.0),
       lambda: small_cnn(3), "adam", {}, "ce", 32, 150),
    _t("fakedata-cnn-nesterov-b128", "cnn", "FakeData 1x12x12 + teacher-CNN labels, pooled CNN width 8, SGD Nesterov m=0.9, CE, batch 128",
       fakedata_teacher(3000, 12, 4, 83), lambda: pooled_cnn(1, 4, width=8), "sgd", {"momentum": 0.9, "nesterov": True}, "ce", 128, 150),
    _t("digits-cnn-rmsprop-b16", "cnn", "digits 1x8x8 pooled CNN, RMSprop, CE, batch 16", sk_classes("digits", image=True),
       lambda: pooled_cnn(1, 10), "rmsprop", {}, "ce", 16, 150),
    _t("digits-resnet-adam-b32", "resnet", "digits 1x8x8 tiny ResNet (BN) width 8, Adam, CE, batch 32", sk_classes("digits", image=True),
       lambda: tiny_resnet(1, 10, width=8), "adam", {}, "ce", 32, 150),
    _t("images-resnet-momentum-b256", "resnet", "SyntheticImages 1x8x8 noise 3 tiny ResNet (BN) width 8, SGD m=0.9 wd=5e-4, CE, batch 256",
       images_data(1, 3.0, n=4000, size=8), lambda: tiny_resnet(1, 10, width=8), "sgd", {"momentum": 0.9, "weight_decay": 5e-4},
       "ce", 256, 100),
    _t("tokens-transformer-adam-b64", "transformer",
       "token bags (vocab 64, len 16, 4 classes), 1-layer transformer d=32, Adam, CE, batch 64",
       token_classes_data(4000, 16, 64, 4, 84), lambda: TinyTransformer(4, vocab=64), "adam", {}, "ce", 64, 150),
    _t("digits-transformer-adamw-b32", "transformer", "digits as 8 rows of 8 pixels, 1-layer transformer d=32, AdamW wd=0.01, CE, batch 32",
       lambda: (lambda d: (d[0].reshape(-1, 8, 8), d[1], d[2].reshape(-1, 8, 8), d[3]))(sk_classes("digits")()),
       lambda: TinyTransformer(10, features=8, seq_len=8, layers=1), "adamw", {"weight_decay": 0.01}, "ce", 32, 150),
    _t("seq-gru-lm-rmsprop-b64", "rnn", "SyntheticSequences LM (vocab 32, len 16), GRU 32, RMSprop, CE, batch 64",
       lm_data(2000, 16, 32, 3, 85), lambda: TinyRNN("gru", 32, vocab=32, pooled=False), "rmsprop", {}, "ce_seq", 64, 150),
    _t("memory-lstm-mse-adam-b32", "rnn", "lag-2 product sums over 10 steps, LSTM 32, Adam, MSE, batch 32",
       memory_regression_data(3000, 10, 2, 86), lambda: TinyRNN("lstm", 1, features=1), "adam", {}, "mse", 32, 200),
    _t("bag-embbag-adamw-b32", "embedding", "token bags (vocab 400, len 20, 4 classes), EmbeddingBag 16, AdamW wd=0.01, CE, batch 32",
       token_classes_data(4000, 20, 400, 4, 87), lambda: BagClassifier(400, 4), "adamw", {"weight_decay": 0.01}, "ce", 32, 150),
    _t("ratings-mf-huber-rmsprop-b256", "embedding",
       "ratings (150 users x 150 items, rank 3), matrix factorisation d=8, RMSprop, Huber, batch 256",
       ratings_data(150, 150, 10000, 3, 0.2, 88), lambda: MatrixFactorisation(150, 150, d=8), "rmsprop", {}, "huber", 256, 150),
    _t("teacher-mlp-noisy-sgd-b16", "mlp", "teacher classes (20% label noise) MLP 20-64-4, plain SGD, CE, batch 16",
       teacher_classes_data(4000, 20, 4, 89, label_noise=0.2), mlp([20, 64, 4]), "sgd", {}, "ce", 16, 200),
]


# --- round 3 (added after round 2's test tasks were scored once; defined before any of their results were
# seen). Their test-half members are the fresh hold-out for the shipped rule and the candidate centre rule.
ROUND_3: list[Task] = [
    _t("iris-mlp-adamw-b16", "mlp", "iris MLP 4-64-64-3, AdamW wd=0.01, CE, batch 16", sk_classes("iris"), mlp([4, 64, 64, 3]),
       "adamw", {"weight_decay": 0.01}, "ce", 16, 150),
    _t("wine-mlp-rmsprop-b8", "mlp", "wine MLP 13-32-3, RMSprop, CE, batch 8", sk_classes("wine"), mlp([13, 32, 3]),
       "rmsprop", {}, "ce", 8, 150),
    _t("digits-mlp-nesterov-b128", "mlp", "digits MLP 64-128-64-10, SGD Nesterov m=0.9, CE, batch 128", sk_classes("digits"),
       mlp([64, 128, 64, 10]), "sgd", {"momentum": 0.9, "nesterov": True}, "ce", 128, 200),
    _t("diabetes-mlp-adam-b32", "mlp", "diabetes MLP 10-128-1, Adam, MSE, batch 32", sk_regression("diabetes"), mlp([10, 128, 1]),
       "adam", {}, "mse", 32, 200),
    _t("cancer-mlp-plain-sgd-b64", "mlp", "breast cancer MLP 30-16-2, plain SGD, CE, batch 64", sk_classes("breast_cancer"),
       mlp([30, 16, 2]), "sgd", {}, "ce", 64, 150),
    _t("teacher-mlp-huber-momentum-b256", "mlp", "teacher regression (targets x5) MLP 12-64-64-2, SGD m=0.9, Huber, batch 256",
       teacher_regression_data(8000, 12, 2, 0.2, 91, scale=5.0), mlp([12, 64, 64, 2]), "sgd", {"momentum": 0.9}, "huber", 256, 150),
    _t("tabular-mlp-rmsprop-b128", "mlp", "SyntheticTabular MLP 16-128-1, RMSprop, MSE, batch 128", tabular_data, mlp([16, 128, 1]),
       "rmsprop", {}, "mse", 128, 200),
    _t("teacher-mlp-adagrad-b32", "mlp", "teacher classes MLP 20-64-5, Adagrad, CE, batch 32", teacher_classes_data(6000, 20, 5, 92),
       mlp([20, 64, 5]), "adagrad", {}, "ce", 32, 150),
    _t("iris-logreg-nesterov-b16", "linear", "iris logistic regression 4-3, SGD Nesterov m=0.9, CE, batch 16", sk_classes("iris"),
       mlp([4, 3]), "sgd", {"momentum": 0.9, "nesterov": True}, "ce", 16, 150),
    _t("wine-logreg-rmsprop-b32", "linear", "wine logistic regression 13-3, RMSprop, CE, batch 32", sk_classes("wine"), mlp([13, 3]),
       "rmsprop", {}, "ce", 32, 150),
    _t("images-cnn-nesterov-b64", "cnn", "SyntheticImages 1x12x12 noise 3 pooled CNN, SGD Nesterov m=0.9, CE, batch 64",
       images_data(1, 3.0, n=2000, size=12), lambda: pooled_cnn(1, 10), "sgd", {"momentum": 0.9, "nesterov": True}, "ce", 64, 150),
    _t("fakedata-cnn-adamw-b32", "cnn", "FakeData 1x12x12 + teacher-CNN labels, pooled CNN width 16, AdamW wd=0.01, CE, batch 32",
       fakedata_teacher(2000, 12, 4, 93), lambda: pooled_cnn(1, 4), "adamw", {"weight_decay": 0.01}, "ce", 32, 150),
    _t("images-smallcnn-rmsprop-b128", "cnn", "SyntheticImages 3x16x16 noise 5 small CNN, RMSprop, CE, batch 128", images_data(3, 5.0),
       lambda: small_cnn(3), "rmsprop", {}, "ce", 128, 120),
    _t("digits-resnet-nesterov-b16", "resnet", "digits 1x8x8 tiny ResNet (BN) width 8, SGD Nesterov m=0.9, CE, batch 16",
       sk_classes("digits", image=True), lambda: tiny_resnet(1, 10, width=8), "sgd", {"momentum": 0.9, "nesterov": True}, "ce", 16, 150),
    _t("fakedata-resnet-adam-b64", "resnet", "FakeData 1x8x8 + teacher-CNN labels, tiny ResNet (BN) width 8, Adam, CE, batch 64",
       fakedata_teacher(2000, 8, 3, 94), lambda: tiny_resnet(1, 3, width=8), "adam", {}, "ce", 64, 120),
    _t("images-resnet-rmsprop-b32", "resnet", "SyntheticImages 1x8x8 noise 2 tiny ResNet (BN) width 8, RMSprop, CE, batch 32",
       images_data(1, 2.0, n=2000, size=8), lambda: tiny_resnet(1, 10, width=8), "rmsprop", {}, "ce", 32, 120),
    _t("seq-transformer-lm-adamw-b16", "transformer",
       "SyntheticSequences LM (vocab 32, len 16), 1-layer causal transformer d=32, AdamW wd=0.01, CE, batch 16",
       lm_data(2000, 16, 32, 3, 95), lambda: TinyTransformer(32, vocab=32, causal=True, pooled=False), "adamw", {"weight_decay": 0.01},
       "ce_seq", 16, 150),
    _t("tokens-transformer-momentum-b32", "transformer",
       "token bags (vocab 64, len 16, 4 classes), 1-layer transformer d=32, SGD m=0.9, CE, batch 32",
       token_classes_data(3000, 16, 64, 4, 96), lambda: TinyTransformer(4, vocab=64), "sgd", {"momentum": 0.9}, "ce", 32, 150),
    _t("tokens-gru-adam-b64", "rnn", "token bags (vocab 32, len 12, 3 classes), GRU 32, Adam, CE, batch 64",
       token_classes_data(3000, 12, 32, 3, 97), lambda: TinyRNN("gru", 3, vocab=32), "adam", {}, "ce", 64, 150),
    _t("memory-lstm-huber-rmsprop-b128", "rnn", "lag-2 product sums over 10 steps, LSTM 32, RMSprop, Huber, batch 128",
       memory_regression_data(4000, 10, 2, 98), lambda: TinyRNN("lstm", 1, features=1), "rmsprop", {}, "huber", 128, 150),
    _t("ratings-mf-adamw-b64", "embedding",
       "ratings (120 users x 200 items, rank 3), matrix factorisation d=8, AdamW wd=0.01, MSE, batch 64",
       ratings_data(120, 200, 8000, 3, 0.3, 99), lambda: MatrixFactorisation(120, 200, d=8), "adamw", {"weight_decay": 0.01}, "mse",
       64, 150),
    _t("bag-embbag-momentum-b128", "embedding", "token bags (vocab 300, len 20, 4 classes), EmbeddingBag 16, SGD m=0.9, CE, batch 128",
       token_classes_data(5000, 20, 300, 4, 100), lambda: BagClassifier(300, 4), "sgd", {"momentum": 0.9}, "ce", 128, 150),
]

# --- round 4 (added in the session after round 3's test tasks were read; defined before any of their results
# were seen). Their test-half members are the fresh hold-out for any rule chosen after round 3.
ROUND_4: list[Task] = [
    _t("iris-mlp-adam-b32", "mlp", "iris MLP 4-16-3, Adam, CE, batch 32", sk_classes("iris"), mlp([4, 16, 3]), "adam", {}, "ce", 32, 150),
    _t("digits-mlp-adagrad-b64", "mlp", "digits MLP 64-64-10, Adagrad, CE, batch 64", sk_classes("digits"), mlp([64, 64, 10]),
       "adagrad", {}, "ce", 64, 150),
    _t("wine-mlp-nesterov-b16", "mlp", "wine MLP 13-64-64-3, SGD Nesterov m=0.9, CE, batch 16", sk_classes("wine"),
       mlp([13, 64, 64, 3]), "sgd", {"momentum": 0.9, "nesterov": True}, "ce", 16, 150),
    _t("diabetes-mlp-huber-rmsprop-b64", "mlp", "diabetes MLP 10-32-32-1, RMSprop, Huber, batch 64", sk_regression("diabetes"),
       mlp([10, 32, 32, 1]), "rmsprop", {}, "huber", 64, 150),
    _t("teacher-mlp-deep-adamw-b128", "mlp", "teacher classes MLP 20-64-64-64-4, AdamW wd=0.01, CE, batch 128",
       teacher_classes_data(5000, 20, 4, 110), mlp([20, 64, 64, 64, 4]), "adamw", {"weight_decay": 0.01}, "ce", 128, 150),
    _t("cancer-mlp-momentum-b8", "mlp", "breast cancer MLP 30-32-2, SGD m=0.9, CE, batch 8", sk_classes("breast_cancer"),
       mlp([30, 32, 2]), "sgd", {"momentum": 0.9}, "ce", 8, 150),
    _t("teacher-mlp-regression-adam-b16", "mlp", "teacher regression MLP 12-32-2, Adam, MSE, batch 16",
       teacher_regression_data(4000, 12, 2, 0.2, 111), mlp([12, 32, 2]), "adam", {}, "mse", 16, 150),
    _t("digits-logreg-adam-b64", "linear", "digits logistic regression 64-10, Adam, CE, batch 64", sk_classes("digits"),
       mlp([64, 10]), "adam", {}, "ce", 64, 150),
    _t("teacher-linear-huber-sgd-b32", "linear", "teacher regression linear 12-2, plain SGD, Huber, batch 32",
       teacher_regression_data(4000, 12, 2, 0.3, 112), mlp([12, 2]), "sgd", {}, "huber", 32, 150),
    _t("cancer-logreg-bce-adagrad-b16", "linear", "breast cancer logistic regression 30-1, Adagrad, BCEWithLogits, batch 16",
       sk_binary_float("breast_cancer"), mlp([30, 1]), "adagrad", {}, "bce", 16, 150),
    _t("digits-cnn-adam-b64", "cnn", "digits 1x8x8 pooled CNN, Adam, CE, batch 64", sk_classes("digits", image=True),
       lambda: pooled_cnn(1, 10), "adam", {}, "ce", 64, 150),
    _t("images-cnn-momentum-b16", "cnn", "SyntheticImages 1x12x12 noise 3 pooled CNN width 8, SGD m=0.9, CE, batch 16",
       images_data(1, 3.0, n=2000, size=12), lambda: pooled_cnn(1, 10, width=8), "sgd", {"momentum": 0.9}, "ce", 16, 150),
    _t("fakedata-cnn-rmsprop-b64", "cnn", "FakeData 1x12x12 + teacher-CNN labels, pooled CNN width 16, RMSprop, CE, batch 64",
       fakedata_teacher(2000, 12, 4, 113), lambda: pooled_cnn(1, 4), "rmsprop", {}, "ce", 64, 150),
    _t("digits-resnet-adamw-b128", "resnet", "digits 1x8x8 tiny ResNet (BN) width 8, AdamW wd=0.05, CE, batch 128",
       sk_classes("digits", image=True), lambda: tiny_resnet(1, 10, width=8), "adamw", {"weight_decay": 0.05}, "ce", 128, 120),
    _t("images-resnet-adagrad-b64", "resnet", "SyntheticImages 1x8x8 noise 2 tiny ResNet (BN) width 8, Adagrad, CE, batch 64",
       images_data(1, 2.0, n=2000, size=8), lambda: tiny_resnet(1, 10, width=8), "adagrad", {}, "ce", 64, 120),
    _t("fakedata-resnet-momentum-b32", "resnet",
       "FakeData 1x8x8 + teacher-CNN labels, tiny ResNet (BN) width 8, SGD m=0.9 wd=5e-4, CE, batch 32",
       fakedata_teacher(2000, 8, 3, 114), lambda: tiny_resnet(1, 3, width=8), "sgd", {"momentum": 0.9, "weight_decay": 5e-4},
       "ce", 32, 120),
    _t("tokens-transformer-rmsprop-b32", "transformer", "token bags (vocab 64, len 16, 4 classes), 1-layer transformer d=32, RMSprop, "
       "CE, batch 32", token_classes_data(3000, 16, 64, 4, 115), lambda: TinyTransformer(4, vocab=64), "rmsprop", {}, "ce", 32, 150),
    _t("seq-transformer-lm-adam-b64", "transformer",
       "SyntheticSequences LM (vocab 32, len 16), 1-layer causal transformer d=32, Adam, CE, batch 64",
       lm_data(2000, 16, 32, 3, 116), lambda: TinyTransformer(32, vocab=32, causal=True, pooled=False), "adam", {}, "ce_seq", 64, 150),
    _t("tokens-transformer-2layer-adamw-b128", "transformer",
       "token bags (vocab 64, len 16, 3 classes), 2-layer transformer d=32, AdamW wd=0.01, CE, batch 128",
       token_classes_data(4000, 16, 64, 3, 117), lambda: TinyTransformer(3, vocab=64, layers=2), "adamw", {"weight_decay": 0.01},
       "ce", 128, 150),
    _t("seq-lstm-lm-momentum-b32", "rnn", "SyntheticSequences LM (vocab 32, len 16), LSTM 32, SGD m=0.9, CE, batch 32",
       lm_data(2000, 16, 32, 3, 118), lambda: TinyRNN("lstm", 32, vocab=32, pooled=False), "sgd", {"momentum": 0.9}, "ce_seq", 32, 150),
    _t("memory-gru-mse-adam-b32", "rnn", "lag-2 product sums over 10 steps, GRU 32, Adam, MSE, batch 32",
       memory_regression_data(3000, 10, 2, 119), lambda: TinyRNN("gru", 1, features=1), "adam", {}, "mse", 32, 150),
    _t("tokens-lstm-adagrad-b16", "rnn", "token bags (vocab 32, len 12, 3 classes), LSTM 32, Adagrad, CE, batch 16",
       token_classes_data(2000, 12, 32, 3, 120), lambda: TinyRNN("lstm", 3, vocab=32), "adagrad", {}, "ce", 16, 150),
    _t("bag-embbag-rmsprop-b64", "embedding", "token bags (vocab 300, len 20, 4 classes), EmbeddingBag 16, RMSprop, CE, batch 64",
       token_classes_data(4000, 20, 300, 4, 121), lambda: BagClassifier(300, 4), "rmsprop", {}, "ce", 64, 150),
    _t("ratings-mf-momentum-b128", "embedding",
       "ratings (100 users x 150 items, rank 3), matrix factorisation d=8, SGD m=0.9, MSE, batch 128",
       ratings_data(100, 150, 8000, 3, 0.3, 122), lambda: MatrixFactorisation(100, 150, d=8), "sgd", {"momentum": 0.9}, "mse", 128, 150),
    _t("bag-multilabel-bce-adam-b64", "embedding",
       "token bags (vocab 200, len 16), 5 binary labels, EmbeddingBag 16, Adam, BCEWithLogits, batch 64",
       token_multilabel_data(4000, 16, 200, 5, 123), lambda: BagClassifier(200, 5), "adam", {}, "bce", 64, 150),
]

# --- round 5 (added after round 4 was read, when the rule's two distances were refitted on the design half of
# rounds 1-4; defined and committed before any of their results existed): the fresh hold-out for the refit.
ROUND_5: list[Task] = [
    _t("wine-mlp-adam-b64", "mlp", "wine MLP 13-64-3, Adam, CE, batch 64", sk_classes("wine"), mlp([13, 64, 3]), "adam", {}, "ce", 64, 150),
    _t("digits-mlp-rmsprop-b32", "mlp", "digits MLP 64-128-10, RMSprop, CE, batch 32", sk_classes("digits"), mlp([64, 128, 10]),
       "rmsprop", {}, "ce", 32, 150),
    _t("iris-mlp-momentum-b8", "mlp", "iris MLP 4-32-32-3, SGD m=0.9, CE, batch 8", sk_classes("iris"), mlp([4, 32, 32, 3]),
       "sgd", {"momentum": 0.9}, "ce", 8, 150),
    _t("diabetes-mlp-adagrad-b16", "mlp", "diabetes MLP 10-64-1, Adagrad, MSE, batch 16", sk_regression("diabetes"), mlp([10, 64, 1]),
       "adagrad", {}, "mse", 16, 150),
    _t("teacher-mlp-noisy-sgd-b64", "mlp", "teacher classes (20% label noise) MLP 20-128-4, plain SGD, CE, batch 64",
       teacher_classes_data(5000, 20, 4, 130, label_noise=0.2), mlp([20, 128, 4]), "sgd", {}, "ce", 64, 150),
    _t("tabular-mlp-adamw-b32", "mlp", "SyntheticTabular MLP 16-64-1, AdamW wd=0.01, MSE, batch 32", tabular_data, mlp([16, 64, 1]),
       "adamw", {"weight_decay": 0.01}, "mse", 32, 150),
    _t("iris-logreg-adamw-b32", "linear", "iris logistic regression 4-3, AdamW wd=0.01, CE, batch 32", sk_classes("iris"), mlp([4, 3]),
       "adamw", {"weight_decay": 0.01}, "ce", 32, 150),
    _t("teacher-linear-mse-rmsprop-b128", "linear", "teacher regression linear 12-2, RMSprop, MSE, batch 128",
       teacher_regression_data(4000, 12, 2, 0.2, 131), mlp([12, 2]), "rmsprop", {}, "mse", 128, 150),
    _t("images-cnn-adagrad-b32", "cnn", "SyntheticImages 1x12x12 noise 3 pooled CNN width 8, Adagrad, CE, batch 32",
       images_data(1, 3.0, n=2000, size=12), lambda: pooled_cnn(1, 10, width=8), "adagrad", {}, "ce", 32, 150),
    _t("digits-cnn-momentum-b128", "cnn", "digits 1x8x8 pooled CNN, SGD m=0.9, CE, batch 128", sk_classes("digits", image=True),
       lambda: pooled_cnn(1, 10), "sgd", {"momentum": 0.9}, "ce", 128, 150),
    _t("fakedata-cnn-adam-b16", "cnn", "FakeData 1x12x12 + teacher-CNN labels, pooled CNN width 16, Adam, CE, batch 16",
       fakedata_teacher(2000, 12, 4, 132), lambda: pooled_cnn(1, 4), "adam", {}, "ce", 16, 150),
    _t("digits-resnet-rmsprop-b64", "resnet", "digits 1x8x8 tiny ResNet (BN) width 8, RMSprop, CE, batch 64",
       sk_classes("digits", image=True), lambda: tiny_resnet(1, 10, width=8), "rmsprop", {}, "ce", 64, 120),
    _t("images-resnet-adamw-b32", "resnet", "SyntheticImages 1x8x8 noise 3 tiny ResNet (BN) width 8, AdamW wd=0.01, CE, batch 32",
       images_data(1, 3.0, n=2000, size=8), lambda: tiny_resnet(1, 10, width=8), "adamw", {"weight_decay": 0.01}, "ce", 32, 120),
    _t("tokens-transformer-adagrad-b64", "transformer",
       "token bags (vocab 64, len 16, 4 classes), 1-layer transformer d=32, Adagrad, CE, batch 64",
       token_classes_data(3000, 16, 64, 4, 133), lambda: TinyTransformer(4, vocab=64), "adagrad", {}, "ce", 64, 150),
    _t("seq-transformer-lm-nesterov-b32", "transformer",
       "SyntheticSequences LM (vocab 32, len 16), 1-layer causal transformer d=32, SGD Nesterov m=0.9, CE, batch 32",
       lm_data(2000, 16, 32, 3, 134), lambda: TinyTransformer(32, vocab=32, causal=True, pooled=False), "sgd",
       {"momentum": 0.9, "nesterov": True}, "ce_seq", 32, 150),
    _t("seq-gru-lm-adamw-b16", "rnn", "SyntheticSequences LM (vocab 32, len 16), GRU 32, AdamW wd=0.01, CE, batch 16",
       lm_data(2000, 16, 32, 3, 135), lambda: TinyRNN("gru", 32, vocab=32, pooled=False), "adamw", {"weight_decay": 0.01}, "ce_seq",
       16, 150),
    _t("memory-lstm-huber-momentum-b64", "rnn", "lag-2 product sums over 10 steps, LSTM 32, SGD m=0.9, Huber, batch 64",
       memory_regression_data(3000, 10, 2, 136), lambda: TinyRNN("lstm", 1, features=1), "sgd", {"momentum": 0.9}, "huber", 64, 150),
    _t("bag-embbag-adam-b256", "embedding", "token bags (vocab 400, len 20, 5 classes), EmbeddingBag 16, Adam, CE, batch 256",
       token_classes_data(6000, 20, 400, 5, 137), lambda: BagClassifier(400, 5), "adam", {}, "ce", 256, 150),
    _t("ratings-mf-huber-adagrad-b64", "embedding",
       "ratings (120 users x 120 items, rank 3), matrix factorisation d=8, Adagrad, Huber, batch 64",
       ratings_data(120, 120, 8000, 3, 0.2, 138), lambda: MatrixFactorisation(120, 120, d=8), "adagrad", {}, "huber", 64, 150),
    _t("bag-multilabel-bce-rmsprop-b32", "embedding",
       "token bags (vocab 200, len 16), 4 binary labels, EmbeddingBag 16, RMSprop, BCEWithLogits, batch 32",
       token_multilabel_data(3000, 16, 200, 4, 139), lambda: BagClassifier(200, 4), "rmsprop", {}, "bce", 32, 150),
]
for _round, _tasks in ((2, ROUND_2), (3, ROUND_3), (4, ROUND_4), (5, ROUND_5)):
    for _task in _tasks:
        _task.round = _round
    TASKS += _tasks

BY_NAME = {t.name: t for t in TASKS}
if len(BY_NAME) != len(TASKS):  # a name is a task's identity (its half, its stored ground truth): never two alike
    _twice = sorted({t.name for t in TASKS if sum(u.name == t.name for u in TASKS) > 1})
    raise ValueError("two benchmark tasks share a name: " + ", ".join(_twice))


def tasks_in(which: str) -> list[Task]:
    """The tasks of one half ("design" or "test"), or all of them ("both")."""
    if which == "both":
        return list(TASKS)
    if which not in ("design", "test"):
        raise ValueError(f"half must be design, test or both, got {which!r}")
    return [t for t in TASKS if t.half == which]
