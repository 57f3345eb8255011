"""ImageNet-like datasets at low resolution: downsampled ImageNet 32/64, its ImgNet100/900 class split,
Places365 resized to 32/64 and Tiny ImageNet-200.

Checksums: Places365's file lists and small-image tars carry the md5s torchvision's
``places365.py`` verifies; the downsampled-ImageNet zips (Chrabaszcz et al. 2017) and the cs231n
Tiny ImageNet zip have none published, so importing them requires ``--sha256`` (recorded in the
manifest); pickles are only unpickled after that check.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Any

from ...errors import ReproduceError
from .base import IMAGENET_MEAN, IMAGENET_STD, NO_SHA, ArchiveFile, DatasetInfo, add

_PLACES = "http://data.csail.mit.edu/places/places365/"
_DOWNSAMPLE = "https://image-net.org/data/downsample/"
_TINY = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
# The papers split ImageNet64 "randomly" into 100 and 900 classes without
# publishing the split; ours is fixed by this seed (see importers/pickles.py).
IMGNET_SPLIT_SEED = 20220126
# The downsampled ImageNet's label order: map_clsloc.txt of PatrykChrabaszcz/Imagenet32_Scripts
# (commit caf2a13, 2017-05-04; lines "wnid label(1..1000) name"), copied verbatim beside this file
# and pinned by its sha256 so the names can never drift from the labels they describe.
CLASS_MAP = Path(__file__).with_name("map_clsloc.txt")
CLASS_MAP_SHA256 = "1dd44b44b70cbdb05781d3b49851bfa25a82486f47b2957a29eac1f98da4441d"
CLASS_MAP_SOURCE = "map_clsloc.txt of github.com/PatrykChrabaszcz/Imagenet32_Scripts@caf2a13 (sha256 " + CLASS_MAP_SHA256 + ")"


@lru_cache(maxsize=1)
def imagenet_classes() -> tuple[tuple[str, str], ...]:
    """(wnid, name) per label 0..999 of the downsampled ImageNet; names with spaces for underscores
    (the file joins words with "_"); a file whose checksum or order differs is an error."""
    blob = CLASS_MAP.read_bytes()
    if hashlib.sha256(blob).hexdigest() != CLASS_MAP_SHA256:
        raise ReproduceError(f"{CLASS_MAP}: sha256 differs from the pinned {CLASS_MAP_SHA256}; restore the file")
    out = []
    for i, line in enumerate(blob.decode("utf-8").splitlines()):
        wnid, label, name = line.split(" ", 2)
        if int(label) != i + 1:
            raise ReproduceError(f"{CLASS_MAP}: line {i + 1} has label {label}")
        out.append((wnid, name.replace("_", " ")))
    return tuple(out)


def _imagenet_like(name: str, title: str, num_classes: int, size: int, split_sizes: dict[str, int],
                   **kw: Any) -> DatasetInfo:
    """An RGB ``size`` x ``size`` dataset with train and val splits, normalized with ImageNet's statistics."""
    return DatasetInfo(name=name, title=title, num_classes=num_classes, image_size=size, channels=3,
                       splits=("train", "val"), split_sizes=split_sizes, mean=IMAGENET_MEAN, std=IMAGENET_STD, **kw)


def _downsampled(size: int) -> DatasetInfo:
    if size == 32:
        files = ("Imagenet32_train.zip", "Imagenet32_val.zip")
    else:
        files = ("Imagenet64_train_part1.zip", "Imagenet64_train_part2.zip", "Imagenet64_val.zip")
    return _imagenet_like(
        f"imagenet{size}", f"Downsampled ImageNet {size}x{size} (Chrabaszcz et al., 2017)", 1000, size,
        {"train": 1_281_167, "val": 50_000}, classes=tuple(name for _, name in imagenet_classes()),
        licence="ImageNet terms of access (non-commercial research; login required)",
        homepage="https://patrykchrabaszcz.github.io/Imagenet32/ (files from https://image-net.org/download-images)",
        importer="downsampled_imagenet",
        archives=tuple(ArchiveFile(f, url=_DOWNSAMPLE + f, note=NO_SHA) for f in files),
        import_hint="--from-archive DIR_WITH_ZIPS --sha256 HEX (once per zip)",
        params={
            "label_order": "the pickles' 1-indexed labels minus 1 (map_clsloc.txt order of Imagenet32_Scripts)",
            "class_names": CLASS_MAP_SOURCE + "; wnids: reproduce.data.catalog.imagenet.imagenet_classes()",
            "pickle_layout": "dict with 'data' (N x 3*S*S uint8, CHW-flattened rows), 'labels' (1..1000), 'mean'",
        },
        notes="image-net.org requires a login, so --download is not supported.",
    )


def _imgnet_subset(k: int) -> DatasetInfo:
    return _imagenet_like(
        f"imgnet{k}", f"ImgNet{k}: {k} classes of ImageNet64 (BiaMAT)", k, 64, {}, licence="as imagenet64",
        homepage="derived from imagenet64 (https://patrykchrabaszcz.github.io/Imagenet32/)",
        importer="imgnet_subset", derived_from="imagenet64",
        import_hint="(no files: prepare imagenet64 first, then `reproduce data import " + f"imgnet{k}`)",
        params={
            "split_seed": IMGNET_SPLIT_SEED,
            "subset": "first" if k == 100 else "rest",
            "n_first": 100,
            "method": "classes ranked by sha256(f'{seed}:{class_index}'); the first 100 form "
            "imgnet100, the other 900 imgnet900; labels remapped to 0..k-1 in increasing "
            "original class index",
        },
    )


def _places(size: int) -> DatasetInfo:
    tars = {"filelist_places365-standard.tar": "35a0585fee1fa656440f3ab298f8479c",
            "train_256_places365standard.tar": "53ca1c756c3d1e7809517cc47c5561c5",
            "val_256.tar": "e27b17d8d44f4af9a78502beb927f808"}
    return _imagenet_like(
        f"places365-{size}", f"Places365-Standard resized to {size}x{size}", 365, size,
        {"train": 1_803_460, "val": 36_500},
        licence="Places365 terms of use (non-commercial research and education)",
        homepage="http://places2.csail.mit.edu/download.html", importer="places365",
        archives=tuple(ArchiveFile(f, _PLACES + f, md5=md5) for f, md5 in tars.items()),
        downloadable=True,
        import_hint="--from-archive DIR_WITH_TARS | --from-folder DIR (extracted tars + file lists)",
        params={
            "resize": f"PIL Image.resize(({size}, {size}), BOX) from the official 256x256 small "
            "images, after convert('RGB')",
            "file_list_md5": {
                "categories_places365.txt": "06c963b85866bd0649f97cb43dd16673",
                "places365_train_standard.txt": "30f37515461640559006b8329efbed1a",
                "places365_val.txt": "e9f2fd57bfd9d07630173f4e8708e4b1",
            },
        },
        notes="box (area-average) filtering is how Chrabaszcz et al. downsampled ImageNet.",
    )


for _size in (32, 64):
    add(_downsampled(_size))
    add(_places(_size))
for _k in (100, 900):
    add(_imgnet_subset(_k))

add(DatasetInfo(
    name="tiny-imagenet-200", title="Tiny ImageNet-200 (Stanford cs231n)", num_classes=200, image_size=64, channels=3,
    # test = the official labelled val/ (10k), as the HAT code evaluates on it
    splits=("train", "test"), split_sizes={"train": 100_000, "test": 10_000},
    mean=(0.4802, 0.4481, 0.3975), std=(0.2302, 0.2265, 0.2262),
    licence="for non-commercial research and education; images from ImageNet", homepage=_TINY,
    importer="tiny_imagenet", archives=(ArchiveFile("tiny-imagenet-200.zip", url=_TINY, note=NO_SHA),),
    downloadable=True,
    import_hint="--from-archive tiny-imagenet-200.zip --sha256 HEX | --from-folder DIR (extracted)",
    params={"classes": "sorted(wnids.txt) (ImageFolder order)", "test": "val/ relabelled from val_annotations.txt",
            "mode": "RGB (greyscale images converted)"},
))
