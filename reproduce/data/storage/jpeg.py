"""Full-resolution JPEG datasets in the prepared format (ImageNet-200, Caltech-256, Flowers-102).

260k full-resolution images cannot be one uint8 device tensor (ImageNet-200 at 224 x 224 alone
is 39 GB), so these datasets keep their official JPEG files and are decoded while training
(``reproduce.data.feeding.stream``). A prepared one is ``<root>/<name>/`` holding:

* ``manifest.json``: as for every dataset, plus ``"storage": "jpeg"``; per split ``n``,
  ``labels_sha256`` and ``files_sha256`` (sha256 of ``<split>_files.txt``, which lists every
  file's own sha256), and ``images_sha256`` for splits that have an eval array;
* ``jpeg/<path>``: the official files byte for byte under their official relative paths
  (``train/n01498041/n01498041_1000.JPEG``, ``256_ObjectCategories/001.ak47/001_0001.jpg``,
  ``jpg/image_00001.jpg``);
* ``<split>_files.txt``: one line per image in split order, ``<path>\\t<bytes>\\t<sha256>``;
* ``<split>_labels.npy``: int64 labels, as for array datasets;
* ``<split>_images.npy`` for the held-out splits (catalog ``params.eval_arrays``): uint8
  N x 224 x 224 x 3, the evaluation transform (PIL ``convert('RGB')``, torchvision ``Resize(256)``,
  ``CenterCrop(224)``: the SAT code's test transform, computed with the same library calls)
  applied once at import. ``load_split`` reads these like any array split, so evaluation,
  selection and eval logs run unchanged; a split without one (ImageNet-200 ``train``) is only
  streamed, and ``load_split`` says so.

The staging and atomic rename of ``PreparedWriter`` apply: a killed import leaves nothing.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from ...errors import ChecksumError, ReproduceError, UnknownNameError
from ...io import sha256_file  # sha256: torchvision's integrity helpers compute md5 only
from .prepared import PreparedWriter, array_sha256, dataset_dir, missing_error, read_manifest

STORAGE = "jpeg"
FILES_DIR = "jpeg"
EVAL_RESIZE, EVAL_CROP = 256, 224
Progress = Callable[[str], None]


def is_jpeg_storage(meta: dict[str, Any]) -> bool:
    return meta.get("storage") == STORAGE


def _safe_relpath(rel: str) -> str:
    p = PurePosixPath(rel)
    if p.is_absolute() or ".." in p.parts or not p.parts or rel != p.as_posix():
        raise ReproduceError(f"refusing the file path {rel!r} (absolute, '..' or not normalised)")
    return rel


# -- the evaluation transform ----------------------------------------------------------------------


def eval_image(path: str | os.PathLike[str]) -> np.ndarray:
    """H x W x 3 uint8: PIL RGB -> Resize(256) -> CenterCrop(224), torchvision's own PIL functions."""
    from PIL import Image
    from torchvision.transforms import functional as TF

    with open(path, "rb") as f, Image.open(f) as im:
        rgb = im.convert("RGB")
    out = TF.center_crop(TF.resize(rgb, EVAL_RESIZE), EVAL_CROP)
    return np.asarray(out, dtype=np.uint8)


def _eval_chunk(paths: Sequence[str]) -> np.ndarray:
    return np.stack([eval_image(p) for p in paths])


def eval_images(paths: Sequence[str | os.PathLike[str]], out: np.ndarray, *, workers: int | None = None,
                progress: Progress | None = None, what: str = "") -> None:
    """Fill ``out[i]`` with ``eval_image(paths[i])``, in worker processes when there are many."""
    n = len(paths)
    workers = default_workers() if workers is None else int(workers)
    chunk = 64
    starts = list(range(0, n, chunk))
    groups = [[str(p) for p in paths[s:s + chunk]] for s in starts]
    if workers <= 1 or n <= chunk:
        results: Iterator[np.ndarray] = map(_eval_chunk, groups)
        pool = None
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("fork"))
        results = pool.map(_eval_chunk, groups)
    try:
        for k, (s, block) in enumerate(zip(starts, results)):
            out[s:s + len(block)] = block
            if progress and (k + 1) % 50 == 0:
                progress(f"{what}: eval transform {s + len(block)}/{n}")
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)


def default_workers() -> int:
    env = os.environ.get("REPRODUCE_STREAM_WORKERS")
    if env:
        return max(0, int(env))
    return max(1, min(8, (os.cpu_count() or 2) - 1))


# -- writing ---------------------------------------------------------------------------------------


class JpegWriter:
    """Adds JPEG files and labels split by split to a ``PreparedWriter`` (inside its ``with``)."""

    def __init__(self, w: PreparedWriter, *, eval_arrays: Sequence[str], progress: Progress | None = None,
                 workers: int | None = None) -> None:
        if w.staging is None:
            raise RuntimeError("JpegWriter needs an entered PreparedWriter")
        self.w = w
        self.base = w.staging / FILES_DIR
        self.base.mkdir()
        self.eval_arrays = set(eval_arrays)
        self.progress = progress
        self.workers = workers
        self.rows: dict[str, list[tuple[str, int, str, int]]] = {}
        self.written: dict[str, tuple[int, str]] = {}
        w.meta["storage"] = STORAGE
        w.meta["files_dir"] = FILES_DIR

    def say(self, msg: str) -> None:
        if self.progress:
            self.progress(msg)

    def put(self, rel: str, *, data: bytes | None = None, src: str | os.PathLike[str] | None = None) -> None:
        """Store file ``rel``: its bytes, or a file to hard-link (same file system) or copy."""
        rel = _safe_relpath(rel)
        if rel in self.written:
            raise ReproduceError(f"{self.w.name}: {rel} appears twice in the source")
        dst = self.base / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if data is not None:
            dst.write_bytes(data)
        else:
            assert src is not None
            try:
                os.link(src, dst)  # no second copy of 26 GB when the source is on this file system
            except OSError:
                shutil.copyfile(src, dst)
        self.written[rel] = (dst.stat().st_size, sha256_file(dst))

    def add(self, split: str, rel: str, label: int) -> None:
        """The stored file ``rel`` is the next image of ``split``, with ``label``."""
        if rel not in self.written:
            raise ReproduceError(f"{self.w.name}: {rel} is listed but missing from the source")
        size, digest = self.written[rel]
        self.rows.setdefault(split, []).append((rel, size, digest, int(label)))

    def close_split(self, split: str, **info: Any) -> None:
        rows = self.rows.pop(split, [])
        if not rows:
            raise ReproduceError(f"{self.w.name}/{split}: no images")
        assert self.w.staging is not None
        text = "".join(f"{rel}\t{size}\t{digest}\n" for rel, size, digest, _ in rows)
        listing = self.w.staging / f"{split}_files.txt"
        listing.write_text(text, encoding="utf-8")
        labels = np.asarray([r[3] for r in rows], dtype=np.int64)
        info = {"storage": STORAGE, "files_sha256": hashlib.sha256(text.encode()).hexdigest(),
                "bytes": int(sum(r[1] for r in rows)), **info}
        if split in self.eval_arrays:
            images, lab = self.w.allocate(split, len(rows))
            lab[:] = labels
            self.say(f"{self.w.name}/{split}: eval transform (Resize {EVAL_RESIZE}, CenterCrop {EVAL_CROP}) "
                     f"of {len(rows)} images")
            eval_images([self.base / r[0] for r in rows], images, workers=self.workers, progress=self.progress,
                        what=f"{self.w.name}/{split}")
            self.w.commit(split, **info)
        else:
            self.w._new_split(split)
            self.w._check_labels(split, labels)
            np.save(self.w.staging / f"{split}_labels.npy", labels, allow_pickle=False)
            self.w.splits[split] = {"n": len(rows), "labels_sha256": array_sha256(labels), **info}


# -- reading ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileSplit:
    """One split of a JPEG dataset: absolute file paths and labels in split order."""

    name: str
    split: str
    base: Path
    files: tuple[str, ...]
    labels: np.ndarray

    def paths(self) -> list[Path]:
        return [self.base / f for f in self.files]

    def __len__(self) -> int:
        return len(self.files)


def _rows(path: Path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines() if line]


def read_file_split(name: str, split: str, root: str | os.PathLike[str] | None = None, *,
                    meta: dict[str, Any] | None = None) -> FileSplit:
    meta = meta if meta is not None else read_manifest(name, root)
    if not is_jpeg_storage(meta):
        raise ReproduceError(f"dataset {name!r} is stored as arrays, not JPEG files")
    if split not in meta["splits"]:
        raise UnknownNameError(f"dataset {name!r} has no split {split!r}; its splits: {', '.join(meta['splits'])}")
    d = dataset_dir(name, root)
    entry = meta["splits"][split]
    listing = d / f"{split}_files.txt"
    if not listing.is_file():
        raise missing_error(name, root, f"{listing.name} is missing; the dataset is damaged")
    files = tuple(_safe_relpath(r[0]) for r in _rows(listing))
    labels = np.load(d / f"{split}_labels.npy", allow_pickle=False)
    if len(files) != entry["n"] or labels.shape != (entry["n"],):
        raise ChecksumError(f"{d}/{split}: {len(files)} files and {labels.shape[0]} labels, manifest says {entry['n']}")
    return FileSplit(name, split, d / meta.get("files_dir", FILES_DIR), files, labels)


def verify_files(name: str, root: str | os.PathLike[str] | None = None,
                 progress: Progress | None = None) -> dict[str, int]:
    """Re-hash every JPEG of every split against its ``<split>_files.txt`` and that list against the manifest."""
    meta = read_manifest(name, root)
    d = dataset_dir(name, root)
    out = {}
    for split, entry in meta["splits"].items():
        listing = d / f"{split}_files.txt"
        text = listing.read_text(encoding="utf-8") if listing.is_file() else ""
        if hashlib.sha256(text.encode()).hexdigest() != entry["files_sha256"]:
            raise ChecksumError(f"{listing}: file list does not match the manifest; re-import the dataset")
        base = d / meta.get("files_dir", FILES_DIR)
        rows = _rows(listing)
        for k, (rel, size, digest) in enumerate(rows):
            p = base / _safe_relpath(rel)
            try:
                actual = sha256_file(p)
            except FileNotFoundError:
                raise ChecksumError(f"{p}: missing; re-import the dataset") from None
            if actual != digest:
                raise ChecksumError(f"{p}: expected sha256 {digest}, got {actual}; re-import the dataset")
            if progress and (k + 1) % 10_000 == 0:
                progress(f"{name}/{split}: {k + 1}/{len(rows)} files OK")
        out[split] = len(rows)
    return out
