"""The `shapes` scale: paper-scale run configs on generated data with each real dataset's shape."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

from reproduce.data import DATASETS, load_split, read_manifest
from reproduce.errors import ReproduceError
from reproduce.pipeline.nodes import Graph
from reproduce.pipeline.scales import load_scale
from reproduce.pipeline.spec import load_all

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch):
    monkeypatch.chdir(ROOT)


def _prepare(name: str, work: Path) -> Path:
    from reproduce.cli import main

    assert main(["prepare-data", name, "--scale", "shapes", "--work-dir", str(work)]) == 0
    return work / "shapes" / "data"


def test_every_catalog_dataset_keeps_its_shape_and_split_names(tmp_path):
    shapes = load_scale("shapes").datasets
    real = [n for n in DATASETS if not DATASETS.get(n).generated]
    assert sorted(shapes) == sorted(real)
    for name in real:
        info = DATASETS.get(name)
        assert (shapes[name]["classes"], shapes[name]["size"], shapes[name]["channels"]) == \
            (info.num_classes, info.image_size, info.channels), name
    root = _prepare("imgnet100", tmp_path)
    assert set(read_manifest("imgnet100", root)["splits"]) == {"train", "val"}  # no `test`, as the real one
    x, y = load_split("imgnet100", "train", root)
    assert x.shape == (4, 64, 64, 3) and x.dtype == np.uint8
    # fewer images than classes: the labels still reach the last class, so a 100-way head is exercised
    assert y.min() == 0 and y.max() == 99


def test_paper_settings_survive_except_the_stated_ones():
    specs = load_all()
    paper, shapes = Graph(specs, load_scale("paper")), Graph(specs, load_scale("shapes"))
    p = paper.runs[paper.run_id("biamat", "imgnet100-at")].cfg
    s = shapes.runs[shapes.run_id("biamat", "imgnet100-at")].cfg
    changed = {k for k in p if p[k] != s[k]}
    assert changed <= {"scale", "epochs", "batch_size", "selection", "schedule", "perf"}, changed
    assert s["model"] == p["model"] and s["attack"] == p["attack"] and s["method"] == p["method"]
    assert s["data"]["eval_split"] == p["data"]["eval_split"] == "val"
    assert {k for k in p["selection"] if p["selection"][k] != s["selection"][k]} <= {"n", "every"}


@pytest.mark.slow
def test_the_imgnet100_row_runs_at_shapes_scale_and_would_have_crashed_on_test(tmp_path):
    """The audit's crash: ImgNet100 runs selecting and evaluating on `test`, which it lacks."""
    from reproduce.jobs.evaluate import evaluate_run
    from reproduce.train import train

    root = _prepare("imgnet100", tmp_path)
    graph = Graph(load_all(), load_scale("shapes"))
    cfg = graph.runs[graph.run_id("biamat", "imgnet100-at")].cfg
    broken = copy.deepcopy(cfg)
    broken["data"]["eval_split"] = broken["selection"]["split"] = "test"
    with pytest.raises(ReproduceError, match="test"):
        train(broken, tmp_path / "broken", data_root=root, device="cpu", progress=False)
    train(cfg, tmp_path / "run", data_root=root, device="cpu", progress=False)
    res = evaluate_run(tmp_path / "run", ["clean"], None, data_root=root, device="cpu", n=2, batch_size=2)[0]
    assert res["split"] == "val" and res["n"] == 2 and res["scale"] == "shapes"
