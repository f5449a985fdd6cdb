"""A Hugging Face model and dataset for lrfind, built offline from a config (a recipe from the README).

For a pretrained model, name `transformers:AutoModelForCausalLM.from_pretrained` in the spec instead
(with kwargs {pretrained_model_name_or_path: gpt2}; that downloads it, or reads the local cache).
"""

import torch


def tiny_gpt2(vocab_size: int = 128, n_positions: int = 64, n_embd: int = 32, n_layer: int = 2, n_head: int = 2):
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(vocab_size=vocab_size, n_positions=n_positions, n_embd=n_embd, n_layer=n_layer, n_head=n_head,
                        bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(config)


def token_dataset(num_samples: int = 256, seq_len: int = 32, vocab_size: int = 128, seed: int = 0):
    """A datasets.Dataset of {"input_ids", "labels"} rows (labels = input_ids: the model shifts them itself)."""
    from datasets import Dataset

    gen = torch.Generator().manual_seed(seed)
    successors = torch.randint(0, vocab_size, (vocab_size, 4), generator=gen)  # a learnable bigram chain
    tokens = torch.empty(num_samples, seq_len, dtype=torch.long)
    tokens[:, 0] = torch.randint(0, vocab_size, (num_samples,), generator=gen)
    for t in range(1, seq_len):
        tokens[:, t] = successors[tokens[:, t - 1], torch.randint(0, 4, (num_samples,), generator=gen)]
    rows = tokens.tolist()
    return Dataset.from_dict({"input_ids": rows, "labels": rows}).with_format("torch")
