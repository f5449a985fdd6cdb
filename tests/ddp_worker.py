"""Run under torchrun by tests/test_distributed.py: range_test on every rank through the Python API.

    python -m torch.distributed.run --standalone --nproc_per_node=2 tests/ddp_worker.py OUT_DIR BATCH
Each rank writes OUT_DIR/rank<R>.json with its history and whether its state came back exactly.
"""

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.distributed import DistributedSampler

from lrfind_cli import range_test


def data() -> TensorDataset:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(256, 12, generator=gen)
    y = (x @ torch.randn(12, 3, generator=gen)).argmax(1)
    return TensorDataset(x, y)


def model() -> torch.nn.Module:
    torch.manual_seed(0)  # no batch statistics: the loss of a global batch splits exactly across ranks
    return torch.nn.Sequential(torch.nn.Linear(12, 32), torch.nn.Tanh(), torch.nn.Linear(32, 3))


def main() -> None:
    out, batch = Path(sys.argv[1]), int(sys.argv[2])
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    net = DistributedDataParallel(model())
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    sampler = DistributedSampler(data(), num_replicas=world, rank=rank, shuffle=False)
    loader = DataLoader(data(), batch_size=batch, sampler=sampler)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    rng = torch.get_rng_state()
    result = range_test(net, opt, loader, torch.nn.CrossEntropyLoss(), start_lr=1e-4, end_lr=1.0, num_iter=20, smoothing=0.5)
    restored = all(torch.equal(before[k], v) for k, v in net.state_dict().items()) and torch.equal(rng, torch.get_rng_state())
    restored = restored and not opt.state
    (out / f"rank{rank}.json").write_text(json.dumps({"restored": restored, "loss": result.losses, "lr": result.lrs,
                                                       "world": world}))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
