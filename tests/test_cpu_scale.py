"""The `cpu` scale: real CIFAR-10 from an image-folder tree, a seed-free 5k pool, part of a table."""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from reproduce.artifacts.base import Artifact, Row
from reproduce.claims.grammar import FUNCTIONS
from reproduce.config import config_hash, resolve_run
from reproduce.errors import ConfigError, DatasetMissingError
from reproduce.jobs.diff import diff_artifact
from reproduce.pipeline.scales import Scale, load_scale
from reproduce.train.run_data import pool_indices

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")


def test_pool_is_the_first_images_of_every_class_whatever_the_seed():
    labels = np.array([0, 1, 0, 2, 1, 0, 2, 2, 1, 0, 1, 2])
    # 2 per class in original order: class 0 -> 0, 2; class 1 -> 1, 4; class 2 -> 3, 6
    assert pool_indices(labels, 6).tolist() == [0, 1, 2, 3, 4, 6]
    assert pool_indices(labels, 7).tolist() == [0, 1, 2, 3, 4, 6]  # 7 // 3 = 2 per class
    with pytest.raises(ConfigError, match="data.pool"):
        pool_indices(labels, 2)


def test_pool_key_is_validated_and_leaves_older_run_ids_alone():
    base = {"name": "r", "epochs": 1, "model": {"name": "small_cnn"}, "method": {"name": "standard"},
            "data": {"primary": "cifar10"}}
    h = config_hash(resolve_run(base))
    assert config_hash(resolve_run({**base, "data": {"primary": "cifar10", "pool": None}})) == h
    assert config_hash(resolve_run({**base, "data": {"primary": "cifar10", "pool": 5000}})) != h
    for bad in (0, -5, "5k", True):
        with pytest.raises(ConfigError, match="data.pool"):
            resolve_run({**base, "data": {"primary": "cifar10", "pool": bad}})


def test_column_filter_leaves_cells_out_and_claims_judge_what_was_built(tmp_path):
    from reproduce.claims import parse_claims

    rows = {r: Row(r, None, {c: {"value": 1} for c in ("pgd", "wrn34", "diagonal")}) for r in ("a", "b")}
    pub = tmp_path / "p.csv"
    pub.write_text("row,pgd,wrn34,diagonal\na,0.2,0.03,0.01\nb,0.1,0.03,0.02\n")
    art = Artifact("p", "t", "table", "t", "s", pub, [], ["pgd", "wrn34", "diagonal"], rows, 0.01, 0.0, [], {})
    art.claims = parse_claims(None, art, [
        {"id": "kept", "text": "t", "checks": ["a.pgd > b.pgd"]},
        {"id": "gone", "text": "t", "checks": ["a.wrn34 < 0.04"]},
        {"id": "both", "text": "t", "all": "{r}.diagonal < {r}.{c}", "for": {"r": ["a"], "c": ["pgd", "wrn34"]}}], "c")
    cpu = Scale("c", Path("c.yaml"), {"select": {"artifacts": {"p/t": {"columns": "^(pgd|diagonal)$"}}}})
    cut = art.thin(cpu.keeps, cpu.row_filter("p", "t"), cpu.column_filter("p", "t"))
    assert cut.columns == ["pgd", "diagonal"] and cut.thinned_columns == ["wrn34"]
    assert set(cut.rows["a"].cells) == {"pgd", "diagonal"}  # no input is asked for a left-out column
    regen = tmp_path / "t.csv"
    regen.write_text("row,pgd,diagonal,scale\na,0.3,0.05,smoke\nb,0.2,0.06,smoke\n")
    res = diff_artifact(cut, regen, tmp_path / "t.diff.csv")
    verdicts = {(c["row"], c["column"]): c["verdict"] for c in res["cells"]}
    assert verdicts[("a", "wrn34")] == "thinned (smoke scale)" and verdicts[("a", "pgd")] == "not comparable (smoke scale)"
    claims = {c["claim"]: c["reproduced"] for c in res["claims"]}
    assert claims == {"kept": "holds (smoke scale)", "gone": "not checked (thinned at smoke scale)",
                      "both": "holds (smoke scale, 1 of 2 checks)"}


def test_span_and_first_read_curves():
    assert FUNCTIONS["first"]([3.0, 2.0, 1.0]) == 3.0
    # the last half of [5, 4, 3, 3.2, 2.9, 3.1] is [3.2, 2.9, 3.1]: span 0.3
    assert FUNCTIONS["span_from"]([5, 4, 3, 3.2, 2.9, 3.1], 0.5) == pytest.approx(0.3)


def _tiny_tree(root: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    for split, n in (("train", 3), ("test", 2)):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(root / split / c / f"{i:04d}.png")


def test_folders_source_finds_the_tree_in_a_folder_or_an_archive(tmp_path, monkeypatch):
    from reproduce.data import importers
    from reproduce.data.importers import import_from_source

    seen = []

    def fake_import(name, root, *, from_folder):  # the real import checks the official split sizes
        seen.append(sorted(p.name for p in (Path(from_folder) / "train").iterdir()))
        return Path(root) / name

    monkeypatch.setattr(importers, "import_dataset", fake_import)
    tree = tmp_path / "tree" / "cifar10-jpeg"
    _tiny_tree(tree)
    archive = tmp_path / "tree.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tree, arcname="cifar10-jpeg")  # wrapped in one top-level folder, as the shared copy may be
    for src, root in ((tree.parent, tmp_path / "a"), (tree, tmp_path / "b"), (archive, tmp_path / "c")):
        import_from_source("cifar10", root, src, "cpu.yaml")
    assert len(seen) == 3 and all(s == seen[0] and len(s) == 10 for s in seen)
    assert not list((tmp_path / "c").iterdir())  # the unpacked scratch copy is gone
    with pytest.raises(DatasetMissingError, match="data.folders.cifar10"):
        import_from_source("cifar10", tmp_path / "d", tmp_path / "missing.tar.gz", "cpu.yaml")


@pytest.mark.slow  # 60,000 JPEG decodes; tests/test_cifar10_real.py covers the test split in the fast suite
def test_folders_source_imports_the_real_archive(tmp_path):
    from reproduce.data import load_split
    from reproduce.data.importers import import_from_source

    archive = ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"
    if not archive.is_file():
        pytest.skip(f"{archive} is not here")
    import_from_source("cifar10", tmp_path, archive, "cpu.yaml")
    x, y = load_split("cifar10", "train", tmp_path)
    assert x.shape == (50_000, 32, 32, 3) and np.bincount(y).tolist() == [5000] * 10
    pool = pool_indices(y, 5000)  # the cpu scale's pool: 500 per class, the same for every seed
    assert np.bincount(y[pool]).tolist() == [500] * 10 and pool[-1] < 5100


def test_cpu_scale_plans_the_difficulty_pipeline_once():
    scale = load_scale("cpu")
    assert not scale.comparable and scale.own_data
    r = subprocess.run([SNAKEMAKE, "-n", "results/cpu/hard_instances/table4.diff.csv",
                        "results/cpu/hard_instances/figure1a.diff.csv", "results/cpu/hard_instances/figure1c.diff.csv",
                        "--config", "scale=cpu", "work_dir=" + str(Path("/nonexistent") / "w")],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    runs = sorted(set(re.findall(r"run_id=([\w.-]+)", r.stdout)))
    names = sorted(re.sub(r"-[0-9a-f]{8}$", "", rid) for rid in runs)
    # two seeds per setting; seed 0 of each D-group setting is its full run (the same config here)
    assert names == sorted(["c10-pgd8-full", "c10-clean-full", "c10-fgsm-full", "rn18-100-pgd8-s1",
                            "rn18-100-clean-s1", "rn18-100-fgsm-s1",
                            *[f"c10-{p}-{m}10k" for p in ("pgd8", "clean") for m in ("easy", "random", "hard")]])


@pytest.mark.skipif(not (ROOT.parent / "shared" / "data").is_dir(), reason="../shared/data is not beside the checkout")
def test_cpu_scale_plans_biamat_table5_on_three_batch_sizes():
    """BiaMAT 000 Table 5 at the cpu scale: 4 datasets x 3 batch sizes x 2 seeds, cut from the 5k pool."""
    from reproduce.pipeline.papers import load_all
    from reproduce.pipeline.nodes import run_config
    from reproduce.pipeline.plan import train_images

    r = subprocess.run([SNAKEMAKE, "-n", "results/cpu/biamat/table5.diff.csv", "--config", "scale=cpu",
                        "work_dir=" + str(Path("/nonexistent") / "w")],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    runs = sorted(set(re.findall(r"run_id=([\w.-]+)", r.stdout)))
    names = sorted(re.sub(r"-[0-9a-f]{8}$", "", rid) for rid in runs)
    assert names == sorted(f"cifar10-{d}-bs{b}-s{s}" for d in ("a", "ab", "ac", "abc") for b in (128, 384, 1024)
                           for s in (1, 2))
    spec, cpu = load_all()["biamat"], load_scale("cpu")
    sizes = {d: train_images(run_config(spec, f"cifar10-{d}-bs128-s1", cpu)) for d in ("a", "ab", "ac", "abc")}
    assert sizes == {"a": 2500, "ab": 3750, "ac": 3750, "abc": 5000}
    cfg = run_config(spec, "cifar10-abc-bs1024-s2", cpu)
    assert cfg["model"]["name"] == "small_cnn" and cfg["epochs"] == 15 and cfg["batch_size"] == 1024


def test_planner_costs_a_subset_run_by_its_images():
    from types import SimpleNamespace

    from reproduce.pipeline.plan import gpu_hours, train_images

    cfg = resolve_run({"name": "r", "epochs": 200, "model": {"name": "resnet18"}, "method": {"name": "at"},
                       "data": {"primary": "cifar10", "subset": {"analysis": "sub-hard-1234", "key": "indices"}}})
    graph = SimpleNamespace(analyses={"sub-hard-1234": SimpleNamespace(params={"n": 10000})})
    assert train_images(cfg) == 50000 and train_images(cfg, graph) == 10000
    assert gpu_hours(cfg, graph=graph) == pytest.approx(gpu_hours(cfg) / 5)
    pooled = resolve_run({**cfg, "data": {"primary": "cifar10", "pool": 5000}})
    assert train_images(pooled) == 5000
    classes = resolve_run({**cfg, "data": {"primary": "cifar10", "subset": {"classes": [0, 1]}}})
    assert train_images(classes) == 10000  # 2 of 10 classes


def test_an_analysis_whose_log_this_scale_switched_off_fails_only_when_needed(monkeypatch):
    from reproduce.pipeline.dag import Dag

    monkeypatch.chdir(ROOT)
    dag = Dag({"scale": "cpu", "work_dir": "work", "results_dir": "results", "data_dir": "data"})
    # the cpu scale trains without eval logs: T5's test-set difficulties cannot be built there
    aid = next(a for a in dag.graph.unbuildable if a.startswith("dt-clean-s0"))
    assert "does not declare in eval_logs" in dag.graph.unbuildable[aid]
    with pytest.raises(ConfigError, match="at scale cpu"):
        dag.analysis_inputs(aid)
    assert dag.analysis_gpu(aid) == 0  # the Snakefile asks this of every node


def test_a_milestone_beyond_the_schedule_is_an_error():
    base = {"name": "r", "epochs": 201, "model": {"name": "small_cnn"}, "method": {"name": "standard"},
            "data": {"primary": "cifar10"}}
    # Subset AT's code counts iterations (39000 = epoch 100 at 390 steps); read as epochs it never decays
    with pytest.raises(ConfigError, match=r"milestones \[39000, 58500\] lie beyond the 201 epochs"):
        resolve_run({**base, "schedule": {"milestones": [39000, 58500], "per": "iteration"}})
    assert resolve_run({**base, "schedule": {"milestones": [100, 150]}})["schedule"]["milestones"] == [100, 150]
    assert resolve_run({**base, "schedule": {"milestones": [0.6, 0.9], "per": "iteration"}})


def test_filters_thin_rows_without_limiting_what_is_built(tmp_path):
    """``select.filters`` (paper/glob -> rows regex) keeps fewer rows of matching artifacts; unlike
    ``select.artifacts`` every artifact is still built, and the first matching glob wins."""
    raw = {**load_scale("smoke").raw, "select": {"filters": {"p/fig[56]_*": {"rows": "^(a|b)$"}, "p/*": {"rows": "^c$"}}}}
    scale = Scale("t", tmp_path, raw)
    assert scale.builds("p", "fig5_x") and scale.builds("q", "other")
    keep5, keep7 = scale.row_filter("p", "fig5_x"), scale.row_filter("p", "fig7")
    assert [r for r in ("a", "b", "c") if keep5(r)] == ["a", "b"]
    assert [r for r in ("a", "b", "c") if keep7(r)] == ["c"]
    assert scale.row_filter("q", "fig5_x") is None


def test_paper_overrides_and_stand_ins_reach_the_run_config(tmp_path):
    raw = {**load_scale("cpu").raw}
    scale = Scale("t", tmp_path, raw)
    run = {"epochs": 201, "data": {"primary": "cifar10"}, "schedule": {"milestones": [100, 150]},
           "selection": {"protocol": "aa-l2-standard", "at_epochs": [15, 50, 101, 151, 200]}}
    sat, other = scale.apply(run, "subset_at"), scale.apply(run, "hard_instances")
    assert sat["epochs"] == 20 and sat["data"]["pool"] == 10000
    assert sat["selection"]["at_epochs"] == [1, 5, 10, 15, 20] and other["selection"]["at_epochs"] == [1, 4, 8, 11, 15]
    assert scale.apply({**run, "selection": {"at_epochs": [30, -5]}})["selection"]["at_epochs"] == [-5, 2]
    assert other["epochs"] == 15 and other["data"]["pool"] == 5000
    # the best-checkpoint rule runs the scale's stand-in, as its evaluations do
    assert sat["selection"]["protocol"] == "aa-l2-cpu" == scale.protocol_to_run("aa-l2-standard")
