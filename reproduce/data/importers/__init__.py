"""Turning official dataset files into the prepared format.

``import_dataset`` is the one entry point (the CLI's ``data import``). Each catalog entry names
its importer; ``base`` holds the request and the ``IMPORTERS`` registry, and one module per source
format registers its importers there (this package imports them all; within the package they import
only ``base``).
Every archive is checksum-verified before it is opened, pickles are read with a restricted
unpickler, and nothing is written under ``<root>/<name>`` until the whole dataset is complete.

``import_from_source`` serves the scales whose ``data.source`` is ``folders``: the ``cpu`` scale
trains on real CIFAR-10 read from a JPEG tree (``../shared/data`` here, any copy elsewhere),
imported into the scale's own data root, so these lossy images never mix with the official
archives a paper-scale run reads from ``data_dir``.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Mapping, Sequence

from ...errors import DatasetMissingError, ReproduceError
from ..catalog import DATASETS
from ..storage.prepared import dataset_dir, is_prepared, resolve_root
from . import derived, generated, jpeg_files, matlab, npy, pickles  # noqa: F401  (register the importers)
from .base import IMPORTERS, ImportRequest, Progress, download
from .images import import_image_folder


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
    datasets (imgnet100/900) and generated ones (toy3d) need no source. An already
    prepared dataset is left alone unless ``force``.
    """
    info = DATASETS.get(name, where="data import")
    root_p = resolve_root(root)
    if is_prepared(name, root_p) and not force:
        if progress:
            progress(f"{name} is already prepared at {dataset_dir(name, root_p)} (use --force to re-import)")
        return dataset_dir(name, root_p)
    given = sum(x is not None for x in (from_archive, from_folder, from_robustbench)) + bool(allow_download)
    if info.generated and given:
        raise ReproduceError(f"data import {name}: this dataset is generated; give no source")
    if not info.generated and info.derived_from is None and given != 1:
        raise ReproduceError(
            f"data import {name}: give exactly one of --from-archive PATH, --from-folder DIR or --download "
            f"(expected: {info.import_hint}; official source: {info.homepage})"
        )
    if allow_download:
        from_archive = download(info, root_p / ".downloads" / name, progress)

    def path(p: str | os.PathLike[str] | None) -> Path | None:
        return Path(p).expanduser() if p is not None else None

    req = ImportRequest(info=info, root=root_p, from_archive=path(from_archive), from_folder=path(from_folder),
                        from_robustbench=path(from_robustbench), sha256=tuple(sha256), checksums=checksums,
                        expected_sizes=expected_sizes, force=force, progress=progress)
    importer = "robustbench" if from_robustbench is not None else info.importer
    return IMPORTERS.get(importer, where=f"catalog entry {name}")(req)


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
        # hand-written: tarfile's "data" filter refuses links and paths leaving tmp; torchvision's
        # extract_archive extracts without it
        with tarfile.open(src) as tar:
            tar.extractall(tmp, filter="data")
        return import_dataset(name, root, from_folder=_tree_in(tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


__all__ = ["IMPORTERS", "ImportRequest", "import_dataset", "import_from_source", "import_image_folder"]
