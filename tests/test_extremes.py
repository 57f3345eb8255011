"""extremes: per-class picks with ties, the saved arrays, and a real PGD prediction on a tiny trained model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from reproduce.analyses import ANALYSES, AnalysisContext
from reproduce.analyses.extremes import pick_extremes
from reproduce.data.generated.synthetic import write_generated
from reproduce.errors import ConfigError
from reproduce.evaluate.catalog import PROTOCOLS, Protocol


def test_pick_extremes_by_hand_with_ties():
    ids = np.array([10, 11, 12, 13, 20, 21, 22, 23])
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    d = np.array([0.3, 0.1, 0.3, 0.3, 0.5, 0.5, 0.2, 0.5])
    hard, easy = pick_extremes(ids, d, labels, 2)
    # class 0 ascending: 11 (.1), then the tie at .3 by id: 10, 12, 13; class 1: 22 (.2), 20, 21, 23
    assert ids[hard].tolist() == [11, 10, 22, 20]
    # descending d, ties still by id ascending: class 0 -> 10, 12 (13 left out); class 1 -> 20, 21
    assert ids[easy].tolist() == [10, 12, 20, 21]
    # a class with fewer than k shows all it has
    hard, easy = pick_extremes(ids[:5], d[:5], labels[:5], 3)
    assert ids[hard].tolist() == [11, 10, 12, 20] and ids[easy].tolist() == [10, 12, 13, 20]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A small CNN trained 2 epochs on 4 generated classes of 8x8 images."""
    from reproduce.train import train

    root = tmp_path_factory.mktemp("data")
    write_generated("toy", root, num_classes=4, image_size=8, n_train=64, n_test=16, domain=0)
    out = tmp_path_factory.mktemp("run")
    cfg = {"name": "t", "scale": "test", "seed": 0, "data": {"primary": "toy"}, "model": {"name": "small_cnn"},
           "method": {"name": "standard"}, "schedule": {"kind": "constant"}, "epochs": 2, "batch_size": 16}
    train(cfg, out, data_root=root, device="cpu", progress=False)
    return root, out


def _difficulty(path, root):
    from reproduce.data import load_split

    _, labels = load_split("toy", "train", root)
    ids = np.arange(len(labels))
    d = (np.arange(len(labels)) % 7) / 7.0 + 0.01  # many ties inside each class
    path.mkdir()
    np.savez(path / "difficulty.npz", indices=ids, d=d, labels=labels)
    (path / "result.json").write_text(json.dumps({"values": {"dataset": "toy"}}))
    return ids, d, labels


def test_extremes_arrays_values_and_the_attack_prediction(tiny_run, tmp_path):
    from reproduce.analyses.margins import load_examples
    from reproduce.attacks import pgd
    from reproduce.train.setup import build_from_run_dir

    root, run = tiny_run
    ids, d, labels = _difficulty(tmp_path / "d", root)
    name = "test-extremes-pgd"
    if name not in PROTOCOLS:  # a large radius, so the attack flips something on a barely trained model
        PROTOCOLS.add(name, Protocol(name, "pgd", "linf", 0.3, 0.05, 10, 1, True))
    out = tmp_path / "out"
    out.mkdir()
    cls = ANALYSES.get("extremes")
    p = cls.resolve_params({"difficulty": "d", "run": "r", "protocol": name, "k": 3}, "t")
    vals = cls().run(AnalysisContext(p, {"difficulty": tmp_path / "d", "run": run}, out, root,
                                     torch.device("cpu"), "test"))
    z = np.load(out / "extremes.npz")
    hard, easy = pick_extremes(ids, d, labels, 3)
    for g, pos in (("hardest", hard), ("easiest", easy)):
        assert z[g].shape == (12, 8, 8, 3) and z[f"{g}_adv"].shape == (12, 8, 8, 3)
        assert 0.0 <= z[g].min() and z[g].max() <= 1.0
        assert z[f"{g}_index"].tolist() == ids[pos].tolist()
        assert z[f"{g}_label"].tolist() == labels[pos].tolist() == sorted(labels[pos].tolist())
        assert z[f"{g}_d"].tolist() == d[pos].tolist()
        for key in ("pred", "pgd_pred", "d", "label", "index"):
            assert z[f"{g}_{key}"].shape == (12,)
    assert vals["hardest_d_max"] == pytest.approx(d[hard].max()) and vals["easiest_d_min"] == pytest.approx(d[easy].min())
    assert vals["hardest_pgd_wrong"] == pytest.approx(float((z["hardest_pgd_pred"] != z["hardest_label"]).mean()))
    assert vals["easiest_pgd_right"] == pytest.approx(float((z["easiest_pgd_pred"] == z["easiest_label"]).mean()))
    # the same attack, seeded alike (hardest first), gives the same predictions and images
    _, model, _ = build_from_run_dir(run, root, torch.device("cpu"), "last.pt")
    x, y = load_examples("toy", "train", ids[hard], root, torch.device("cpu"))
    gen = torch.Generator().manual_seed(0)
    x_adv = pgd(model, x, y, eps=0.3, step_size=0.05, steps=10, norm="linf", random_start=True, bn_mode="eval",
                generator=gen)
    with torch.no_grad():
        assert model(x_adv).argmax(1).tolist() == z["hardest_pgd_pred"].tolist()
        assert model(x).argmax(1).tolist() == z["hardest_pred"].tolist()
    assert np.allclose(x_adv.permute(0, 2, 3, 1).numpy(), z["hardest_adv"])
    both = np.concatenate([z["hardest_pgd_pred"] != z["hardest_pred"], z["easiest_pgd_pred"] != z["easiest_pred"]])
    assert both.any()  # eps 0.3 moves some prediction of this model
    assert np.abs(z["hardest_adv"] - z["hardest"]).max() <= 0.3 + 1e-6


def test_param_checks():
    cls = ANALYSES.get("extremes")
    with pytest.raises(ConfigError, match="split"):
        cls.resolve_params({"difficulty": "d", "run": "r", "protocol": "pgd20", "split": "test"}, "t")
    with pytest.raises(ConfigError, match="k must"):
        cls.resolve_params({"difficulty": "d", "run": "r", "protocol": "pgd20", "k": 0}, "t")
    with pytest.raises(ConfigError, match="protocol"):
        cls.resolve_params({"difficulty": "d", "run": "r"}, "t")


def test_image_grid_tiles_every_image_with_its_caption(tmp_path):
    from reproduce.artifacts import KINDS
    from reproduce.artifacts.base import Artifact, Row
    from reproduce.artifacts.frame import Frame
    from reproduce.artifacts.plots import _tile

    img = np.zeros((5, 4, 4, 3))
    tiled, spots = _tile(img, 3, band=True)
    # 2 lines of 3 tiles, each 4 px + 1 px gap wide; each line 4 px + gap 1 + caption band 4 tall
    assert tiled.shape == (2 * 9, 3 * 5, 3) and len(spots) == 5
    assert spots[4] == (5 + 2.0, 9 + 4 + 0.5) and tiled[0, 4].tolist() == [1.0, 1.0, 1.0]
    cls = KINDS.get("image_grid")
    art = Artifact("p", "g", "image_grid", "t", "s", None, [], ["images", "d"], {"hardest": Row("hardest", None, {})},
                   1.0, 0.0, [], {**cls.options, "y": "images", "ncols": 3, "captions": ["d"]})
    frame = Frame([{"row": "hardest", "scale": "smoke"}],
                  {("hardest", "images"): img.tolist(), ("hardest", "d"): [0.01, 0.02, 0.03, 0.04, 0.05]},
                  ["images", "d"], "smoke", False)
    cls().render(art, frame, tmp_path / "g.csv", "b")
    assert (tmp_path / "g.png").exists()
