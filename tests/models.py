"""Tiny models for tests and configs/tiny.yaml (named there by import path)."""

import torch


def tiny_mlp(in_features: int = 48, num_classes: int = 4, hidden: int = 32) -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Flatten(),
        torch.nn.Linear(in_features, hidden),
        torch.nn.BatchNorm1d(hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(hidden, num_classes),
    )
