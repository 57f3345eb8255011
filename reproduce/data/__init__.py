"""Datasets: catalog, the prepared on-disk format, importers, generated data, device loader."""

from .catalog import DATASETS, ArchiveFile, DatasetInfo
from .loader import Batch, DeviceDataset, infinite, iterate
from .prepared import (
    PreparedWriter,
    dataset_dir,
    default_root,
    is_prepared,
    load_split,
    read_manifest,
    verify,
    write_prepared,
)
from .synthetic import generate, write_generated


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
    "load_split",
    "read_manifest",
    "verify",
    "write_generated",
    "write_prepared",
]
