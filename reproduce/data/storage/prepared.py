"""The one on-disk format every dataset is prepared into.

``<root>/<name>/manifest.json`` plus, per split, ``<split>_images.npy`` (uint8,
N x H x W x C) and ``<split>_labels.npy`` (int64, N). Generated feature datasets
(HAT's 3-d toy) store float32 in [0, 1] instead, as 1 x 1 "images" with one
channel per feature; their manifest says ``"dtype": "float32"`` (uint8 datasets
carry no dtype key, so their manifests are unchanged). A dataset is built in a
hidden staging directory beside its final place, the manifest is written last,
and the staging directory is renamed into place only when complete: a killed
import leaves either the old dataset or nothing under ``<root>/<name>``, and a
directory without a manifest is never taken as prepared.

Full-resolution datasets (``"storage": "jpeg"``: ImageNet-200, Caltech-256, Flowers-102) keep
their JPEG files beside per-split file lists and labels, plus ``<split>_images.npy`` for their
held-out splits only (``storage/jpeg.py``); ``load_labels`` reads any split's labels.

Checksums are sha256 of the arrays' C-order data bytes (not of the ``.npy``
files), so they do not depend on the numpy version that wrote the header.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
import shutil
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ... import __version__
from ...errors import ChecksumError, DatasetMissingError, ReproduceError, UnknownNameError
from ...io import write_json
from ..catalog import DATASETS, DatasetInfo

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
# Arrays larger than this are memory-mapped by default instead of read whole.
MMAP_THRESHOLD = 1 << 30
# Image dtypes a prepared dataset may hold: uint8 grey levels, or float32 already in [0, 1].
DTYPES = ("uint8", "float32")
_CHUNK_BYTES = 64 << 20


def default_root() -> Path:
    """``$REPRODUCE_DATA_DIR`` if set, else ``./data``."""
    return Path(os.environ.get("REPRODUCE_DATA_DIR") or "data")


def resolve_root(root: str | os.PathLike[str] | None) -> Path:
    """``root``, else the default data directory."""
    return Path(root) if root is not None else default_root()


def dataset_dir(name: str, root: str | os.PathLike[str] | None = None) -> Path:
    return resolve_root(root) / name


def array_sha256(a: np.ndarray) -> str:
    """sha256 of the array's data in C order, read in chunks (works on memmaps)."""
    h = hashlib.sha256()
    if a.ndim == 0 or a.shape[0] == 0:
        h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()
    row = max(1, a[:1].nbytes)
    step = max(1, _CHUNK_BYTES // row)
    for i in range(0, a.shape[0], step):
        h.update(memoryview(np.ascontiguousarray(a[i : i + step])).cast("B"))
    return h.hexdigest()


def _fsync(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _npy_header(shape: tuple[int, ...], dtype: np.dtype) -> bytes:
    buf = io.BytesIO()
    d = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buf, d)
    return buf.getvalue()


class _NpyAppender:
    """Writes an ``.npy`` file whose first dimension is only known at the end.

    numpy pads headers so the shape can grow in place; we write a header for
    N=0, append rows, then rewrite the header with the final N.
    """

    def __init__(self, path: Path, tail: tuple[int, ...], dtype: np.dtype) -> None:
        self.path, self.tail, self.dtype = path, tail, np.dtype(dtype)
        self.n = 0
        self.sha = hashlib.sha256()
        self.f = open(path, "wb")
        self.hlen = len(_npy_header((0, *tail), self.dtype))
        self.f.write(_npy_header((0, *tail), self.dtype))

    def append(self, a: np.ndarray) -> None:
        if a.shape[1:] != self.tail or a.dtype != self.dtype:
            raise ValueError(f"{self.path.name}: got {a.dtype}{a.shape}, want {self.dtype}(N, *{self.tail})")
        # In row chunks: a transposed view is never copied whole.
        step = max(1, _CHUNK_BYTES // max(1, a[:1].nbytes))
        for i in range(0, a.shape[0], step):
            data = memoryview(np.ascontiguousarray(a[i : i + step])).cast("B")
            self.f.write(data)
            self.sha.update(data)
        self.n += a.shape[0]

    def close(self) -> str:
        header = _npy_header((self.n, *self.tail), self.dtype)
        if len(header) != self.hlen:  # cannot happen with numpy's growth padding
            raise RuntimeError(f"{self.path}: npy header size changed")
        self.f.seek(0)
        self.f.write(header)
        self.f.flush()
        os.fsync(self.f.fileno())
        self.f.close()
        return self.sha.hexdigest()

    def abort(self) -> None:
        self.f.close()


class PreparedWriter:
    """Builds one prepared dataset; use as a context manager.

    Three ways to fill a split: ``add_split`` (whole arrays), ``append`` (chunks
    in order, count unknown up front) or ``allocate``/``commit`` (a writable
    memmap of known size, filled in any order). Leaving the ``with`` block
    normally writes the manifest and moves the dataset into place; an exception
    deletes everything written so far.
    """

    def __init__(
        self,
        name: str,
        root: str | os.PathLike[str] | None = None,
        *,
        num_classes: int,
        image_size: int,
        channels: int = 3,
        classes: Sequence[str] | None = None,
        source: Mapping[str, Any] | str = "",
        synthetic: bool = False,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        extra: Mapping[str, Any] | None = None,
        overwrite: bool = False,
        dtype: str = "uint8",
    ) -> None:
        if dtype not in DTYPES:
            raise ValueError(f"{name}: image dtype must be one of {DTYPES}, got {dtype!r}")
        self.dtype = np.dtype(dtype)
        self.name = name
        self.root = resolve_root(root)
        self.final = self.root / name
        if (self.final / MANIFEST).exists() and not overwrite:
            raise ReproduceError(
                f"dataset {name!r} is already prepared at {self.final}; "
                "re-import with --force to replace it"
            )
        self.meta: dict[str, Any] = {
            "name": name,
            "format_version": FORMAT_VERSION,
            "num_classes": int(num_classes),
            "image_size": int(image_size),
            "channels": int(channels),
            "classes": list(classes) if classes is not None else None,
            "mean": [float(m) for m in mean] if mean is not None else None,
            "std": [float(s) for s in std] if std is not None else None,
            "source": source if isinstance(source, Mapping) else {"description": source},
            "synthetic": bool(synthetic),
            "created_by": f"reproduce {__version__} (numpy {np.__version__}, python {sys.version.split()[0]})",
            **(dict(extra) if extra else {}),
        }
        if dtype != "uint8":
            self.meta["dtype"] = dtype
        if classes is not None and len(classes) != num_classes:
            raise ValueError(f"{name}: {len(classes)} class names for {num_classes} classes")
        self.splits: dict[str, dict[str, Any]] = {}
        self._appenders: dict[str, tuple[_NpyAppender, _NpyAppender]] = {}
        self._allocated: dict[str, tuple[np.memmap, np.ndarray]] = {}
        self.staging: Path | None = None

    # -- context management -------------------------------------------------
    def __enter__(self) -> "PreparedWriter":
        self.root.mkdir(parents=True, exist_ok=True)
        token = f"{os.getpid()}-{secrets.token_hex(4)}"
        self.staging = self.root / f".{self.name}.partial-{token}"
        self.staging.mkdir()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            try:
                self._finish()
                return
            except BaseException:
                self._abort()
                raise
        self._abort()

    def _abort(self) -> None:
        for a, b in self._appenders.values():
            a.abort()
            b.abort()
        self._appenders.clear()
        self._allocated.clear()
        if self.staging is not None and self.staging.exists():
            shutil.rmtree(self.staging, ignore_errors=True)

    def _path(self, split: str, kind: str) -> Path:
        assert self.staging is not None, "use PreparedWriter as a context manager"
        if not split or "/" in split or split.startswith("."):
            raise ValueError(f"bad split name {split!r}")
        return self.staging / f"{split}_{kind}.npy"

    def _shape(self) -> tuple[int, int, int]:
        s = self.meta["image_size"]
        return (s, s, self.meta["channels"])

    def _check_labels(self, split: str, labels: np.ndarray) -> None:
        if labels.size and (labels.min() < 0 or labels.max() >= self.meta["num_classes"]):
            raise ReproduceError(
                f"{self.name}/{split}: labels span {labels.min()}..{labels.max()}, "
                f"outside 0..{self.meta['num_classes'] - 1}"
            )

    def _new_split(self, split: str) -> None:
        if split in self.splits or split in self._appenders or split in self._allocated:
            raise ValueError(f"{self.name}: split {split!r} written twice")

    # -- filling -------------------------------------------------------------
    def add_split(self, split: str, images: np.ndarray, labels: np.ndarray, **info: Any) -> None:
        self.append(split, images, labels)
        self.close_split(split, **info)

    def append(self, split: str, images: np.ndarray, labels: np.ndarray) -> None:
        if split not in self._appenders:
            self._new_split(split)
            self._appenders[split] = (
                _NpyAppender(self._path(split, "images"), self._shape(), self.dtype),
                _NpyAppender(self._path(split, "labels"), (), np.dtype(np.int64)),
            )
        images = np.asarray(images)
        labels = np.asarray(labels)
        if images.dtype != self.dtype:
            raise ValueError(f"{self.name}/{split}: images must be {self.dtype}, got {images.dtype}")
        if self.dtype != np.uint8 and images.size and not (
                np.isfinite(images).all() and images.min() >= 0.0 and images.max() <= 1.0):
            # every attack clamps to [0, 1]: a feature outside it would be silently moved
            raise ValueError(f"{self.name}/{split}: float images must be finite and in [0, 1]")
        if labels.shape != (images.shape[0],):
            raise ValueError(f"{self.name}/{split}: {labels.shape} labels for {images.shape[0]} images")
        labels = labels.astype(np.int64, copy=False)
        self._check_labels(split, labels)
        ai, al = self._appenders[split]
        ai.append(images)
        al.append(labels)

    def close_split(self, split: str, **info: Any) -> None:
        ai, al = self._appenders.pop(split)
        self.splits[split] = {"n": ai.n, "images_sha256": ai.close(), "labels_sha256": al.close(), **info}

    def allocate(self, split: str, n: int) -> tuple[np.memmap, np.ndarray]:
        """A writable (n, H, W, C) uint8 memmap and an (n,) int64 label array to fill."""
        self._new_split(split)
        images = np.lib.format.open_memmap(
            self._path(split, "images"), mode="w+", dtype=self.dtype, shape=(n, *self._shape())
        )
        labels = np.full(n, -1, dtype=np.int64)
        self._allocated[split] = (images, labels)
        return images, labels

    def commit(self, split: str, **info: Any) -> None:
        images, labels = self._allocated.pop(split)
        if labels.size and labels.min() < 0:
            missing = int((labels < 0).sum())
            raise ReproduceError(f"{self.name}/{split}: {missing} of {labels.size} images were never filled")
        self._check_labels(split, labels)
        images.flush()
        path = self._path(split, "images")
        del images  # close the map before hashing from a fresh read-only map
        _fsync(path)
        ro = np.load(path, mmap_mode="r", allow_pickle=False)
        ish = array_sha256(ro)
        del ro
        lpath = self._path(split, "labels")
        np.save(lpath, labels, allow_pickle=False)
        _fsync(lpath)
        self.splits[split] = {
            "n": int(labels.shape[0]),
            "images_sha256": ish,
            "labels_sha256": array_sha256(labels),
            **info,
        }

    def _finish(self) -> None:
        if self._appenders or self._allocated:
            open_ = sorted({*self._appenders, *self._allocated})
            raise RuntimeError(f"{self.name}: splits {open_} were never closed")
        if not self.splits:
            raise ReproduceError(f"{self.name}: nothing to write (no splits)")
        assert self.staging is not None
        self.meta["splits"] = self.splits
        write_json(self.staging / MANIFEST, self.meta)  # last: marks the directory complete
        old = None
        if self.final.exists():
            old = self.root / f".{self.name}.old-{secrets.token_hex(4)}"
            os.replace(self.final, old)
        os.replace(self.staging, self.final)
        self.staging = None
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def write_prepared(
    name: str,
    root: str | os.PathLike[str] | None,
    splits: Mapping[str, tuple[np.ndarray, np.ndarray]],
    **writer_kw: Any,
) -> Path:
    """Write in-memory arrays ``{split: (images NHWC uint8 or float32, labels)}`` as a prepared dataset.

    ``writer_kw`` are ``PreparedWriter``'s (``num_classes`` required); the image size, channels and
    dtype come from the arrays.
    """
    first = next(iter(splits.values()))[0]
    if first.ndim != 4:
        raise ValueError(f"{name}: images must be N x H x W x C, got shape {first.shape}")
    with PreparedWriter(name, root, image_size=first.shape[1], channels=first.shape[3], dtype=str(first.dtype),
                        **writer_kw) as w:
        for split, (images, labels) in splits.items():
            if images.shape[1] != images.shape[2]:
                raise ValueError(f"{name}/{split}: images must be square, got {images.shape}")
            w.add_split(split, images, labels)
    return w.final


# -- reading ------------------------------------------------------------------


def import_command(name: str, root: str | os.PathLike[str] | None = None) -> str:
    """The exact command that prepares ``name`` (for error messages)."""
    r = f" --data-dir {resolve_root(root)}"
    if name not in DATASETS:
        return (
            f"reproduce data generate {name} --classes C --size S --n-train N --n-test M{r} "
            "(it is not a catalog dataset; generated datasets are made with `data generate`)"
        )
    info = DATASETS.get(name)
    if info.derived_from:
        return (
            f"reproduce data import {name}{r} (after preparing {info.derived_from}: "
            f"{import_command(info.derived_from, root)})"
        )
    alts = info.import_hint.split(" | ")
    cmd = f"reproduce data import {name} {alts[0]}{r}"
    others = alts[1:] + (["--download"] if info.downloadable else [])
    if others:
        cmd += " (or instead of " + alts[0].split()[0] + ": " + "; ".join(others) + ")"
    return cmd


def missing_error(name: str, root: str | os.PathLike[str] | None = None, why: str = "") -> DatasetMissingError:
    path = (dataset_dir(name, root) / MANIFEST).absolute()
    if name in DATASETS:
        info: DatasetInfo | None = DATASETS.get(name)
        assert info is not None
        if info.derived_from:
            source = f"{info.title} is derived from {info.derived_from} ({info.homepage.split('(')[-1].rstrip(')')})."
        else:
            source = f"{info.title} comes from {info.source_text()}; licence: {info.licence}."
    else:
        info = None
        source = f"{name!r} is not in the dataset catalog (known: {', '.join(DATASETS.names())})."
    why = f" ({why})" if why else ""
    return DatasetMissingError(
        f"dataset {name!r} is not prepared: no complete dataset at {path}{why}. {source} "
        f"Prepare it with: {import_command(name, root)}. No dataset is ever downloaded "
        "unless you pass --download."
    )


def read_manifest(name: str, root: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    path = dataset_dir(name, root) / MANIFEST
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
    except FileNotFoundError:
        raise missing_error(name, root) from None
    except json.JSONDecodeError as e:
        raise missing_error(name, root, f"manifest is not valid JSON: {e}") from None
    if meta.get("format_version") != FORMAT_VERSION:
        raise missing_error(
            name, root, f"format_version {meta.get('format_version')}, this code reads {FORMAT_VERSION}; re-import"
        )
    return meta


def is_prepared(name: str, root: str | os.PathLike[str] | None = None) -> bool:
    return (dataset_dir(name, root) / MANIFEST).is_file()


def _open_npy(path: Path, name: str, root: Any, mmap: bool | None) -> np.ndarray:
    if not path.is_file():
        raise missing_error(name, root, f"{path.name} is missing; the dataset is damaged")
    use_mmap = mmap if mmap is not None else path.stat().st_size > MMAP_THRESHOLD
    return np.load(path, mmap_mode="r" if use_mmap else None, allow_pickle=False)


def load_split(
    name: str,
    split: str,
    root: str | os.PathLike[str] | None = None,
    *,
    verify: bool = False,
    mmap: bool | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(images N x H x W x C, labels int64 N)`` of a prepared split.

    Images are uint8, or float32 in [0, 1] where the manifest says ``"dtype": "float32"``.

    Shapes, dtypes and the label range are checked against the manifest;
    ``verify=True`` also recomputes the sha256s. Arrays over 1 GiB are
    memory-mapped read-only unless ``mmap`` says otherwise.
    """
    meta = read_manifest(name, root)
    splits = meta["splits"]
    if split not in splits:
        raise UnknownNameError(f"dataset {name!r} has no split {split!r}; its splits: {', '.join(splits)}")
    entry = splits[split]
    d = dataset_dir(name, root)
    if meta.get("storage") == "jpeg" and "images_sha256" not in entry:  # storage/jpeg.py
        raise ReproduceError(
            f"{name}/{split} is stored as {entry['n']} full-resolution JPEG files only (no {split}_images.npy): "
            "training streams it (reproduce/data/feeding/stream.py); read its labels with load_labels")
    images = _open_npy(d / f"{split}_images.npy", name, root, mmap)
    labels = _open_npy(d / f"{split}_labels.npy", name, root, False)
    s, c, n = meta["image_size"], meta["channels"], entry["n"]
    where = f"{d}/{split}"
    dtype = meta.get("dtype", "uint8")
    if images.dtype != np.dtype(dtype) or images.shape != (n, s, s, c):
        raise ChecksumError(f"{where}: images are {images.dtype}{images.shape}, manifest says {dtype}{(n, s, s, c)}")
    if labels.dtype != np.int64 or labels.shape != (n,):
        raise ChecksumError(f"{where}: labels are {labels.dtype}{labels.shape}, manifest says int64({n},)")
    if n and (labels.min() < 0 or labels.max() >= meta["num_classes"]):
        raise ChecksumError(
            f"{where}: labels span {labels.min()}..{labels.max()}, manifest has {meta['num_classes']} classes"
        )
    if verify:
        _check_sha(where, "images", images, entry["images_sha256"])
        _check_sha(where, "labels", labels, entry["labels_sha256"])
    return images, labels


def _check_sha(where: str, kind: str, a: np.ndarray, expected: str) -> None:
    actual = array_sha256(a)
    if actual != expected:
        raise ChecksumError(f"{where}_{kind}.npy: expected sha256 {expected}, got {actual}; re-import the dataset")


def load_labels(name: str, split: str, root: str | os.PathLike[str] | None = None) -> np.ndarray:
    """The int64 labels of a prepared split, without touching its images (any storage)."""
    meta = read_manifest(name, root)
    if split not in meta["splits"]:
        raise UnknownNameError(f"dataset {name!r} has no split {split!r}; its splits: {', '.join(meta['splits'])}")
    labels = _open_npy(dataset_dir(name, root) / f"{split}_labels.npy", name, root, False)
    if labels.dtype != np.int64 or labels.shape != (meta["splits"][split]["n"],):
        raise ChecksumError(f"{dataset_dir(name, root)}/{split}: labels are {labels.dtype}{labels.shape}, "
                            f"manifest says int64({meta['splits'][split]['n']},)")
    return labels
