"""MATLAB ``.mat`` files holding whole splits as arrays: SVHN (cropped digits, format 2).

Each ``<split>_32x32.mat`` holds ``X`` (32 x 32 x 3 x N uint8) and ``y`` (N x 1, the digit 0
labelled 10); ``scipy.io.loadmat`` reads them (an ``extra`` split of 531k images is 1.6 GB).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import ReproduceError
from .base import IMPORTERS, ImportRequest, load_mat


def read_svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images N x 32 x 32 x 3 uint8, a view of ``X``; labels int64 in 0..9) of one SVHN file."""
    d = load_mat(path, str(path), variable_names=("X", "y"))
    if "X" not in d or "y" not in d:
        raise ReproduceError(f"{path}: expected variables X and y")
    images = d["X"].transpose(3, 0, 1, 2)
    labels = d["y"].reshape(-1).astype(np.int64) % 10  # the digit 0 is stored as 10
    if images.shape[0] != labels.shape[0]:
        raise ReproduceError(f"{path}: {labels.shape[0]} labels for {images.shape[0]} images")
    return images, labels


@IMPORTERS.register("svhn")
def import_svhn(req: ImportRequest) -> Path:
    files = req.verified()
    with req.writer() as w:
        for split in req.info.splits:
            fname = f"{split}_32x32.mat"
            if fname in files:
                req.say(f"svhn/{split}: reading {files[fname]}")
                images, labels = read_svhn_mat(files[fname])
                req.check_count(split, int(labels.shape[0]))
                w.add_split(split, images.astype(np.uint8, copy=False), labels)  # written in row chunks: no copy
    return w.final
