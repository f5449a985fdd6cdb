"""The snapshot: restored in place (same tensors), a disk snapshot holds no copy in host memory, its size is known first."""

import itertools
import weakref

import pytest
import torch

from lrfind_cli import range_test
from lrfind_cli.engine import SweepConfig, run_sweep
from lrfind_cli.snapshot import DiskStore, Snapshot, SnapshotTooLarge, check_fits

from .test_restore import LOSS, assert_restored, capture


def trained_with_scaler(engine_bn_model, engine_loader, **adam):
    """A BN model after three fp16-style steps: Adam state, grads set, a GradScaler with a scale tensor of its own."""
    model = engine_bn_model()
    optimizer = torch.optim.Adam(model.parameters(), **({"lr": 1e-3} | adam))
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8, growth_interval=2)
    loader = engine_loader(batch_size=16, shuffle=True)
    for x, y in itertools.islice(loader, 3):
        optimizer.zero_grad()
        scaler.scale(LOSS(model(x), y)).backward()
        scaler.step(optimizer)
        scaler.update()
    x, y = next(iter(loader))
    LOSS(model(x), y).backward()  # grads are set and not yet applied
    return model, optimizer, scaler, loader


def held_tensors(model, optimizer, scaler):
    """Every tensor something outside the sweep may hold: parameters, buffers, grads, optimizer state, the scaler's scale."""
    held = {f"param {n}": p for n, p in model.named_parameters()}
    held |= {f"buffer {n}": b for n, b in model.named_buffers()}
    held |= {f"grad {n}": p.grad for n, p in model.named_parameters()}
    held |= {f"state {i} {k}": v for i, p in enumerate(model.parameters()) for k, v in optimizer.state[p].items()}
    held["scaler scale"] = scaler._scale  # what a captured CUDA graph of a scaled step reads
    return held


@pytest.mark.parametrize("snapshot", ["memory", "disk"])
def test_references_taken_before_the_sweep_see_the_restored_values(engine_bn_model, engine_loader, snapshot):
    model, optimizer, scaler, loader = trained_with_scaler(engine_bn_model, engine_loader, lr=torch.tensor(1e-3))
    held = held_tensors(model, optimizer, scaler)
    values = {name: t.detach().clone() for name, t in held.items()}
    lr = optimizer.param_groups[0]["lr"]
    before = capture(model, optimizer, scaler)

    result = range_test(model, optimizer, loader, LOSS, start_lr=1e-4, end_lr=1e4, num_iter=30, scaler=scaler,
                        snapshot=snapshot)

    assert result.num_steps > 5
    after = held_tensors(model, optimizer, scaler)
    for name, tensor in held.items():
        assert after[name] is tensor, f"{name} was replaced instead of restored in place"
        assert torch.equal(tensor, values[name]), name
    assert optimizer.param_groups[0]["lr"] is lr and torch.equal(lr, torch.tensor(1e-3))  # a tensor lr, as a compiled step holds it
    assert_restored(before, model, optimizer, scaler)


def test_optimizer_state_the_sweep_created_is_dropped_and_the_state_dicts_are_the_same_objects(engine_bn_model, engine_loader):
    model = engine_bn_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    first, second = list(model.parameters())[:2]
    x, y = next(iter(engine_loader()))
    LOSS(model(x), y).backward()
    optimizer.step()  # every parameter has a momentum buffer
    del optimizer.state[second]  # but one has none at the call
    entry = optimizer.state[first]
    range_test(model, optimizer, engine_loader(), LOSS, start_lr=1e-4, end_lr=1.0, num_iter=10)
    assert optimizer.state[first] is entry and set(entry) == {"momentum_buffer"}
    assert second not in optimizer.state


def cpu_model():
    """A conv net in channels_last (non-contiguous weights in default order) plus odd dtypes and shapes."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.Flatten(),
                                torch.nn.Linear(128, 4)).to(memory_format=torch.channels_last)
    model.register_buffer("bf16", torch.randn(3, 5).to(torch.bfloat16))
    model.register_buffer("flags", torch.tensor([True, False, True]))
    model.register_buffer("scalar", torch.tensor(7, dtype=torch.int64))
    model.register_buffer("transposed", torch.randn(4, 6).t())  # dense, its bytes in another order
    model.register_buffer("gappy", torch.randn(4, 8)[:, ::2])  # every other column of a larger tensor: gaps in memory
    return model


def overwrite(model, optimizer):
    """Change every value the snapshot holds, as a sweep would."""
    with torch.no_grad():
        for tensor in itertools.chain(model.parameters(), model.buffers()):
            tensor.copy_(torch.ones_like(tensor))
        for state in optimizer.state.values():
            for value in state.values():
                value.add_(1)


@pytest.mark.parametrize("to_disk", [False, True])
def test_snapshot_round_trips_every_dtype_and_memory_layout(to_disk):
    model = cpu_model()
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.randn(2, 3, 6, 6)).sum().backward()
    optimizer.step()
    before = capture(model, optimizer)
    snap = Snapshot(model, optimizer, to_disk=to_disk).capture()
    overwrite(model, optimizer)
    snap.restore()
    snap.discard()
    assert_restored(before, model, optimizer)
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)


def test_a_disk_snapshot_holds_none_of_a_cpu_model_in_host_memory():
    model = cpu_model()
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.randn(2, 3, 6, 6)).sum().backward()
    optimizer.step()
    in_memory, on_disk = Snapshot(model, optimizer), Snapshot(model, optimizer, to_disk=True)
    assert in_memory.nbytes == on_disk.nbytes > 0  # known before the capture
    for snap in (in_memory.capture(), on_disk.capture()):
        overwrite(model, optimizer)
        snap.restore()
    # memory: the whole state in one block; disk: nothing but a dense copy of the one buffer with gaps while it moves
    assert in_memory.host_bytes == in_memory.peak_host_bytes == in_memory.nbytes
    assert on_disk.host_bytes == 0
    assert on_disk.peak_host_bytes == model.gappy.numel() * model.gappy.element_size()
    in_memory.discard()
    on_disk.discard()


def test_the_sweep_gradients_are_freed_before_the_disk_snapshot_is_read_back(engine_bn_model, engine_loader, monkeypatch):
    model = engine_bn_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    last_grads: list[weakref.ref] = []
    optimizer.register_step_post_hook(lambda *_: last_grads.__setitem__(slice(None), [weakref.ref(p.grad) for p in model.parameters()]))
    alive_at_read = []
    real_read = DiskStore.read

    def read(self, slot, tensor):
        alive_at_read.append(sum(ref() is not None for ref in last_grads))
        real_read(self, slot, tensor)

    monkeypatch.setattr(DiskStore, "read", read)
    range_test(model, optimizer, engine_loader(), LOSS, start_lr=1e-4, end_lr=1e-2, num_iter=5, snapshot="disk")
    assert len(last_grads) == len(list(model.parameters())) and alive_at_read
    assert set(alive_at_read) == {0}
    assert all(p.grad is None for p in model.parameters())


def test_a_snapshot_that_does_not_fit_is_refused_before_anything_is_trained(engine_bn_model, engine_loader):
    model = engine_bn_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = capture(model, optimizer)
    steps, told = [], []

    def step_fn(model, batch, loss_fn):
        steps.append(1)
        return loss_fn(model(batch[0]), batch[1])

    with pytest.raises(SnapshotTooLarge) as refused:
        run_sweep(model, optimizer, engine_loader(), LOSS, SweepConfig(num_iter=5), step_fn=step_fn,
                  on_snapshot=lambda nbytes, mode: told.append((nbytes, mode)), available=lambda to_disk: 1000)
    message = str(refused.value)
    assert "\n" not in message and "sweep.snapshot: disk" in message
    assert told == [(Snapshot(model, optimizer).nbytes, "memory")]
    assert steps == []
    assert_restored(before, model, optimizer)
    result = run_sweep(model, optimizer, engine_loader(), LOSS, SweepConfig(num_iter=5, snapshot="disk"),
                       available=lambda to_disk: 10**12 if to_disk else 1000)
    assert result.num_steps == 5 and result.memory.snapshot_bytes == told[0][0]


def test_a_disk_snapshot_that_does_not_fit_says_where_it_would_go():
    with pytest.raises(SnapshotTooLarge, match="TMPDIR"):
        check_fits(2_000_000, True, 1_000_000)
    check_fits(2_000_000, False, None)  # unknown: not refused

