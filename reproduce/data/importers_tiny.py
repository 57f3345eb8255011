"""Tiny ImageNet-200 (the cs231n release) from ``tiny-imagenet-200.zip`` or its extracted folder.

Layout: ``wnids.txt``; ``train/<wnid>/images/*.JPEG`` (500 per class); ``val/images/*.JPEG`` with
labels in ``val/val_annotations.txt`` (file, wnid, box). The labelled ``val/`` is the test split, as
in the HAT code (which re-sorts it into class folders for ``ImageFolder``); the class index is
``sorted(wnids)``, ImageFolder's order. Some images are greyscale: every image is converted to RGB.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import ReproduceError
from .archives import find_files
from .importers import IMPORTERS, ImportRequest


def _zip_source(path: Path) -> tuple[list[str], Callable[[str], bytes], zipfile.ZipFile]:
    zf = zipfile.ZipFile(path)
    names = [n for n in zf.namelist() if not n.endswith("/")]
    return names, zf.read, zf


def _folder_source(folder: Path) -> tuple[list[str], Callable[[str], bytes]]:
    names = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]
    return names, lambda n: (folder / n).read_bytes()


def _decode(blob: bytes, size: int, what: str) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(blob)) as im:
        im = im.convert("RGB")
        if im.size != (size, size):
            raise ReproduceError(f"{what}: image is {im.size[0]}x{im.size[1]}, expected {size}x{size}")
        return np.asarray(im, dtype=np.uint8)


def tiny_imagenet_index(names: list[str], read: Callable[[str], bytes]) -> tuple[list[str], dict[str, list[tuple[str, int]]]]:
    """Classes (sorted wnids) and, per split, [(member name, label)] in import order.

    Train is interleaved across classes (k-th image of every class, then the (k+1)-th), so the
    first n of the split cover every class; test follows ``val_annotations.txt``.
    """
    wn = [n for n in names if n.rsplit("/", 1)[-1] == "wnids.txt"]
    if len(wn) != 1:
        raise ReproduceError(f"tiny-imagenet-200: expected one wnids.txt, found {len(wn)}")
    prefix = wn[0][: -len("wnids.txt")]
    wnids = sorted(read(wn[0]).decode().split())
    label = {w: i for i, w in enumerate(wnids)}
    per_class: dict[str, list[str]] = {w: [] for w in wnids}
    for n in names:
        parts = n[len(prefix):].split("/") if n.startswith(prefix) else []
        if len(parts) == 4 and parts[0] == "train" and parts[2] == "images" and parts[3].upper().endswith(".JPEG"):
            if parts[1] not in label:
                raise ReproduceError(f"tiny-imagenet-200: {n} is in a class wnids.txt does not list")
            per_class[parts[1]].append(n)
    lists = [sorted(v) for v in per_class.values()]
    train = [(lst[k], label[w]) for k in range(max(map(len, lists), default=0))
             for w, lst in zip(per_class, lists) if k < len(lst)]
    ann = prefix + "val/val_annotations.txt"
    if ann not in names:
        raise ReproduceError(f"tiny-imagenet-200: {ann} not found")
    test = []
    for line in read(ann).decode().splitlines():
        if line.strip():
            fname, wnid = line.split("\t")[:2]
            if wnid not in label:
                raise ReproduceError(f"tiny-imagenet-200: val_annotations.txt labels {fname} with unknown {wnid}")
            test.append((f"{prefix}val/images/{fname}", label[wnid]))
    return wnids, {"train": train, "test": test}


@IMPORTERS.register("tiny_imagenet")
def import_tiny_imagenet(req: ImportRequest) -> Path:
    info = req.info
    zf = None
    if req.from_folder is not None:
        folder = req.from_folder / "tiny-imagenet-200" if (req.from_folder / "tiny-imagenet-200").is_dir() else req.from_folder
        names, read = _folder_source(folder)
    else:
        assert req.from_archive is not None
        fname = info.archives[0].filename
        path = find_files(info, req.from_archive)[fname]
        req.verify(path, fname)  # requires --sha256: no official checksum is published
        names, read, zf = _zip_source(path)
    try:
        wnids, entries = tiny_imagenet_index(names, read)
        if len(wnids) != info.num_classes and req.expected_sizes is None:
            raise ReproduceError(f"{info.name}: wnids.txt lists {len(wnids)} classes, expected {info.num_classes}")
        known = set(names)
        with req.writer(classes=wnids, num_classes=len(wnids)) as w:
            for split in info.splits:
                table = entries[split]
                req.check_count(split, len(table))
                images, labels = w.allocate(split, len(table))
                req.say(f"{info.name}/{split}: {len(table)} images")
                for row, (member, lab) in enumerate(table):
                    if member not in known:
                        raise ReproduceError(f"{info.name}: {member} is listed but missing")
                    images[row] = _decode(read(member), info.image_size, member)
                    labels[row] = lab
                w.commit(split)
    finally:
        if zf is not None:
            zf.close()
    return w.final
