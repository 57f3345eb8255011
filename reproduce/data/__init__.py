"""Datasets: the catalog, importers, the prepared on-disk format, generated data and feeding training.

Subpackages: ``catalog`` (what each dataset is and where it comes from), ``importers`` (official
files -> prepared format, one module per source format), ``storage`` (the prepared format: arrays,
kept JPEG files, verification), ``generated`` (synthetic and toy data), ``feeding`` (loader,
streaming, placement, hold-out, composite batches). This module is the public face.
"""

from .catalog import DATASETS, ArchiveFile, DatasetInfo
from .storage.prepared import (
    PreparedWriter,
    dataset_dir,
    default_root,
    is_prepared,
    load_labels,
    load_split,
    read_manifest,
    write_prepared,
)
from .storage.verify import verify
from .generated.synthetic import generate, write_generated


_LOADER = ("Batch", "DeviceDataset", "infinite", "iterate")


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    # the device loader needs torch; renders, diffs and plans read manifests only (torch costs 3 s a process)
    if name in _LOADER:
        from .feeding import loader

        return getattr(loader, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def import_dataset(*args, **kwargs):  # type: ignore[no-untyped-def]
    """See ``reproduce.data.importers.import_dataset`` (imported lazily: PIL, tarfile)."""
    from .importers import import_dataset as _impl

    return _impl(*args, **kwargs)


__all__ = [
    "DATASETS",
    "ArchiveFile",
    "Batch",
    "DatasetInfo",
    "DeviceDataset",
    "PreparedWriter",
    "dataset_dir",
    "default_root",
    "generate",
    "import_dataset",
    "infinite",
    "is_prepared",
    "iterate",
    "load_labels",
    "load_split",
    "read_manifest",
    "verify",
    "write_generated",
    "write_prepared",
]
