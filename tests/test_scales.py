"""The scale language: eight keys at most, one ordered override list, one evaluation size, and
epoch-valued or data-sized analysis parameters that follow the scale by themselves."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from reproduce.errors import ConfigError
from reproduce.pipeline.nodes import Graph
from reproduce.pipeline.scales import SCALES_DIR, Scale, load_scale, parse_scale, rescaled_epoch
from reproduce.pipeline.papers import load_all

SCHEMA = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "scale.schema.yaml"
NAMES = sorted(p.stem for p in SCALES_DIR.glob("*.yaml"))


def test_every_scale_file_has_at_most_eight_keys_and_the_schema_allows_no_more() -> None:
    schema = yaml.safe_load(SCHEMA.read_text())
    assert schema["additionalProperties"] is False and len(schema["properties"]) <= 8
    assert schema["maxProperties"] <= 8
    assert set(NAMES) >= {"paper", "smoke", "cpu", "budget", "shapes"}
    for name in NAMES:
        raw = yaml.safe_load((SCALES_DIR / f"{name}.yaml").read_text())
        assert len(raw) <= 8 and set(raw) <= set(schema["properties"]), name
        load_scale(name)


def _scale(tmp_path: Path, **keys) -> Scale:
    raw = {"scale": "t", "description": "d", "comparable": False, "data": {"source": "prepared"}, **keys}
    return parse_scale(raw, "t", tmp_path / "t.yaml")


@pytest.mark.parametrize("keys, says", [
    ({"run_overrides": {"epochs": 2}}, "key 'run_overrides' is no longer a scale key; it became overrides"),
    ({"thin": {"seeds": 1}}, "select.seeds"),
    ({"colour": "red"}, "colour"),
    ({"overrides": [{"when": {"analysis": "difficulty", "method": "at"}, "set": {"min_epoch": 1}}]},
     "overrides[0].when: an analysis selector takes only analysis and paper"),
    ({"overrides": [{"when": {"analysis": "dificulty"}, "set": {"min_epoch": 1}}]},
     "overrides[0].when.analysis: 'dificulty' names no registered analysis"),
    ({"overrides": [{"when": {"method": "hta"}, "set": {"epochs": 1}}]}, "overrides[0].when.method: 'hta'"),
    ({"overrides": [{"when": {"colour": "x"}, "set": {"epochs": 1}}]}, "overrides.0.when"),
    ({"overrides": [{"set": {"epoch": 2}}]}, "overrides[0].set.epoch: no such run config key"),
    ({"overrides": [{"set": {"selection": {"nn": 2}}}]}, "overrides[0].set.selection.nn: no such run config key"),
    ({"overrides": [{"when": {"analysis": "difficulty"}, "set": {"min_epochs": 1}}]},
     "overrides[0].set.min_epochs: analysis 'difficulty' has no parameter"),
    ({"overrides": [{"when": {"method": "biamat"}, "set": {"method": {"aux_batch": 2}}}]},
     "overrides[0].set.method.aux_batch: method 'biamat' has no parameter"),
])
def test_a_bad_scale_fails_in_one_line_naming_the_file_and_the_key(tmp_path, keys, says) -> None:
    with pytest.raises(ConfigError) as e:
        _scale(tmp_path, **keys)
    msg = str(e.value)
    assert "\n" not in msg and str(tmp_path / "t.yaml") in msg and says in msg, msg


def test_overrides_apply_in_order_and_selectors_see_earlier_entries(tmp_path) -> None:
    scale = _scale(tmp_path, overrides=[
        {"set": {"epochs": 10, "optim": {"lr": 0.2}}},
        {"when": {"model": "wrn-34-10"}, "set": {"model": {"name": "resnet18"}}},
        {"when": {"model": "resnet18"}, "set": {"batch_size": 64}},   # sees the swap above
        {"when": {"paper": "hat", "run": "hat-*"}, "set": {"optim": {"lr": 0.05}}},
        {"when": {"method": "trades"}, "set": {"method": {"beta": 1.0}}},
        {"when": {"analysis": "difficulty"}, "set": {"min_epoch": 3}},
        {"when": {"analysis": "difficulty", "paper": "hat"}, "set": {"min_epoch": 4}},
    ])
    run = {"epochs": 100, "model": {"name": "wrn-34-10", "normalize": "cifar"}, "method": {"name": "trades", "beta": 6.0}}
    hat = scale.apply(run, "hat", "hat-b1")
    assert hat["optim"]["lr"] == 0.05 and hat["model"] == {"name": "resnet18", "normalize": "cifar"}
    assert hat["batch_size"] == 64 and hat["method"]["beta"] == 1.0 and hat["epochs"] == 10
    other = scale.apply(run, "hat", "at")
    assert other["optim"]["lr"] == 0.2
    assert scale.apply({**run, "method": {"name": "at"}}, "x", "y")["method"] == {"name": "at"}
    assert scale.analysis_params("difficulty", "hat") == {"min_epoch": 4}
    assert scale.analysis_params("difficulty", "biamat") == {"min_epoch": 3}
    assert scale.analysis_params("subset", "hat") == {}


def test_one_n_caps_evaluations_selection_and_eval_logs_unless_the_scale_says_fewer(tmp_path) -> None:
    run = {"epochs": 10, "selection": {"protocol": "pgd10", "n": 1000},
           "eval_logs": [{"name": "test", "split": "test", "protocol": "clean"}]}
    every = _scale(tmp_path, eval={"n": 100})
    cfg = every.apply(run)
    assert cfg["selection"]["n"] == 100 and cfg["eval_logs"][0]["n"] == 100 and every.eval_cap("protocols") == 100
    assert _scale(tmp_path, eval={"n": 5000}).apply(run)["selection"]["n"] == 1000  # a cap, never a raise
    only = _scale(tmp_path, eval={"n": 100, "caps": ["protocols"]}).apply(run)
    assert only["selection"]["n"] == 1000 and "n" not in only["eval_logs"][0]
    whole = _scale(tmp_path, eval={"n": None})
    assert whole.apply(run) == {**run, "scale": "t"} and whole.eval_cap("protocols") is None


@pytest.fixture(scope="module")
def specs():
    return load_all()


def _analyses(graph: Graph, kind: str):
    return [a for a in graph.analyses.values() if a.kind == kind]


def test_epoch_valued_analysis_params_follow_their_runs_schedule(specs) -> None:
    """Nothing in the scale names min_epoch or early_epochs: each moves with the schedule of the run
    it counts epochs of, as milestones do; a value a scale sets itself stays."""
    base = dict(load_scale("shapes").raw)
    free = Graph(specs, Scale("t", Path("t.yaml"), {**base, "overrides": [{"set": {"epochs": 20}}]}))
    seen = 0
    for node in _analyses(free, "difficulty") + _analyses(free, "group_curves"):
        param, default = ("min_epoch", 10) if node.kind == "difficulty" else ("early_epochs", 20)
        decl = specs[node.paper].analyses[node.name]
        run = decl.params["run"]
        run = run["run"] if isinstance(run, dict) else run
        old = specs[node.paper].runs[run].cfg["epochs"]
        assert node.params[param] == rescaled_epoch(decl.params.get(param, default), old, 20), node.id
        seen += old != 20
    assert seen > 10  # schedules of 100, 200 and 600 epochs all moved
    pinned = Graph(specs, Scale("t", Path("t.yaml"), {**base, "overrides": [
        {"set": {"epochs": 20}}, {"when": {"analysis": "difficulty"}, "set": {"min_epoch": 3}}]}))
    assert {a.params["min_epoch"] for a in _analyses(pinned, "difficulty")} == {3}
    paper = Graph(specs, load_scale("paper"))
    assert {a.params["min_epoch"] for a in _analyses(paper, "difficulty")} == {10}


def test_data_sized_counts_switch_on_where_the_data_is_smaller(specs) -> None:
    """scale_n (subsets, evaluation index lists) is on where the scale's split or a run's pool is
    smaller than the catalog's: generated data, or cpu's 5,000-image pool; off on full data."""
    def flags(scale: str, kind: str) -> set[bool]:
        return {bool(a.params.get("scale_n")) for a in _analyses(Graph(specs, load_scale(scale)), kind)}

    assert flags("shapes", "eval_indices") == flags("shapes", "subset") == {True}
    assert flags("cpu", "subset") == {True} and flags("cpu", "eval_indices") == {False}
    assert flags("paper", "subset") == flags("budget", "eval_indices") == {False}


def test_a_smaller_batch_takes_a_smaller_step_unless_the_scale_sets_the_lr(tmp_path):
    from reproduce.pipeline.scales import parse_scale

    run = {"name": "r", "batch_size": 128, "optim": {"lr": 0.2, "momentum": 0.9}}
    raw = {"scale": "t", "description": "d", "comparable": False, "data": {"source": "prepared"}}

    def scale(*entries):
        return parse_scale({**raw, "overrides": list(entries)}, "t", tmp_path / "t.yaml")

    assert scale({"set": {"batch_size": 64}}).apply(run)["optim"] == {"lr": 0.1, "momentum": 0.9}
    assert scale({"set": {"batch_size": 64, "optim": {"lr": 0.05}}}).apply(run)["optim"]["lr"] == 0.05
    assert scale({"set": {"epochs": 3}}).apply(run)["optim"]["lr"] == 0.2
