"""What a catalog entry is (``DatasetInfo``, ``ArchiveFile``), the ``DATASETS`` registry, shared constants.

The entries themselves live in one module per family (``cifar``, ``imagenet``, ``fullres``,
``toy``); ``reproduce.data.catalog`` imports them all, so importing the package registers them.
The datasets the papers use: where they come from and how they are checked.

Every checksum here was taken from an authoritative listing, never computed by
us from a copy of unknown origin:

* CIFAR-10/100 python tarballs and SVHN ``.mat`` files: the md5s torchvision
  0.29 verifies (``torchvision/datasets/cifar.py``, ``svhn.py``).
* Places365 file lists and small-image tars: torchvision's ``places365.py``.
* CIFAR-10-C: the md5 Zenodo lists for record 2535967.
* ILSVRC-2012 train/val tars and devkit, Caltech-256's ``256_ObjectCategories.tar`` and
  Oxford Flowers-102's ``102flowers.tgz``/``imagelabels.mat``/``setid.mat``: the md5s
  torchvision 0.29.1 verifies (``torchvision/datasets/imagenet.py`` ARCHIVE_META,
  ``caltech.py`` Caltech256.download, ``flowers102.py`` _file_dict); Caltech's md5 is also
  the one data.caltech.edu lists for record nyy15-4j048.
* Downsampled ImageNet (Chrabaszcz et al. 2017), Carmon et al.'s TinyImages
  500k pickle and the cs231n Tiny ImageNet-200 zip: no checksum is published, so importing them requires the user to
  pass ``--sha256`` (the value of a copy they trust); it is then recorded in
  the manifest. Pickles are only unpickled after that check.

``mean``/``std`` are the per-channel statistics commonly used for each dataset;
whether a model normalizes its inputs is a method/model setting, not ours.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from ...registry import Registry


@dataclass(frozen=True)
class ArchiveFile:
    """One official file a dataset is imported from."""

    filename: str
    url: str | None = None
    md5: str | None = None
    sha256: str | None = None
    # Files that are only needed for some splits or are optional say so here.
    note: str = ""
    # Google Drive id when the official copy lives there (download needs gdown).
    gdrive_id: str | None = None

    @property
    def has_checksum(self) -> bool:
        return bool(self.md5 or self.sha256)


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    title: str
    num_classes: int
    image_size: int
    channels: int
    splits: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    licence: str
    homepage: str
    importer: str
    archives: tuple[ArchiveFile, ...] = ()
    classes: tuple[str, ...] | None = None
    # Expected number of images per split; the importer refuses other counts.
    split_sizes: Mapping[str, int] = field(default_factory=dict)
    # Whether `--download` can fetch the archives without a login.
    downloadable: bool = False
    # How the archives are handed to `data import` (shown in error messages).
    import_hint: str = "--from-archive PATH"
    derived_from: str | None = None
    # Parameters of the importer that are part of the dataset's definition
    # (class split seed, resize method, ...); copied into the manifest.
    params: Mapping[str, object] = field(default_factory=dict)
    notes: str = ""
    # Made by its importer from ``params`` alone (no files, no download), at every scale.
    generated: bool = False
    # "array": uint8 .npy splits batched on the device (reproduce/data/feeding/loader.py); "jpeg":
    # full-resolution JPEG files streamed by workers (reproduce/data/storage/jpeg.py, feeding/stream.py)
    storage: str = "array"

    @property
    def eval_split(self) -> str | None:
        """The labelled held-out split evaluations use: ``test``, else ``val``.

        ImageNet-derived sets and Places365 publish no labelled test images, so
        their ``val`` split plays that role; a run naming ``test`` for them is an error.
        """
        return next((s for s in ("test", "val") if s in self.splits), None)

    def archive(self, filename: str) -> ArchiveFile:
        for a in self.archives:
            if a.filename == filename:
                return a
        raise KeyError(filename)

    def source_text(self) -> str:
        files = ", ".join(a.filename for a in self.archives)
        return f"{self.homepage}" + (f" (files: {files})" if files else "")


DATASETS: Registry[DatasetInfo] = Registry("dataset")


def add(info: DatasetInfo) -> DatasetInfo:
    assert len(info.mean) == len(info.std) == info.channels, info.name
    assert info.classes is None or len(info.classes) == info.num_classes, info.name
    return DATASETS.add(info.name, info)


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NO_SHA = (
    "no checksum is published for this file; pass --sha256 with the value of a "
    "copy you trust (`sha256sum FILE`)"
)
