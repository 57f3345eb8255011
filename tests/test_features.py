"""BiaMAT's feature-space analyses: FID (Table 10) against the closed form for Gaussians, and the
share above the threshold (Table 16, Figure 4) against hand computations on tiny inputs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from reproduce.analyses import ANALYSES, AnalysisContext
from reproduce.analyses.aux_confidence import class_ratios, extremes, frozen_threshold, group_table, resolve
from reproduce.analyses.fid import draw, frechet_distance, gaussian_stats
from reproduce.data.generated.synthetic import write_generated
from reproduce.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


# --- FID ---------------------------------------------------------------------------------------

def test_fid_of_diagonal_gaussians_is_the_elementwise_closed_form():
    m1, m2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.5])
    v1, v2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    # ||m1 - m2||^2 + sum(v1 + v2 - 2 sqrt(v1 v2)) = (1 + 0 + 6.25) + (4 + 1 + 0) = 12.25
    assert frechet_distance(m1, np.diag(v1), m2, np.diag(v2)) == pytest.approx(12.25, abs=1e-9)
    assert frechet_distance(m1, np.diag(v1), m1, np.diag(v1)) == pytest.approx(0.0, abs=1e-9)


def test_fid_of_non_commuting_covariances_uses_the_matrix_root():
    # for 2x2 M = S1 S2 with positive eigenvalues, Tr(M^{1/2}) = sqrt(Tr M + 2 sqrt(det M))
    s1 = np.array([[2.0, 0.5], [0.5, 1.0]])
    s2 = np.array([[1.0, -0.3], [-0.3, 3.0]])
    m = s1 @ s2
    tr_root = np.sqrt(np.trace(m) + 2 * np.sqrt(np.linalg.det(m)))
    want = 4.0 + np.trace(s1) + np.trace(s2) - 2 * tr_root  # ||(0,0) - (2,0)||^2 = 4
    got = frechet_distance(np.zeros(2), s1, np.array([2.0, 0.0]), s2)
    assert got == pytest.approx(want, abs=1e-9)
    # the naive elementwise formula differs here: the test would catch a diagonal-only shortcut
    naive = 4.0 + np.sum(np.diag(s1) + np.diag(s2) - 2 * np.sqrt(np.diag(s1) * np.diag(s2)))
    assert abs(got - naive) > 1e-3


def test_gaussian_stats_are_float64_with_ddof_one():
    f = np.array([[0, 0], [2, 0], [0, 4], [2, 4]], dtype=np.float32)
    mu, s = gaussian_stats(f)
    assert mu.dtype == np.float64 and mu.tolist() == [1.0, 2.0]
    assert np.allclose(s, [[4 / 3, 0.0], [0.0, 16 / 3]])  # sum of squares / (n - 1)
    with pytest.raises(ConfigError, match="at least 2"):
        gaussian_stats(f[:1])


def test_draw_is_seeded_sorted_and_all_when_n_is_the_split():
    a, b = draw(100, 10, 0, 1), draw(100, 10, 0, 1)
    assert a.tolist() == b.tolist() and a.tolist() == sorted(set(a.tolist()))
    assert draw(100, 10, 1, 1).tolist() != a.tolist() and draw(100, 10, 0, 2).tolist() != a.tolist()
    assert draw(7, 7, 3, 0).tolist() == list(range(7))
    with pytest.raises(ConfigError, match="exceeds"):
        draw(5, 6, 0, 0)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Two generated 8x8 datasets (one related to the other) and a small CNN trained 1 epoch on the first."""
    from reproduce.train import train

    root = tmp_path_factory.mktemp("data")
    write_generated("toyp", root, num_classes=4, image_size=8, n_train=48, n_test=8, domain=0)
    write_generated("toya", root, num_classes=6, image_size=8, n_train=60, n_test=6, domain=1,
                    related_to=0, relatedness=0.8, related_classes=4)
    out = tmp_path_factory.mktemp("run")
    cfg = {"name": "t", "scale": "test", "seed": 0, "data": {"primary": "toyp"}, "model": {"name": "small_cnn"},
           "method": {"name": "standard"}, "schedule": {"kind": "constant"}, "epochs": 1, "batch_size": 16}
    train(cfg, out, data_root=root, device="cpu", progress=False)
    return root, out


def _run(kind, given, inputs, root, out):
    out.mkdir(parents=True, exist_ok=True)
    cls = ANALYSES.get(kind)
    p = cls.resolve_params(given, "t")
    return cls().run(AnalysisContext(p, inputs, out, root, torch.device("cpu"), "test"))


def test_fid_analysis_is_deterministic_and_recomputable_from_its_arrays(tiny, tmp_path):
    from reproduce.data import load_split
    from reproduce.train.setup import build_from_run_dir

    root, run = tiny
    given = {"model": {"run": "r"}, "reference": {"dataset": "toyp", "split": "train"},
             "datasets": ["toya", "toyp"], "n": 40, "seed": 3, "batch_size": 7}
    a = _run("fid", given, {"model": run}, root, tmp_path / "a")
    b = _run("fid", given, {"model": run}, root, tmp_path / "b")
    assert a["fid"] == b["fid"] and a["n"] == 40
    za, zb = np.load(tmp_path / "a/fid.npz"), np.load(tmp_path / "b/fid.npz")
    assert all(np.array_equal(za[k], zb[k]) for k in za.files)
    # the saved statistics give the value back, and they are those of the drawn images' features
    assert frechet_distance(za["mu_reference"], za["sigma_reference"], za["mu_toya"], za["sigma_toya"]) == \
        pytest.approx(a["fid"]["toya"])
    _, model, _ = build_from_run_dir(run, root, torch.device("cpu"))
    x, _ = load_split("toya", "train", root)
    xs = torch.from_numpy(x[za["indices_toya"]]).float().permute(0, 3, 1, 2) / 255.0
    with torch.no_grad():
        f = model.features(xs).double().numpy()
    assert np.allclose(za["mu_toya"], f.mean(0), atol=1e-6) and np.allclose(za["sigma_toya"], np.cov(f, rowvar=False), atol=1e-6)
    # another seed draws other images; the related-but-other domain is farther than the primary itself
    c = _run("fid", {**given, "seed": 4}, {"model": run}, root, tmp_path / "c")
    assert c["fid"] != a["fid"]
    assert a["fid"]["toya"] > a["fid"]["toyp"] >= 0.0


def test_fid_scale_n_takes_the_smallest_split_and_refuses_too_large_an_n(tiny, tmp_path):
    root, run = tiny
    given = {"model": {"run": "r"}, "reference": {"dataset": "toyp", "split": "train"}, "datasets": ["toya"],
             "n": 1000}
    with pytest.raises(ConfigError, match="exceeds"):
        _run("fid", given, {"model": run}, root, tmp_path / "a")
    v = _run("fid", {**given, "scale_n": True}, {"model": run}, root, tmp_path / "b")
    assert v["n"] == 48 and v["n_requested"] == 1000
    # n equal to the reference split: the reference against itself is 0
    v = _run("fid", {**given, "datasets": ["toyp"], "scale_n": True}, {"model": run}, root, tmp_path / "c")
    assert v["fid"]["toyp"] == pytest.approx(0.0, abs=1e-6)


# --- share above the threshold -----------------------------------------------------------------

def test_class_ratios_groups_and_extremes_by_hand():
    conf = np.array([0.9, 0.5, 0.6, 0.2, 0.6, 0.7, 0.1, 0.6])
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    r = class_ratios(conf, labels, 0.6, 4)  # >= omega is high: 0.6 counts
    assert r[:3].tolist() == pytest.approx([2 / 3, 1 / 2, 2 / 3]) and np.isnan(r[3])
    t = group_table(r, {"A": [0, 1], "B": [2]})
    assert t["A"]["mean"] == pytest.approx(7 / 12) and t["A"]["std"] == pytest.approx(1 / 12)  # ddof 0
    assert t["B"] == {"mean": pytest.approx(2 / 3), "std": 0.0, "classes": 1}
    assert t["Others"]["classes"] == 1 and t["Others"]["mean"] is None  # class 3 has no sample
    assert t["All"]["mean"] == pytest.approx((2 / 3 + 1 / 2 + 2 / 3) / 3) and t["All"]["classes"] == 4
    top, bottom = extremes(conf, labels, 2, 2)
    assert top.tolist() == [5, 7] and bottom.tolist() == [6, 7]
    top, bottom = extremes(np.array([0.3, 0.3, 0.3]), np.zeros(3, dtype=int), 0, 2)
    assert top.tolist() == [0, 1] and bottom.tolist() == [0, 1]  # ties to the lower index both ways


def test_resolve_by_name_exact_case_first_and_wnid_for_shared_names():
    names = ["kite", "Cardigan", "cardigan", "crane", "crane", "beach_wagon"]
    wnids = ["n1", "n2", "n3", "n4", "n5", "n6"]
    assert resolve(names, ["Cardigan", "cardigan", "beach wagon", "KITE"], wnids, {}, "w") == [1, 2, 5, 0]
    assert resolve(names, ["crane"], wnids, {"crane": "n5"}, "w") == [4]
    with pytest.raises(ConfigError, match="'crane' matches 2 classes"):
        resolve(names, ["crane"], wnids, {}, "w")
    with pytest.raises(ConfigError, match="no such class"):
        resolve(names, ["zebra"], wnids, {}, "w")


def test_imagenet_class_names_are_the_pinned_map_clsloc(monkeypatch, tmp_path):
    from reproduce.data.catalog import DATASETS
    from reproduce.data.catalog import imagenet

    pairs = imagenet.imagenet_classes()
    assert len(pairs) == 1000 and pairs[0] == ("n02119789", "kit fox")
    assert pairs[245] == ("n02687172", "aircraft carrier") and pairs[428] == ("n02012849", "crane")
    assert DATASETS.get("imagenet32").classes[245] == "aircraft carrier"
    bad = tmp_path / "map.txt"
    bad.write_bytes(imagenet.CLASS_MAP.read_bytes().replace(b"kit_fox", b"kit_cat"))
    monkeypatch.setattr(imagenet, "CLASS_MAP", bad)
    imagenet.imagenet_classes.cache_clear()
    with pytest.raises(Exception, match="sha256 differs"):
        imagenet.imagenet_classes()
    monkeypatch.undo()
    imagenet.imagenet_classes.cache_clear()


def test_table17_resolves_to_146_distinct_imagenet_classes_with_its_counts():
    from reproduce.data.catalog.imagenet import imagenet_classes
    from reproduce.pipeline.papers import load_all

    decl = load_all()["biamat"].analyses["conf-in32"].params
    names, wnids = [n for _, n in imagenet_classes()], [w for w, _ in imagenet_classes()]
    got = {g: resolve(names, v, wnids, decl["disambiguate"], "t") for g, v in decl["superclasses"].items()}
    counts = {g: len(v) for g, v in got.items()}
    with open(ROOT / "pipelines/biamat/published/table16.csv", newline="") as f:
        pub = {r["row"]: r for r in csv.DictReader(f)}
    assert counts == {g: int(pub[g]["classes"]) for g in counts}
    assert sum(counts.values()) == 146 == len({i for v in got.values() for i in v})
    assert wnids[got["Bird"][decl["superclasses"]["Bird"].index("crane")]] == "n02012849"  # the bird


def test_frozen_threshold_is_read_from_the_logs(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"epoch": 1}\n{"epoch": 2, "threshold": 0.4}\n{"epoch": 3, "threshold": 0.4}\n')
    assert frozen_threshold(tmp_path) == 0.4
    (tmp_path / "metrics.jsonl").write_text('{"epoch": 2, "threshold": 0.4}\n{"epoch": 3, "threshold": 0.5}\n')
    with pytest.raises(ConfigError, match="changes"):
        frozen_threshold(tmp_path)
    (tmp_path / "metrics.jsonl").write_text('{"epoch": 1}\n')
    with pytest.raises(ConfigError, match="no 'threshold'"):
        frozen_threshold(tmp_path)


def test_aux_confidence_on_a_stand_in_matches_a_hand_count(tiny, tmp_path):
    import shutil

    from reproduce.data import load_split
    from reproduce.train.setup import build_from_run_dir

    root, trained = tiny
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    with open(run / "metrics.jsonl", "a") as f:  # a BiaMAT run logs its frozen omega each epoch
        f.write(json.dumps({"epoch": 99, "threshold": 0.3}) + "\n")
    given = {"model": {"run": "r"}, "dataset": "toya", "superclasses": {"X": ["not used on generated data"]},
             "stand_in": {"superclasses": {"A": ["class0", "class1"], "B": ["class2"]},
                          "named": {"five": "class5"}, "show_class": "class1", "related": ["class0"]}, "k": 3}
    with pytest.raises(ConfigError, match="stand-in"):
        _run("aux_confidence", {**given, "stand_in": None}, {"model": run}, root, tmp_path / "x")
    v = _run("aux_confidence", given, {"model": run}, root, tmp_path / "a")
    assert v["stand_in"] == 1 and v["omega"] == 0.3 and v["pi"] == 0.0 and v["omega_recomputed"] == 0.0
    _, model, _ = build_from_run_dir(run, root, torch.device("cpu"))
    x, y = load_split("toya", "train", root)
    with torch.no_grad():
        p = torch.softmax(model(torch.from_numpy(x).float().permute(0, 3, 1, 2) / 255.0), 1)
    conf, pred = p.max(1)[0].double().numpy(), p.argmax(1).numpy()
    ratio = [float((conf[y == c] >= 0.3).mean()) for c in range(6)]
    assert v["superclass"]["A"]["mean"] == pytest.approx((ratio[0] + ratio[1]) / 2, abs=1e-6)
    assert v["superclass"]["A"]["std"] == pytest.approx(abs(ratio[0] - ratio[1]) / 2, abs=1e-6)
    assert v["superclass"]["Others"]["mean"] == pytest.approx(np.mean(ratio[3:]), abs=1e-6)
    assert v["superclass"]["All"]["mean"] == pytest.approx(np.mean(ratio), abs=1e-6)
    assert v["named"]["five"] == pytest.approx(ratio[5], abs=1e-6)
    assert v["recomputed_high_fraction"] == 1.0  # omega 0: every sample is high
    z = np.load(tmp_path / "a/aux_confidence.npz")
    members = np.flatnonzero(y == 1)
    order = members[np.lexsort((members, -conf[members].astype(np.float32)))]
    assert z["top_index"].tolist() == order[:3].tolist() and z["top"].shape == (3, 8, 8, 3)
    assert z["top_conf"].tolist() == sorted(z["top_conf"].tolist(), reverse=True)
    assert z["bottom_conf"].tolist() == sorted(z["bottom_conf"].tolist())
    assert z["top_pred_name"].tolist() == [f"class{c}" for c in pred[z["top_index"]]]
    assert v["top"]["related"] == int((pred[z["top_index"]] == 0).sum())
    assert v["top"]["high"] + v["top"]["low"] == 3 == v["top"]["n"]


# --- the artifacts: informational cells, and the analyses' cost in the plan -------------------

def test_table10_fids_are_shown_not_judged_and_the_order_claims_are(tmp_path, monkeypatch):
    from reproduce.jobs.diff import diff_artifact
    from reproduce.pipeline.papers import load_all

    monkeypatch.chdir(ROOT)
    art = load_all()["biamat"].artifacts["table10"]
    regen = tmp_path / "t10.csv"
    # ten times the paper's values (another network's feature scale), CIFAR-100 now farther than ImageNet
    regen.write_text("row,fid,scale\nsvhn,95.5,paper\ncifar100,40.0,paper\nplaces365,46.2,paper\nimagenet,32.1,paper\n")
    res = diff_artifact(art, regen, tmp_path / "t10.diff.csv")
    assert {c["verdict"] for c in res["cells"]} == {"informational (not diffed)"}
    assert {c["row"]: c["delta"] for c in res["cells"]}["svhn"] == pytest.approx(85.95)
    claims = {c["claim"]: c for c in res["claims"]}
    assert claims["T10-a"]["published"] == "holds" and claims["T10-a"]["reproduced"] == "holds"
    assert claims["T10-b"]["published"] == "holds" and claims["T10-b"]["reproduced"] == "fails"


def test_the_plan_counts_the_feature_analyses_forward_passes(monkeypatch):
    from reproduce.pipeline.dag import Dag
    from reproduce.pipeline.plan import plan

    monkeypatch.chdir(ROOT)
    dag = Dag({"scale": "paper", "work_dir": "work", "results_dir": "results", "data_dir": "/nonexistent"})
    p = plan(dag, ["biamat/table10", "biamat/table16", "biamat/figure_carrier"])
    cost = {x["kind"]: x for x in p["analyses"]}
    # 5 x 50k images forward through WRN-28-10: 5 x 0.34 x 0.031 V100-h
    assert cost["fid"]["gpu_hours"] == pytest.approx(5 * 0.34 * 0.031, abs=1e-3)
    # ImageNet32 train + CIFAR-10 train forward, shared by Table 16 and Figure 4
    assert cost["aux_confidence"]["gpu_hours"] == pytest.approx((1281167 + 50000) / 50000 * 0.34 * 0.031, abs=1e-3)
    assert sorted(cost["aux_confidence"]["artifacts"]) == ["biamat/figure_carrier", "biamat/table16"]
    assert p["per_artifact"]["biamat/table10"]["analyses"] == 1
    run = sum(r["gpu_hours"] for r in p["runs"] if "biamat/table10" in r["artifacts"])
    assert p["per_artifact"]["biamat/table10"]["gpu_hours"] == pytest.approx(run + cost["fid"]["gpu_hours"], abs=0.06)


def test_a_show_class_without_images_is_one_clear_error(tiny, tmp_path):
    import shutil

    from reproduce.data import load_split

    root, trained = tiny
    write_generated("toyfew", root, num_classes=5, image_size=8, n_train=2, n_test=2, domain=2)
    _, y = load_split("toyfew", "train", root)
    empty = sorted(set(range(5)) - set(y.tolist()))[0]
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    with open(run / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"epoch": 99, "threshold": 0.3}) + "\n")
    given = {"model": {"run": "r"}, "dataset": "toyfew", "superclasses": {"X": ["x"]},
             "stand_in": {"superclasses": {"A": ["class0"]}, "show_class": f"class{empty}"}}
    with pytest.raises(ConfigError, match=f"show_class 'class{empty}' has no image"):
        _run("aux_confidence", given, {"model": run}, root, tmp_path / "bad")
