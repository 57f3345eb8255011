"""NumPy ``.npy`` files: CIFAR-10-C, from its tar or folder, or through robustbench's own loader.

The tar (or folder) holds ``<corruption>.npy`` (50,000 images: severity 1..5 in blocks of
10,000) and ``labels.npy``; each corruption x severity block becomes a split.

``--from-robustbench DIR``: RobustBench's corruption benchmark, which HAT's ``eval-rb.py`` calls,
reads CIFAR-10-C through ``robustbench.data.load_cifar10c``: its 15 corruptions, severity s as the
s-th block of 10,000 images of ``<corruption>.npy``, the first n of a block, unshuffled. Preparing
``cifar10-c`` through that loader makes the prepared cells hold exactly the images that benchmark
scores, whatever the loader's slicing does; the corruptions analysis then reads them through
``load_split`` like every other dataset. Differences from the folder/archive importer: only
robustbench's 15 corruptions (75 splits; the tar's 4 held-out ones are not benchmark data), and no
md5 check of the tar (robustbench checks it when it downloads). robustbench downloads CIFAR-10-C
from Zenodo when its folder is absent; this importer checks the files first so that nothing is
ever downloaded.
"""

from __future__ import annotations

import tarfile
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ReproduceError
from ..catalog import CIFAR10C_CORRUPTIONS, CIFAR10C_SEVERITIES
from .base import IMPORTERS, ImportRequest, inside

RB_DIR = "CIFAR-10-C"  # robustbench.data.CORRUPTIONS_DIR_NAMES[cifar_10]
RB_BLOCK = 10_000  # load_corruptions_cifar's fixed block per severity


# -- CIFAR-10-C .npy files -------------------------------------------------------------


@IMPORTERS.register("cifar10c")
def import_cifar10c(req: ImportRequest) -> Path:
    info = req.info
    names = [f"{c}.npy" for c in CIFAR10C_CORRUPTIONS] + ["labels.npy"]
    tar: tarfile.TarFile | None = None
    members: dict[str, Any] = {}
    if req.from_folder is not None:
        folder = inside(req.from_folder, RB_DIR)
        members = {n: folder / n for n in names if (folder / n).is_file()}
    else:
        assert req.from_archive is not None
        tar = tarfile.open(req.verified()[info.archives[0].filename], "r:")
        members = {m.name.rsplit("/", 1)[-1]: m for m in tar.getmembers() if m.isfile()}

    def read(n: str) -> np.ndarray:
        if tar is None:
            return np.load(members[n], allow_pickle=False)
        f = tar.extractfile(members[n])
        assert f is not None
        return np.lib.format.read_array(f, allow_pickle=False)

    try:
        missing = [n for n in names if n not in members]
        if missing:
            raise ReproduceError(f"cifar10-c: {', '.join(missing)} not found in {req.from_archive or req.from_folder}")
        labels = read("labels.npy").astype(np.int64)
        per = labels.shape[0] // len(CIFAR10C_SEVERITIES)
        with req.writer() as w:
            for c in CIFAR10C_CORRUPTIONS:
                req.say(f"cifar10-c: {c}")
                images = read(f"{c}.npy")
                if images.dtype != np.uint8 or images.shape != (labels.shape[0], 32, 32, 3):
                    raise ReproduceError(f"cifar10-c/{c}.npy: unexpected {images.dtype}{images.shape}")
                for k, s in enumerate(CIFAR10C_SEVERITIES):
                    sl = slice(k * per, (k + 1) * per)
                    req.check_count(f"{c}-{s}", per)
                    w.add_split(f"{c}-{s}", images[sl], labels[sl])
    finally:
        if tar is not None:
            tar.close()
    return w.final


# -- through robustbench's loader ------------------------------------------------------------


def robustbench_data_dir(given: Path) -> Path:
    """robustbench's ``data_dir`` (the folder holding ``CIFAR-10-C/``); the ``CIFAR-10-C`` folder itself is accepted."""
    if given.name == RB_DIR and not (given / RB_DIR).is_dir():
        return given.parent
    return given


@IMPORTERS.register("robustbench")
def import_cifar10c_robustbench(req: ImportRequest) -> Path:
    from ...attacks.autoattack import import_robustbench

    info = req.info
    if info.name != "cifar10-c":
        raise ReproduceError(f"data import {info.name}: --from-robustbench prepares cifar10-c only")
    assert req.from_robustbench is not None
    data_dir = robustbench_data_dir(req.from_robustbench)
    import_robustbench()
    from robustbench.data import CORRUPTIONS, load_cifar10c

    folder = data_dir / RB_DIR
    missing = [n for n in ("labels.npy", *(f"{c}.npy" for c in CORRUPTIONS)) if not (folder / n).is_file()]
    if missing:
        url = info.archives[0].url
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise ReproduceError(
            f"cifar10-c: robustbench's layout {folder}/<corruption>.npy + labels.npy is incomplete "
            f"(missing {', '.join(missing[:3])}{more}); download {url} (Zenodo record 2535967), "
            f"extract it into {data_dir} and run again")
    sizes = info.split_sizes if req.expected_sizes is None else req.expected_sizes
    version = _version()
    extra = {"catalog_params": dict(info.params),
             "robustbench": {"version": version, "loader": "robustbench.data.load_cifar10c",
                             "corruptions": list(CORRUPTIONS), "shuffle": False}}
    with req.writer(extra=extra) as w:
        for c in CORRUPTIONS:
            req.say(f"cifar10-c: {c} (robustbench {version} load_cifar10c)")
            for s in CIFAR10C_SEVERITIES:
                split = f"{c}-{s}"
                n = int(sizes.get(split, RB_BLOCK))
                x, y = load_cifar10c(n, s, str(data_dir), False, [c])
                req.check_count(split, int(x.shape[0]))
                if x.shape[0] == 0:
                    raise ReproduceError(f"cifar10-c/{c}.npy: severity {s} is empty; the file holds fewer "
                                         f"than {RB_BLOCK * s} images (not the official release)")
                # the loader hands back uint8 / 255 as float32; x * 255 rounds back to the exact bytes
                images = (x.permute(0, 2, 3, 1).numpy() * 255.0).round().astype(np.uint8)
                w.add_split(split, np.ascontiguousarray(images), y.numpy().astype(np.int64))
    return w.final


def _version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("robustbench")
    except PackageNotFoundError:
        return None
