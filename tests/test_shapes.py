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
from reproduce.pipeline.papers import load_all

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
    assert changed <= {"scale", "epochs", "batch_size", "selection", "schedule", "perf", "attack", "optim"}, changed
    # a batch of 2 takes the paper's step per image: the linear scaling rule
    assert s["optim"] == {**p["optim"], "lr": p["optim"]["lr"] * 2 / p["batch_size"]}
    assert s["model"] == p["model"] and s["method"] == p["method"]
    # eval.iterations: 2 cuts the training attack's steps and nothing else of it
    assert p["attack"]["steps"] == 10 and s["attack"] == {**p["attack"], "steps": 2}
    assert s["data"]["eval_split"] == p["data"]["eval_split"] == "val"
    assert {k for k in p["selection"] if p["selection"][k] != s["selection"][k]} <= {"n", "every", "protocol"}
    assert s["selection"]["protocol"] == p["selection"]["protocol"] + "-it2"


def test_a_cut_protocol_keeps_everything_but_its_iterations():
    from reproduce.evaluate.catalog import PROTOCOLS, capped

    assert capped("clean", 2) == "clean" and capped("fgsm", 2) == "fgsm"  # nothing to cut
    pgd, cut = PROTOCOLS.get("pgd20"), PROTOCOLS.get(capped("pgd20", 2))
    assert cut.name == "pgd20-it2" and cut.params() == {**pgd.params(), "steps": 2}
    aa = PROTOCOLS.get(capped("aa-standard", 2))
    assert (aa.version, aa.attacks, aa.eps, aa.steps, aa.targets, aa.restarts) == ("standard", None, 8 / 255, 2, 9, 1)


def test_autoattack_iterations_reach_fab_and_square():
    """A cut protocol (targets set, steps 2) pins every component's iterations on the adversary it builds."""
    import torch
    from pyautoattack import AutoAttack

    from reproduce.attacks.autoattack import _pin

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 10))
    adversary = AutoAttack(net, device="cpu", eps=8 / 255, norm="Linf", version="standard", seed=0)
    assert (adversary.fab.n_iter, adversary.square.n_queries) == (100, 5000)  # the version's own
    _pin(adversary, 1, 2, 2)
    got = (adversary.apgd.n_iter, adversary.apgd_targeted.n_iter, adversary.fab.n_iter, adversary.square.n_queries,
           adversary.apgd_targeted.n_target_classes, adversary.apgd.n_restarts)
    assert got == (2, 2, 2, 2, 2, 1)


def test_code_paths_keep_every_setting_of_every_run_the_papers_need():
    """select: {code_paths: true} leaves rows out, never a model, dataset, method option, head or protocol kind."""
    from reproduce.pipeline.code_paths import row_paths
    from reproduce.pipeline.dag import Dag
    from reproduce.pipeline.cli import workflow_config

    class Args:
        scale = "shapes"

    dag = Dag(workflow_config(Args()))
    kept = [(a, r) for a in dag.artifacts() for r in a.rows.values()]
    every = set()
    for art in dag.artifacts():
        spec = dag.specs[art.paper].artifacts[art.name].thin(dag.scale.keeps)  # before code paths chose rows
        for row in spec.rows.values():
            every |= row_paths(dag, spec, row)[0]
    covered = set().union(*(row_paths(dag, a, r)[0] for a, r in kept))
    assert every - covered == set()
    assert any(s.startswith("run.method.name=") for s in covered) and any(s.startswith("eval ") for s in covered)
    runs = dag.train_jobs(dag.artifacts())
    assert all(a.rows for a in dag.artifacts())  # every artifact is still rendered
    # one training per code path, not one per paper-scale run: a tenth of the paper's (83 of 994 on 2026-12-07)
    paper = Dag(workflow_config(type("PaperArgs", (), {"scale": "paper"})()))
    assert len(runs) < 0.1 * len(paper.train_jobs(paper.artifacts())), len(runs)


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
