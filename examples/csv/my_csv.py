"""Your own CSV as a dataset: every column but the target is a feature (a recipe from the README)."""

import csv

import torch
from torch.utils.data import TensorDataset


def load(path: str, target: str = "y") -> TensorDataset:
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    features = [name for name in rows[0] if name != target]
    x = torch.tensor([[float(row[name]) for name in features] for row in rows])
    y = torch.tensor([[float(row[target])] for row in rows])  # (N, 1), as MSELoss expects for a (N, 1) output
    return TensorDataset(x, y)
