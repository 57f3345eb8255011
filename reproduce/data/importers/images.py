"""Image files decoded into arrays: image-folder trees, Tiny ImageNet-200 (JPEGs in a zip), Places365 (a tar).

* **image folders** (``<folder>/<split>/<class>/<image>``, the ``image_folder`` importer; CIFAR's
  ``--from-folder`` with an image tree lands here): class index = position in the catalog's
  class list; within a split the images are interleaved across classes.
* **tiny-imagenet-200** (the cs231n release, ``tiny-imagenet-200.zip`` or its extracted folder):
  ``wnids.txt``; ``train/<wnid>/images/*.JPEG`` (500 per class); ``val/images/*.JPEG`` labelled
  by ``val/val_annotations.txt`` (file, wnid, box). The labelled ``val/`` is the test split, as in
  the HAT code (which re-sorts it into class folders for ``ImageFolder``); the class index is
  ``sorted(wnids)``, ImageFolder's order. Greyscale images are converted to RGB.
* **places365-32/64** (Places365-Standard's 256 x 256 small images and file lists): each image
  box-resized to the catalog size, at the row its file list gives it.
"""

from __future__ import annotations

import io
import itertools
import os
import tarfile
import zipfile
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ...errors import ReproduceError
from ..storage.prepared import PreparedWriter
from .base import IMPORTERS, ImportRequest, Progress, find_files, inside

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".webp", ".gif", ".tif", ".tiff")


def decode_image(src: Path | bytes, size: int | None, channels: int = 3, *, resize: bool = False,
                 what: str = "") -> np.ndarray:
    """H x W x C uint8 of an image file or its bytes; a size other than ``size`` is an error unless ``resize``
    (PIL's BOX filter: area averaging, how Chrabaszcz et al. downsampled ImageNet)."""
    from PIL import Image

    with Image.open(io.BytesIO(src) if isinstance(src, bytes) else src) as im:
        im = im.convert("RGB" if channels == 3 else "L")
        if size is not None and im.size != (size, size):
            if not resize:
                raise ReproduceError(f"{what or src}: image is {im.size[0]}x{im.size[1]}, expected {size}x{size}")
            im = im.resize((size, size), Image.Resampling.BOX)
        a = np.asarray(im, dtype=np.uint8)
    return a if channels == 3 else a[:, :, None]


# -- image-folder trees ------------------------------------------------------------


def _list_images(d: Path) -> list[Path]:
    return sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def _folder_plan(folder: Path, present: Sequence[str], classes: Sequence[str],
                 expected_sizes: Mapping[str, int] | None) -> dict[str, list[tuple[Path, int]]]:
    """Per split, (image, label) in import order: the i-th image of every class, then the (i+1)-th."""
    index = {c: i for i, c in enumerate(classes)}
    plan: dict[str, list[tuple[Path, int]]] = {}
    for split in present:
        dirs = sorted(p.name for p in (folder / split).iterdir() if p.is_dir())
        unknown = [d for d in dirs if d not in index]
        if unknown:
            raise ReproduceError(
                f"{folder / split}: class folders {unknown[:5]} are not among the {len(classes)} classes "
                f"({', '.join(list(classes)[:10])}{', ...' if len(classes) > 10 else ''})"
            )
        per_class = [[(p, index[c]) for p in _list_images(folder / split / c)]
                     for c in classes if (folder / split / c).is_dir()]
        # interleaved: evaluations on "the first n examples" of a split then see every class, not class 0 only
        plan[split] = [item for group in itertools.zip_longest(*per_class) for item in group if item is not None]
        if not plan[split]:
            raise ReproduceError(f"{folder / split}: no images found")
        if expected_sizes and split in expected_sizes and expected_sizes[split] != len(plan[split]):
            raise ReproduceError(
                f"{folder / split}: found {len(plan[split])} images, the official split has {expected_sizes[split]}"
            )
    return plan


def import_image_folder(
    folder: str | os.PathLike[str],
    name: str,
    root: str | os.PathLike[str] | None = None,
    *,
    classes: Sequence[str] | None = None,
    splits: Sequence[str] = ("train", "test", "val", "extra"),
    image_size: int | None = None,
    channels: int = 3,
    expected_sizes: Mapping[str, int] | None = None,
    writer_kw: Mapping[str, Any] | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> Path:
    """Import ``<folder>/<split>/<class>/<image>`` into the prepared format.

    Class index = position in ``classes`` when given (a catalog's official
    order), else the sorted class folder names of the first split. Images keep
    their size (which must be ``image_size`` when given); within a split they
    are interleaved across classes (file-name order within a class).
    """
    folder = Path(folder).expanduser()
    present = [s for s in splits if (folder / s).is_dir()]
    if not present:
        raise ReproduceError(
            f"{folder}: no split folders ({'/, '.join(splits)}/) with one sub-folder per class"
        )
    if classes is None:
        classes = sorted(p.name for p in (folder / present[0]).iterdir() if p.is_dir())
    plan = _folder_plan(folder, present, classes, expected_sizes)
    if image_size is None:
        image_size = decode_image(plan[present[0]][0][0], None, channels).shape[0]
    kw: dict[str, Any] = dict(
        num_classes=len(classes), image_size=image_size, channels=channels, classes=list(classes),
        source={"description": f"image folder tree {folder}", "import": "from-folder", "path": str(folder)},
        overwrite=force,
    )
    kw.update(writer_kw or {})
    with PreparedWriter(name, root, **kw) as w:
        for split, items in plan.items():
            if progress:
                progress(f"{name}/{split}: decoding {len(items)} images from {folder / split}")
            images, labels = w.allocate(split, len(items))
            for i, (path, label) in enumerate(items):
                images[i] = decode_image(path, image_size, channels)
                labels[i] = label
            w.commit(split)
    return w.final


@IMPORTERS.register("image_folder")
def import_folder_via_catalog(req: ImportRequest) -> Path:
    """A catalog dataset from an image-folder tree: the catalog's classes, sizes and statistics."""
    info = req.info
    assert req.from_folder is not None
    source = req.writer().meta["source"]
    return import_image_folder(
        req.from_folder, info.name, req.root, classes=info.classes, splits=info.splits,
        image_size=info.image_size, channels=info.channels,
        expected_sizes=info.split_sizes if req.expected_sizes is None else req.expected_sizes,
        writer_kw={"mean": info.mean, "std": info.std, "source": source},
        force=req.force, progress=req.progress,
    )


# -- Tiny ImageNet-200 -------------------------------------------------------------------------


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
        folder = inside(req.from_folder, "tiny-imagenet-200")
        names = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]
        read: Callable[[str], bytes] = lambda n: (folder / n).read_bytes()  # noqa: E731
    else:
        fname = info.archives[0].filename
        path = find_files(info, req.source)[fname]
        req.verify(path, fname)  # requires --sha256: no official checksum is published
        zf = zipfile.ZipFile(path)
        names, read = [n for n in zf.namelist() if not n.endswith("/")], zf.read
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
                    images[row] = decode_image(read(member), info.image_size, what=member)
                    labels[row] = lab
                w.commit(split)
    finally:
        if zf is not None:
            zf.close()
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


def _places_lists(req: ImportRequest) -> tuple[dict[str, str], dict[str, Path]]:
    """The three file lists' texts, and per split where its images are (a folder, or the official tar)."""
    md5s = req.info.params["file_list_md5"]
    assert isinstance(md5s, dict)
    texts: dict[str, str] = {}
    if req.from_folder is not None:
        folder = req.from_folder
        for n in _LISTS:
            req.verify_md5(folder / n, md5s[n])  # the lists define the labels
            texts[n] = (folder / n).read_text()
        train_dir = next((folder / d for d in ("data_256", "data_256_standard") if (folder / d).is_dir()), None)
        if train_dir is None or not (folder / "val_256").is_dir():
            raise ReproduceError(f"{folder}: expected data_256/ (or data_256_standard/) and val_256/ beside the file lists")
        return texts, {"train": train_dir, "val": folder / "val_256"}
    files = req.verified()
    with tarfile.open(files["filelist_places365-standard.tar"]) as tar:
        for m in tar.getmembers():
            base = m.name.rsplit("/", 1)[-1]
            if base in _LISTS:
                f = tar.extractfile(m)
                assert f is not None
                texts[base] = f.read().decode()
    return texts, {"train": files["train_256_places365standard.tar"], "val": files["val_256.tar"]}


@IMPORTERS.register("places365")
def import_places365(req: ImportRequest) -> Path:
    info = req.info
    size = info.image_size
    texts, where = _places_lists(req)
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
                    images[row] = decode_image(where[split] / rel, size, resize=True)
                    labels[row] = label
            else:
                with tarfile.open(where[split], "r|") as tar:  # streamed: 24 GB, read once
                    for m in tar:
                        rel = m.name.split("/", 1)[-1] if "/" in m.name else m.name
                        hit = table.get(rel)
                        if hit is None or not m.isfile():
                            continue
                        f = tar.extractfile(m)
                        assert f is not None
                        images[hit[0]] = decode_image(f.read(), size, resize=True)
                        labels[hit[0]] = hit[1]
            w.commit(split)
    return w.final
