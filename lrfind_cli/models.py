"""Built-in small models for the example specs: a causal language model, a tabular MLP and a tiny classifier."""

from __future__ import annotations

import torch
from torch import nn


class TinyCausalLM(nn.Module):
    """A small decoder-only transformer that returns its own next-token loss.

    Called as `model(input_ids=...)` (the way a dict batch is passed), it returns a dict with
    `logits` and `loss` (cross-entropy of each position against the next token), like the
    causal LM heads of common transformer libraries.
    """

    def __init__(self, vocab_size: int = 256, dim: int = 64, depth: int = 2, heads: int = 4, max_len: int = 128,
                 dropout: float = 0.0):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim)
        self.max_len = max_len
        # "...embed" in both names, so a param-group glob such as "*embed*" catches every embedding.
        self.position_embed = nn.Embedding(max_len, dim)
        layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=4 * dim, dropout=dropout, batch_first=True,
                                           norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab_size, bias=False)

    def forward(self, input_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        length = input_ids.shape[1]
        if length > self.max_len:
            raise ValueError(f"sequences of {length} tokens are longer than this model's max_len ({self.max_len}); "
                             "raise model.kwargs.max_len or shorten the sequences (data.kwargs.seq_len)")
        positions = torch.arange(length, device=input_ids.device)
        hidden = self.embed(input_ids) + self.position_embed(positions)
        mask = nn.Transformer.generate_square_subsequent_mask(length, device=input_ids.device)
        hidden = self.blocks(hidden, mask=mask, is_causal=True)
        logits = self.head(self.norm(hidden))
        loss = nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), input_ids[:, 1:].reshape(-1))
        return {"logits": logits, "loss": loss}


def mlp_regressor(in_features: int = 16, hidden: int = 64, depth: int = 2, out_features: int = 1) -> nn.Module:
    """A plain ReLU MLP for tabular regression."""
    layers: list[nn.Module] = []
    width = in_features
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    layers.append(nn.Linear(width, out_features))
    return nn.Sequential(*layers)


def tiny_mlp(in_features: int = 48, num_classes: int = 4, hidden: int = 32) -> nn.Module:
    """A tiny classifier (flatten, linear, BatchNorm, ReLU, linear): configs/tiny.yaml runs it in seconds."""
    return nn.Sequential(nn.Flatten(), nn.Linear(in_features, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
                         nn.Linear(hidden, num_classes))


BUILTIN_MODELS = {"tiny_causal_lm": TinyCausalLM, "mlp_regressor": mlp_regressor, "tiny_mlp": tiny_mlp}
