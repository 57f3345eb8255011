"""The node model: expansion, references, identity across papers, claims, artifact kinds, bad specs."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from reproduce.artifacts import KINDS
from reproduce.artifacts.frame import Frame
from reproduce.claims import check
from reproduce.errors import ConfigError
from reproduce.speclang.expand import expand_entries, is_sweep
from reproduce.pipeline.nodes import Graph
from reproduce.pipeline.scales import load_scale
from reproduce.pipeline.papers import load_all, load_spec

ROOT = Path(__file__).resolve().parents[1]

BASE = {"data": {"primary": "cifar10"}, "model": {"name": "small_cnn"}, "epochs": 2,
        "attack": {"steps": 2}}


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch):
    monkeypatch.chdir(ROOT)


def _spec(paper: str = "pa", **over) -> dict:
    raw = {
        "paper": paper, "title": "t",
        "presets": {"base": BASE},
        "protocol_sets": {"s": {"clean": "clean"}},
        "runs": {
            "std": {"presets": ["base"], "method": {"name": "standard"}},
            "hat-b{beta}": {"presets": ["base"], "for": {"beta": [1.0, 2.5]},
                            "method": {"name": "hat", "beta": "{beta}", "helper": "std"}},
            "at": {"presets": ["base"], "method": {"name": "at"}, "seeds": [1, 2]},
        },
        "analyses": {"dirs": {"kind": "directions", "model": {"run": "std"}, "n": 8}},
        "artifacts": {"t": {"kind": "table", "title": "t", "source": "s", "protocols": "s", "columns": ["clean"],
                            "rows": {"hat-b{beta}": {"for": {"beta": [1, 2.5]}, "run": "hat-b{beta}"},
                                     "at": {"run": "at"}},
                            "claims": [{"id": "c1", "text": "x", "all": "hat-b{b}.clean > at.clean",
                                        "for": {"b": [1, 2.5]}}]}},
    }
    raw.update(over)
    return raw


def _write(tmp_path: Path, raw: dict) -> Path:
    path = tmp_path / "pipelines" / raw["paper"] / "spec.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_for_and_seeds_expand_with_typed_values():
    out = expand_entries({"r-b{beta}": {"for": {"beta": [1.0, 2.5]}, "seeds": [1, 2], "m": {"b": "{beta}",
                                                                                             "h": "std-s{seed}"}}}, "w")
    assert sorted(out) == ["r-b1-s1", "r-b1-s2", "r-b2.5-s1", "r-b2.5-s2"]
    assert out["r-b1-s2"]["m"] == {"b": 1.0, "h": "std-s2"} and out["r-b1-s2"]["seed"] == 2
    assert out["r-b1-s2"]["_group"] == "r-b1"


def test_references_resolve_to_ids_and_upstream_changes_propagate(tmp_path):
    spec = load_spec(_write(tmp_path, _spec()))
    g = Graph({"pa": spec}, load_scale("smoke"))
    hat = g.runs[g.run_id("pa", "hat-b1")]
    std_id = g.run_id("pa", "std")
    assert hat.cfg["method"]["helper"] == {"run": std_id} and ("run", std_id) in hat.deps
    assert g.run_ids("pa", "at") == [g.run_id("pa", "at-s1")]  # the smoke scale keeps one seed per group
    gp = Graph({"pa": spec}, load_scale("paper"))
    assert gp.run_ids("pa", "at") == [gp.run_id("pa", "at-s1"), gp.run_id("pa", "at-s2")]
    raw = _spec()
    raw["runs"]["std"]["optim"] = {"weight_decay": 1.0e-3}  # change the helper: every HAT id changes
    g2 = Graph({"pa": load_spec(_write(tmp_path / "b", raw))}, load_scale("smoke"))
    assert g2.run_id("pa", "std") != std_id and g2.run_id("pa", "hat-b1") != hat.id
    assert g2.run_id("pa", "at-s1") == g.run_id("pa", "at-s1")


def test_identical_training_in_two_papers_is_one_job(tmp_path):
    a, b = _spec("pa"), _spec("pb")
    b["runs"] = {"baseline-standard": copy.deepcopy(a["runs"]["std"]), **{k: v for k, v in b["runs"].items()
                                                                         if k != "std"}}
    b["runs"]["hat-b{beta}"]["method"]["helper"] = "baseline-standard"
    b["analyses"]["dirs"]["model"] = {"run": "baseline-standard"}
    _write(tmp_path, a)
    _write(tmp_path, b)
    specs = load_all(str(tmp_path / "pipelines"))
    g = Graph(specs, load_scale("paper"))
    assert g.run_id("pa", "std") == g.run_id("pb", "baseline-standard")
    node = g.runs[g.run_id("pa", "std")]
    assert node.names == ["pa/std", "pb/baseline-standard"]
    assert g.run_id("pa", "hat-b1") == g.run_id("pb", "hat-b1")
    assert len(g.runs) == 5  # std, two HAT points, two AT seeds: declared twice, trained once


def _mutations():
    def unknown_kind(r):
        r["analyses"]["dirs"]["kind"] = "dirs-typo"

    def unknown_ref(r):
        r["runs"]["hat-b{beta}"]["method"]["helper"] = "std-typo"

    def cycle(r):
        r["runs"]["a1"] = {"presets": ["base"], "method": {"name": "standard"}, "init": {"run": "a2"}}
        r["runs"]["a2"] = {"presets": ["base"], "method": {"name": "standard"}, "init": {"run": "a1"}}

    def collision(r):
        r["runs"]["x{k}"] = {"presets": ["base"], "method": {"name": "standard"}, "for": {"k": [1, 1.0]}}

    def undefined_var(r):
        r["runs"]["y"] = {"presets": ["base"], "method": {"name": "trades", "beta": "{beta}"}}

    def bad_cell(r):
        r["artifacts"]["t"]["claims"][0]["all"] = "hat-b{b}.clean > nobody.clean"

    return [(unknown_kind, "dirs-typo"), (unknown_ref, "std-typo"), (cycle, "cycle"), (collision, "x1"),
            (undefined_var, "beta"), (bad_cell, "nobody.clean")]


@pytest.mark.parametrize("mutate, needle", _mutations(), ids=[f.__name__ for f, _ in _mutations()])
def test_bad_specs_give_one_line_errors_naming_file_and_key(tmp_path, mutate, needle):
    raw = _spec()
    mutate(raw)
    path = _write(tmp_path, raw)
    with pytest.raises(ConfigError) as e:
        load_spec(path)
    msg = str(e.value)
    assert str(path) in msg and needle in msg and "\n" not in msg


def test_claims_quantify_and_carry_noise(tmp_path):
    spec = load_spec(_write(tmp_path, _spec()))
    claim = spec.artifacts["t"].claims[0]
    assert [e.text for e in claim.checks] == ["hat-b1.clean > at.clean", "hat-b2.5.clean > at.clean"]
    values = {None: {"hat-b1": {"clean": 50.0}, "hat-b2.5": {"clean": 52.0}, "at": {"clean": 49.8}}}
    assert check(claim, values)[0] == "holds"
    claim.noise = 0.5  # 50.0 vs 49.8 is closer than the noise the claim can bear
    assert check(claim, values)[0] == "within noise"
    values[None]["hat-b1"]["clean"] = 40.0
    assert check(claim, values)[0] == "fails"
    del values[None]["at"]
    assert check(claim, values)[0] == "unknown"


@pytest.mark.parametrize("kind", ["table", "matrix", "curve", "lines", "scatter", "bar", "image_grid"])
def test_every_artifact_kind_renders(tmp_path, kind):
    from reproduce.artifacts.base import Artifact, Row

    opts = {"curve": {"x": "a", "y": "b"}, "scatter": {"x": "a", "y": "b"}, "lines": {"y": "a"},
            "bar": {"y": "a"}, "image_grid": {"y": "a"}}.get(kind, {})
    cls = KINDS.get(kind)
    art = Artifact("p", "x", kind, "title", "src", None, [], ["a", "b"],
                   {"r1": Row("r1", None, {}), "r2": Row("r2", None, {})}, 1.0, 0.0, [], {**cls.options, **opts})
    rows = [{"row": "r1", "a": 1.0, "b": 2.0, "scale": "smoke"}, {"row": "r2", "a": 3.0, "b": 1.0, "scale": "smoke"}]
    arrays = {}
    if kind in ("lines", "scatter"):
        arrays = {("r1", "a"): [1.0, 2.0, 3.0], ("r1", "b"): [2.0, 1.0, 0.5]}
    if kind == "image_grid":
        arrays = {("r1", "a"): [[0, 1], [1, 0]]}
    frame = Frame(rows, arrays, ["a", "b"], "smoke", False)
    out = tmp_path / "x.csv"
    cls().render(art, frame, out, "banner")
    produced = sorted(p.name for p in tmp_path.iterdir())
    expect = {"table": ["x.csv", "x.md"], "matrix": ["x.csv", "x.md", "x.pdf", "x.png"]}.get(
        kind, ["x.csv", "x.pdf", "x.png"])
    assert produced == expect


def test_a_figure_csv_keeps_the_scalars_its_claims_read(tmp_path):
    from reproduce.artifacts.base import Artifact, Row
    from reproduce.jobs.diff import read_values

    cls = KINDS.get("scatter")
    art = Artifact("p", "f", "scatter", "t", "s", None, [], ["x", "y", "m"], {"r0": Row("r0", None, {})}, 1.0, 0.0,
                   [], {**cls.options, "x": "x", "y": "y"})
    frame = Frame([{"row": "r0", "m": 0.7, "scale": "smoke"}], {("r0", "x"): [1.0, 2.0], ("r0", "y"): [3.0, 4.0]},
                  ["x", "y", "m"], "smoke", False)
    cls().render(art, frame, tmp_path / "f.csv", "banner")
    values, scales = read_values(tmp_path / "f.csv")
    assert values["r0"] == {"m": 0.7, "x": [1.0, 2.0], "y": [3.0, 4.0]} and scales == {"smoke"}


def test_sweep_thinning_keeps_evenly_spaced_ends_and_says_what_it_left_out(tmp_path):
    from reproduce.jobs.diff import diff_artifact
    from reproduce.pipeline.scales import Scale

    two = Scale("t", Path("t.yaml"), {"select": {"sweeps": 2}})
    three = Scale("t", Path("t.yaml"), {"select": {"sweeps": 3}})
    assert [i for i in range(5) if two.keeps(i, 5)] == [0, 4]
    assert [i for i in range(21) if three.keeps(i, 21)] == [0, 10, 20]
    assert [i for i in range(4) if three.keeps(i, 4)] == [0, 2, 3]  # round(1.5) = 2
    assert all(three.keeps(i, 3) for i in range(3)) and load_scale("paper").keeps(3, 21)
    assert is_sweep([1, 2, 3.5]) and not is_sweep(["cifar10", "svhn", "ti200"]) and not is_sweep([1, 2])

    raw = _spec()
    art = raw["artifacts"]["t"]
    art["rows"] = {"hat-b{beta}": {"for": {"beta": [1, 1.5, 2.5]}, "run": "hat-b{beta}"},
                   "{m}": {"for": {"m": ["at", "std"]}, "run": "{m}"}}
    art["claims"] = [{"id": "ends", "text": "x", "checks": ["hat-b2.5.clean > hat-b1.clean"]},
                     {"id": "mid", "text": "x", "checks": ["hat-b1.5.clean > at.clean"]},
                     # a conjunction is judged on the comparisons whose rows were built, and says so
                     {"id": "both", "text": "x", "checks": ["hat-b2.5.clean > at.clean", "hat-b1.5.clean > at.clean"]},
                     {"id": "both-fail", "text": "x", "checks": ["at.clean > std.clean", "hat-b1.5.clean > at.clean"]}]
    raw["runs"]["hat-b{beta}"]["for"]["beta"] = [1.0, 1.5, 2.5]
    spec = load_spec(_write(tmp_path, raw))
    full = spec.artifacts["t"]
    assert full.rows["hat-b1.5"].sweep == {"beta": (1, 3)} and full.rows["std"].sweep == {}
    thin = full.thin(two.keeps)
    assert list(thin.rows) == ["hat-b1", "hat-b2.5", "at", "std"]
    assert thin.thinned == ["hat-b1.5"] and full.thin(load_scale("paper").keeps) is full
    regen = tmp_path / "t.csv"
    regen.write_text("row,clean,scale\nhat-b1,50,smoke\nhat-b2.5,60,smoke\nat,40,smoke\nstd,70,smoke\n")
    res = diff_artifact(thin, regen, tmp_path / "t.diff.csv")
    verdicts = {c["claim"]: c["reproduced"] for c in res["claims"]}
    assert verdicts == {"ends": "holds (smoke scale)", "mid": "not checked (thinned at smoke scale)",
                        "both": "holds (smoke scale, 1 of 2 checks)", "both-fail": "fails (smoke scale, 1 of 2 checks)"}
    assert "cells left out: hat-b1.5.clean" in {c["claim"]: c["details"] for c in res["claims"]}["both"]

    # a scale that builds some rows of some artifacts only (config/scales/budget.yaml)
    budget = Scale("b", Path("b.yaml"), {"select": {"artifacts": {"p/t": {"rows": "^hat-"}, "p/u": None}}})
    assert budget.builds("p", "t") and budget.builds("p", "u") and not budget.builds("p", "v")
    cut = full.thin(budget.keeps, budget.row_filter("p", "t"))
    assert list(cut.rows) == ["hat-b1", "hat-b1.5", "hat-b2.5"] and cut.thinned == ["at", "std"]
    assert budget.row_filter("p", "u") is None
