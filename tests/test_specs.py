"""Every pipelines/ spec loads strictly, matches its published CSVs, and equals the papers' settings."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from reproduce.speclang.numbers import parse_number
from reproduce.errors import ConfigError
from reproduce.pipeline.dag import Dag
from reproduce.claims import check
from reproduce.jobs.diff import published_values
from reproduce.pipeline.scales import load_scale
from reproduce.pipeline.papers import load_all, load_spec
from reproduce.pipeline.spec import read_published

ROOT = Path(__file__).resolve().parents[1]
SPECS = sorted((ROOT / "pipelines").glob("*/spec.yaml"))


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch):
    monkeypatch.chdir(ROOT)


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.parent.name)
def test_spec_loads_and_claims_hold_on_published(path):
    spec = load_spec(path)
    for art in spec.artifacts.values():
        if art.published is None:
            continue
        values = {None: published_values(art), art.name: published_values(art)}
        values.update({n: published_values(a) for n, a in spec.artifacts.items() if a.published is not None})
        for claim in art.claims:
            verdict, details = check(claim, values)
            # unknown only where the paper publishes none of what is missing (Figure 10's validation
            # curves and SVHN panel are not in the digitized PDFs)
            missing = [r for e in claim.checks for r in e.refs
                       if values.get(r.artifact, {}).get(r.row, {}).get(r.column) is None]
            assert verdict in ("holds", "within noise") or (verdict == "unknown" and missing and all(
                _never_published(values.get(r.artifact, {}), r) for r in missing)), \
                f"{art.name} {claim.id}: {details}"


def _never_published(pub, ref) -> bool:
    """The paper publishes no value of the ref's row, or none of its column in any row."""
    return ref.row not in pub or all((cols or {}).get(ref.column) is None for cols in pub.values())


def _dag(scale: str) -> Dag:
    return Dag({"scale": scale, "data_dir": "data", "work_dir": "work", "results_dir": "results",
                "device": "cpu", "download": False})


def test_table1_and_table2_need_30_distinct_runs():
    dag = _dag("paper")
    arts = [dag.artifact("biamat", "table1"), dag.artifact("biamat", "table2")]
    jobs = dag.train_jobs(arts)
    assert len(jobs) == 30
    # the AT baseline is Table 1's `baseline` and Table 2's first row: one run
    assert dag.run_id("biamat", arts[0].rows["baseline"].run) == dag.run_id("biamat", arts[1].rows["cifar10-at"].run)


def test_identical_configs_under_two_names_are_one_run():
    dag = _dag("paper")
    assert dag.run_id("biamat", "cifar10-at-biamat-imagenet-pi0.55") == dag.run_id("biamat", "cifar10-at-biamat-imagenet")
    assert dag.run_id("biamat", "cifar10-trades-biamat-imagenet-pi0.5") == \
        dag.run_id("biamat", "cifar10-trades-biamat-imagenet")
    assert dag.run_id("biamat", "cifar10-at-biamat-imagenet-pi0.5") != dag.run_id("biamat", "cifar10-at-biamat-imagenet")


class _Configs:
    """run_config(name, scale) over the node graph, as the trainer receives it."""

    def __init__(self, scale: str) -> None:
        self.dag = _dag(scale)

    def run_config(self, name: str, _scale=None) -> dict:
        return self.dag.configs[self.dag.run_id("biamat", name)]


def test_paper_scale_configs_equal_the_hyperparameter_tables():
    spec = _Configs("paper")
    paper = None
    at = spec.run_config("cifar10-at", paper)
    assert at["model"]["name"] == "wrn-28-10" and at["epochs"] == 100 and at["batch_size"] == 128
    assert at["optim"]["weight_decay"] == 2e-4 and at["optim"]["lr"] == 0.1
    assert at["schedule"]["milestones"] == [0.6, 0.9]
    assert parse_number(at["attack"]["eps"], "eps") == pytest.approx(8 / 255)
    assert parse_number(at["attack"]["step_size"], "s") == pytest.approx(2 / 255) and at["attack"]["steps"] == 10
    tr = spec.run_config("cifar10-trades", paper)
    assert tr["model"]["name"] == "wrn-34-10" and tr["epochs"] == 110
    assert tr["schedule"]["milestones"] == [99, 104] and tr["optim"]["weight_decay"] == 5e-4
    assert tr["attack"]["eps"] == 0.031 and tr["method"]["beta"] == 6.0
    # Table 13: alpha / pi per row
    expect = {"cifar10-at-biamat-svhn": (1.0, 0.55), "cifar10-trades-biamat-places365": (0.5, 0.5),
              "cifar100-at-biamat-imagenet": (1.0, 0.5), "cifar100-trades-biamat-imagenet": (1.0, 0.3),
              "imgnet100-at-biamat-imgnet900": (1.0, 0.5)}
    for name, (alpha, pi) in expect.items():
        m = spec.run_config(name, paper)["method"]
        assert (m["alpha"], m["pi"], m["warmup_epochs"]) == (alpha, pi, 5), name
    # Table 12 (naive) and the shuffle test: no warm-up
    naive = spec.run_config("cifar10-at-biamat-naive-imagenet", paper)["method"]
    assert (naive["labels"], naive["alpha"], naive["warmup_epochs"]) == ("ytilde", 1.0, 0)
    yer = spec.run_config("cifar10-at-biamat-yer-svhn", paper)["method"]
    assert (yer["labels"], yer["warmup_epochs"]) == ("yer", 0)
    assert spec.run_config("imgnet100-at", paper)["model"]["name"] == "wrn-16-10"


def test_smoke_scale_rescales_but_never_shares_run_ids_with_paper():
    paper, smoke = _dag("paper"), _dag("smoke")
    assert set(paper.graph.runs).isdisjoint(smoke.graph.runs)
    tr = _Configs("smoke").run_config("cifar10-trades-biamat-imagenet")
    assert tr["epochs"] == 6 and tr["model"]["name"] == "small_cnn"
    assert tr["method"]["warmup_epochs"] == 1  # 5 of 110 epochs, at least one
    assert tr["scale"] == "smoke"


def _copy_spec(tmp_path: Path) -> Path:
    dst = tmp_path / "pipelines" / "biamat"
    shutil.copytree(ROOT / "pipelines" / "biamat", dst)
    return dst / "spec.yaml"


def _edit(path: Path, fn) -> None:
    raw = yaml.safe_load(path.read_text())
    fn(raw)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))


@pytest.mark.parametrize("edit, needle", [
    (lambda r: r["runs"]["cifar10-at"].update({"epoch": 3}), "epoch"),
    (lambda r: r["runs"]["cifar10-at"].update({"model": {"name": "wrn-99-1"}}), "wrn-99-1"),
    (lambda r: r["runs"]["cifar10-at"].update({"method": {"name": "at", "beta": 1}}), "beta"),
    (lambda r: r["artifacts"]["table2"].update({"colour": "red"}), "colour"),
    (lambda r: r["artifacts"]["table2"]["rows"].pop(0), "cifar10-at"),
    (lambda r: r["runs"]["cifar10-at-biamat-svhn"].update({"data": {"aux": ["svhnn"]}}), "svhnn"),
])
def test_bad_spec_names_file_and_key(tmp_path, edit, needle):
    path = _copy_spec(tmp_path)
    _edit(path, edit)
    with pytest.raises(ConfigError) as e:
        load_spec(path)
    # the spec or, for rows, the published CSV beside it that no longer matches
    assert str(path.parent) in str(e.value) and needle in str(e.value)


def test_published_csv_mismatch_is_an_error(tmp_path):
    path = _copy_spec(tmp_path)
    csv_path = path.parent / "published" / "table2.csv"
    lines = csv_path.read_text().splitlines()
    csv_path.write_text("\n".join(lines[:-1] + [lines[-1].replace("imgnet900", "imgnet901", 1)]) + "\n")
    with pytest.raises(ConfigError, match="table2.csv"):
        load_spec(path)
