"""Python pickles: the CIFAR-10/100 batches, downsampled ImageNet's zipped batches, the TinyImages 500k pickle.

Every pickle is read through ``safe_unpickle`` (numpy arrays and plain containers only), and only
after the file that holds it passed its checksum.
"""

from __future__ import annotations

import re
import tarfile
import zipfile
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from ...errors import ReproduceError
from .base import IMPORTERS, ImportRequest, find_files, safe_unpickle

# -- CIFAR python batches ------------------------------------------------------------------


def _cifar_layout(num_classes: int) -> tuple[dict[str, list[str]], str, str, str]:
    if num_classes == 10:
        members = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
        return members, "batches.meta", "labels", "label_names"
    return {"train": ["train"], "test": ["test"]}, "meta", "fine_labels", "fine_label_names"


def _cifar_blobs(req: ImportRequest, wanted: list[str], meta_name: str) -> dict[str, bytes] | None:
    """{member: bytes} from the tarball or an extracted batch folder; None when the folder is an image tree."""
    info = req.info
    blobs: dict[str, bytes] = {}
    if req.from_folder is not None:
        folder = req.from_folder
        candidates = [folder, folder / "cifar-10-batches-py", folder / "cifar-100-python"]
        batch_dir = next((c for c in candidates if (c / meta_name).is_file()), None)
        if batch_dir is None:
            return None
        md5s = info.params.get("batch_md5", {})
        assert isinstance(md5s, Mapping)
        for m in wanted:
            req.verify_md5(batch_dir / m, md5s.get(m))
            blobs[m] = (batch_dir / m).read_bytes()
        return blobs
    fname = info.archives[0].filename
    path = req.verified()[fname]
    with tarfile.open(path, "r:*") as tar:
        for member in tar:  # one pass: gzip cannot seek backwards cheaply
            base = member.name.rsplit("/", 1)[-1]
            if member.isfile() and base in wanted:
                f = tar.extractfile(member)
                assert f is not None
                blobs[base] = f.read()
    return blobs


@IMPORTERS.register("cifar")
def import_cifar(req: ImportRequest) -> Path:
    info = req.info
    members, meta_name, label_key, names_key = _cifar_layout(info.num_classes)
    wanted = [m for ms in members.values() for m in ms] + [meta_name]
    blobs = _cifar_blobs(req, wanted, meta_name)
    if blobs is None:  # not the python batches: an image tree
        return IMPORTERS.get("image_folder")(req)
    missing = [m for m in wanted if m not in blobs]
    if missing:
        raise ReproduceError(f"{info.name}: the archive lacks {', '.join(missing)}")
    meta = safe_unpickle(blobs[meta_name], encoding="latin1", what=meta_name)
    names = tuple(meta[names_key])
    if info.classes is not None and names != info.classes:
        raise ReproduceError(f"{info.name}: class names in {meta_name} differ from the catalog's: {names}")
    with req.writer() as w:
        for split, ms in members.items():
            n = 0
            for m in ms:
                d = safe_unpickle(blobs.pop(m), encoding="latin1", what=m)
                data = np.asarray(d["data"], dtype=np.uint8)
                s = info.image_size
                images = data.reshape(-1, 3, s, s).transpose(0, 2, 3, 1)
                w.append(split, images, np.asarray(d[label_key], dtype=np.int64))
                n += images.shape[0]
            req.check_count(split, n)
            w.close_split(split)
    return w.final


# -- downsampled ImageNet (Chrabaszcz et al., 2017) -------------------------------------

_BATCH = re.compile(r"(?:^|/)(train_data_batch_(\d+)|val_data)$")


def _pickle_members(zips: list[Path]) -> Iterator[tuple[str, int, bytes]]:
    """(split, batch number, raw pickle bytes) in a fixed order: train 1..10, then val."""
    found: list[tuple[str, int, Path, str]] = []
    for z in zips:
        with zipfile.ZipFile(z) as zf:
            for name in zf.namelist():
                m = _BATCH.search(name)
                if m:
                    split = "val" if m.group(1) == "val_data" else "train"
                    found.append((split, int(m.group(2) or 0), z, name))
    found.sort(key=lambda t: (t[0] != "train", t[1]))
    for split, num, z, name in found:
        with zipfile.ZipFile(z) as zf:
            yield split, num, zf.read(name)


def batch_to_arrays(d: dict[str, Any], size: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Rows are CHW-flattened; labels are 1-indexed."""
    data = np.asarray(d["data"], dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3 * size * size:
        raise ReproduceError(f"{what}: data has shape {data.shape}, expected (N, {3 * size * size})")
    labels = np.asarray(d["labels"], dtype=np.int64) - 1
    if labels.shape != (data.shape[0],) or labels.min() < 0:
        raise ReproduceError(f"{what}: labels must be 1-indexed, one per row")
    return data.reshape(-1, 3, size, size).transpose(0, 2, 3, 1), labels


@IMPORTERS.register("downsampled_imagenet")
def import_downsampled_imagenet(req: ImportRequest) -> Path:
    info = req.info
    if req.from_archive is None:
        raise ReproduceError(
            f"{info.name}: import from the official zips with --from-archive DIR --sha256 HEX ... "
            "(extracted pickles are not accepted: the checksum must cover what is unpickled)"
        )
    files = req.verified()  # before any unpickling
    size = info.image_size
    counts: dict[str, int] = {}
    with req.writer() as w:
        for split, num, blob in _pickle_members([files[a.filename] for a in info.archives]):
            what = f"{split} batch {num}" if split == "train" else "val_data"
            req.say(f"{info.name}: {what}")
            d = safe_unpickle(blob, what=what)
            del blob
            images, labels = batch_to_arrays(d, size, what)
            w.append(split, images, labels)
            counts[split] = counts.get(split, 0) + images.shape[0]
        for split in ("train", "val"):
            if split not in counts:
                raise ReproduceError(f"{info.name}: no {split} pickles found in {req.from_archive}")
            req.check_count(split, counts[split])
            w.close_split(split)
    return w.final


# -- TinyImages 500k (Carmon et al., 2019) --------------------------------------------------


@IMPORTERS.register("tinyimages")
def import_tinyimages(req: ImportRequest) -> Path:
    info = req.info
    fname = info.archives[0].filename
    path = find_files(info, req.source)[fname]
    req.verify(path, fname)  # requires --sha256: no official checksum exists
    req.say(f"{info.name}: reading {path}")
    with open(path, "rb") as f:
        d = safe_unpickle(f, what=fname)
    images = np.asarray(d["data"], dtype=np.uint8)
    labels = np.asarray(d["extrapolated_targets"], dtype=np.int64)
    if images.shape[1:] != (32, 32, 3) or labels.shape != (images.shape[0],):
        raise ReproduceError(f"{fname}: data {images.shape} / targets {labels.shape} are not the expected layout")
    req.check_count("train", images.shape[0])
    with req.writer() as w:
        w.add_split("train", images, labels)
    return w.final
