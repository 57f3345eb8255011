"""Tiny ImageNet-200 importer on a fake tree: sorted wnids, val relabelled as test, RGB, counts checked."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reproduce.data import load_split, read_manifest
from reproduce.data.importers import import_dataset
from reproduce.errors import ChecksumError, ReproduceError

WNIDS = ["n03", "n01", "n02"]  # unsorted on purpose: labels follow sorted(wnids)


def _tree(base: Path) -> Path:
    root = base / "tiny-imagenet-200"
    (root / "val" / "images").mkdir(parents=True)
    (root / "wnids.txt").write_text("\n".join(WNIDS) + "\n")
    for w in WNIDS:
        d = root / "train" / w / "images"
        d.mkdir(parents=True)
        for i in range(2):
            v = int(w[-1]) * 10 + i
            mode = "L" if (w, i) == ("n02", 1) else "RGB"  # one greyscale image, as in the release
            arr = np.full((64, 64) if mode == "L" else (64, 64, 3), v, dtype=np.uint8)
            Image.fromarray(arr, mode).save(d / f"{w}_{i}.JPEG", quality=100)
        (root / "train" / w / f"{w}_boxes.txt").write_text("")
    ann = []
    for j, w in enumerate(["n02", "n03", "n01", "n02"]):
        Image.fromarray(np.full((64, 64, 3), 100 + j, dtype=np.uint8)).save(root / "val" / "images" / f"val_{j}.JPEG",
                                                                             quality=100)
        ann.append(f"val_{j}.JPEG\t{w}\t0\t0\t63\t63")
    (root / "val" / "val_annotations.txt").write_text("\n".join(ann) + "\n")
    return root


def _check(root: Path) -> None:
    meta = read_manifest("tiny-imagenet-200", root)
    assert meta["classes"] == ["n01", "n02", "n03"]
    x, y = load_split("tiny-imagenet-200", "train", root)
    assert x.shape == (6, 64, 64, 3)
    assert y.tolist() == [0, 1, 2, 0, 1, 2]  # interleaved across classes
    # pixel value encodes the wnid digit and index; JPEG of a flat image is exact or off by one
    assert np.abs(x[:, 5, 5, 0].astype(int) - [10, 20, 30, 11, 21, 31]).max() <= 1
    assert np.abs(x[4].astype(int) - 21).max() <= 1  # the greyscale image, now 3 equal channels
    xt, yt = load_split("tiny-imagenet-200", "test", root)
    assert yt.tolist() == [1, 2, 0, 1]  # val_annotations order, relabelled by sorted wnids
    assert np.abs(xt[:, 0, 0, 0].astype(int) - [100, 101, 102, 103]).max() <= 1


def test_from_folder(tmp_path: Path) -> None:
    _tree(tmp_path / "src")
    with pytest.raises(ReproduceError, match="official split has 100000"):
        import_dataset("tiny-imagenet-200", tmp_path / "d", from_folder=tmp_path / "src",
                       expected_sizes={"train": 100_000})
    import_dataset("tiny-imagenet-200", tmp_path / "d", from_folder=tmp_path / "src", expected_sizes={})
    _check(tmp_path / "d")


def test_wrong_class_count_is_refused(tmp_path: Path) -> None:
    _tree(tmp_path / "src")
    with pytest.raises(ReproduceError, match="3 classes, expected 200"):
        import_dataset("tiny-imagenet-200", tmp_path / "d", from_folder=tmp_path / "src")


def test_from_zip_needs_sha256(tmp_path: Path) -> None:
    tree = _tree(tmp_path / "src")
    arc = tmp_path / "tiny-imagenet-200.zip"
    with zipfile.ZipFile(arc, "w") as zf:
        for p in sorted(tree.rglob("*")):
            zf.write(p, p.relative_to(tree.parent).as_posix())
    with pytest.raises(ChecksumError, match="--sha256"):
        import_dataset("tiny-imagenet-200", tmp_path / "d", from_archive=arc, expected_sizes={})
    sha = hashlib.sha256(arc.read_bytes()).hexdigest()
    import_dataset("tiny-imagenet-200", tmp_path / "d", from_archive=arc, sha256=[sha], expected_sizes={})
    _check(tmp_path / "d")
