"""The device loader: determinism from (seed, epoch), exact augmentation, resumable streams."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from reproduce.data.feeding.loader import Batch, DeviceDataset, infinite, iterate


def _ds(n: int = 50, size: int = 6, classes: int = 5) -> tuple[DeviceDataset, np.ndarray, np.ndarray]:
    r = np.random.default_rng(0)
    # Non-zero pixels, so a zero in a batch can only come from padding.
    images = r.integers(1, 256, (n, size, size, 3), dtype=np.uint8)
    labels = r.integers(0, classes, n).astype(np.int64)
    return DeviceDataset(images, labels, "cpu"), images, labels


def _cat(batches: list[Batch]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return tuple(torch.cat([getattr(b, k) for b in batches]) for k in ("x", "y", "idx"))  # type: ignore[return-value]


def test_device_dataset_layout() -> None:
    ds, images, labels = _ds()
    assert ds.images.shape == (50, 3, 6, 6) and ds.images.dtype == torch.uint8
    np.testing.assert_array_equal(ds.images.permute(0, 2, 3, 1).numpy(), images)
    assert ds.labels.dtype == torch.long and len(ds) == 50
    with pytest.raises(ValueError):
        DeviceDataset(images.astype(np.float32), labels)


def _assert_same(a, b) -> None:
    for u, v in zip(a, b, strict=True):
        assert torch.equal(u, v)


def test_same_seed_and_epoch_give_identical_batches() -> None:
    ds, _, _ = _ds()
    a = _cat(list(iterate(ds, 8, augment=True, seed=3, epoch=2)))
    _assert_same(a, _cat(list(iterate(ds, 8, augment=True, seed=3, epoch=2))))
    c = _cat(list(iterate(ds, 8, augment=True, seed=3, epoch=3)))
    assert not torch.equal(a[2], c[2])  # a new epoch is a new order
    d = _cat(list(iterate(ds, 8, augment=True, seed=4, epoch=2)))
    assert not torch.equal(a[2], d[2])


def test_every_index_once_per_epoch_and_idx_maps_to_labels() -> None:
    ds, images, labels = _ds(n=50)
    batches = list(iterate(ds, 8, shuffle=True, seed=1, epoch=0))
    assert [len(b) for b in batches] == [8] * 6 + [2]
    x, y, idx = _cat(batches)
    assert sorted(idx.tolist()) == list(range(50))
    assert torch.equal(y, torch.from_numpy(labels)[idx])
    np.testing.assert_array_equal((x * 255).round().byte().permute(0, 2, 3, 1).numpy(), images[idx.numpy()])
    assert x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    dropped = list(iterate(ds, 8, seed=1, epoch=0, drop_last=True))
    assert len(dropped) == 6 and torch.equal(_cat(dropped)[2], idx[:48])
    assert torch.equal(_cat(list(iterate(ds, 7, shuffle=False)))[2], torch.arange(50))
    x, y, idx = batches[0]  # a Batch unpacks like a tuple
    assert idx.shape == (8,)


def test_augmentation_is_a_crop_of_the_zero_padded_image() -> None:
    ds, images, _ = _ds(n=400, size=6)
    pad = 2
    flips = []
    seen_offsets = set()
    for b in iterate(ds, 64, augment=True, pad=pad, seed=0, epoch=0):
        assert b.x.shape == (len(b), 3, 6, 6) and b.x.dtype == torch.float32
        assert b.crop is not None and b.flip is not None
        got = (b.x * 255).round().byte().permute(0, 2, 3, 1).numpy()
        for k, i in enumerate(b.idx.tolist()):
            padded = np.pad(images[i], ((pad, pad), (pad, pad), (0, 0)))  # zero padding
            top, left = b.crop[k].tolist()
            want = padded[top : top + 6, left : left + 6]
            if b.flip[k]:
                want = want[:, ::-1]
            np.testing.assert_array_equal(got[k], want)
            seen_offsets.add((top, left))
        flips += b.flip.tolist()
    # Binomial(400, 1/2): 0.40..0.60 is more than 4 standard deviations wide.
    assert 0.4 < np.mean(flips) < 0.6
    assert seen_offsets == {(t, l) for t in range(2 * pad + 1) for l in range(2 * pad + 1)}


def test_augmentation_does_not_depend_on_batch_size() -> None:
    ds, _, _ = _ds()
    _assert_same(_cat(list(iterate(ds, 5, augment=True, seed=9, epoch=1))),
                 _cat(list(iterate(ds, 16, augment=True, seed=9, epoch=1))))


def test_start_batch_skips_exactly() -> None:
    ds, _, _ = _ds()
    full = list(iterate(ds, 8, augment=True, seed=2, epoch=5))
    tail = list(iterate(ds, 8, augment=True, seed=2, epoch=5, start_batch=4))
    assert len(tail) == len(full) - 4
    for u, v in zip(full[4:], tail):
        assert torch.equal(u.x, v.x) and torch.equal(u.idx, v.idx)


def test_infinite_stream_resumes_at_any_step() -> None:
    ds, _, _ = _ds(n=30)
    stream = list(itertools.islice(infinite(ds, 8, seed=4, augment=True), 11))  # 3 batches per epoch
    for start in (0, 2, 3, 7):
        resumed = list(itertools.islice(infinite(ds, 8, seed=4, augment=True, start_step=start), 11 - start))
        for u, v in zip(stream[start:], resumed):
            assert torch.equal(u.x, v.x) and torch.equal(u.idx, v.idx)
    epochs = [torch.cat([b.idx for b in stream[3 * e : 3 * e + 3]]) for e in range(3)]
    assert all(len(set(e.tolist())) == 24 for e in epochs)  # drop_last: 24 distinct per epoch
    assert not torch.equal(epochs[0], epochs[1])  # each epoch reshuffled
    with pytest.raises(ValueError, match="smaller than one batch"):
        next(infinite(ds, 64, seed=0))


def test_subset_keeps_instance_ids() -> None:
    ds, _, labels = _ds()
    sub = ds.subset(np.array([3, 10, 42]))
    assert len(sub) == 3
    x, y, idx = _cat(list(iterate(sub, 2, seed=0)))
    assert sorted(idx.tolist()) == [3, 10, 42]
    assert torch.equal(y, torch.from_numpy(labels)[idx])
    b = ds.batch(torch.tensor([7, 1]))
    assert b.idx.tolist() == [7, 1] and b.x.shape == (2, 3, 6, 6)


def test_rotate_matches_pil_nearest_zero_fill() -> None:
    from PIL import Image

    from reproduce.data.feeding.loader import rotate_batch

    r = np.random.default_rng(5)
    imgs = r.integers(1, 256, (4, 32, 32, 3), dtype=np.uint8)
    angles = torch.tensor([0.0, 15.0, -7.3, 11.9], dtype=torch.float64)
    got = rotate_batch(torch.from_numpy(imgs).permute(0, 3, 1, 2).contiguous(), angles).permute(0, 2, 3, 1).numpy()
    np.testing.assert_array_equal(got[0], imgs[0])  # 0 degrees: identity
    for k in range(1, 4):
        want = np.asarray(Image.fromarray(imgs[k]).rotate(float(angles[k]), resample=Image.NEAREST, fillcolor=0))
        mismatch = (got[k] != want).any(axis=2).mean()
        assert mismatch < 0.002, (k, mismatch)  # float rounding exactly at a pixel boundary, at most
        assert (got[k][0, 0] == 0).all()  # a corner leaves the image and is zero-filled


def test_iterate_rotation() -> None:
    ds, _, _ = _ds(n=20, size=12)
    plain = _cat(list(iterate(ds, 8, augment=True, seed=2, epoch=1)))
    _assert_same(plain, _cat(list(iterate(ds, 8, augment=True, seed=2, epoch=1, rotate=0))))
    batches = list(iterate(ds, 8, augment=True, seed=2, epoch=1, rotate=15))
    rot = _cat(batches)
    assert rot[0].shape == plain[0].shape and 0 <= rot[0].min() and rot[0].max() <= 1
    assert torch.equal(rot[2], plain[2])  # same order: rotation is drawn after crops and flips
    assert not torch.equal(rot[0], plain[0])
    angles = torch.cat([b.angle for b in batches])
    assert angles.abs().max() <= 15 and angles.std() > 1
