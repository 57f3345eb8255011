"""Importers for the big auxiliary datasets: downsampled ImageNet, its
ImgNet100/900 class split, the TinyImages 500k pickle, Places365, CIFAR-10-C."""

from __future__ import annotations

import hashlib
import io
import re
import tarfile
import zipfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..errors import ReproduceError
from .archives import find_files, safe_unpickle
from .catalog import CIFAR10C_CORRUPTIONS, CIFAR10C_SEVERITIES
from .importers import IMPORTERS, ImportRequest
from .prepared import load_split, read_manifest

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
    files = find_files(info, req.from_archive)
    for fname, path in files.items():
        req.verify(path, fname)  # before any unpickling
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


# -- ImgNet100 / ImgNet900 ----------------------------------------------------------------


def imgnet_class_split(seed: int, n_first: int = 100, n_classes: int = 1000) -> tuple[list[int], list[int]]:
    """The fixed random class split: classes ranked by sha256(f"{seed}:{index}").

    A hash ranking (not a PRNG permutation) so that the split never changes
    with the numpy version.
    """
    ranked = sorted(range(n_classes), key=lambda c: hashlib.sha256(f"{seed}:{c}".encode()).hexdigest())
    return sorted(ranked[:n_first]), sorted(ranked[n_first:])


@IMPORTERS.register("imgnet_subset")
def import_imgnet_subset(req: ImportRequest) -> Path:
    info = req.info
    parent = info.derived_from
    assert parent is not None
    pmeta = read_manifest(parent, req.root)  # DatasetMissingError names the parent's import command
    p = info.params
    first, rest = imgnet_class_split(int(p["split_seed"]), int(p["n_first"]), pmeta["num_classes"])  # type: ignore[call-overload]
    chosen = first if p["subset"] == "first" else rest
    if len(chosen) != info.num_classes:
        raise ReproduceError(f"{info.name}: the class split gives {len(chosen)} classes, expected {info.num_classes}")
    remap = np.full(pmeta["num_classes"], -1, dtype=np.int64)
    remap[chosen] = np.arange(len(chosen))
    extra = {
        "derived_from": {"name": parent, "splits": {s: e["images_sha256"] for s, e in pmeta["splits"].items()}},
        "original_classes": chosen,
        "class_split": dict(p),
    }
    source = {"description": f"{info.title}: classes of {parent} chosen by a fixed seed", "import": "derived"}
    with req.writer(extra=extra, source=source) as w:
        for split in info.splits:
            images, labels = load_split(parent, split, req.root, mmap=True)
            req.say(f"{info.name}/{split}: selecting {len(chosen)} classes of {parent}")
            step = 65536
            for i in range(0, labels.shape[0], step):
                lab = remap[labels[i : i + step]]
                keep = np.flatnonzero(lab >= 0)
                w.append(split, np.asarray(images[i : i + step][keep]), lab[keep])
            w.close_split(split)
    return w.final


# -- TinyImages 500k (Carmon et al., 2019) --------------------------------------------------


@IMPORTERS.register("tinyimages")
def import_tinyimages(req: ImportRequest) -> Path:
    info = req.info
    src = req.from_archive or req.from_folder
    assert src is not None
    fname = info.archives[0].filename
    path = find_files(info, src)[fname]
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


# -- Places365-Standard --------------------------------------------------------------------

_LISTS = ("categories_places365.txt", "places365_train_standard.txt", "places365_val.txt")


def _parse_lists(texts: dict[str, str]) -> tuple[list[str], dict[str, dict[str, tuple[int, int]]]]:
    """Class names and, per split, {relative image path: (row, label)}."""
    cats = [line.split() for line in texts[_LISTS[0]].splitlines() if line.strip()]
    classes = [""] * len(cats)
    for path, idx in cats:
        classes[int(idx)] = path.split("/", 2)[2]  # "/a/airfield" -> "airfield"
    entries: dict[str, dict[str, tuple[int, int]]] = {}
    for split, fname in (("train", _LISTS[1]), ("val", _LISTS[2])):
        rows = [line.split() for line in texts[fname].splitlines() if line.strip()]
        entries[split] = {r[0].lstrip("/"): (i, int(r[1])) for i, r in enumerate(rows)}
    return classes, entries


def _resize(data: bytes | Path, size: int) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as im:
        im = im.convert("RGB")
        if im.size != (size, size):
            im = im.resize((size, size), Image.Resampling.BOX)
        return np.asarray(im, dtype=np.uint8)


@IMPORTERS.register("places365")
def import_places365(req: ImportRequest) -> Path:
    info = req.info
    size = info.image_size
    md5s = info.params["file_list_md5"]
    assert isinstance(md5s, dict)
    texts: dict[str, str] = {}
    if req.from_folder is not None:
        folder = req.from_folder
        for n in _LISTS:
            req.verify_md5(folder / n, md5s[n])  # the lists define the labels
            texts[n] = (folder / n).read_text()
        train_dir = next((folder / d for d in ("data_256", "data_256_standard") if (folder / d).is_dir()), None)
        dirs = {"train": train_dir, "val": folder / "val_256"}
        if train_dir is None or not dirs["val"].is_dir():
            raise ReproduceError(f"{folder}: expected data_256/ (or data_256_standard/) and val_256/ beside the file lists")
    else:
        assert req.from_archive is not None
        files = find_files(info, req.from_archive)
        for fname, path in files.items():
            req.verify(path, fname)
        with tarfile.open(files["filelist_places365-standard.tar"]) as tar:
            for m in tar.getmembers():
                base = m.name.rsplit("/", 1)[-1]
                if base in _LISTS:
                    f = tar.extractfile(m)
                    assert f is not None
                    texts[base] = f.read().decode()
    classes, entries = _parse_lists(texts)
    if len(classes) != info.num_classes:
        raise ReproduceError(f"{info.name}: categories_places365.txt lists {len(classes)} classes, expected {info.num_classes}")
    with req.writer(classes=classes) as w:
        for split in info.splits:
            table = entries[split]
            req.check_count(split, len(table))
            images, labels = w.allocate(split, len(table))
            req.say(f"{info.name}/{split}: {len(table)} images, resizing to {size}x{size}")
            if req.from_folder is not None:
                for rel, (row, label) in table.items():
                    images[row] = _resize(dirs[split] / rel, size)  # type: ignore[operator]
                    labels[row] = label
            else:
                tname = "train_256_places365standard.tar" if split == "train" else "val_256.tar"
                with tarfile.open(files[tname], "r|") as tar:  # streamed: 24 GB, read once
                    for m in tar:
                        rel = m.name.split("/", 1)[-1] if "/" in m.name else m.name
                        hit = table.get(rel)
                        if hit is None or not m.isfile():
                            continue
                        f = tar.extractfile(m)
                        assert f is not None
                        images[hit[0]] = _resize(f.read(), size)
                        labels[hit[0]] = hit[1]
            w.commit(split)
    return w.final


# -- CIFAR-10-C .npy files -------------------------------------------------------------


@IMPORTERS.register("cifar10c")
def import_cifar10c(req: ImportRequest) -> Path:
    info = req.info
    names = [f"{c}.npy" for c in CIFAR10C_CORRUPTIONS] + ["labels.npy"]
    tar: tarfile.TarFile | None = None
    members: dict[str, Any] = {}
    if req.from_folder is not None:
        folder = req.from_folder
        if (folder / "CIFAR-10-C").is_dir():
            folder = folder / "CIFAR-10-C"
        members = {n: folder / n for n in names if (folder / n).is_file()}
    else:
        assert req.from_archive is not None
        files = find_files(info, req.from_archive)
        fname = info.archives[0].filename
        req.verify(files[fname], fname)
        tar = tarfile.open(files[fname], "r:")
        members = {m.name.rsplit("/", 1)[-1]: m for m in tar.getmembers() if m.isfile()}

    def read(n: str) -> np.ndarray:
        if tar is None:
            return np.load(members[n], allow_pickle=False)
        f = tar.extractfile(members[n])
        assert f is not None
        return np.lib.format.read_array(f, allow_pickle=False)

    try:
        missing = [n for n in names if n not in members]
        if missing:
            raise ReproduceError(f"cifar10-c: {', '.join(missing)} not found in {req.from_archive or req.from_folder}")
        labels = read("labels.npy").astype(np.int64)
        per = labels.shape[0] // len(CIFAR10C_SEVERITIES)
        with req.writer() as w:
            for c in CIFAR10C_CORRUPTIONS:
                req.say(f"cifar10-c: {c}")
                images = read(f"{c}.npy")
                if images.dtype != np.uint8 or images.shape != (labels.shape[0], 32, 32, 3):
                    raise ReproduceError(f"cifar10-c/{c}.npy: unexpected {images.dtype}{images.shape}")
                for k, s in enumerate(CIFAR10C_SEVERITIES):
                    sl = slice(k * per, (k + 1) * per)
                    req.check_count(f"{c}-{s}", per)
                    w.add_split(f"{c}-{s}", images[sl], labels[sl])
    finally:
        if tar is not None:
            tar.close()
    return w.final
