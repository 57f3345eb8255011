"""Importers of the full-resolution JPEG datasets: ImageNet-200, Caltech-256, Oxford Flowers-102.

Each reads the official files (archives are md5-checked first, with the values torchvision
verifies) or an extracted copy, keeps the JPEGs byte for byte and writes the prepared JPEG
format of ``reproduce.data.storage.jpeg``. What each one decides:

* **imagenet200** (``ILSVRC2012_img_train.tar``, ``ILSVRC2012_img_val.tar``,
  ``ILSVRC2012_devkit_t12.tar.gz``, or a torchvision ImageNet root): the 200 wnids of the SAT
  configs, label = position in that sorted list. The sample order is torchvision ``ImageNet``'s
  (an ``ImageFolder``: wnid folders sorted, files sorted, ``IMG_EXTENSIONS`` case-insensitive)
  filtered to those classes, exactly as SAT's ``SubsetImageNet`` filters it: instance id k of
  our train split is the k-th sample there, the index the published ESAT rankings use. Val
  images get their wnid from the devkit as torchvision's ``parse_val_archive`` does (ground-truth
  line i labels the i-th val file in sorted order, ILSVRC2012_ID -> WNID from ``meta.mat``).
* **caltech256** (``256_ObjectCategories.tar`` or its extracted folder): classes are the sorted
  category folders, images the ``*.jpg`` directly inside each (torchvision ``Caltech256``). The
  official release has no split and the SAT lists are unpublished (notes D7): ours is a
  class-stratified, hash-ranked split sized to the SAT code's 5,122 evaluation images
  (``caltech_split``; catalog params). Both lists are also written as ``train.txt``/``val.txt``.
* **flowers102** (``102flowers.tgz`` + ``imagelabels.mat`` + ``setid.mat``): splits ``trnid``,
  ``valid``, ``tstid`` in setid order; image ids and labels in the .mat files are 1-based, so
  the label of ``image_<id>.jpg`` is ``labels[id - 1] - 1`` (torchvision ``Flowers102``). The
  SAT code indexes its 0-based label array with the 1-based id (notes C9): that is not
  replicated; the manifest's ``sat_label_offset`` records, per split, how many labels it changes.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ...errors import ReproduceError
from ..catalog import CALTECH256_TOTAL, CALTECH256_VAL
from ..storage.jpeg import JpegWriter
from .base import IMPORTERS, ImportRequest, inside, load_mat, tar_files

# torchvision.datasets.folder.IMG_EXTENSIONS, copied: importing torchvision costs seconds and only the
# folder walk needs it (tests check the copy against it)
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMG_EXTENSIONS)


def _eval_arrays(req: ImportRequest) -> list[str]:
    return list(req.info.params.get("eval_arrays", []))


def _strict(req: ImportRequest) -> bool:
    """Official-release checks on (class lists complete); tests pass expected_sizes for miniatures."""
    return req.expected_sizes is None


# -- ImageNet-200 ------------------------------------------------------------------------------------


def devkit_val_wnids(devkit: Path) -> list[str]:
    """The wnid of each val image in sorted file order, from the ILSVRC-2012 devkit (as torchvision)."""
    meta_mat = gt = None
    with tarfile.open(devkit, "r:*") as tar:
        for name, data in tar_files(tar):
            if name.endswith("/data/meta.mat"):
                meta_mat = data
            elif name.endswith("/data/ILSVRC2012_validation_ground_truth.txt"):
                gt = data
    if meta_mat is None or gt is None:
        raise ReproduceError(f"{devkit}: no data/meta.mat or data/ILSVRC2012_validation_ground_truth.txt inside")
    synsets = load_mat(meta_mat, f"{devkit}: data/meta.mat", simplify_cells=True).get("synsets")
    if isinstance(synsets, dict):  # simplify_cells squeezes a one-entry struct array to its entry
        synsets = [synsets]
    if not isinstance(synsets, (list, np.ndarray)) or not all(isinstance(s, dict) for s in synsets):
        raise ReproduceError(f"{devkit}: meta.mat has no struct array 'synsets'")

    def num(v: Any) -> int:
        return int(np.asarray(v).reshape(-1)[0])

    idx_to_wnid = {num(s["ILSVRC2012_ID"]): str(s["WNID"]) for s in synsets if num(s["num_children"]) == 0}
    return [idx_to_wnid[int(line)] for line in gt.decode().split()]


def _imagenet_from_archives(req: ImportRequest, jw: JpegWriter, wnids: Sequence[str]) -> dict[str, list[str]]:
    files = req.verified()
    wanted = set(wnids)
    found: dict[str, list[str]] = {"train": [], "val": []}
    val_wnids = devkit_val_wnids(files["ILSVRC2012_devkit_t12.tar.gz"])
    req.say("imagenet200/val: reading ILSVRC2012_img_val.tar")
    with tarfile.open(files["ILSVRC2012_img_val.tar"], "r:*") as tar:
        members = sorted((m for m in tar.getmembers() if m.isfile()), key=lambda m: os.path.basename(m.name))
        if len(members) != len(val_wnids):
            raise ReproduceError(f"ILSVRC2012_img_val.tar holds {len(members)} files, the devkit labels "
                                 f"{len(val_wnids)}")
        for m, wnid in zip(members, val_wnids):
            if wnid in wanted:
                f = tar.extractfile(m)
                assert f is not None
                rel = f"val/{wnid}/{os.path.basename(m.name)}"
                jw.put(rel, data=f.read())
                found["val"].append(rel)
    req.say("imagenet200/train: reading ILSVRC2012_img_train.tar (the 200 class tars of 1000)")
    seen = set()
    with tarfile.open(files["ILSVRC2012_img_train.tar"], "r|*") as outer:
        for m in outer:
            wnid = os.path.basename(m.name).removesuffix(".tar")
            if not m.isfile() or wnid not in wanted:
                continue
            seen.add(wnid)
            f = outer.extractfile(m)
            assert f is not None
            with tarfile.open(fileobj=f, mode="r|*") as inner:
                for name, data in tar_files(inner):
                    base = os.path.basename(name)
                    if _is_image(base):
                        rel = f"train/{wnid}/{base}"
                        jw.put(rel, data=data)
                        found["train"].append(rel)
    missing = sorted(wanted - seen)
    if missing and _strict(req):
        raise ReproduceError(f"ILSVRC2012_img_train.tar lacks the class tars {', '.join(missing[:5])}"
                             f"{' ...' if len(missing) > 5 else ''}: not the official archive")
    return found


def _imagenet_from_folder(req: ImportRequest, jw: JpegWriter, wnids: Sequence[str]) -> dict[str, list[str]]:
    from torchvision.datasets.folder import make_dataset

    folder = req.from_folder
    assert folder is not None
    found: dict[str, list[str]] = {}
    for split in ("train", "val"):
        d = folder / split
        if not d.is_dir():
            raise ReproduceError(f"imagenet200: {d} is not a folder; --from-folder wants a torchvision ImageNet root "
                                 "(train/<wnid>/*.JPEG, val/<wnid>/*.JPEG), else use --from-archive with the "
                                 "ILSVRC2012 tars")
        present = [w for w in wnids if (d / w).is_dir()]
        if len(present) != len(wnids) and _strict(req):
            lost = [w for w in wnids if w not in present]
            raise ReproduceError(f"imagenet200: {d} lacks the class folders {', '.join(lost[:5])}"
                                 f"{' ...' if len(lost) > 5 else ''}")
        # torchvision's own walk: the order its ImageNet (and SAT's SubsetImageNet) enumerates
        samples = make_dataset(str(d), {w: i for i, w in enumerate(present)}, extensions=IMG_EXTENSIONS,
                               allow_empty=True)
        found[split] = []
        for path, _ in samples:
            rel = f"{split}/{Path(path).relative_to(d).as_posix()}"
            jw.put(rel, src=path)
            found[split].append(rel)
    return found


@IMPORTERS.register("imagenet200")
def import_imagenet200(req: ImportRequest) -> Path:
    info = req.info
    wnids = list(info.classes or ())
    label = {w: i for i, w in enumerate(wnids)}
    with req.writer() as w:
        jw = JpegWriter(w, eval_arrays=_eval_arrays(req), progress=req.progress)
        found = (_imagenet_from_folder if req.from_folder is not None else _imagenet_from_archives)(req, jw, wnids)
        for split in info.splits:
            # ImageFolder order: classes in sorted-wnid order (= label order), files sorted in each
            rows = sorted(found[split], key=lambda rel: (label[rel.split("/")[1]], rel))
            req.check_count(split, len(rows))
            for rel in rows:
                jw.add(split, rel, label[rel.split("/")[1]])
            req.say(f"imagenet200/{split}: {len(rows)} images")
            jw.close_split(split)
    return w.final


# -- Caltech-256 -------------------------------------------------------------------------------------


def caltech_split(per_class: Sequence[Sequence[str]], seed: int = 0, *,
                  total_val: int | None = None) -> list[set[str]]:
    """Per class, the set of file keys (``<category>/<file>``) that go to val.

    ``total_val`` = round(N * 5122 / 30607) unless given (5,122 on the official 30,607 images),
    shared among classes by largest remainder of n_c * total_val / N (ties: lower class index);
    within a class the files with the smallest sha256('caltech256-split:<seed>:<key>') are taken.
    """
    sizes = [len(c) for c in per_class]
    n = sum(sizes)
    v = round(n * CALTECH256_VAL / CALTECH256_TOTAL) if total_val is None else int(total_val)
    base = [s * v // n for s in sizes] if n else [0] * len(sizes)
    rest = v - sum(base)
    by_remainder = sorted(range(len(sizes)), key=lambda c: (-(sizes[c] * v - base[c] * n), c))
    for c in by_remainder[:rest]:
        base[c] += 1

    def rank(key: str) -> str:
        return hashlib.sha256(f"caltech256-split:{seed}:{key}".encode()).hexdigest()

    return [set(sorted(keys, key=rank)[:q]) for keys, q in zip(per_class, base)]


def _caltech_listing(names: Sequence[str]) -> dict[str, list[str]]:
    """{category: sorted *.jpg names directly inside it} from paths relative to 256_ObjectCategories/
    (folders end with '/'; files directly under the top or deeper than one folder are not images)."""
    cats: dict[str, list[str]] = {}
    for rel in names:
        parts = rel.rstrip("/").split("/")
        if rel.endswith("/") or len(parts) > 1:
            cats.setdefault(parts[0], [])
        if not rel.endswith("/") and len(parts) == 2 and parts[1].endswith(".jpg"):
            cats[parts[0]].append(parts[1])  # torchvision: item.endswith(".jpg"), not recursive
    return {c: sorted(v) for c, v in sorted(cats.items())}


@IMPORTERS.register("caltech256")
def import_caltech256(req: ImportRequest) -> Path:
    info = req.info
    top = "256_ObjectCategories"
    seed = int(info.params.get("split_seed", 0))
    with req.writer() as w:
        jw = JpegWriter(w, eval_arrays=_eval_arrays(req), progress=req.progress)
        if req.from_folder is not None:
            folder = inside(req.from_folder, top)
            names = [p.relative_to(folder).as_posix() + ("/" if p.is_dir() else "") for p in folder.rglob("*")]
            cats = _caltech_listing(names)
            for c, fs in cats.items():
                for f in fs:
                    jw.put(f"{top}/{c}/{f}", src=folder / c / f)
        else:
            files = req.verified()
            names = []
            with tarfile.open(files[info.archives[0].filename], "r|*") as tar:
                for m in tar:
                    rel = m.name.removeprefix("./")
                    if not rel.startswith(top + "/") or rel == top + "/":
                        continue
                    rel = rel[len(top) + 1:].rstrip("/") + ("/" if m.isdir() else "")
                    names.append(rel)
                    if m.isfile() and rel.count("/") == 1 and rel.endswith(".jpg"):
                        f = tar.extractfile(m)
                        assert f is not None
                        jw.put(f"{top}/{rel}", data=f.read())
            cats = _caltech_listing(names)
        classes = list(cats)
        if _strict(req):
            if len(classes) != info.num_classes:
                raise ReproduceError(f"caltech256: found {len(classes)} category folders, expected {info.num_classes}")
            total = sum(len(v) for v in cats.values())
            if total != CALTECH256_TOTAL:
                raise ReproduceError(f"caltech256: found {total} .jpg images, the official release has "
                                     f"{CALTECH256_TOTAL}; the source is incomplete or not the official release")
        for i, c in enumerate(classes):
            if not c.startswith(f"{i + 1:03d}."):
                raise ReproduceError(f"caltech256: category folder {c!r} at sorted position {i} should start with "
                                     f"{i + 1:03d}.")
        w.meta["classes"], w.meta["num_classes"] = classes, len(classes)
        per_class = [[f"{c}/{f}" for f in cats[c]] for c in classes]
        val = caltech_split(per_class, seed)
        lists = {}
        for split in info.splits:
            lines = []
            for label, (keys, chosen) in enumerate(zip(per_class, val)):
                for key in keys:  # class-major, file names sorted: torchvision Caltech256 order, filtered
                    if (key in chosen) == (split == "val"):
                        jw.add(split, f"{top}/{key}", label)
                        lines.append(f"{top}/{key} {label}\n")
            req.check_count(split, len(lines))
            lists[split] = "".join(lines)
            req.say(f"caltech256/{split}: {len(lines)} images")
            jw.close_split(split)
        assert w.staging is not None
        for split, text in lists.items():
            (w.staging / f"{split}.txt").write_text(text)
        w.meta["split"] = {"seed": seed, "method": info.params.get("split"),
                           "val_per_class": [len(v) for v in val]}
    return w.final


# -- Oxford Flowers-102 ----------------------------------------------------------------------------


def flowers_labels(labels_1based: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """0-based labels of the 1-based image ``ids``: ``labels[id - 1] - 1``."""
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    lab = np.asarray(labels_1based).reshape(-1).astype(np.int64)
    if ids.size and (ids.min() < 1 or ids.max() > lab.size):
        raise ReproduceError(f"flowers102: setid.mat names image ids outside 1..{lab.size}")
    return lab[ids - 1] - 1


def sat_offset_effect(labels_1based: np.ndarray, ids: np.ndarray) -> dict[str, Any]:
    """What the SAT code's ``labels[img_id]`` (0-based array, 1-based id) would change on these ids."""
    lab = np.asarray(labels_1based).reshape(-1).astype(np.int64)
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    out_of_range = ids[ids >= lab.size]
    inside = ids[ids < lab.size]
    return {"changed": int((lab[inside] != lab[inside - 1]).sum()), "index_error_ids": out_of_range.tolist()}


def _mat(path: Path) -> Mapping[str, Any]:
    return load_mat(path, str(path))


@IMPORTERS.register("flowers102")
def import_flowers102(req: ImportRequest) -> Path:
    info = req.info
    setkeys = {"train": "trnid", "val": "valid", "test": "tstid"}
    with req.writer() as w:
        jw = JpegWriter(w, eval_arrays=_eval_arrays(req), progress=req.progress)
        if req.from_folder is not None:
            folder = inside(req.from_folder, "flowers-102")
            mats = {}
            for name in ("imagelabels.mat", "setid.mat"):
                if not (folder / name).is_file():
                    raise ReproduceError(f"flowers102: cannot find {name} in {folder}; expected jpg/ and the official "
                                         f"{name} from {info.homepage}")
                req.verify(folder / name, name)
                mats[name] = folder / name
            for p in sorted((folder / "jpg").glob("image_*.jpg")):
                jw.put(f"jpg/{p.name}", src=p)
        else:
            files = req.verified()
            mats = {k: files[k] for k in ("imagelabels.mat", "setid.mat")}
            with tarfile.open(files["102flowers.tgz"], "r|*") as tar:
                for name, data in tar_files(tar):
                    base = os.path.basename(name)
                    if base.startswith("image_") and base.endswith(".jpg"):
                        jw.put(f"jpg/{base}", data=data)
        labels = np.asarray(_mat(mats["imagelabels.mat"]).get("labels")).reshape(-1)
        setid = _mat(mats["setid.mat"])
        if labels.size == 0 or any(k not in setid for k in setkeys.values()):
            raise ReproduceError("flowers102: imagelabels.mat needs 'labels', setid.mat 'trnid', 'valid', 'tstid'")
        offset = {}
        for split in info.splits:
            ids = np.asarray(setid[setkeys[split]]).reshape(-1).astype(np.int64)
            lab = flowers_labels(labels, ids)
            for i, y in zip(ids.tolist(), lab.tolist()):
                jw.add(split, f"jpg/image_{i:05d}.jpg", y)
            req.check_count(split, len(ids))
            offset[split] = sat_offset_effect(labels, ids)
            req.say(f"flowers102/{split}: {len(ids)} images")
            jw.close_split(split)
        w.meta["sat_label_offset"] = {
            "what": "images per split whose label the SAT code's labels[img_id] (0-based array, 1-based id) "
                    "would change; index_error_ids: ids it cannot index (IndexError there)",
            **offset}
    return w.final


__all__ = ["caltech_split", "devkit_val_wnids", "flowers_labels", "sat_offset_effect"]
