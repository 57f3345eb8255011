"""Datasets a scale imports from an image-folder tree or a .tar.gz of one (the ``folders`` source).

The ``cpu`` scale trains on real CIFAR-10 read from a JPEG tree (``../shared/data`` here, any
copy elsewhere): ``prepare_data`` imports it into the scale's own data root, so these lossy
images never mix with the official archives a paper-scale run reads from ``data_dir``.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from pathlib import Path

from ..errors import DatasetMissingError, ReproduceError


def _tree_in(folder: Path) -> Path:
    # an archive may or may not wrap the tree in one top-level folder
    if (folder / "train").is_dir():
        return folder
    inner = [p for p in folder.iterdir() if p.is_dir() and (p / "train").is_dir()]
    if len(inner) != 1:
        raise ReproduceError(f"{folder}: no image-folder tree (train/<class>/*) inside")
    return inner[0]


def import_from_source(name: str, root: str | os.PathLike[str], source: str | os.PathLike[str],
                       where: str) -> Path:
    """Import catalog dataset ``name`` under ``root`` from ``source`` (a tree or a .tar.gz of one)."""
    from .importers import import_dataset

    src = Path(os.path.expandvars(os.path.expanduser(str(source))))
    if not src.exists():
        raise DatasetMissingError(
            f"{where}: {src} does not exist; put the image-folder tree (or its .tar.gz) there, point "
            f"data.folders.{name} at your copy, or run `reproduce data import {name} --from-folder DIR "
            f"--data-dir {root}`")
    if src.is_dir():
        return import_dataset(name, root, from_folder=_tree_in(src))
    if not tarfile.is_tarfile(src):
        raise ReproduceError(f"{where}: {src} is neither a folder nor a tar archive")
    Path(root).mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-tree.", dir=root))
    try:
        with tarfile.open(src) as tar:
            tar.extractall(tmp, filter="data")
        return import_dataset(name, root, from_folder=_tree_in(tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
