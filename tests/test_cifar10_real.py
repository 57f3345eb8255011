"""The folder importer on the real CIFAR-10 tree (JPEG copy in ../shared/data)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from reproduce.data import load_split, read_manifest, verify
from reproduce.data.catalog import CIFAR10_CLASSES, CIFAR10_MEAN
from reproduce.data.importers import import_dataset, import_image_folder


def test_real_tree_counts(cifar10_jpeg_tree: Path) -> None:
    for split, per in (("train", 5000), ("test", 1000)):
        dirs = sorted(p.name for p in (cifar10_jpeg_tree / split).iterdir() if p.is_dir())
        assert dirs == sorted(CIFAR10_CLASSES)
        for c in CIFAR10_CLASSES:
            assert len(list((cifar10_jpeg_tree / split / c).glob("*.jpg"))) == per, (split, c)


def test_real_test_split_import(cifar10_jpeg_tree: Path, tmp_path: Path) -> None:
    import_image_folder(
        cifar10_jpeg_tree, "cifar10", tmp_path, classes=CIFAR10_CLASSES, splits=("test",),
        image_size=32, expected_sizes={"test": 10_000},
    )
    x, y = load_split("cifar10", "test", tmp_path, verify=True)
    assert x.shape == (10_000, 32, 32, 3) and x.dtype == np.uint8
    assert np.bincount(y).tolist() == [1000] * 10
    assert read_manifest("cifar10", tmp_path)["classes"] == list(CIFAR10_CLASSES)
    # Class order is the official one: the mean colour of "ship" and "airplane"
    # images is bluer than that of "frog"/"deer" images on real data.
    blue = [x[y == c][..., 2].mean() - x[y == c][..., 0].mean() for c in range(10)]
    assert min(blue[0], blue[8]) > max(blue[4], blue[6])
    assert np.allclose(x.reshape(-1, 3).mean(0) / 255, CIFAR10_MEAN, atol=0.02)


@pytest.mark.slow
def test_real_full_import(cifar10_jpeg_tree: Path, tmp_path: Path) -> None:
    t0 = time.time()
    path = import_dataset("cifar10", tmp_path, from_folder=cifar10_jpeg_tree)
    seconds = time.time() - t0
    assert verify("cifar10", tmp_path) == {"train": 50_000, "test": 10_000}
    for split, per in (("train", 5000), ("test", 1000)):
        x, y = load_split("cifar10", split, tmp_path)
        assert x.shape == (10 * per, 32, 32, 3) and x.dtype == np.uint8 and y.dtype == np.int64
        assert np.bincount(y, minlength=10).tolist() == [per] * 10
    meta = read_manifest("cifar10", tmp_path)
    assert meta["classes"] == list(CIFAR10_CLASSES) and meta["source"]["import"] == "from-folder"
    print(f"imported the real CIFAR-10 tree into {path} in {seconds:.1f} s")
