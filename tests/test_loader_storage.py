"""Host-stored splits give the batches device-stored ones give, bit for bit (issue 8, "Data that fits").

On this CPU-only machine both storages sit in the same memory, but ``storage="host"`` takes the
host path (positions gathered on the host, then moved to the compute device): its values,
order, augmentation parameters and ids must equal the device path's for every seed and epoch.
The pinned-memory staging itself needs CUDA and is checked at the end when a GPU is present.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reproduce.data.feeding.composite import composite_batches
from reproduce.data.feeding.loader import Batch, DeviceDataset, infinite, iterate

FIELDS = ("x", "y", "idx", "crop", "flip", "angle")


def _images(n: int, size: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    r = np.random.default_rng(seed)
    return r.integers(0, 256, (n, size, size, 3), dtype=np.uint8), r.integers(0, 5, n).astype(np.int64)


def _pair(n: int = 37, device: str = "cpu", **kw) -> tuple[DeviceDataset, DeviceDataset]:
    x, y = _images(n)
    ids = np.arange(100, 100 + n)
    return (DeviceDataset(x, y, device, indices=ids, storage="device", **kw),
            DeviceDataset(x, y, device, indices=ids, storage="host", **kw))


def _same_batches(a: list[Batch], b: list[Batch]) -> None:
    assert len(a) == len(b) > 0
    for u, v in zip(a, b):
        for f in FIELDS:
            p, q = getattr(u, f), getattr(v, f)
            assert (p is None) == (q is None), f
            if p is not None:
                assert p.device == q.device and p.dtype == q.dtype, f
                assert torch.equal(p.cpu(), q.cpu()), f


def test_host_storage_keeps_images_off_the_compute_path_and_device_means_compute() -> None:
    dev, host = _pair()
    assert host.storage == "host" and host.storage_device.type == "cpu"
    assert host.device == dev.device == torch.device("cpu")
    assert torch.equal(host.images, dev.images) and torch.equal(host.labels, dev.labels)
    assert torch.equal(host.indices, dev.indices)
    with pytest.raises(ValueError, match="storage"):
        DeviceDataset(*_images(4), storage="disk")


@pytest.mark.parametrize("kw", [
    {},
    {"shuffle": False},
    {"augment": True},
    {"augment": True, "drop_last": True, "start_batch": 2},
    {"augment": True, "rotate": 15.0},
    {"augment": True, "color_jitter": (0.25, 0.25, 0.25)},
    {"augment": True, "rotate": 10.0, "color_jitter": (0.4, 0.0, 0.3), "pad": 2},
])
def test_iterate_is_bit_identical_across_storages(kw) -> None:
    dev, host = _pair()
    for seed, epoch in ((0, 0), (3, 7)):
        _same_batches(list(iterate(dev, 8, seed=seed, epoch=epoch, **kw)),
                      list(iterate(host, 8, seed=seed, epoch=epoch, **kw)))


def test_float_splits_and_infinite_streams_match_too() -> None:
    r = np.random.default_rng(1)
    x = r.random((20, 1, 1, 3), dtype=np.float32)
    y = np.arange(20) % 2
    a, b = DeviceDataset(x, y, storage="device"), DeviceDataset(x, y, storage="host")
    _same_batches(list(iterate(a, 6, seed=2)), list(iterate(b, 6, seed=2)))
    dev, host = _pair(n=30)
    take = 11  # crosses two epoch boundaries of 4 batches
    sa = infinite(dev, 7, seed=5, start_step=3, augment=True, rotate=5.0)
    sb = infinite(host, 7, seed=5, start_step=3, augment=True, rotate=5.0)
    _same_batches([next(sa) for _ in range(take)], [next(sb) for _ in range(take)])


def test_subset_and_batch_keep_storage_and_agree() -> None:
    dev, host = _pair()
    pos = np.array([5, 1, 30, 2, 2])
    sd, sh = dev.subset(pos), host.subset(pos)
    assert sh.storage == "host" and sh.storage_device.type == "cpu"
    assert torch.equal(sh.indices, torch.tensor([105, 101, 130, 102, 102]))
    _same_batches([sd.batch(torch.arange(5))], [sh.batch(torch.arange(5))])
    _same_batches(list(iterate(sd, 2, augment=True, seed=1)), list(iterate(sh, 2, augment=True, seed=1)))


@pytest.mark.parametrize("augment", [False, True])
def test_composite_batches_match_for_any_storage_mix(augment) -> None:
    px, py = _images(30, seed=2)
    ex, ey = _images(50, seed=3)
    spec = {"dataset": "extra", "fraction": 0.5, "epoch_images": 40}
    ref = None
    for ps in ("device", "host"):
        for es in ("device", "host"):
            prim = DeviceDataset(px, py, storage=ps)
            extra = DeviceDataset(ex, ey, storage=es)
            got = list(composite_batches(prim, extra, spec, 8, seed=4, epoch=1, augment=augment, pad=4))
            if ref is None:
                ref = got
            else:
                _same_batches(ref, got)


def test_pinned_staging_logic_with_cuda_stubbed(monkeypatch) -> None:
    """The double-buffered staging path, run on the CPU: CUDA's pinned allocation and events
    replaced by stand-ins that count what the path asks of them."""
    import reproduce.data.feeding.loader as loader

    dev, host = _pair(n=45)
    calls = {"alloc": 0, "record": 0, "sync": 0}

    class Event:
        def __init__(self) -> None:
            calls["record"] += 1

        def synchronize(self) -> None:
            calls["sync"] += 1

    def alloc(shape, dtype):
        calls["alloc"] += 1
        return torch.empty(shape, dtype=dtype)

    monkeypatch.setattr(loader, "_pinned_empty", alloc)
    monkeypatch.setattr(loader, "_copy_issued", Event)
    monkeypatch.setattr(DeviceDataset, "_pin", lambda self: True)
    kw = {"augment": True, "rotate": 15.0, "color_jitter": (0.25, 0.25, 0.25)}
    want = list(iterate(dev, 8, seed=1, epoch=2, **kw))
    got = list(iterate(host, 8, seed=1, epoch=2, **kw))  # 5 full batches and one of 5
    _same_batches(want, got)
    # two buffers, allocated once each; every reuse waited for the copy that last read the buffer
    assert calls == {"alloc": 2, "record": 6, "sync": 4}
    _same_batches([dev.batch(torch.tensor([3, 4]))], [host.batch(torch.tensor([3, 4]))])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="pinned staging and async copies need CUDA")
def test_pinned_host_storage_on_cuda_matches_device_storage() -> None:
    dev, host = _pair(n=300, device="cuda")
    assert host.images.is_pinned() and host.storage_device.type == "cpu"
    assert dev.images.device.type == "cuda"
    for kw in ({"augment": True}, {"augment": True, "rotate": 15.0, "color_jitter": (0.25, 0.25, 0.25)}):
        a = list(iterate(dev, 32, seed=1, epoch=2, **kw))
        b = list(iterate(host, 32, seed=1, epoch=2, **kw))
        # consumed only after the whole epoch was gathered: a staging buffer reused too early would show
        _same_batches(a, b)
