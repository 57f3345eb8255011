"""difficulty / groups / subset analyses against hand-computed ranks (with ties)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reproduce import io
from reproduce.analyses import ANALYSES, AnalysisContext
from reproduce.analyses.difficulty import balanced_subset, group_of, midpoint_rank, scores
from reproduce.data.generated.synthetic import write_generated
from reproduce.errors import ConfigError


def test_midpoint_rank_by_hand():
    # S = [3, 1, 3, 2, 0]: the two 3s are hardest, A=0, c=2 -> 1/5; 2: (2 + .5)/5; 1: (3 + .5)/5; 0: (4 + .5)/5
    assert midpoint_rank(np.array([3.0, 1, 3, 2, 0])).tolist() == pytest.approx([0.2, 0.7, 0.2, 0.5, 0.9])
    assert midpoint_rank(np.array([5.0, 5, 5, 5])).tolist() == [0.5] * 4


def test_scores_sum_from_min_epoch_and_acc_orientation():
    losses = np.array([[9, 9, 9], [1, 2, 3], [3, 2, 1]], dtype=np.float32)  # epoch 0 ignored
    assert scores(losses, "loss", 1, "sum", "x").tolist() == [4, 4, 4]
    correct = np.array([[0, 0, 0], [1, 0, 1], [1, 0, 0]], dtype=np.uint8)
    s = scores(correct, "acc", 1, "sum", "x")  # correct counts 2, 0, 1 -> fewest correct is hardest
    assert midpoint_rank(s).tolist() == pytest.approx([5 / 6, 1 / 6, 3 / 6])
    with pytest.raises(ConfigError, match="drop_last"):
        scores(np.array([[1.0, np.nan]]), "loss", 0, "sum", "x")
    assert scores(np.array([[1.0, np.nan], [3.0, 2.0]]), "loss", 0, "nanmean", "x").tolist() == [2.0, 2.0]
    with pytest.raises(ConfigError, match="min_epoch"):
        scores(losses, "loss", 3, "sum", "x")


def test_groups_by_hand():
    d = np.array([0.05, 0.1, 0.2, 0.999, 0.95, 0.45])
    assert group_of(d, 10).tolist() == [0, 1, 2, 9, 9, 4]


def test_balanced_subset_by_hand():
    ids = np.array([10, 11, 12, 13, 20, 21, 22, 23])
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    d = np.array([0.3, 0.1, 0.3, 0.9, 0.5, 0.5, 0.2, 0.8])
    # class 0 by d then id: 11 (.1), 10 (.3), 12 (.3), 13 (.9); class 1: 22, 20, 21, 23
    assert balanced_subset(ids, d, labels, "hard", 4, 0, "x").tolist() == [10, 11, 20, 22]
    assert balanced_subset(ids, d, labels, "easy", 4, 0, "x").tolist() == [12, 13, 21, 23]
    r = balanced_subset(ids, d, labels, "random", 4, 7, "x")
    assert r.tolist() == balanced_subset(ids, d, labels, "random", 4, 7, "x").tolist()
    assert sorted(np.isin(r, ids[:4]).astype(int).tolist()) == [0, 0, 1, 1]
    with pytest.raises(ConfigError, match="class 0"):
        balanced_subset(ids, d, labels, "easy", 10, 0, "x")


def _ctx(tmp_path, name, params, inputs, root):
    out = tmp_path / name
    out.mkdir()
    cls = ANALYSES.get(name.split("-")[0], where="t")
    p = cls.resolve_params(params, name)
    return cls().run(AnalysisContext(p, inputs, out, root, torch.device("cpu"), "test")), out


def test_difficulty_groups_subset_chain(tmp_path):
    root = tmp_path / "data"
    write_generated("toy", root, num_classes=2, image_size=4, n_train=12, n_test=2, domain=0)
    from reproduce.data import load_split

    _, labels = load_split("toy", "train", root)
    run = tmp_path / "run"
    run.mkdir()
    ids = np.array([1, 2, 4, 5, 7, 9])
    io.write_yaml(run / "config.yaml", {"data": {"primary": "toy", "train_split": "train"}})
    np.save(run / "instance_indices.npy", ids)
    # epoch 0 ignored (min_epoch 1): sums 3, 1, 3, 2, 0, 1
    np.save(run / "instance_losses.npy", np.array([[50, 0, 0, 0, 0, 0], [1, 1, 2, 1, 0, 0], [2, 0, 1, 1, 0, 1]],
                                                  dtype=np.float32))
    vals, dout = _ctx(tmp_path, "difficulty", {"run": "r", "min_epoch": 1}, {"run": run}, root)
    z = np.load(dout / "difficulty.npz")
    # descending 3,3 | 2 | 1,1 | 0: d = 1/6, 1/6, 2.5/6, 4/6, 4/6, 5.5/6
    assert z["d"].tolist() == pytest.approx([1 / 6, 4 / 6, 1 / 6, 2.5 / 6, 5.5 / 6, 4 / 6])
    assert z["indices"].tolist() == ids.tolist() and z["labels"].tolist() == labels[ids].tolist()
    assert vals["n"] == 6 and vals["epochs_used"] == 2 and vals["distinct_scores"] == 4
    g, _ = _ctx(tmp_path, "groups", {"difficulty": "d", "n_groups": 3}, {"difficulty": dout}, root)
    # int(3d): 1/6 -> 0, 2.5/6 -> 1, 4/6 -> 2, 5.5/6 -> 2
    assert g["G0"] == [1, 4] and g["G1"] == [5] and g["G2"] == [2, 7, 9] and g["sizes"] == [2, 1, 3]
    s, _ = _ctx(tmp_path, "subset", {"difficulty": "d", "mode": "hard", "n": 2}, {"difficulty": dout}, root)
    c0 = [i for i in ids if labels[i] == labels.min()]
    assert s["n"] == 2 and s["per_class"] == 1 and len(set(labels[s["indices"]])) == 2
    assert min(c0, key=lambda i: (z["d"][list(ids).index(i)], i)) in s["indices"]
    with pytest.raises(ConfigError, match="mode"):
        ANALYSES.get("subset", where="t").resolve_params({"difficulty": "d", "mode": "medium", "n": 2}, "x")


def test_scaled_subset_counts_keep_the_fraction_of_the_real_split(tmp_path):
    import json

    from reproduce.analyses.difficulty import scaled_count

    (tmp_path / "result.json").write_text(json.dumps({"values": {"dataset": "cifar10"}}))
    # 10k of CIFAR-10's 50k is a fifth: 125 of a 627-image pool (round(125.4)); 40k is 502
    assert scaled_count(10000, 627, tmp_path, 10) == 125
    assert scaled_count(40000, 627, tmp_path, 10) == 502
    assert scaled_count(10, 627, tmp_path, 10) == 10  # never below one per class
    (tmp_path / "result.json").write_text(json.dumps({"values": {"dataset": "svhn"}}))
    assert scaled_count(20000, 732, tmp_path, 10) == 200  # 20000 x 732 / 73257 = 199.85
