"""Round 6 of the benchmark: tasks whose training data is drawn fresh at every step, so a longer run sees more data.

The tasks of rounds 1-5 train on fixed sets of 15 to 15,000 samples: a run ten times longer is ten
times more passes over the same samples, and its best learning rate moves for two reasons at once
(more steps, and overfitting). Here every batch is a new draw from a fixed generator (a teacher
network, class templates plus noise, a bigram chain, a low-rank ratings matrix), and the validation
set is one fixed draw from the same generator: a longer run sees only new data, so what moves the best
rate is the length alone. The horizon report gives the two kinds apart.

Each task is a `Task` of tasks.py (same models, optimizers, losses and design/test split by the hash of
the name) whose `fresh` source makes the data; `data()` returns a small fixed draw only for code that
wants a training set (the range test reads fresh batches too: horizon.range_curve).

Defined and committed before any of their results existed (round 6), as the fresh hold-out of the
length rule fitted on the design half.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from .tasks import BagClassifier, MatrixFactorisation, Task, TinyRNN, TinyTransformer, mlp, pooled_cnn, tiny_resnet

VAL_SIZE = 2048  # samples in the fixed validation draw

Draw = Callable[[torch.Generator, int], tuple[torch.Tensor, torch.Tensor]]  # (generator, n) -> n fresh (x, y)


@dataclass(frozen=True)
class FreshSource:
    """An endless source of (x, y) samples: `draw(generator, n)`; its teacher is fixed by the task's own seed."""

    draw: Draw
    seed: int

    def val(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The fixed validation draw (VAL_SIZE samples, from a generator no training run uses)."""
        return self.draw(torch.Generator().manual_seed(10_000_019 + self.seed), VAL_SIZE)

    def batches(self, batch_size: int, seed: int, chunk: int = 32):
        """Endless fresh batches for run `seed` (drawn `chunk` batches at a time, the same sequence whatever is asked)."""
        gen = torch.Generator().manual_seed(1_000_003 * (self.seed + 1) + seed)
        while True:
            x, y = self.draw(gen, chunk * batch_size)
            for i in range(chunk):
                yield x[i * batch_size : (i + 1) * batch_size], y[i * batch_size : (i + 1) * batch_size]


def teacher_classes(features: int, classes: int, seed: int, label_noise: float = 0.5) -> FreshSource:
    """x ~ N(0, 1); the class is the argmax of a random tanh teacher's logits plus Gaussian noise."""
    gen = torch.Generator().manual_seed(seed)
    w1 = torch.randn(features, 32, generator=gen)
    w2 = torch.randn(32, classes, generator=gen)

    def draw(g: torch.Generator, n: int):
        x = torch.randn(n, features, generator=g)
        logits = torch.tanh(x @ w1 / features**0.5) @ w2 * 2.0
        return x, (logits + label_noise * torch.randn(n, classes, generator=g)).argmax(1)

    return FreshSource(draw, seed)


def teacher_regression(features: int, outputs: int, noise: float, seed: int, scale: float = 1.0) -> FreshSource:
    """x ~ N(0, 1); y = tanh(2 x W1) W2 + noise, times `scale`."""
    gen = torch.Generator().manual_seed(seed)
    w1 = torch.randn(features, 24, generator=gen) / features**0.5
    w2 = torch.randn(24, outputs, generator=gen) / 24**0.5

    def draw(g: torch.Generator, n: int):
        x = torch.randn(n, features, generator=g)
        return x, (torch.tanh(2 * x @ w1) @ w2 + noise * torch.randn(n, outputs, generator=g)) * scale

    return FreshSource(draw, seed)


def template_images(size: int, noise: float, seed: int, classes: int = 10) -> FreshSource:
    """Smooth random class templates (low-resolution noise upsampled) plus pixel noise, 1 channel, standardised."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.randn(classes, 1, max(size // 4, 1), max(size // 4, 1), generator=gen)
    templates = nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)

    def draw(g: torch.Generator, n: int):
        y = torch.randint(0, classes, (n,), generator=g)
        pixels = torch.sigmoid(templates[y] + noise * torch.randn(n, 1, size, size, generator=g))
        return (pixels - 0.5) / 0.25, y  # sigmoid of wide noise: mean 0.5, spread about 0.25

    return FreshSource(draw, seed)


def bigram_lm(seq_len: int, vocab: int, branching: int, seed: int) -> FreshSource:
    """Next-token prediction on a fixed random bigram chain (as lrfind's SyntheticSequences, drawn without end): inputs tokens[:-1]."""
    successors = torch.randint(0, vocab, (vocab, branching), generator=torch.Generator().manual_seed(seed))

    def draw(g: torch.Generator, n: int):
        tokens = torch.empty(n, seq_len + 1, dtype=torch.long)
        tokens[:, 0] = torch.randint(0, vocab, (n,), generator=g)
        for t in range(1, seq_len + 1):
            tokens[:, t] = successors[tokens[:, t - 1], torch.randint(0, branching, (n,), generator=g)]
        return tokens[:, :-1], tokens[:, 1:]

    return FreshSource(draw, seed)


def token_bags(seq_len: int, vocab: int, classes: int, seed: int) -> FreshSource:
    """Random token ids; the class is the argmax of a teacher's per-token scores summed over the bag, plus noise."""
    scores = torch.randn(vocab, classes, generator=torch.Generator().manual_seed(seed))

    def draw(g: torch.Generator, n: int):
        ids = torch.randint(0, vocab, (n, seq_len), generator=g)
        return ids, (scores[ids].sum(1) / seq_len**0.5 + 0.5 * torch.randn(n, classes, generator=g)).argmax(1)

    return FreshSource(draw, seed)


def token_multilabel(seq_len: int, vocab: int, labels: int, seed: int) -> FreshSource:
    """Bags of tokens with several independent binary labels (float targets, for BCEWithLogits)."""
    scores = torch.randn(vocab, labels, generator=torch.Generator().manual_seed(seed))

    def draw(g: torch.Generator, n: int):
        ids = torch.randint(0, vocab, (n, seq_len), generator=g)
        return ids, (scores[ids].mean(1) * seq_len**0.5 + 0.3 * torch.randn(n, labels, generator=g) > 0).float()

    return FreshSource(draw, seed)


def ratings(users: int, items: int, rank: int, noise: float, seed: int) -> FreshSource:
    """Random (user, item) pairs rated by a fixed low-rank teacher plus fresh noise."""
    gen = torch.Generator().manual_seed(seed)
    u, v = torch.randn(users, rank, generator=gen), torch.randn(items, rank, generator=gen)

    def draw(g: torch.Generator, n: int):
        pairs = torch.stack([torch.randint(0, users, (n,), generator=g), torch.randint(0, items, (n,), generator=g)], 1)
        y = (u[pairs[:, 0]] * v[pairs[:, 1]]).sum(1, keepdim=True) / rank**0.5 + noise * torch.randn(n, 1, generator=g)
        return pairs, y

    return FreshSource(draw, seed)


def lag_products(seq_len: int, lag: int, seed: int) -> FreshSource:
    """Sequences of numbers; target sum_t x[t] * x[t - lag] / sqrt(T) plus noise: needs memory across steps."""

    def draw(g: torch.Generator, n: int):
        x = torch.randn(n, seq_len, 1, generator=g)
        y = (x[:, lag:, 0] * x[:, :-lag, 0]).sum(1, keepdim=True) / seq_len**0.5
        return x, y + 0.1 * torch.randn(n, 1, generator=g)

    return FreshSource(draw, seed)


def _f(name, family, describe, source: FreshSource, build, optimizer, opt_kwargs, loss, batch) -> Task:
    def data():
        xv, yv = source.val()
        return xv, yv, xv, yv  # no fixed training set: the training batches come from source.batches

    return Task(name, family, describe, data, build, optimizer, opt_kwargs, loss, batch, steps=0, round=6, fresh=source)


FRESH_TASKS: list[Task] = [
    # mlp
    _f("fresh-teacher-mlp-momentum-b64", "mlp", "fresh teacher classes (20 features, 5 classes) MLP 20-128-5, SGD m=0.9, CE, batch 64",
       teacher_classes(20, 5, 601), mlp([20, 128, 5]), "sgd", {"momentum": 0.9}, "ce", 64),
    _f("fresh-teacher-mlp-adam-b32", "mlp", "fresh teacher classes (16 features, 4 classes) MLP 16-64-64-4, Adam, CE, batch 32",
       teacher_classes(16, 4, 602), mlp([16, 64, 64, 4]), "adam", {}, "ce", 32),
    _f("fresh-teacher-mlp-plain-sgd-b16", "mlp", "fresh teacher classes (12 features, 3 classes) MLP 12-64-3, plain SGD, CE, batch 16",
       teacher_classes(12, 3, 603), mlp([12, 64, 3]), "sgd", {}, "ce", 16),
    _f("fresh-regression-mlp-adamw-b128", "mlp", "fresh teacher regression MLP 12-64-64-2, AdamW wd=0.01, MSE, batch 128",
       teacher_regression(12, 2, 0.2, 604), mlp([12, 64, 64, 2]), "adamw", {"weight_decay": 0.01}, "mse", 128),
    _f("fresh-regression-mlp-rmsprop-b32", "mlp", "fresh teacher regression (targets x5) MLP 10-64-1, RMSprop, Huber, batch 32",
       teacher_regression(10, 1, 0.3, 605, scale=5.0), mlp([10, 64, 1]), "rmsprop", {}, "huber", 32),
    _f("fresh-teacher-mlp-adagrad-b64", "mlp", "fresh teacher classes (20 features, 4 classes) MLP 20-64-4, Adagrad, CE, batch 64",
       teacher_classes(20, 4, 606), mlp([20, 64, 4]), "adagrad", {}, "ce", 64),
    _f("fresh-regression-mlp-nesterov-b256", "mlp", "fresh teacher regression MLP 16-128-2, SGD Nesterov m=0.9, MSE, batch 256",
       teacher_regression(16, 2, 0.2, 607), mlp([16, 128, 2]), "sgd", {"momentum": 0.9, "nesterov": True}, "mse", 256),
    # linear
    _f("fresh-logreg-plain-sgd-b32", "linear",
       "fresh teacher classes (10 features, 3 classes) logistic regression, plain SGD, CE, batch 32",
       teacher_classes(10, 3, 611), mlp([10, 3]), "sgd", {}, "ce", 32),
    _f("fresh-linear-adam-b16", "linear", "fresh teacher regression linear 12-2, Adam, MSE, batch 16",
       teacher_regression(12, 2, 0.3, 612), mlp([12, 2]), "adam", {}, "mse", 16),
    _f("fresh-linear-rmsprop-b128", "linear", "fresh teacher regression (targets x3) linear 8-1, RMSprop, Huber, batch 128",
       teacher_regression(8, 1, 0.3, 613, scale=3.0), mlp([8, 1]), "rmsprop", {}, "huber", 128),
    # cnn
    _f("fresh-images-cnn-nesterov-b32", "cnn", "fresh template images 1x8x8 noise 3, pooled CNN width 8, SGD Nesterov m=0.9, CE, batch 32",
       template_images(8, 3.0, 621), lambda: pooled_cnn(1, 10, width=8), "sgd", {"momentum": 0.9, "nesterov": True}, "ce", 32),
    _f("fresh-images-cnn-adam-b64", "cnn", "fresh template images 1x8x8 noise 2, pooled CNN width 8, Adam, CE, batch 64",
       template_images(8, 2.0, 622), lambda: pooled_cnn(1, 10, width=8), "adam", {}, "ce", 64),
    _f("fresh-images-cnn-rmsprop-b16", "cnn", "fresh template images 1x8x8 noise 3, pooled CNN width 8, RMSprop, CE, batch 16",
       template_images(8, 3.0, 623), lambda: pooled_cnn(1, 10, width=8), "rmsprop", {}, "ce", 16),
    # resnet with batchnorm
    _f("fresh-images-resnet-momentum-b32", "resnet", "fresh template images 1x8x8 noise 3, tiny ResNet (BN) width 8, SGD m=0.9 wd=5e-4, "
       "CE, batch 32", template_images(8, 3.0, 631), lambda: tiny_resnet(1, 10, width=8), "sgd", {"momentum": 0.9, "weight_decay": 5e-4},
       "ce", 32),
    _f("fresh-images-resnet-adamw-b64", "resnet",
       "fresh template images 1x8x8 noise 2, tiny ResNet (BN) width 8, AdamW wd=0.01, CE, batch 64",
       template_images(8, 2.0, 632), lambda: tiny_resnet(1, 10, width=8), "adamw", {"weight_decay": 0.01}, "ce", 64),
    # transformer
    _f("fresh-lm-transformer-adamw-b16", "transformer",
       "fresh bigram LM (vocab 32, len 16), 1-layer causal transformer d=32, AdamW wd=0.01, CE, batch 16",
       bigram_lm(16, 32, 3, 641), lambda: TinyTransformer(32, vocab=32, causal=True, pooled=False), "adamw",
       {"weight_decay": 0.01}, "ce_seq", 16),
    _f("fresh-lm-transformer-momentum-b32", "transformer",
       "fresh bigram LM (vocab 32, len 16), 1-layer causal transformer d=32, SGD m=0.9, CE, batch 32",
       bigram_lm(16, 32, 3, 642), lambda: TinyTransformer(32, vocab=32, causal=True, pooled=False), "sgd",
       {"momentum": 0.9}, "ce_seq", 32),
    _f("fresh-tokens-transformer-rmsprop-b64", "transformer", "fresh token bags (vocab 64, len 16, 4 classes), 1-layer transformer d=32, "
       "RMSprop, CE, batch 64", token_bags(16, 64, 4, 643), lambda: TinyTransformer(4, vocab=64), "rmsprop", {}, "ce", 64),
    # rnn
    _f("fresh-lm-gru-adam-b32", "rnn", "fresh bigram LM (vocab 32, len 16), GRU 32, Adam, CE, batch 32",
       bigram_lm(16, 32, 3, 651), lambda: TinyRNN("gru", 32, vocab=32, pooled=False), "adam", {}, "ce_seq", 32),
    _f("fresh-memory-lstm-rmsprop-b64", "rnn", "fresh lag-2 product sums over 10 steps, LSTM 32, RMSprop, MSE, batch 64",
       lag_products(10, 2, 652), lambda: TinyRNN("lstm", 1, features=1), "rmsprop", {}, "mse", 64),
    _f("fresh-tokens-lstm-plain-sgd-b32", "rnn", "fresh token bags (vocab 32, len 12, 3 classes), LSTM 32, plain SGD, CE, batch 32",
       token_bags(12, 32, 3, 653), lambda: TinyRNN("lstm", 3, vocab=32), "sgd", {}, "ce", 32),
    # embedding
    _f("fresh-bag-embbag-adam-b64", "embedding", "fresh token bags (vocab 300, len 20, 4 classes), EmbeddingBag 16, Adam, CE, batch 64",
       token_bags(20, 300, 4, 661), lambda: BagClassifier(300, 4), "adam", {}, "ce", 64),
    _f("fresh-bag-embbag-momentum-b128", "embedding", "fresh token bags (vocab 200, len 16, 5 classes), EmbeddingBag 16, SGD m=0.9, CE, "
       "batch 128", token_bags(16, 200, 5, 662), lambda: BagClassifier(200, 5), "sgd", {"momentum": 0.9}, "ce", 128),
    _f("fresh-ratings-mf-adamw-b64", "embedding", "fresh ratings (120 users x 150 items, rank 3), matrix factorisation d=8, AdamW wd=0.01, "
       "MSE, batch 64", ratings(120, 150, 3, 0.3, 663), lambda: MatrixFactorisation(120, 150, d=8), "adamw", {"weight_decay": 0.01},
       "mse", 64),
    _f("fresh-multilabel-bce-adagrad-b32", "embedding", "fresh token bags (vocab 200, len 16), 4 binary labels, EmbeddingBag 16, Adagrad, "
       "BCEWithLogits, batch 32", token_multilabel(16, 200, 4, 664), lambda: BagClassifier(200, 4), "adagrad", {}, "bce", 32),
]

FRESH_BY_NAME = {t.name: t for t in FRESH_TASKS}
