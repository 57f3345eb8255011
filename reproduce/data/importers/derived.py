"""Datasets derived from another prepared dataset: ImgNet100 / ImgNet900, class splits of ImageNet64."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ...errors import ReproduceError
from ..storage.prepared import load_split, read_manifest
from .base import IMPORTERS, ImportRequest


def imgnet_class_split(seed: int, n_first: int = 100, n_classes: int = 1000) -> tuple[list[int], list[int]]:
    """The fixed random class split: classes ranked by sha256(f"{seed}:{index}").

    A hash ranking (not a PRNG permutation) so that the split never changes
    with the numpy version.
    """
    ranked = sorted(range(n_classes), key=lambda c: hashlib.sha256(f"{seed}:{c}".encode()).hexdigest())
    return sorted(ranked[:n_first]), sorted(ranked[n_first:])


@IMPORTERS.register("imgnet_subset")
def import_imgnet_subset(req: ImportRequest) -> Path:
    info = req.info
    parent = info.derived_from
    assert parent is not None
    pmeta = read_manifest(parent, req.root)  # DatasetMissingError names the parent's import command
    p = info.params
    first, rest = imgnet_class_split(int(p["split_seed"]), int(p["n_first"]), pmeta["num_classes"])  # type: ignore[call-overload]
    chosen = first if p["subset"] == "first" else rest
    if len(chosen) != info.num_classes:
        raise ReproduceError(f"{info.name}: the class split gives {len(chosen)} classes, expected {info.num_classes}")
    remap = np.full(pmeta["num_classes"], -1, dtype=np.int64)
    remap[chosen] = np.arange(len(chosen))
    extra = {
        "derived_from": {"name": parent, "splits": {s: e["images_sha256"] for s, e in pmeta["splits"].items()}},
        "original_classes": chosen,
        "class_split": dict(p),
    }
    source = {"description": f"{info.title}: classes of {parent} chosen by a fixed seed", "import": "derived"}
    with req.writer(extra=extra, source=source) as w:
        for split in info.splits:
            images, labels = load_split(parent, split, req.root, mmap=True)
            req.say(f"{info.name}/{split}: selecting {len(chosen)} classes of {parent}")
            step = 65536
            for i in range(0, labels.shape[0], step):
                lab = remap[labels[i : i + step]]
                keep = np.flatnonzero(lab >= 0)
                w.append(split, np.asarray(images[i : i + step][keep]), lab[keep])
            w.close_split(split)
    return w.final
