"""Full-resolution JPEG datasets: importers on miniatures of the official layouts, checksums and errors.

ImageNet-200 (ILSVRC-2012 tars + devkit, or a torchvision ImageNet root), Caltech-256
(256_ObjectCategories) and Oxford Flowers-102 (102flowers.tgz + imagelabels.mat + setid.mat),
each built here with a handful of tiny JPEGs; labels are checked by hand.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from reproduce.data import load_labels, load_split, read_manifest, verify
from reproduce.data.catalog import DATASETS, IMAGENET200_WNIDS
from reproduce.data.storage.jpeg import eval_image, read_file_split
from reproduce.data.importers import import_dataset
from reproduce.errors import ChecksumError, DatasetMissingError, ReproduceError

WN = IMAGENET200_WNIDS
OTHER = "n01440764"  # an ILSVRC class outside ImageNet-200


def jpeg_bytes(seed: int, size: tuple[int, int] = (48, 36), fmt: str = "JPEG") -> bytes:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, quality=90)
    return buf.getvalue()


def _tar(path: Path, members: dict[str, bytes], mode: str = "w") -> Path:
    with tarfile.open(path, mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _md5s(folder: Path) -> dict[str, str]:
    return {p.name: "md5:" + hashlib.md5(p.read_bytes()).hexdigest() for p in folder.iterdir() if p.is_file()}


def one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg, msg
    return msg


# -- ImageNet-200 ----------------------------------------------------------------------------------

TRAIN = {  # wnid -> file stems; unsorted on purpose ("_10" < "_100" < "_9" as strings)
    WN[199]: ["9", "10", "100"],
    OTHER: ["1", "2"],
    WN[0]: ["9", "10", "100"],
    WN[1]: ["5", "3"],
}
# devkit: ILSVRC2012_ID 1..4 are the leaves below; ground truth of val files 1..6
LEAVES = {1: WN[199], 2: OTHER, 3: WN[0], 4: WN[1]}
GROUND_TRUTH = [3, 1, 2, 3, 4, 1]


def _imagenet_sources(base: Path) -> tuple[Path, Path]:
    """(dir with the three ILSVRC2012 files, torchvision ImageNet root with train/ and val/)."""
    arch, tv = base / "ilsvrc", base / "tv"
    arch.mkdir(parents=True)
    blobs = {}
    inner = {}
    for k, (w, stems) in enumerate(TRAIN.items()):
        files = {}
        for j, s in enumerate(stems):
            # one PNG disguised as .JPEG, as ILSVRC-2012 has (n02105855_2933.JPEG)
            fmt = "PNG" if (w, s) == (WN[1], "3") else "JPEG"
            files[f"{w}_{s}.JPEG"] = blobs[f"train/{w}/{w}_{s}.JPEG"] = jpeg_bytes(100 * k + j, (40 + 7 * j, 30), fmt)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as t:
            for name, data in files.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
        inner[f"{w}.tar"] = buf.getvalue()
    _tar(arch / "ILSVRC2012_img_train.tar", inner)
    val = {}
    for i, gt in enumerate(GROUND_TRUTH, start=1):
        name = f"ILSVRC2012_val_{i:08d}.JPEG"
        val[name] = jpeg_bytes(1000 + i, (30 + 5 * i, 50))
        blobs[f"val/{LEAVES[gt]}/{name}"] = val[name]
    _tar(arch / "ILSVRC2012_img_val.tar", dict(reversed(list(val.items()))))  # archive order irrelevant
    synsets = [{"ILSVRC2012_ID": np.array([[float(i)]]), "WNID": w, "words": f"class {i}",
                "num_children": np.array([[0.0]])} for i, w in LEAVES.items()]
    synsets.append({"ILSVRC2012_ID": np.array([[1001.0]]), "WNID": "n00001740", "words": "entity",
                    "num_children": np.array([[2.0]])})
    mat = base / "meta.mat"
    # an N x 1 struct array, as the devkit's meta.mat holds it
    table = np.empty((len(synsets), 1), dtype=[(k, object) for k in synsets[0]])
    for i, s in enumerate(synsets):
        table[i, 0] = tuple(s[k] for k in table.dtype.names)
    scipy.io.savemat(mat, {"synsets": table})
    _tar(arch / "ILSVRC2012_devkit_t12.tar.gz", {
        "ILSVRC2012_devkit_t12/data/meta.mat": mat.read_bytes(),
        "ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt":
            "".join(f"{g}\n" for g in GROUND_TRUTH).encode()}, "w:gz")
    for rel, data in blobs.items():
        (tv / rel).parent.mkdir(parents=True, exist_ok=True)
        (tv / rel).write_bytes(data)
    return arch, tv


EXPECTED_TRAIN = [(f"train/{WN[0]}/{WN[0]}_{s}.JPEG", 0) for s in ("10", "100", "9")] + \
    [(f"train/{WN[1]}/{WN[1]}_{s}.JPEG", 1) for s in ("3", "5")] + \
    [(f"train/{WN[199]}/{WN[199]}_{s}.JPEG", 199) for s in ("10", "100", "9")]
EXPECTED_VAL = [(f"val/{WN[0]}/ILSVRC2012_val_00000001.JPEG", 0), (f"val/{WN[0]}/ILSVRC2012_val_00000004.JPEG", 0),
                (f"val/{WN[1]}/ILSVRC2012_val_00000005.JPEG", 1),
                (f"val/{WN[199]}/ILSVRC2012_val_00000002.JPEG", 199),
                (f"val/{WN[199]}/ILSVRC2012_val_00000006.JPEG", 199)]


def _check_imagenet(root: Path, tv: Path) -> None:
    meta = read_manifest("imagenet200", root)
    assert meta["classes"] == list(WN) and meta["num_classes"] == 200 and meta["storage"] == "jpeg"
    for split, expected in (("train", EXPECTED_TRAIN), ("val", EXPECTED_VAL)):
        fs = read_file_split("imagenet200", split, root)
        assert list(zip(fs.files, fs.labels.tolist())) == expected
        for p, rel in zip(fs.paths(), fs.files):
            assert p.read_bytes() == (tv / rel).read_bytes()  # byte for byte
    with pytest.raises(ReproduceError, match="JPEG files only"):
        load_split("imagenet200", "train", root)
    assert load_labels("imagenet200", "train", root).tolist() == [y for _, y in EXPECTED_TRAIN]
    x, y = load_split("imagenet200", "val", root)
    assert x.shape == (5, 224, 224, 3) and y.tolist() == [y for _, y in EXPECTED_VAL]
    assert (x[3] == eval_image(tv / EXPECTED_VAL[3][0])).all()


def test_imagenet200_order_is_torchvisions(tmp_path):
    """Our train order is torchvision ImageFolder's (what SAT's SubsetImageNet filters), labels = wnid_selection."""
    from torchvision.datasets import ImageFolder

    _, tv = _imagenet_sources(tmp_path / "src")
    samples = ImageFolder(str(tv / "train")).samples
    pos = {w: i for i, w in enumerate(WN)}
    theirs = [(Path(p).relative_to(tv).as_posix(), pos[Path(p).parent.name]) for p, _ in samples
              if Path(p).parent.name in pos]
    assert theirs == EXPECTED_TRAIN
    assert list(WN) == sorted(WN) and len(set(WN)) == 200


def test_imagenet200_from_archives_and_from_folder(tmp_path):
    arch, tv = _imagenet_sources(tmp_path / "src")
    sums = _md5s(arch)
    import_dataset("imagenet200", tmp_path / "a", from_archive=arch, checksums=sums, expected_sizes={})
    _check_imagenet(tmp_path / "a", tv)
    import_dataset("imagenet200", tmp_path / "f", from_folder=tv, expected_sizes={})
    _check_imagenet(tmp_path / "f", tv)
    a, f = (read_manifest("imagenet200", tmp_path / d)["splits"] for d in "af")
    assert a == f  # same files, lists, labels and eval arrays either way
    # the official checks: 197 class tars are missing here
    with pytest.raises(ReproduceError, match="lacks the class tars"):
        import_dataset("imagenet200", tmp_path / "s", from_archive=arch, checksums=sums)


def test_imagenet200_missing_and_corrupt_archives(tmp_path):
    arch, _ = _imagenet_sources(tmp_path / "src")
    # the catalog md5s are torchvision's: our miniature is "corrupt"
    with pytest.raises(ChecksumError) as e:
        import_dataset("imagenet200", tmp_path / "d", from_archive=arch, expected_sizes={})
    assert "ILSVRC2012_img_train.tar: expected md5 1d675b47d978889d74fa0da5fadfb00e" in one_line(e)
    (arch / "ILSVRC2012_devkit_t12.tar.gz").unlink()
    with pytest.raises(ReproduceError) as e:
        import_dataset("imagenet200", tmp_path / "d", from_archive=arch, expected_sizes={})
    msg = one_line(e)
    assert "ILSVRC2012_devkit_t12.tar.gz" in msg and "image-net.org" in msg
    assert not (tmp_path / "d" / "imagenet200").exists()  # nothing half-written


# -- Caltech-256 -----------------------------------------------------------------------------------

CALTECH = {"001.ak47": 4, "002.american-flag": 3, "003.clutter": 5}


def _caltech_tree(base: Path) -> Path:
    top = base / "256_ObjectCategories"
    for k, (cat, n) in enumerate(CALTECH.items()):
        (top / cat).mkdir(parents=True)
        for i in range(n, 0, -1):
            (top / cat / f"{k + 1:03d}_{i:04d}.jpg").write_bytes(jpeg_bytes(10 * k + i, (50, 40 + i)))
    (top / "002.american-flag" / "RENAME2").write_text("not an image")  # stray files are not images
    (top / "002.american-flag" / "greg").mkdir()
    (top / "002.american-flag" / "greg" / "002_0099.jpg").write_bytes(jpeg_bytes(99))  # nor sub-folders
    return base


def _expected_caltech_val() -> set[str]:
    # 12 images -> round(12 * 5122 / 30607) = 2 val images; largest remainders: clutter (5), ak47 (4)
    val = set()
    for cat in ("001.ak47", "003.clutter"):
        k = list(CALTECH).index(cat) + 1
        keys = [f"{cat}/{k:03d}_{i:04d}.jpg" for i in range(1, CALTECH[cat] + 1)]
        val.add(min(keys, key=lambda s: hashlib.sha256(f"caltech256-split:0:{s}".encode()).hexdigest()))
    return val


def test_caltech256_import_and_split(tmp_path):
    src = _caltech_tree(tmp_path / "src")
    tar = tmp_path / "arc" / "256_ObjectCategories.tar"
    tar.parent.mkdir()
    with tarfile.open(tar, "w") as t:
        t.add(src / "256_ObjectCategories", arcname="256_ObjectCategories")
    sums = _md5s(tar.parent)
    for how, kw in (("a", {"from_archive": tar, "checksums": sums}), ("f", {"from_folder": src})):
        root = tmp_path / how
        import_dataset("caltech256", root, expected_sizes={}, **kw)
        meta = read_manifest("caltech256", root)
        assert meta["classes"] == list(CALTECH) and meta["num_classes"] == 3
        tr, va = (read_file_split("caltech256", s, root) for s in ("train", "val"))
        assert len(tr) == 10 and len(va) == 2
        val_keys = {f.split("/", 1)[1] for f in va.files}
        assert val_keys == _expected_caltech_val()
        for fs in (tr, va):  # label = sorted category position; class-major, file names sorted
            assert fs.labels.tolist() == [list(CALTECH).index(f.split("/")[1]) for f in fs.files]
            assert list(fs.files) == sorted(fs.files)
        assert not any("greg" in f or "RENAME2" in f for f in tr.files + va.files)
        assert (root / "caltech256" / "val.txt").read_text().splitlines() == [f"{f} {y}" for f, y in
                                                                              zip(va.files, va.labels.tolist())]
        assert load_split("caltech256", "val", root)[0].shape == (2, 224, 224, 3)
    with pytest.raises(ReproduceError, match="found 3 category folders, expected 257"):
        import_dataset("caltech256", tmp_path / "s", from_folder=src)


def test_caltech_split_sizes_on_the_official_total():
    from reproduce.data.importers.jpeg_files import caltech_split

    rng = np.random.default_rng(0)
    raw = rng.integers(80, 240, size=257)
    sizes = raw * 30_607 // raw.sum()
    sizes[: 30_607 - sizes.sum()] += 1  # 257 classes, 30,607 images as the official release
    per_class = [[f"{c:03d}/{i}" for i in range(n)] for c, n in enumerate(sizes)]
    val = caltech_split(per_class)
    q = np.array([len(v) for v in val])
    assert q.sum() == 5_122 and np.abs(q - sizes * 5_122 / 30_607).max() < 1
    assert [sorted(v) for v in caltech_split(per_class)] == [sorted(v) for v in val]  # deterministic
    assert caltech_split(per_class, seed=1)[0] != val[0]


# -- Oxford Flowers-102 ----------------------------------------------------------------------------

FLOWER_LABELS = [3, 3, 1, 1, 2, 2, 3, 1, 2, 2]  # 1-based, for images 1..10
SETID = {"trnid": [2, 5, 9], "valid": [1, 4, 6], "tstid": [3, 7, 8, 10]}


def _flowers(base: Path) -> Path:
    base.mkdir(parents=True)
    _tar(base / "102flowers.tgz", {f"jpg/image_{i:05d}.jpg": jpeg_bytes(i, (60 + i, 45)) for i in range(10, 0, -1)},
         "w:gz")
    scipy.io.savemat(base / "imagelabels.mat", {"labels": np.array([FLOWER_LABELS], dtype=np.float64)})
    scipy.io.savemat(base / "setid.mat", {k: np.array([v], dtype=np.float64) for k, v in SETID.items()})
    return base


def test_flowers102_labels_are_1_based(tmp_path):
    src = _flowers(tmp_path / "src")
    import_dataset("flowers102", tmp_path / "d", from_archive=src, checksums=_md5s(src), expected_sizes={})
    root = tmp_path / "d"
    # by hand: label(id) = FLOWER_LABELS[id - 1] - 1
    expected = {"train": [2, 1, 1], "val": [2, 0, 1], "test": [0, 2, 0, 1]}
    for split, key in (("train", "trnid"), ("val", "valid"), ("test", "tstid")):
        fs = read_file_split("flowers102", split, root)
        assert list(fs.files) == [f"jpg/image_{i:05d}.jpg" for i in SETID[key]]  # setid order
        assert fs.labels.tolist() == expected[split]
    meta = read_manifest("flowers102", root)
    assert meta["classes"][:3] == ["1", "2", "3"]  # class k is the official label k + 1
    # the SAT code's labels[img_id] gives image id the label of image id + 1: that changes train id 2
    # (3 -> 1), val ids 4 (1 -> 2) and 6 (2 -> 3), test ids 7 (3 -> 1) and 8 (1 -> 2); test id 10 is
    # past the end of its 0-based array (IndexError there)
    off = meta["sat_label_offset"]
    assert (off["train"]["changed"], off["val"]["changed"], off["test"]["changed"]) == (1, 2, 2)
    assert off["test"]["index_error_ids"] == [10] and off["train"]["index_error_ids"] == []
    x, y = load_split("flowers102", "test", root)
    assert x.shape == (4, 224, 224, 3) and y.tolist() == expected["test"]
    with pytest.raises(ReproduceError, match="JPEG files only"):
        load_split("flowers102", "train", root)
    assert verify("flowers102", root) == {"train": 3, "val": 3, "test": 4}
    victim = root / "flowers102" / "jpeg" / "jpg" / "image_00005.jpg"
    victim.write_bytes(victim.read_bytes()[:-1] + b"\0")
    with pytest.raises(ChecksumError, match="image_00005.jpg: expected sha256"):
        verify("flowers102", root)


def test_flowers102_from_folder_checks_the_mat_files(tmp_path):
    src = _flowers(tmp_path / "src")
    tree = tmp_path / "tree"
    with tarfile.open(src / "102flowers.tgz") as t:
        t.extractall(tree, filter="data")
    for name in ("imagelabels.mat", "setid.mat"):
        (tree / name).write_bytes((src / name).read_bytes())
    with pytest.raises(ChecksumError) as e:  # not the official .mat files: torchvision's md5s refuse them
        import_dataset("flowers102", tmp_path / "d", from_folder=tree, expected_sizes={})
    assert "e0620be6f572b9609742df49c70aed4d" in one_line(e)
    sums = {k: v for k, v in _md5s(src).items() if k.endswith(".mat")}
    import_dataset("flowers102", tmp_path / "d", from_folder=tree, checksums=sums, expected_sizes={})
    assert load_labels("flowers102", "val", tmp_path / "d").tolist() == [2, 0, 1]


def test_flowers102_checksum_mismatch_and_missing_file_are_one_line(tmp_path):
    src = _flowers(tmp_path / "src")
    sums = _md5s(src)
    bad = dict(sums, **{"setid.mat": "md5:" + "0" * 32})
    with pytest.raises(ChecksumError) as e:
        import_dataset("flowers102", tmp_path / "d", from_archive=src, checksums=bad, expected_sizes={})
    assert "setid.mat: expected md5 " + "0" * 32 in one_line(e)
    with pytest.raises(ReproduceError, match="official split has 1020"):
        import_dataset("flowers102", tmp_path / "d", from_archive=src, checksums=sums)
    (src / "setid.mat").unlink()
    with pytest.raises(ReproduceError) as e:
        import_dataset("flowers102", tmp_path / "d", from_archive=src, checksums=sums, expected_sizes={})
    msg = one_line(e)
    assert "cannot find setid.mat" in msg and "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/" in msg
    with pytest.raises(DatasetMissingError) as e:  # a run asking for it before any import
        load_split("flowers102", "val", tmp_path / "d")
    assert "reproduce data import flowers102 --from-archive" in one_line(e)


def test_catalog_entries():
    for name, classes, splits in (("imagenet200", 200, {"train": 259_906, "val": 10_000}),
                                  ("caltech256", 257, {"train": 25_485, "val": 5_122}),
                                  ("flowers102", 102, {"train": 1_020, "val": 1_020, "test": 6_149})):
        info = DATASETS.get(name)
        assert info.num_classes == classes and dict(info.split_sizes) == splits and info.storage == "jpeg"
        assert info.image_size == 224 and all(a.md5 for a in info.archives)
    assert not DATASETS.get("imagenet200").downloadable  # ILSVRC needs the user's own archives
    from torchvision.datasets.folder import IMG_EXTENSIONS

    from reproduce.data.importers.jpeg_files import IMG_EXTENSIONS as ours

    assert tuple(ours) == tuple(IMG_EXTENSIONS)


def test_torchvision_checksums_are_the_catalogs():
    """The md5s were copied from torchvision's dataset classes; they must stay equal to them."""
    from torchvision.datasets import flowers102, imagenet

    files = {a.filename: a.md5 for n in ("imagenet200", "caltech256", "flowers102") for a in DATASETS.get(n).archives}
    for fname, md5 in imagenet.ARCHIVE_META.values():
        assert files[fname] == md5
    for fname, md5 in flowers102.Flowers102._file_dict.values():
        assert files[fname] == md5
    import inspect

    from torchvision.datasets import caltech

    assert files["256_ObjectCategories.tar"] in inspect.getsource(caltech.Caltech256.download)


@pytest.mark.parametrize("name", ["imagenet200", "caltech256", "flowers102"])
def test_generated_stand_ins(name, tmp_path, monkeypatch):
    """Smoke: a few classes at a small size; shapes: the real class count and 224 px (tensor path)."""
    from reproduce.cli import main

    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    for scale in ("smoke", "shapes"):
        assert main(["prepare-data", name, "--scale", scale, "--work-dir", str(tmp_path)]) == 0
        man = read_manifest(name, tmp_path / scale / "data")
        assert set(man["splits"]) == set(DATASETS.get(name).splits) and man.get("storage") is None
        if scale == "shapes":
            assert (man["num_classes"], man["image_size"]) == (DATASETS.get(name).num_classes, 224)
        else:
            assert man["num_classes"] < 20 and man["image_size"] <= 32
    assert json.loads((tmp_path / "smoke" / "data" / name / "manifest.json").read_text())["synthetic"]


def test_planner_counts_labels_only_for_streamed_datasets():
    from reproduce.costs.memory import LABEL_BYTES, data_bytes
    from reproduce.pipeline.scales import load_scale

    cfg = {"data": {"primary": "imagenet200", "train_split": "train", "aux": [], "n_train": None}}
    assert data_bytes(cfg, None, {}) == 259_906 * LABEL_BYTES  # JPEGs stay on disk
    smoke = load_scale("smoke", str(Path(__file__).resolve().parents[1] / "config" / "scales"))
    assert data_bytes(cfg, smoke, {}) == 640 * (3 * 32 * 32 + LABEL_BYTES)  # the stand-in is an array
