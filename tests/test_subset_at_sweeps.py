"""Subset AT Figures 4-7 (CIFAR parts): specs, shared runs, costs, A/B reductions, claims, AA pins."""

from __future__ import annotations

import re

from pathlib import Path

import numpy as np
import pytest

from reproduce.analyses.subset_rankings import random_class_ranking, top_fraction
from reproduce.claims import check
from reproduce.claims.grammar import evaluate, parse
from reproduce.errors import ConfigError
from reproduce.evaluate import PROTOCOLS
from reproduce.pipeline.dag import Dag
from reproduce.pipeline.plan import gpu_hours
from reproduce.pipeline.resources import protocol_passes
from reproduce.jobs.values import _eval_value, subset_classes

ROOT = Path(__file__).resolve().parents[1]
FIGS = ["figure4", "figure5_c10", "figure5_c100", "figure6_c10", "figure6_c100", "figure7"]


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch):
    monkeypatch.chdir(ROOT)


def _dag(scale: str) -> Dag:
    return Dag({"scale": scale, "data_dir": "data", "work_dir": "work", "results_dir": "results",
                "device": "cpu", "download": False})


@pytest.fixture(scope="module")
def paper() -> Dag:
    import os

    old = os.getcwd()
    os.chdir(ROOT)
    try:
        return _dag("paper")
    finally:
        os.chdir(old)


def test_random_class_draws_by_hand():
    v = random_class_ranking(10, 3, 10)
    perm = [int(c) for c in np.random.default_rng(3).permutation(10)]
    assert v["order"] == perm and v["classes_top_1"] == perm[:1] and v["classes_top_9"] == perm[:9]
    assert "classes_top_10" not in v
    w = random_class_ranking(100, 0, 10)  # CIFAR-100: 10 classes a tenth, nested
    assert len(w["classes_top_3"]) == 30 and w["classes_top_2"] == w["classes_top_3"][:20]


def test_key_fractions_known_before_the_analysis_runs():
    assert top_fraction("top_3", 10) == pytest.approx(0.3)
    assert top_fraction("classes_top_2", 10, 100, 10) == pytest.approx(0.2)
    assert top_fraction("classes_top_2", 10, 10, None) == pytest.approx(0.2)
    assert top_fraction("classes_top_1", 10, 20, 10) == pytest.approx(0.1)  # smoke CIFAR-100: 2 of 20
    assert top_fraction("indices", 10) is None


def test_random_draws_dedupe_with_listed_subsets_and_keep_training_seed_123(paper):
    g = paper.graph
    singles = {g.run_id("subset_at", f"c10-csat-single-{c}") for c in range(10)}
    draws = g.run_ids("subset_at", "c10-csat-rand-1")
    assert len(draws) == 10 and set(draws) <= singles  # every size-1 draw is a Figure 2 run
    first = [int(np.random.default_rng(s).permutation(10)[0]) for s in range(10)]
    assert draws == [g.run_id("subset_at", f"c10-csat-single-{c}") for c in first]
    for rid in g.run_ids("subset_at", "c10-csat-rand-5"):
        cfg = g.runs[rid].cfg
        assert cfg["seed"] == 123 and "ranking" not in cfg["method"] and len(cfg["method"]["subset"]["classes"]) == 5
    # ranked runs keep the analysis as an input; the ranking seed never reaches the training seed
    dec = g.runs[g.run_id("subset_at", "c10-csat-dec-3")]
    assert dec.cfg["seed"] == 123 and dec.deps[0][0] == "analysis"
    esat = g.runs[g.run_ids("subset_at", "c10-esat-rand-3")[4]]
    assert esat.cfg["seed"] == 123 and esat.cfg["method"]["ranking"]["key"] == "top_3"


def test_d1_code_reading_shares_figure7_wover_with_figure5(paper):
    g = paper.graph
    for k in (1, 5, 9):
        assert g.run_id("subset_at", f"c100-csat-wover-{k}") == g.run_id("subset_at", f"c100-csat-dec-{k}")
        assert g.run_id("subset_at", f"c100-csat-w1-{k}") != g.run_id("subset_at", f"c100-csat-dec-{k}")
    cfg = g.runs[g.run_id("subset_at", "c100-std")].cfg
    assert cfg["model"]["normalize"] == "none" and cfg["data"]["primary"] == "cifar100"
    full = g.runs[g.run_id("subset_at", "c100-full")].cfg
    assert full["model"]["normalize"]["std"] == [0.2023, 0.1994, 0.2010]  # CIFAR-10's (notes T10)
    assert full["selection"]["protocol"] == "aa-l2-reduced"


def test_figure4_needs_no_run_beyond_figure5(paper):
    jobs4 = set(paper.train_jobs([paper.artifact("subset_at", "figure4")]))
    jobs5 = set(paper.train_jobs([paper.artifact("subset_at", "figure5_c10")]))
    assert jobs4 <= jobs5


def test_planner_charges_the_attacked_share(paper):
    g = paper.graph
    cfg = lambda n: g.runs[g.run_id("subset_at", n)].cfg  # noqa: E731
    # 201 epochs x 0.0197 h a pass-epoch x (1 + 7 |A|/|D|)
    assert gpu_hours(cfg("c10-csat-dec-2"), graph=g) == pytest.approx(201 * 0.0197 * (1 + 7 * 0.2))
    assert gpu_hours(cfg("c10-csat-single-3"), graph=g) == pytest.approx(201 * 0.0197 * 1.7)
    assert gpu_hours(cfg("c100-esat-dec-9"), graph=g) == pytest.approx(201 * 0.0197 * (1 + 7 * 0.9))
    assert gpu_hours(cfg("c10-full"), graph=g) == pytest.approx(201 * 0.0197 * 8)


def test_smoke_dag_of_figures_4_to_7_stays_small():
    dag = _dag("smoke")
    jobs = dag.train_jobs([dag.artifact("subset_at", f) for f in FIGS])
    # k thinned to both ends (1, 9; Figure 4: 2, 8), one seed, and smoke's filters keep one size per
    # strategy: c10 std, full, CSAT dec-1, dec-2, rand-2, rand-1 (a single-class run), ESAT dec-1,
    # rand-1; c100 std, full, CSAT dec-1, rand-1, ESAT dec-1, rand-1, Figure 7's w1-1 and wbal-1 and
    # the CIFAR-10 fine-tunes of those two and of c100-full
    names = sorted(re.sub(r"-[0-9a-f]{8}$", "", j) for j in jobs)
    assert len(names) == 19 and {"c10-from-c100-csat-w1-1", "c10-from-c100-full", "c100-esat-rand-1-s0"} <= set(names)
    assert dag.artifact("subset_at", "figure5_c10").thinned  # the record of what was left out


def test_where_subset_a_and_b_by_hand():
    res = {"accuracy": 50.0, "correct_mask": [1, 0, 1, 1, 0, 0], "labels": [0, 1, 2, 0, 1, 2]}
    assert _eval_value(res, {"classes": [0, 2]}, "t") == pytest.approx(75.0)      # 3 of 4
    assert _eval_value(res, {"classes_not": [0, 2]}, "t") == pytest.approx(0.0)   # class 1: 0 of 2
    assert subset_classes({"by": "class", "subset": {"classes": [3, 5]}}, {}) == [3, 5]
    assert subset_classes({"by": "example", "subset": {"indices": [3]}}, {}) is None


def test_where_subset_rejects_other_words(paper):
    from reproduce.artifacts.base import check_source

    check_source({"eval": "clean", "where": {"subset": "B"}}, "x")
    with pytest.raises(ConfigError, match="subset: A|B"):
        check_source({"eval": "clean", "where": {"subset": "C"}}, "x")


def _vals(rows: dict[str, dict[str, float]]) -> dict:
    return {None: rows}


def test_figure4_claims_on_a_hand_made_frame(paper):
    art = paper.specs["subset_at"].artifacts["figure4"]
    rows = {f"dec-{k}": {"rob_all": 30 + k, "rob_B": 20 + k} for k in (2, 4, 6, 8)}
    rows.update({f"rand-{k}": {"rob_all": 28 + k, "rob_B": 15 + k, "rob_all_sd": 1.5} for k in (2, 4, 6, 8)})
    rows["rand-8"]["rob_all"] = 37.0  # |38 - 37| = 1 <= max(1, 1.5)
    claims = {c.id: c for c in art.claims}
    assert check(claims["F4-a"], _vals(rows))[0] == "holds"
    assert check(claims["F4-b"], _vals(rows))[0] == "holds"
    rows["rand-8"]["rob_all"] = 35.0  # 3 points apart: more than max(1, sd)
    assert check(claims["F4-a"], _vals(rows))[0] == "fails"
    rows["rand-4"]["rob_B"] = 30.0
    assert check(claims["F4-b"], _vals(rows))[0] == "fails"


def test_figure5_count_claim_needs_7_of_9(paper):
    art = paper.specs["subset_at"].artifacts["figure5_c10"]
    claim = next(c for c in art.claims if c.id == "F5-b")
    rows = {f"dec-{k}": {"rob_B": 30.0} for k in range(1, 10)}
    rows.update({f"inc-{k}": {"rob_B": 20.0 if k <= 7 else 40.0} for k in range(1, 10)})
    assert check(claim, _vals(rows))[0] == "holds"          # 7 of 9
    rows["inc-7"]["rob_B"] = 40.0
    assert check(claim, _vals(rows))[0] == "fails"          # 6 of 9


def test_grammar_count_increasing_within_and_sd_refs():
    v = {"a.x": 1.0, "b.x": 2.0, "c.x": 1.6}
    look = lambda r: v[f"{r.row}.{r.column}"]  # noqa: E731
    assert evaluate(parse("count([a.x < b.x, b.x < c.x, a.x < c.x]) >= 2", "t"), look)[0] is True
    assert evaluate(parse("count([a.x < b.x, b.x < c.x, a.x < c.x]) >= 3", "t"), look)[0] is False
    assert evaluate(parse("increasing_within(0.5, [a.x, b.x, c.x])", "t"), look)[0] is True   # 2 -> 1.6
    assert evaluate(parse("increasing_within(0.3, [a.x, b.x, c.x])", "t"), look)[0] is False


def test_reduced_autoattack_protocols():
    p = PROTOCOLS.get("aa-l2-reduced")
    assert (p.norm, p.eps, p.version, p.attacks, p.restarts, p.targets) == \
        ("l2", 0.5, "custom", ("apgd-ce", "apgd-t"), 5, 9)
    assert PROTOCOLS.get("aa-l2-eps3-reduced").eps == 3.0 and PROTOCOLS.get("aa-l2-eps3-standard").version == "standard"
    assert "targets" not in PROTOCOLS.get("aa-l2-standard").params()  # older records unchanged
    # costs.yaml: APGD-CE 100 a restart, APGD-T 900 for 9 targets, a forward 0.34
    assert protocol_passes(p) == pytest.approx(5 * 100 + 900 + 0.34)
    assert protocol_passes(PROTOCOLS.get("aa-l2-smoke")) == pytest.approx(100 * 20 / 100 + 0.34)
    with pytest.raises(ConfigError, match="targets"):
        type(p)("x", "pgd", targets=3)


def test_autoattack_pins_restarts_and_targets(monkeypatch):
    import torch
    from torch import nn

    import pyautoattack

    seen = {}

    def fake(self, x, y, batch_size=250, state_path=None):
        seen.update(restarts=self.apgd.n_restarts, targets=self.apgd_targeted.n_target_classes,
                    attacks=list(self.attacks_to_run), iters=(self.apgd.n_iter, self.apgd.n_iter_2))
        return x, y

    monkeypatch.setattr(pyautoattack.AutoAttack, "run_standard_evaluation", fake)
    monkeypatch.setattr("reproduce.attacks.autoattack.backend", lambda: "pyautoattack")
    from reproduce.evaluate import evaluate

    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 10))
    x, y = torch.rand(4, 3, 2, 2), torch.arange(4)
    evaluate(model, x, y, "aa-l2-reduced")
    assert seen == {"restarts": 5, "targets": 9, "attacks": ["apgd-ce", "apgd-t"], "iters": (100, 22)}
    evaluate(model, x, y, "aa-l2-smoke")
    assert seen["restarts"] == 1 and seen["attacks"] == ["apgd-ce"] and seen["iters"] == (20, 4)  # 0.22 x 20


def test_curve_panels_draw_a_band_for_seed_groups(tmp_path, monkeypatch):
    from reproduce.artifacts import KINDS
    from reproduce.artifacts.base import Artifact, Row
    from reproduce.artifacts.frame import Frame

    cls = KINDS.get("curve")
    opts = {**cls.options, "x": "@x", "y": "a", "panels": ["b"]}
    art = Artifact("p", "x", "curve", "t", "s", None, [], ["a", "b"],
                   {r: Row(r, None, {}) for r in ("r1", "r2")}, 1.0, 0.0, [], opts)
    rows = [{"row": "r1", "series": "rand", "x": 1, "a": 1.0, "a_sd": 0.5, "b": 2.0, "scale": "smoke"},
            {"row": "r2", "series": "rand", "x": 2, "a": 3.0, "a_sd": 0.5, "b": 1.0, "scale": "smoke"}]
    bands = []
    import matplotlib.axes

    orig = matplotlib.axes.Axes.fill_between
    monkeypatch.setattr(matplotlib.axes.Axes, "fill_between",
                        lambda self, x, lo, hi, **kw: bands.append((list(lo), list(hi))) or orig(self, x, lo, hi, **kw))
    cls().render(art, Frame(rows, {}, ["a", "b"], "smoke", False), tmp_path / "x.csv", "banner")
    assert bands == [([0.5, 2.5], [1.5, 3.5])]  # column a has a spread; column b has none
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.csv", "x.pdf", "x.png"]
    with pytest.raises(ConfigError, match="panels"):
        cls.check(Artifact("p", "x", "curve", "t", "s", None, [], ["a"], {}, 1.0, 0.0, [], {**opts, "panels": ["z"]}), "w")
