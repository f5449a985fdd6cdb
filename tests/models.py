"""Tiny models for tests, named there by import path (tests.models:tiny_mlp); configs/tiny.yaml names the built-in."""

from lrfind_cli.models import tiny_mlp

__all__ = ["tiny_mlp"]
