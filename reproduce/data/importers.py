"""Turning official dataset files into the prepared format.

``import_dataset`` is the one entry point (the CLI's ``data import``). Each
catalog entry names its importer; importers live in this module and in
``importers_extra.py``. Every archive is checksum-verified before it is
opened, pickles are read with a restricted unpickler, and nothing is written
under ``<root>/<name>`` until the whole dataset is complete.
"""

from __future__ import annotations

import itertools

import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..errors import ChecksumError, ReproduceError
from ..io import md5_file
from ..registry import Registry
from .archives import Progress, download, find_files, safe_unpickle, verify_archive
from .catalog import DATASETS, DatasetInfo
from .prepared import PreparedWriter, _root, dataset_dir, is_prepared

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".webp", ".gif", ".tif", ".tiff")


@dataclass
class ImportRequest:
    info: DatasetInfo
    root: Path
    from_archive: Path | None = None
    from_folder: Path | None = None
    # robustbench's data_dir (holding CIFAR-10-C/): read through its loader (importers_rb.py)
    from_robustbench: Path | None = None
    sha256: tuple[str, ...] = ()
    # {filename: "md5:HEX" | "sha256:HEX"} replacing catalog checksums (tests, mirrors).
    checksums: Mapping[str, str] | None = None
    # {split: n} replacing the catalog's expected sizes; {} disables the check.
    expected_sizes: Mapping[str, int] | None = None
    force: bool = False
    progress: Progress | None = None
    files: list[dict[str, str]] = field(default_factory=list)

    def say(self, msg: str) -> None:
        if self.progress:
            self.progress(msg)

    def verify(self, path: Path, filename: str | None = None) -> None:
        archive = None
        name = filename or path.name
        try:
            archive = self.info.archive(name)
        except KeyError:
            pass
        self.say(f"verifying {path}")
        self.files.append(verify_archive(path, archive, user_sha256=self.sha256, override=self.checksums))

    def verify_md5(self, path: Path, expected: str | None) -> None:
        """Check an extracted file against an md5 the catalog lists for it."""
        if self.checksums and path.name in self.checksums:
            kind, _, expected = self.checksums[path.name].partition(":")
            assert kind == "md5", "extracted files are checked by md5"
        if expected is None:
            raise ChecksumError(f"{path}: no checksum is known for this file, so it is not read")
        actual = md5_file(path)
        if actual != expected:
            raise ChecksumError(f"{path}: expected md5 {expected}, got {actual}")
        self.files.append({"file": path.name, "md5": actual})

    def check_count(self, split: str, n: int) -> None:
        sizes = self.info.split_sizes if self.expected_sizes is None else self.expected_sizes
        if split in sizes and sizes[split] != n:
            raise ReproduceError(
                f"{self.info.name}/{split}: found {n} images, the official split has {sizes[split]}; "
                "the source is incomplete or not the official release"
            )

    def writer(self, **overrides: Any) -> PreparedWriter:
        info = self.info
        how = ("from-archive" if self.from_archive else "from-robustbench" if self.from_robustbench
               else "from-folder")
        src = self.from_archive or self.from_robustbench or self.from_folder
        kw: dict[str, Any] = dict(
            num_classes=info.num_classes,
            image_size=info.image_size,
            channels=info.channels,
            classes=info.classes,
            mean=info.mean,
            std=info.std,
            source={
                "description": f"{info.title}, {info.homepage}",
                "licence": info.licence,
                "import": how,
                "path": str(src),
                "files": self.files,
            },
            extra={"catalog_params": dict(info.params)} if info.params else None,
            overwrite=self.force,
        )
        kw.update(overrides)
        return PreparedWriter(info.name, self.root, **kw)


Importer = Callable[[ImportRequest], Path]
IMPORTERS: Registry[Importer] = Registry("importer")


def import_dataset(
    name: str,
    root: str | os.PathLike[str] | None = None,
    *,
    from_archive: str | os.PathLike[str] | None = None,
    from_folder: str | os.PathLike[str] | None = None,
    from_robustbench: str | os.PathLike[str] | None = None,
    allow_download: bool = False,
    sha256: Sequence[str] = (),
    checksums: Mapping[str, str] | None = None,
    expected_sizes: Mapping[str, int] | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> Path:
    """Prepare catalog dataset ``name`` under ``root``; return its directory.

    Exactly one source: ``from_archive`` (official file, or a directory holding
    the official files), ``from_folder`` (extracted files or an image tree),
    ``from_robustbench`` (robustbench's data_dir, read through its loader; cifar10-c), or
    ``allow_download=True`` (fetch the official files; never implicit). Derived
    datasets (imgnet100/900) need no source. An already prepared dataset is
    left alone unless ``force``.
    """
    info = DATASETS.get(name, where="data import")
    root_p = _root(root)
    if is_prepared(name, root_p) and not force:
        if progress:
            progress(f"{name} is already prepared at {dataset_dir(name, root_p)} (use --force to re-import)")
        return dataset_dir(name, root_p)
    given = sum(x is not None for x in (from_archive, from_folder, from_robustbench)) + bool(allow_download)
    if info.generated:
        from . import toy  # noqa: F401  (registers the generators)

        if given:
            raise ReproduceError(f"data import {name}: this dataset is generated; give no source")
        return IMPORTERS.get(info.importer, where=f"catalog entry {name}")(
            ImportRequest(info=info, root=root_p, force=force, progress=progress))
    if info.derived_from is None and given != 1:
        raise ReproduceError(
            f"data import {name}: give exactly one of --from-archive PATH, --from-folder DIR or --download "
            f"(expected: {info.import_hint}; official source: {info.homepage})"
        )
    if allow_download:
        dest = root_p / ".downloads" / name
        from_archive = download(info, dest, progress)
    req = ImportRequest(
        info=info,
        root=root_p,
        from_archive=Path(from_archive).expanduser() if from_archive is not None else None,
        from_folder=Path(from_folder).expanduser() if from_folder is not None else None,
        from_robustbench=Path(from_robustbench).expanduser() if from_robustbench is not None else None,
        sha256=tuple(sha256),
        checksums=checksums,
        expected_sizes=expected_sizes,
        force=force,
        progress=progress,
    )
    # The extra importers register themselves on import.
    from . import importers_extra  # noqa: F401
    from . import importers_tiny  # noqa: F401
    from . import importers_fullres  # noqa: F401
    from . import importers_rb  # noqa: F401

    importer = "robustbench" if from_robustbench is not None else info.importer
    return IMPORTERS.get(importer, where=f"catalog entry {name}")(req)


# -- image-folder trees ------------------------------------------------------------


def _list_images(d: Path) -> list[Path]:
    return sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def decode_image(path: Path, size: int | None, channels: int = 3) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB" if channels == 3 else "L")
        if size is not None and im.size != (size, size):
            raise ReproduceError(f"{path}: image is {im.size[0]}x{im.size[1]}, expected {size}x{size}")
        a = np.asarray(im, dtype=np.uint8)
    return a if channels == 3 else a[:, :, None]


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
        # interleaved (the i-th image of every class, then the (i+1)-th): evaluations on "the
        # first n examples" of a split then see every class, not class 0 only
        plan[split] = [item for group in itertools.zip_longest(*per_class) for item in group if item is not None]
        if not plan[split]:
            raise ReproduceError(f"{folder / split}: no images found")
        if expected_sizes and split in expected_sizes and expected_sizes[split] != len(plan[split]):
            raise ReproduceError(
                f"{folder / split}: found {len(plan[split])} images, the official split has {expected_sizes[split]}"
            )
    if image_size is None:
        image_size = decode_image(plan[present[0]][0][0], None, channels).shape[0]
    kw: dict[str, Any] = dict(
        num_classes=len(classes),
        image_size=image_size,
        channels=channels,
        classes=list(classes),
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


def _folder_via_catalog(req: ImportRequest) -> Path:
    info = req.info
    assert req.from_folder is not None
    writer = req.writer()
    return import_image_folder(
        req.from_folder,
        info.name,
        req.root,
        classes=info.classes,
        splits=info.splits,
        image_size=info.image_size,
        channels=info.channels,
        expected_sizes=info.split_sizes if req.expected_sizes is None else req.expected_sizes,
        writer_kw={k: writer.meta[k] for k in ("mean", "std")} | {"source": writer.meta["source"]},
        force=req.force,
        progress=req.progress,
    )


# -- CIFAR python pickles ----------------------------------------------------------


def _cifar_layout(info: DatasetInfo) -> tuple[dict[str, list[str]], str, str, str]:
    if info.num_classes == 10:
        members = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
        return members, "batches.meta", "labels", "label_names"
    return {"train": ["train"], "test": ["test"]}, "meta", "fine_labels", "fine_label_names"


@IMPORTERS.register("cifar")
def import_cifar(req: ImportRequest) -> Path:
    info = req.info
    members, meta_name, label_key, names_key = _cifar_layout(info)
    wanted = [m for ms in members.values() for m in ms] + [meta_name]
    blobs: dict[str, bytes] = {}
    if req.from_folder is not None:
        folder = req.from_folder
        candidates = [folder, folder / "cifar-10-batches-py", folder / "cifar-100-python"]
        batch_dir = next((c for c in candidates if (c / meta_name).is_file()), None)
        if batch_dir is None:  # not the python batches: an image tree
            return _folder_via_catalog(req)
        md5s = info.params.get("batch_md5", {})
        assert isinstance(md5s, Mapping)
        for m in wanted:
            req.verify_md5(batch_dir / m, md5s.get(m))
            blobs[m] = (batch_dir / m).read_bytes()
    else:
        assert req.from_archive is not None
        files = find_files(info, req.from_archive)
        fname = info.archives[0].filename
        req.verify(files[fname], fname)
        with tarfile.open(files[fname], "r:*") as tar:
            for member in tar:  # one pass: gzip cannot seek backwards cheaply
                base = member.name.rsplit("/", 1)[-1]
                if member.isfile() and base in wanted:
                    f = tar.extractfile(member)
                    assert f is not None
                    blobs[base] = f.read()
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


# -- SVHN .mat files ----------------------------------------------------------------


def _read_svhn_mat(path: Path, w: PreparedWriter, split: str) -> int:
    try:
        import scipy.io  # type: ignore[import-untyped]
    except ImportError:
        scipy = None  # noqa: F841 - fall back to our reader
    else:
        d = scipy.io.loadmat(str(path))
        images = np.ascontiguousarray(d["X"].transpose(3, 0, 1, 2))
        labels = d["y"].reshape(-1).astype(np.int64) % 10
        w.add_split(split, images, labels)
        return int(labels.shape[0])
    from .matv5 import read_mat

    held: dict[str, Any] = {}

    def factory(dims: tuple[int, ...]) -> Callable[[np.ndarray], None]:
        images, _ = w.allocate(split, dims[-1])
        held["images"], held["pos"] = images, 0

        def sink(block: np.ndarray) -> None:  # block: (k, C, W, H) from Fortran order
            k = block.shape[0]
            images[held["pos"] : held["pos"] + k] = block.transpose(0, 3, 2, 1)
            held["pos"] += k

        return sink

    rest = read_mat(path, stream={"X": factory})
    if "images" not in held or "y" not in rest:
        raise ReproduceError(f"{path}: expected variables X and y")
    labels = rest["y"].reshape(-1).astype(np.int64) % 10  # the digit 0 is stored as 10
    _, lab = w._allocated[split]
    if lab.shape != labels.shape:
        raise ReproduceError(f"{path}: {labels.shape[0]} labels for {lab.shape[0]} images")
    lab[:] = labels
    w.commit(split)
    return int(labels.shape[0])


@IMPORTERS.register("svhn")
def import_svhn(req: ImportRequest) -> Path:
    src = req.from_archive or req.from_folder
    assert src is not None
    files = find_files(req.info, src)
    for fname, path in files.items():
        req.verify(path, fname)
    with req.writer() as w:
        for split in req.info.splits:
            fname = f"{split}_32x32.mat"
            if fname in files:
                req.say(f"svhn/{split}: reading {files[fname]}")
                req.check_count(split, _read_svhn_mat(files[fname], w, split))
    return w.final
