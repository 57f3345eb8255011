"""The data layer: prepared format, importers on tiny fake archives, generated data, CLI."""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from reproduce.data import DATASETS, load_split, read_manifest, verify, write_prepared
from reproduce.data.importers.base import safe_unpickle
from reproduce.data.catalog import CIFAR10_CLASSES, CIFAR10C_CORRUPTIONS
from reproduce.data.importers import import_dataset, import_image_folder
from reproduce.data.importers.derived import imgnet_class_split
from reproduce.data.storage.prepared import PreparedWriter, array_sha256
from reproduce.data.generated.synthetic import generate, write_generated
from reproduce.errors import ChecksumError, DatasetMissingError, ReproduceError, UnknownNameError


def _arrays(n: int, size: int = 8, classes: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    r = np.random.default_rng(seed)
    return r.integers(0, 256, (n, size, size, 3), dtype=np.uint8), r.integers(0, classes, n).astype(np.int64)


def _md5(p: Path) -> str:
    return hashlib.md5(p.read_bytes()).hexdigest()


def _leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


# -- prepared format -------------------------------------------------------------------


def test_prepared_round_trip(tmp_path: Path) -> None:
    train, test = _arrays(20), _arrays(7, seed=1)
    path = write_prepared("toy", tmp_path, {"train": train, "test": test}, num_classes=3, classes=["a", "b", "c"])
    assert path == tmp_path / "toy"
    x, y = load_split("toy", "train", tmp_path, verify=True)
    assert x.dtype == np.uint8 and y.dtype == np.int64
    np.testing.assert_array_equal(x, train[0])
    np.testing.assert_array_equal(y, train[1])
    meta = read_manifest("toy", tmp_path)
    assert meta["splits"]["test"]["n"] == 7 and meta["image_size"] == 8 and meta["channels"] == 3
    assert meta["splits"]["train"]["images_sha256"] == array_sha256(train[0])
    assert meta["classes"] == ["a", "b", "c"] and meta["synthetic"] is False
    assert verify("toy", tmp_path) == {"train": 20, "test": 7}
    with pytest.raises(UnknownNameError, match="no split 'extra'"):
        load_split("toy", "extra", tmp_path)


def test_verify_detects_flipped_byte(tmp_path: Path) -> None:
    write_prepared("toy", tmp_path, {"train": _arrays(10)}, num_classes=3)
    f = tmp_path / "toy" / "train_images.npy"
    raw = bytearray(f.read_bytes())
    raw[-5] ^= 0xFF
    f.write_bytes(bytes(raw))
    load_split("toy", "train", tmp_path)  # shape checks still pass ...
    with pytest.raises(ChecksumError, match="train_images.npy: expected sha256"):
        verify("toy", tmp_path)  # ... the checksum does not


def test_load_checks_label_range_and_shape(tmp_path: Path) -> None:
    write_prepared("toy", tmp_path, {"train": _arrays(10)}, num_classes=3)
    np.save(tmp_path / "toy" / "train_labels.npy", np.full(10, 7, dtype=np.int64))
    with pytest.raises(ChecksumError, match="labels span 7..7"):
        load_split("toy", "train", tmp_path)
    with pytest.raises(ReproduceError, match="outside 0..2"):
        write_prepared("bad", tmp_path, {"train": (_arrays(4)[0], np.array([0, 1, 2, 3]))}, num_classes=3)
    assert not (tmp_path / "bad").exists()


def test_failure_mid_write_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="disk full"):
        with PreparedWriter("toy", tmp_path, num_classes=3, image_size=8) as w:
            w.add_split("train", *_arrays(10))
            raise RuntimeError("disk full")
    assert _leftovers(tmp_path) == []  # no dataset dir, no staging dir
    with pytest.raises(DatasetMissingError, match="toy"):
        load_split("toy", "train", tmp_path)


def test_directory_without_manifest_is_missing(tmp_path: Path) -> None:
    write_prepared("toy", tmp_path, {"train": _arrays(10)}, num_classes=3)
    (tmp_path / "toy" / "manifest.json").unlink()  # as if killed before the manifest was written
    with pytest.raises(DatasetMissingError, match="not prepared"):
        load_split("toy", "train", tmp_path)


def test_failed_overwrite_keeps_the_old_dataset(tmp_path: Path) -> None:
    old = _arrays(10)
    write_prepared("toy", tmp_path, {"train": old}, num_classes=3)
    with pytest.raises(ReproduceError, match="already prepared"):
        write_prepared("toy", tmp_path, {"train": _arrays(5)}, num_classes=3)
    with pytest.raises(KeyError):
        with PreparedWriter("toy", tmp_path, num_classes=3, image_size=8, overwrite=True) as w:
            w.add_split("train", *_arrays(5, seed=9))
            raise KeyError("boom")
    np.testing.assert_array_equal(load_split("toy", "train", tmp_path)[0], old[0])
    write_prepared("toy", tmp_path, {"train": _arrays(5, seed=9)}, num_classes=3, overwrite=True)
    assert load_split("toy", "train", tmp_path)[0].shape[0] == 5
    assert _leftovers(tmp_path) == ["toy"]


def test_missing_dataset_error_names_path_source_and_command(tmp_path: Path) -> None:
    with pytest.raises(DatasetMissingError) as e:
        load_split("cifar10", "train", tmp_path)
    msg = str(e.value)
    assert "'cifar10'" in msg and str(tmp_path / "cifar10" / "manifest.json") in msg
    assert "https://www.cs.toronto.edu/~kriz/cifar.html" in msg
    assert f"reproduce data import cifar10 --from-archive cifar-10-python.tar.gz --data-dir {tmp_path}" in msg
    assert "--from-folder" in msg and "--download" in msg and "\n" not in msg
    msg = str(pytest.raises(DatasetMissingError, load_split, "imgnet100", "train", tmp_path).value)
    assert "reproduce data import imgnet100" in msg and "reproduce data import imagenet64" in msg
    msg = str(pytest.raises(DatasetMissingError, load_split, "my-toy", "train", tmp_path).value)
    assert "reproduce data generate my-toy" in msg


# -- archives: checksums and safe unpickling ---------------------------------------------


def _fake_cifar10_tar(path: Path, per_batch: int = 4) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A tiny archive laid out like cifar-10-python.tar.gz (python pickles, CHW rows)."""
    r = np.random.default_rng(0)
    out: dict[str, list] = {"train": [[], []], "test": [[], []]}
    with tarfile.open(path, "w:gz") as tar:

        def add(name: str, obj: object) -> None:
            data = pickle.dumps(obj, protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        add("batches.meta", {"label_names": list(CIFAR10_CLASSES), "num_vis": 3072})
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            chw = r.integers(0, 256, (per_batch, 3, 32, 32), dtype=np.uint8)
            labels = r.integers(0, 10, per_batch).tolist()
            add(name, {"data": chw.reshape(per_batch, -1), "labels": labels, "batch_label": name})
            split = "test" if name == "test_batch" else "train"
            out[split][0].append(chw.transpose(0, 2, 3, 1))
            out[split][1].append(np.array(labels))
    return {s: (np.concatenate(v[0]), np.concatenate(v[1])) for s, v in out.items()}


def test_cifar_pickle_importer_on_fake_archive(tmp_path: Path) -> None:
    arc = tmp_path / "cifar-10-python.tar.gz"
    want = _fake_cifar10_tar(arc)
    root = tmp_path / "data"
    path = import_dataset(
        "cifar10", root, from_archive=arc, checksums={arc.name: f"md5:{_md5(arc)}"}, expected_sizes={}
    )
    assert path == root / "cifar10"
    for split in ("train", "test"):
        x, y = load_split("cifar10", split, root, verify=True)
        np.testing.assert_array_equal(x, want[split][0])
        np.testing.assert_array_equal(y, want[split][1])
    meta = read_manifest("cifar10", root)
    assert meta["classes"] == list(CIFAR10_CLASSES) and meta["source"]["files"][0]["md5"] == _md5(arc)
    assert meta["mean"] == list(DATASETS.get("cifar10").mean)
    # Importing again is a no-op; the official split sizes are enforced without the override.
    assert import_dataset("cifar10", root, from_archive=arc) == path
    with pytest.raises(ReproduceError, match="found 20 images, the official split has 50000"):
        import_dataset("cifar10", root, from_archive=arc, checksums={arc.name: f"md5:{_md5(arc)}"}, force=True)


def test_corrupted_archive_is_refused_before_reading(tmp_path: Path) -> None:
    arc = tmp_path / "cifar-10-python.tar.gz"
    _fake_cifar10_tar(arc)
    good = _md5(arc)
    raw = bytearray(arc.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    arc.write_bytes(bytes(raw))
    root = tmp_path / "data"
    with pytest.raises(ChecksumError) as e:
        import_dataset("cifar10", root, from_archive=arc, checksums={arc.name: f"md5:{good}"}, expected_sizes={})
    msg = str(e.value)
    assert str(arc) in msg and good in msg and _md5(arc) in msg
    assert _leftovers(root) == []
    # Without an override the official md5 applies (and the fake archive fails it).
    with pytest.raises(ChecksumError, match="c58f30108f718f92721af3b95e74349a"):
        import_dataset("cifar10", root, from_archive=arc)
    assert _leftovers(root) == []


def test_safe_unpickle_refuses_code() -> None:
    class Evil:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            import os

            return (os.system, ("echo pwned",))

    with pytest.raises(ReproduceError, match="refusing to load global"):
        safe_unpickle(pickle.dumps({"data": Evil()}))
    arr = np.arange(6, dtype=np.uint8).reshape(2, 3)
    for proto in (2, 4, 5):
        out = safe_unpickle(pickle.dumps({"data": arr, "labels": [1, 2]}, protocol=proto))
        np.testing.assert_array_equal(out["data"], arr)


# -- other importers on tiny fakes ----------------------------------------------------------


def _imagenet_zip(path: Path, members: dict[str, tuple[np.ndarray, list[int]]], size: int) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for name, (hwc, labels) in members.items():
            rows = hwc.transpose(0, 3, 1, 2).reshape(len(labels), 3 * size * size)
            zf.writestr(name, pickle.dumps({"data": rows, "labels": labels, "mean": rows.mean(0)}))


def test_downsampled_imagenet_importer(tmp_path: Path) -> None:
    r = np.random.default_rng(1)
    batches = {
        f"Imagenet32_train/train_data_batch_{i}": (
            r.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8),
            r.integers(1, 1001, 5).tolist(),
        )
        for i in (2, 1)
    }
    val = {"Imagenet32_val/val_data": (r.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8), [1, 1000, 7])}
    _imagenet_zip(tmp_path / "Imagenet32_train.zip", batches, 32)
    _imagenet_zip(tmp_path / "Imagenet32_val.zip", val, 32)
    root = tmp_path / "data"
    with pytest.raises(ChecksumError, match="--sha256"):
        import_dataset("imagenet32", root, from_archive=tmp_path, expected_sizes={})
    shas = [hashlib.sha256((tmp_path / f).read_bytes()).hexdigest() for f in ("Imagenet32_train.zip", "Imagenet32_val.zip")]
    with pytest.raises(ChecksumError, match="not among the values"):
        import_dataset("imagenet32", root, from_archive=tmp_path, sha256=shas[:1], expected_sizes={})
    import_dataset("imagenet32", root, from_archive=tmp_path, sha256=shas, expected_sizes={})
    x, y = load_split("imagenet32", "train", root)
    b1, b2 = batches["Imagenet32_train/train_data_batch_1"], batches["Imagenet32_train/train_data_batch_2"]
    np.testing.assert_array_equal(x, np.concatenate([b1[0], b2[0]]))  # batch order, not zip order
    np.testing.assert_array_equal(y, np.array(b1[1] + b2[1]) - 1)  # 1-indexed -> 0-indexed
    assert load_split("imagenet32", "val", root)[1].tolist() == [0, 999, 6]
    files = {f["file"]: f["sha256"] for f in read_manifest("imagenet32", root)["source"]["files"]}
    assert files["Imagenet32_val.zip"] == shas[1]


def test_imgnet_class_split_and_subset_import(tmp_path: Path) -> None:
    first, rest = imgnet_class_split(20220126)
    assert len(first) == 100 and len(rest) == 900 and sorted(first + rest) == list(range(1000))
    assert imgnet_class_split(20220126) == (first, rest) and imgnet_class_split(1)[0] != first
    # A fake imagenet64 with two images per class.
    labels = np.repeat(np.arange(1000), 2)
    images = np.zeros((2000, 64, 64, 3), dtype=np.uint8)
    images[:, 0, 0, 0] = labels % 256
    images[:, 0, 0, 1] = labels // 256
    write_prepared("imagenet64", tmp_path, {"train": (images, labels), "val": (images[::2], labels[::2])}, num_classes=1000)
    import_dataset("imgnet100", tmp_path)
    x, y = load_split("imgnet100", "train", tmp_path)
    meta = read_manifest("imgnet100", tmp_path)
    assert meta["num_classes"] == 100 and meta["original_classes"] == first
    assert x.shape == (200, 64, 64, 3) and sorted(set(y.tolist())) == list(range(100))
    orig = x[:, 0, 0, 0].astype(int) + 256 * x[:, 0, 0, 1].astype(int)
    np.testing.assert_array_equal(np.array(first)[y], orig)  # label k is original class first[k]
    import_dataset("imgnet900", tmp_path)
    assert read_manifest("imgnet900", tmp_path)["splits"]["val"]["n"] == 900


def test_svhn_mat_importer(tmp_path: Path) -> None:
    r = np.random.default_rng(2)
    want = {}
    for split, n in (("train", 6), ("test", 4)):
        x = r.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
        y = r.integers(1, 11, (n, 1)).astype(np.float64)  # digit 0 is stored as 10
        scipy.io.savemat(tmp_path / f"{split}_32x32.mat", {"X": x, "y": y})
        want[split] = (x.transpose(3, 0, 1, 2), y.ravel().astype(int) % 10)
    sums = {f"{s}_32x32.mat": f"md5:{_md5(tmp_path / f'{s}_32x32.mat')}" for s in want}
    import_dataset("svhn", tmp_path / "data", from_archive=tmp_path, checksums=sums, expected_sizes={})
    meta = read_manifest("svhn", tmp_path / "data")
    assert sorted(meta["splits"]) == ["test", "train"]  # extra is optional
    for split, (x, y) in want.items():
        gx, gy = load_split("svhn", split, tmp_path / "data")
        np.testing.assert_array_equal(gx, x)
        np.testing.assert_array_equal(gy, y)


def test_tinyimages_needs_sha256(tmp_path: Path) -> None:
    x, y = _arrays(6, size=32, classes=10)
    f = tmp_path / "ti_500K_pseudo_labeled.pickle"
    f.write_bytes(pickle.dumps({"data": x, "extrapolated_targets": y.tolist()}))
    with pytest.raises(ChecksumError, match="no official checksum is published") as e:
        import_dataset("tinyimages-500k", tmp_path / "d", from_archive=f, expected_sizes={})
    assert "--sha256" in str(e.value)
    sha = hashlib.sha256(f.read_bytes()).hexdigest()
    import_dataset("tinyimages-500k", tmp_path / "d", from_archive=f, sha256=[sha], expected_sizes={})
    np.testing.assert_array_equal(load_split("tinyimages-500k", "train", tmp_path / "d")[1], y)


def test_cifar10c_folder_importer(tmp_path: Path) -> None:
    src = tmp_path / "CIFAR-10-C"
    src.mkdir()
    labels = np.tile(np.arange(2, dtype=np.uint8), 5)  # 2 images per severity
    np.save(src / "labels.npy", labels)
    for k, c in enumerate(CIFAR10C_CORRUPTIONS):
        imgs = np.zeros((10, 32, 32, 3), dtype=np.uint8)
        imgs[:, 0, 0, 0] = k
        imgs[:, 0, 0, 1] = np.repeat(np.arange(1, 6), 2)  # severity
        np.save(src / f"{c}.npy", imgs)
    import_dataset("cifar10-c", tmp_path / "d", from_folder=tmp_path, expected_sizes={})
    x, y = load_split("cifar10-c", "fog-3", tmp_path / "d")
    assert x.shape == (2, 32, 32, 3) and y.tolist() == [0, 1]
    assert (x[:, 0, 0, 0] == CIFAR10C_CORRUPTIONS.index("fog")).all() and (x[:, 0, 0, 1] == 3).all()
    assert len(read_manifest("cifar10-c", tmp_path / "d")["splits"]) == 95


def test_image_folder_importer_sorted_classes(tmp_path: Path) -> None:
    from PIL import Image

    for split, per in (("train", 3), ("test", 1)):
        for k, cls in enumerate(["zebra", "ant", "moth"]):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(per):
                Image.fromarray(np.full((8, 8, 3), 10 * k + i, dtype=np.uint8)).save(tmp_path / split / cls / f"{i}.png")
    import_image_folder(tmp_path, "tree", tmp_path / "d")
    meta = read_manifest("tree", tmp_path / "d")
    assert meta["classes"] == ["ant", "moth", "zebra"]  # sorted folder names
    x, y = load_split("tree", "train", tmp_path / "d")
    # interleaved across classes, so "the first n" of a split covers every class
    assert y.tolist() == [0, 1, 2, 0, 1, 2, 0, 1, 2]
    assert (x[0, 0, 0, 0], x[2, 0, 0, 0], x[3, 0, 0, 0]) == (10, 0, 11)
    Image.fromarray(np.zeros((9, 9, 3), dtype=np.uint8)).save(tmp_path / "test" / "ant" / "big.png")
    with pytest.raises(ReproduceError, match="expected 8x8"):
        import_image_folder(tmp_path, "tree2", tmp_path / "d", image_size=8)
    assert not (tmp_path / "d" / "tree2").exists()


def test_places365_folder_importer(tmp_path: Path) -> None:
    from PIL import Image

    cats = ["/a/airfield 0", "/b/bakery/shop 1"] + [f"/z/class{i} {i}" for i in range(2, 365)]
    (tmp_path / "categories_places365.txt").write_text("\n".join(cats) + "\n")
    (tmp_path / "places365_train_standard.txt").write_text("/b/bakery/shop/00000001.jpg 1\n/a/airfield/00000001.jpg 0\n")
    (tmp_path / "places365_val.txt").write_text("Places365_val_00000001.jpg 1\n")
    for rel, v in (("data_256/b/bakery/shop/00000001.jpg", 200), ("data_256/a/airfield/00000001.jpg", 50),
                   ("val_256/Places365_val_00000001.jpg", 120)):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((256, 256, 3), v, dtype=np.uint8)).save(tmp_path / rel, quality=95)
    sums = {n: f"md5:{_md5(tmp_path / n)}" for n in ("categories_places365.txt", "places365_train_standard.txt", "places365_val.txt")}
    import_dataset("places365-32", tmp_path / "d", from_folder=tmp_path, checksums=sums, expected_sizes={})
    x, y = load_split("places365-32", "train", tmp_path / "d")
    assert x.shape == (2, 32, 32, 3) and y.tolist() == [1, 0]  # file-list order
    assert abs(int(x[0].mean()) - 200) <= 2 and abs(int(x[1].mean()) - 50) <= 2
    assert read_manifest("places365-32", tmp_path / "d")["classes"][:2] == ["airfield", "bakery/shop"]


def test_import_needs_exactly_one_source(tmp_path: Path) -> None:
    with pytest.raises(ReproduceError, match="exactly one of --from-archive"):
        import_dataset("cifar10", tmp_path)
    with pytest.raises(ReproduceError, match="download is not supported"):
        import_dataset("imagenet64", tmp_path, allow_download=True)


# -- generated data --------------------------------------------------------------------------


def _sha(splits: dict) -> str:
    h = hashlib.sha256()
    for s in sorted(splits):
        h.update(splits[s][0].tobytes())
        h.update(splits[s][1].tobytes())
    return h.hexdigest()


def test_generated_is_deterministic() -> None:
    a = generate(5, 16, 60, 20, domain=3, seed=1)
    assert _sha(a) == _sha(generate(5, 16, 60, 20, domain=3, seed=1))
    assert _sha(a) != _sha(generate(5, 16, 60, 20, domain=3, seed=2))
    x, y = a["train"]
    assert x.shape == (60, 16, 16, 3) and x.dtype == np.uint8 and y.dtype == np.int64
    assert np.bincount(y).tolist() == [12] * 5  # balanced
    # A bigger sample of the same seed starts differently but draws from the same classes.
    assert generate(5, 16, 61, 20, domain=3, seed=1)["train"][0].shape[0] == 61


def test_generated_domains_differ_and_relatedness_is_measurable() -> None:
    means = [generate(4, 16, 200, 10, domain=d)["train"][0].reshape(-1, 3).mean(0) for d in range(4)]
    gaps = [np.abs(means[i] - means[j]).max() for i in range(4) for j in range(i + 1, 4)]
    assert min(gaps) > 10  # grey levels: backgrounds/colour statistics differ per domain

    def class_means(split: tuple[np.ndarray, np.ndarray], k: int) -> np.ndarray:
        x, y = split
        m = np.stack([x[y == c].astype(float).mean(0) for c in range(k)])
        return (m - m.mean(0)).reshape(k, -1)  # class signal, domain background removed

    def similarity(aux_domain: int, r: float) -> float:
        p = class_means(generate(5, 16, 1500, 10, domain=0)["train"], 5)
        a = class_means(generate(10, 16, 3000, 10, domain=aux_domain, related_to=0, relatedness=r, related_classes=5)["train"], 10)
        p /= np.linalg.norm(p, axis=1, keepdims=True)
        a /= np.linalg.norm(a, axis=1, keepdims=True)
        return float(np.mean([a[c] @ p[c % 5] for c in range(10)]))  # aux class c mirrors primary c % 5

    related, unrelated = similarity(7, 0.9), similarity(7, 0.0)  # measured: 0.90, 0.18
    assert related > 0.6 and related - unrelated > 0.4, (related, unrelated)


def test_write_generated_manifest(tmp_path: Path) -> None:
    write_generated("smoke", tmp_path, 4, 8, 12, 8, domain=2, seed=5)
    meta = read_manifest("smoke", tmp_path)
    assert meta["synthetic"] is True and meta["generation"]["domain"] == 2 and meta["generation"]["seed"] == 5
    assert meta["num_classes"] == 4 and len(meta["mean"]) == 3
    x, _ = load_split("smoke", "test", tmp_path, verify=True)
    np.testing.assert_array_equal(x, generate(4, 8, 12, 8, domain=2, seed=5)["test"][0])


# -- CLI ---------------------------------------------------------------------------------------


def _run(argv: list[str]) -> int:
    import argparse

    from reproduce.data.cli import add_subcommands

    p = argparse.ArgumentParser()
    add_subcommands(p.add_subparsers(dest="command", required=True))
    args = p.parse_args(argv)
    return args.func(args)


def test_cli_generate_list_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = str(tmp_path)
    assert _run(["data", "generate", "toy", "--classes", "3", "--size", "8", "--n-train", "9", "--n-test", "3",
                 "--domain", "1", "--related-to", "0", "--relatedness", "0.5", "--root", root]) == 0
    assert _run(["data", "verify", "toy", "--root", root]) == 0
    assert _run(["data", "list", "--root", root]) == 0
    out = capsys.readouterr().out
    assert "toy/train: 9 images, checksums OK" in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    assert "missing" in lines["cifar10"] and str(tmp_path / "cifar10") in lines["cifar10"]
    assert "synthetic" in lines["toy"] and set(DATASETS.names()) <= set(lines)
    with pytest.raises(DatasetMissingError):
        _run(["data", "verify", "svhn", "--root", root])
    with pytest.raises(ReproduceError, match="--from-archive"):
        _run(["data", "import", "cifar10", "--root", root])
    with pytest.raises(SystemExit):
        _run(["data", "import", "cifar10", "--from-archive", "a", "--from-folder", "b"])
    assert json.loads((tmp_path / "toy" / "manifest.json").read_text())["generation"]["related_to"] == 0
