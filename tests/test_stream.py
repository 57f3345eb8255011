"""The streaming JPEG loader: 224 x 224 crops, right labels and ids, a pure function of (seed, epoch),
and a streamed dataset trained and evaluated through the normal code path."""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from reproduce.data import iterate, load_split
from reproduce.data.storage.jpeg import eval_image
from reproduce.data.feeding.stream import StreamSplit, rrc_params, sample_params

from .test_fullres import _flowers, _md5s, jpeg_bytes

SIZES = [(64, 48), (30, 90), (300, 200), (224, 224), (50, 50), (90, 31), (120, 80), (40, 40), (77, 150), (33, 47)]


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> tuple[list[Path], np.ndarray]:
    d = tmp_path_factory.mktemp("jpegs")
    paths = []
    for i, size in enumerate(SIZES):
        p = d / f"img_{i}.jpg"
        p.write_bytes(jpeg_bytes(i, size, "PNG" if i == 4 else "JPEG"))  # one PNG under a .jpg name
        paths.append(p)
    (d / "grey.jpg").write_bytes(_grey())
    paths.append(d / "grey.jpg")
    labels = np.array([(7 * i) % 5 for i in range(len(paths))])
    return paths, labels


def _grey() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.arange(60 * 40, dtype=np.uint8).reshape(40, 60) % 255, "L").save(buf, format="JPEG")
    return buf.getvalue()


def _epoch(ds, **kw) -> list:
    args = dict(batch_size=4, shuffle=True, augment=True, seed=5, epoch=0)
    args.update(kw)
    return list(iterate(ds, **args))


def _same(a, b) -> bool:
    return len(a) == len(b) and all(torch.equal(x.x, y.x) and torch.equal(x.y, y.y) and torch.equal(x.idx, y.idx)
                                    for x, y in zip(a, b))


def test_crops_labels_ids_and_determinism(tree):
    paths, labels = tree
    ds = StreamSplit(paths, labels, "cpu", indices=np.arange(len(paths)) + 100, workers=0)
    first = _epoch(ds)
    assert [len(b) for b in first] == [4, 4, 3]
    for b in first:
        assert b.x.shape[1:] == (3, 224, 224) and b.x.dtype == torch.float32
        assert 0.0 <= float(b.x.min()) and float(b.x.max()) <= 1.0
        assert torch.equal(b.y, torch.as_tensor(labels)[b.idx - 100])  # labels follow the instance ids
    ids = torch.cat([b.idx for b in first])
    assert sorted(ids.tolist()) == list(range(100, 111))  # every instance once per epoch
    assert _same(first, _epoch(ds))  # same seed and epoch: identical batches
    two = StreamSplit(paths, labels, "cpu", indices=np.arange(len(paths)) + 100, workers=2)
    assert _same(first, _epoch(two))  # worker processes change nothing
    nxt = _epoch(ds, epoch=1)
    assert torch.cat([b.idx for b in nxt]).tolist() != ids.tolist()  # a new order next epoch
    assert _same(first[1:], _epoch(ds, start_batch=1))  # resume mid-epoch: the rest, identical
    assert [len(b) for b in _epoch(ds, drop_last=True)] == [4, 4]


def test_decode_on_the_device_matches_the_workers(tree):
    """The accelerator path (workers read bytes, the device decodes, crops and resizes) gives the
    same batches as CPU workers; on a CPU both decode with libjpeg-turbo, so bit for bit."""
    paths, labels = tree
    cpu = _epoch(StreamSplit(paths, labels, "cpu", workers=0, decode="workers"), rotate=2, color_jitter=[.1, .1, .1])
    dev = _epoch(StreamSplit(paths, labels, "cpu", workers=1, decode="device"), rotate=2, color_jitter=[.1, .1, .1])
    assert _same(cpu, dev)
    assert cpu[0].angle is not None and float(cpu[0].angle.abs().max()) <= 2
    plain = _epoch(StreamSplit(paths, labels, "cpu", workers=0))
    assert not torch.equal(plain[0].x, cpu[0].x) and torch.equal(plain[0].idx, cpu[0].idx)  # jitter drawn after


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_decode_is_deterministic_and_close_to_cpu(tree):
    paths, labels = tree
    gpu = StreamSplit(paths, labels, "cuda", workers=2)
    assert gpu.decode == "device"
    a, b = _epoch(gpu), _epoch(gpu)
    assert _same(a, b)
    cpu = _epoch(StreamSplit(paths, labels, "cpu", workers=0))
    for x, y in zip(a, cpu):  # same crops; nvJPEG and CUDA resampling round a little differently
        assert torch.equal(x.idx.cpu(), y.idx) and (x.x.cpu() - y.x).abs().mean() < 0.02


def test_without_augmentation_the_eval_transform(tree):
    paths, labels = tree
    ds = StreamSplit(paths, labels, "cpu", workers=0)
    (b,) = _epoch(ds, augment=False, shuffle=False, batch_size=len(paths))
    want = np.stack([eval_image(p) for p in paths])
    assert (b.x.mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy() == want).all()
    assert (ds.eval_array([3, 1]) == want[[3, 1]]).all()


def test_random_resized_crop_params():
    rng = random.Random(0)
    for h, w in [(375, 500), (500, 375), (224, 224), (10, 1000), (1000, 10)]:
        for _ in range(200):
            top, left, ch, cw = rrc_params(h, w, rng)
            assert 0 <= top <= h - ch and 0 <= left <= w - cw and ch > 0 and cw > 0
            if (h, w) == (375, 500) and not (ch == h and cw == w):
                assert 0.08 * h * w * 0.8 <= ch * cw <= h * w * 1.01
    # an extreme aspect ratio never fits: torchvision's fallback, the central crop at the ratio limit
    assert rrc_params(10, 1000, random.Random(1)) == (0, (1000 - round(10 * 4 / 3)) // 2, 10, round(10 * 4 / 3))
    assert sample_params(7, 300, 200) == sample_params(7, 300, 200)
    flips = [sample_params(s, 300, 200)[4] for s in range(400)]
    assert 150 < sum(flips) < 250
    # the same distribution as torchvision's own get_params (mean area share 0.434, mean log aspect 0.03)
    from torchvision.transforms import RandomResizedCrop

    with torch.random.fork_rng():
        torch.manual_seed(0)
        theirs = np.array([RandomResizedCrop.get_params(torch.zeros(3, 300, 400), (0.08, 1.0), (3 / 4, 4 / 3))
                           for _ in range(20_000)], dtype=float)
    ours = np.array([sample_params(s, 300, 400)[:4] for s in range(20_000)], dtype=float)
    for m in (theirs, ours):
        assert math.isclose((m[:, 2] * m[:, 3]).mean() / 120_000, 0.434, abs_tol=0.01)
        assert math.isclose(np.log(m[:, 3] / m[:, 2]).mean(), 0.03, abs_tol=0.01)


def test_a_streamed_dataset_trains_and_evaluates_through_the_normal_path(tmp_path):
    from reproduce.data.importers import import_dataset
    from reproduce.jobs.evaluate import evaluate_run
    from reproduce.train import train

    src = _flowers(tmp_path / "src")
    root = tmp_path / "data"
    import_dataset("flowers102", root, from_archive=src, checksums=_md5s(src), expected_sizes={})
    cfg = {
        "name": "fl", "scale": "test", "seed": 1,
        "data": {"primary": "flowers102", "eval_split": "val", "rotate": 2, "color_jitter": [0.1, 0.1, 0.1],
                 "drop_last": False},
        "model": {"name": "small_cnn", "normalize": "dataset"},
        "method": {"name": "standard"},
        "epochs": 2, "batch_size": 2,
        "selection": {"protocol": "clean", "split": "val"},
        "log_per_instance": True,
    }
    summary = train(cfg, tmp_path / "run", data_root=root, device="cpu", progress=False)
    assert summary["data_placement"]["placement"] == "stream" and summary["epochs"] == 2
    assert summary["data"]["flowers102"]["splits"]["train"]  # the JPEG list's sha256 stands for the images
    res = evaluate_run(tmp_path / "run", ["clean"], None, data_root=root, device="cpu", batch_size=2)[0]
    assert res["split"] == "val" and res["n"] == 3 and res["labels"] == [2, 0, 1]
    x, _ = load_split("flowers102", "val", root)
    assert x.shape == (3, 224, 224, 3)


def test_benchmark_prints_images_per_second(tmp_path, capsys):
    import importlib.util
    import json
    import re

    spec = importlib.util.spec_from_file_location("stream_loader", Path(__file__).resolve().parents[1] / "benchmarks"
                                                  / "stream_loader.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--smoke", "--n", "12", "--workers", "0,1", "--device", "cpu", "--out", str(tmp_path / "b.json")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("device: cpu")
    assert [re.fullmatch(r"stream workers workers=(\d): \d+\.\d images/s \(decode \+ crop \+ flip alone: \d+\.\d\)", s)
            is not None for s in lines[1:]] == [True, True]
    assert [r["workers"] for r in json.loads((tmp_path / "b.json").read_text())["rows"]] == [0, 1]
