"""GPU paths: bf16/fp16 autocast, GradScaler restore, and a snapshot that does not grow GPU memory.

Skipped without CUDA (CI has none); benchmarks/gpu_check.sh runs them with LRFIND_REQUIRE_CUDA=1,
which turns the skip into a failure.
"""

import copy
import os

import pytest
import torch

from lrfind_cli import range_test
from lrfind_cli.snapshot import Snapshot

pytestmark = pytest.mark.cuda

if not torch.cuda.is_available():
    if os.environ.get("LRFIND_REQUIRE_CUDA") == "1":
        raise RuntimeError("LRFIND_REQUIRE_CUDA=1 but CUDA is not available")
    pytest.skip("needs a CUDA GPU", allow_module_level=True)

DEVICE = torch.device("cuda")


def conv_net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.BatchNorm2d(32), torch.nn.ReLU(),
        torch.nn.Conv2d(32, 64, 3, padding=1), torch.nn.BatchNorm2d(64), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(64, 10),
    ).to(DEVICE)


def batches(n: int = 8, batch: int = 64) -> list:
    gen = torch.Generator().manual_seed(0)
    return [(torch.rand(batch, 3, 32, 32, generator=gen), torch.randint(0, 10, (batch,), generator=gen)) for _ in range(n)]


def state_of(model, optimizer) -> tuple:
    return copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict()), torch.cuda.get_rng_state()


def assert_same(before, model, optimizer) -> None:
    model_state, opt_state, rng = before
    for k, v in model.state_dict().items():
        assert torch.equal(model_state[k], v), k
    after = optimizer.state_dict()
    for idx, entry in opt_state["state"].items():
        for name, value in entry.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(after["state"][idx][name])), (idx, name)
    assert torch.equal(rng, torch.cuda.get_rng_state())


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_autocast_sweep_completes_and_restores_exactly_on_cuda(precision):
    model = conv_net()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = batches(1)[0]
    torch.nn.functional.cross_entropy(model(x.to(DEVICE)), y.to(DEVICE)).backward()
    opt.step()
    before = state_of(model, opt)
    result = range_test(model, opt, batches(), torch.nn.CrossEntropyLoss(), start_lr=1e-6, end_lr=10, num_iter=40,
                        precision=precision)
    assert result.num_steps >= 10
    assert result.device.startswith("cuda")
    assert_same(before, model, opt)


def test_grad_scaler_state_is_restored_on_cuda():
    model = conv_net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scaler = torch.amp.GradScaler("cuda", init_scale=1024.0)
    saved = copy.deepcopy(scaler.state_dict())
    range_test(model, opt, batches(), torch.nn.CrossEntropyLoss(), num_iter=30, precision="fp16", scaler=scaler)
    assert scaler.state_dict() == saved


def test_snapshot_is_held_in_pinned_cpu_memory():
    model = conv_net()
    opt = torch.optim.Adam(model.parameters())
    snap = Snapshot(model, opt).capture()
    block = snap._store.block  # the one block of host memory every value is copied into
    assert block.device.type == "cpu" and block.is_pinned() and snap.host_bytes == snap.nbytes
    snap.discard()


@pytest.mark.parametrize("snapshot", ["memory", "disk"])
def test_a_capturable_optimizer_keeps_its_state_tensors_through_the_sweep(snapshot):
    # a CUDA graph of a capturable optimizer's step reads these tensors at fixed addresses: restore into them
    model = conv_net()
    opt = torch.optim.Adam(model.parameters(), lr=torch.tensor(1e-3, device=DEVICE), capturable=True)
    x, y = batches(1)[0]
    torch.nn.functional.cross_entropy(model(x.to(DEVICE)), y.to(DEVICE)).backward()
    opt.step()
    held = [t for p in model.parameters() for t in (p, p.grad, *opt.state[p].values())] + [opt.param_groups[0]["lr"]]
    values = [t.detach().clone() for t in held]
    range_test(model, opt, batches(), torch.nn.CrossEntropyLoss(), start_lr=1e-5, end_lr=10, num_iter=30, snapshot=snapshot)
    now = [t for p in model.parameters() for t in (p, p.grad, *opt.state[p].values())] + [opt.param_groups[0]["lr"]]
    assert all(a is b for a, b in zip(now, held)) and len(now) == len(held)
    assert all(torch.equal(a, b) for a, b in zip(held, values))


def test_sweep_peak_gpu_memory_is_within_5_percent_of_a_bare_loop():
    data = batches(4, 128)

    def peak(run) -> int:
        model = conv_net()
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        run(model, opt)
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated()

    def bare(model, opt):
        for i in range(20):
            x, y = data[i % len(data)]
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(x.to(DEVICE)), y.to(DEVICE)).backward()
            opt.step()

    def sweep(model, opt):
        range_test(model, opt, data, torch.nn.CrossEntropyLoss(), start_lr=1e-5, end_lr=1e-2, num_iter=20)

    assert peak(sweep) <= 1.05 * peak(bare)
