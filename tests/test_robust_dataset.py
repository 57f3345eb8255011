"""Ilyas et al.'s robust dataset (BiaMAT 000 Table 15): the pairing, the descent against a hand
computation with a linear g, chunked resume, and data.train_from reading the result."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reproduce.analyses.robust_dataset import build_chunks, match_features, partners
from reproduce.errors import ConfigError


def test_partners_are_seeded_uniform_and_never_the_target():
    p = partners(1000, seed=0)
    assert not np.any(p == np.arange(1000)) and p.min() >= 0 and p.max() < 1000
    assert np.array_equal(p, partners(1000, seed=0)) and not np.array_equal(p, partners(1000, seed=1))
    assert np.array_equal(partners(2, 3), [1, 0])  # two images: each starts from the other
    counts = np.bincount(partners(20000, 0)[np.arange(20000) != 0], minlength=20000)
    assert counts.mean() == pytest.approx(1.0, abs=1e-3)  # no position favoured on average
    with pytest.raises(ConfigError, match="at least 2"):
        partners(1, 0)


def test_identity_g_walks_straight_to_the_target_by_step_size():
    # g = identity: the normalised gradient of ||x_r - x|| is the unit vector (x_r - x)/||x_r - x||,
    # so each step moves step_size along the straight line: x_r^k = x + (1 - k s / d0) (x_r^0 - x)
    x = torch.tensor([[[[0.2, 0.4]]], [[[0.9, 0.1]]]])
    x0 = torch.tensor([[[[0.8, 1.0]]], [[[0.5, 0.4]]]])
    d0 = torch.linalg.vector_norm((x0 - x).flatten(1), dim=1)  # 0.8485, 0.5
    xr, a, b = match_features(lambda t: t, x, x0, steps=3, step_size=0.1)
    k = (1 - 3 * 0.1 / d0).view(-1, 1, 1, 1)
    assert torch.allclose(xr, x + k * (x0 - x), atol=1e-6)
    assert torch.allclose(a, d0) and torch.allclose(b, d0 - 0.3, atol=1e-6)


def test_linear_g_first_step_and_clipping_by_hand():
    # g(x) = W x with W = [[2, 0], [0, 1]]: grad = W^T W (x_r - x) / ||W (x_r - x)||, normalised
    w = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    g = lambda t: t.flatten(1) @ w.T  # noqa: E731
    x = torch.tensor([[[[0.5, 0.5]]]])
    x0 = torch.tensor([[[[0.6, 0.9]]]])
    step = 0.5
    grad = np.array([4 * 0.1, 0.4])  # W^T W (x_r - x), x_r - x = [0.1, 0.4] (the positive 1/||W diff|| factor vanishes in the normalisation)
    want = np.clip(np.array([0.6, 0.9]) - step * grad / np.linalg.norm(grad), 0, 1)
    xr, _, _ = match_features(g, x, x0, steps=1, step_size=step)
    assert np.allclose(xr.flatten().numpy(), want, atol=1e-6)
    # a large step past the box is clipped to [0, 1]
    xr, _, _ = match_features(g, x, torch.tensor([[[[0.0, 1.0]]]]), steps=1, step_size=5.0)
    assert xr.min() >= 0 and xr.max() <= 1 and float(xr.flatten()[0]) == 1.0


class _Stop(Exception):
    pass


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()).eval()


def test_a_resumed_build_writes_what_an_uninterrupted_one_does(tmp_path):
    rng = np.random.default_rng(0)
    data = torch.from_numpy(rng.random((11, 3, 4, 4), dtype=np.float32))
    net = _net()
    pair = partners(11, 0)
    kw = dict(steps=4, step_size=0.05, chunk=4, batch_size=3)

    def read(paths):
        return np.concatenate([np.load(p)["images"] for p in paths])

    whole = read(build_chunks(net, lambda r: data[r], pair, tmp_path / "a", **kw))

    def stop_after_first(c):
        if c == 0:
            raise _Stop

    with pytest.raises(_Stop):
        build_chunks(net, lambda r: data[r], pair, tmp_path / "b", after_chunk=stop_after_first, **kw)
    done = sorted((tmp_path / "b" / "chunks").glob("chunk_*.npz"))
    assert [p.name for p in done] == ["chunk_00000.npz"]
    seen = []
    paths = build_chunks(net, lambda r: data[r], pair, tmp_path / "b", after_chunk=seen.append, **kw)
    assert seen == [1, 2]  # the finished chunk is not recomputed
    assert np.array_equal(read(paths), whole) and whole.shape == (11, 4, 4, 3)
    with pytest.raises(ConfigError, match="chunks of another setting"):
        build_chunks(net, lambda r: data[r], pair, tmp_path / "b", **{**kw, "steps": 5})


def _analysis_dir(tmp_path, images, labels):
    a = tmp_path / "analyses" / "rd1"
    a.mkdir(parents=True)
    np.save(a / "images.npy", images)
    np.save(a / "labels.npy", labels)
    return tmp_path / "runs"


def test_train_from_checks_shape_and_classes_against_the_primary(tmp_path):
    from reproduce.train.refs import analysis_split

    runs = _analysis_dir(tmp_path, np.zeros((3, 4, 4, 3), np.float32), np.array([0, 9, 2]))
    x, y = analysis_split({"analysis": "rd1"}, runs, (4, 4, 3), 10, "cifar10")
    assert x.shape == (3, 4, 4, 3) and y.tolist() == [0, 9, 2]
    with pytest.raises(ConfigError, match=r"shape \(4, 4, 3\).*trains on \(8, 8, 3\)"):
        analysis_split({"analysis": "rd1"}, runs, (8, 8, 3), 10, "cifar10")
    with pytest.raises(ConfigError, match=r"label in \[0, 5\).*cifar10 has 5 classes"):
        analysis_split({"analysis": "rd1"}, runs, (4, 4, 3), 5, "cifar10")
    with pytest.raises(ConfigError, match="wrote no"):
        analysis_split({"analysis": "other"}, runs, (4, 4, 3), 10, "cifar10")


def test_train_from_is_one_analysis_reference(tmp_path):
    from reproduce.config import resolve_run

    base = {"name": "s", "data": {"primary": "toy"}, "model": {"name": "small_cnn"}, "method": {"name": "standard"},
            "epochs": 1}
    assert resolve_run({**base, "data": {"primary": "toy", "train_from": {"analysis": "rd"}}})["data"]["train_from"]
    for bad in ("rd", {"run": "x"}, {"analysis": "rd", "key": "k"}):
        with pytest.raises(ConfigError, match=r"data.train_from must be \{analysis: NAME\}"):
            resolve_run({**base, "data": {"primary": "toy", "train_from": bad}})


def test_a_run_trains_on_the_analysis_images_and_evaluates_on_the_primary(tmp_path):
    import json

    from reproduce.data.generated.synthetic import write_generated
    from reproduce.train import train

    root = tmp_path / "data"
    write_generated("toy", root, num_classes=4, image_size=8, n_train=64, n_test=16, domain=0)
    # 96 analysis images (the primary has 64): the run's steps follow the analysis's split
    rng = np.random.default_rng(0)
    _analysis_dir(tmp_path, rng.random((96, 8, 8, 3), dtype=np.float32), rng.integers(0, 4, 96))
    cfg = {"name": "s", "scale": "test", "seed": 1, "data": {"primary": "toy", "train_from": {"analysis": "rd1"}},
           "model": {"name": "small_cnn"}, "method": {"name": "standard"}, "epochs": 1, "batch_size": 32}
    done = train(cfg, tmp_path / "runs" / "s", data_root=root, device="cpu", progress=False)
    assert done["data"]["toy"]["train_from"] == "rd1"
    rows = [json.loads(line) for line in (tmp_path / "runs" / "s" / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["epoch"] == 1
    import torch

    from reproduce.config import resolve_run
    from reproduce.train.run_data import load_run_data

    d = load_run_data(resolve_run(cfg), root, torch.device("cpu"), runs_dir=tmp_path / "runs")
    assert d["steps_per_epoch"] == 3 and len(d["eval"][1]) == 16  # 96 // 32 steps; the primary's 16 test images
    assert float(d["train"]["toy"].images.max()) <= 1.0 and d["train"]["toy"].images.dtype == torch.float32
