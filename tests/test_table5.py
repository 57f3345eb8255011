"""Hard instances T5 (CIFAR-10-C D-distance) and F10 (data size): spec, claims, DAG expansion."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reproduce.claims import check
from reproduce.claims.grammar import FUNCTIONS, evaluate, parse
from reproduce.errors import ConfigError
from reproduce.pipeline.dag import Dag
from reproduce.pipeline.papers import load_spec

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "pipelines" / "hard_instances" / "spec.yaml"
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
TARGETS = ["results/hard_instances/table5.csv", "results/hard_instances/figure10.csv"]


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch):
    monkeypatch.chdir(ROOT)


def test_at_best_reads_the_curve_where_the_other_peaks():
    at_best = FUNCTIONS["at_best"]
    assert at_best([10, 30, 20], [1, 5, 4]) == 30
    assert at_best([10, 30, 20], [7, 5, 7]) == 10  # ties: the first peak, as argmax
    assert at_best([50.0], [0.0]) == 50.0
    with pytest.raises(ValueError, match="3 and 2 points"):
        at_best([1, 2, 3], [1, 2])
    e = parse("at_best(a.test, a.valid) > 25", "t")
    assert evaluate(e, lambda r: {"test": [10, 30, 20], "valid": [1, 5, 4]}[r.column]) == (True, 5.0)


def _f10(finals: list[float], best: list[float]) -> dict:
    """Curves of 3 epochs per row: the valid curve peaks at epoch 2, where test holds ``best``."""
    rows = ["c10-10k", "c10-20k", "c10-30k", "c10-40k", "c10-full", "svhn-20k", "svhn-30k", "svhn-40k", "svhn-full"]
    return {r: {"test": [1.0, b, f], "valid": [0.0, 9.0, 1.0]} for r, f, b in zip(rows, finals, best)}


def test_figure10_claims_by_hand():
    art = load_spec(SPEC).artifacts["figure10"]
    claims = {c.id: c for c in art.claims}
    rising = [40, 45, 50, 55, 60, 40, 45, 50, 55]
    vals = _f10(finals=[30, 35, 33, 40, 45, 30, 31, 32, 33], best=rising)  # one inversion at 30k
    assert check(claims["F10-a"], {None: vals})[0] == "holds"
    assert check(claims["F10-b"], {None: vals})[0] == "holds"
    assert check(claims["F10-c"], {None: vals})[0] == "holds"
    # monotone finals: F10-c fails; a dip in the selected accuracy: F10-a fails
    vals = _f10(finals=[30, 35, 38, 40, 45, 30, 31, 32, 33], best=[40, 45, 44, 55, 60, 40, 45, 50, 55])
    assert check(claims["F10-c"], {None: vals})[0] == "fails"
    assert check(claims["F10-a"], {None: vals})[0] == "fails"
    assert check(claims["F10-b"], {None: vals})[0] == "holds"


def test_table5_rows_columns_and_claims():
    spec = load_spec(SPEC)
    art = spec.artifacts["table5"]
    assert len(art.columns) == 18 and "frost" not in art.columns
    assert list(art.rows)[:3] == ["clean", "fgsm", "pgd"] and len(art.rows) == 15
    # the diffed rows read severity 3; an extra row its own severity
    assert art.rows["pgd"].cells["defocus"] == {"analysis": "t5-pgd", "key": "by_log.c10c-defocus_blur-3.D"}
    assert art.rows["clean-s5"].cells["jpeg"] == {"analysis": "t5-clean", "key": "by_log.c10c-jpeg_compression-5.D"}
    claims = {c.id: c for c in art.claims}
    assert set(claims) == {"T5-a", "T5-b", "T5-c"}
    # T5-a compares with table4's left block: a 0.03 entry fails it, 0.04 passes
    left = ("rn18-100", "rn18-200", "wrn34")
    t4 = {r: {c: 0.0355 if (r, c) == ("wrn34-200-pgd8", "rn18-100") else 0.02 for c in left}
          for r in ("rn18-100-pgd8", "rn18-200-pgd8", "wrn34-200-pgd8")}
    t5 = {r: {c: 0.2 for c in art.columns} for r in ("clean", "fgsm", "pgd")}
    assert check(claims["T5-a"], {None: t5, "table5": t5, "table4": t4})[0] == "holds"
    t5["fgsm"]["fog"] = 0.03
    assert check(claims["T5-a"], {None: t5, "table5": t5, "table4": t4})[0] == "fails"
    t5["fgsm"]["fog"] = 0.34
    assert check(claims["T5-b"], {None: t5})[0] == "fails"


def _copy(tmp_path: Path) -> Path:
    dst = tmp_path / "hard_instances"
    shutil.copytree(SPEC.parent, dst)
    return dst / "spec.yaml"


def test_extra_rows_need_the_unpublished_flag(tmp_path):
    path = _copy(tmp_path)
    t5 = path.parent / "artifacts" / "table5.yaml"
    t5.write_text(t5.read_text().replace(", unpublished: true", ""))
    with pytest.raises(ConfigError, match=r"missing from the CSV \['clean-s1'"):
        load_spec(path)


def test_an_analysis_reading_an_undeclared_eval_log_fails_at_load(tmp_path):
    from reproduce.pipeline.nodes import Graph
    from reproduce.pipeline.scales import load_scale

    path = _copy(tmp_path)
    t5 = path.parent / "artifacts" / "table5.yaml"
    # the FGSM runs log no CIFAR-10-C
    t5.write_text(t5.read_text().replace("analyses:\n", "analyses:\n  t5-bad: {kind: d_distance, a: [dt-clean], "
                                         "b_runs: [rn18-100-fgsm], b_logs: [\"c10c-*\"], pairing: cyclic}\n", 1))
    with pytest.raises(ConfigError, match=r"t5-bad reads eval log 'c10c-\*', which run rn18-100-fgsm-s0"):
        Graph({"hard_instances": load_spec(path)}, load_scale("paper"))
    t5.write_text(t5.read_text().replace("t5-bad: {kind: d_distance, a: [dt-clean], b_runs: [rn18-100-fgsm], "
                                         "b_logs: [\"c10c-*\"], pairing: cyclic}",
                                         "dt-bad: {kind: difficulty, run: rn18-100-pgd8-s0, log: valid}"))
    with pytest.raises(ConfigError, match="dt-bad reads eval log 'valid'"):
        Graph({"hard_instances": load_spec(path)}, load_scale("paper"))


def test_an_unknown_or_unloggable_protocol_fails_at_load(tmp_path):
    from reproduce.pipeline.nodes import Graph
    from reproduce.pipeline.scales import load_scale

    path = _copy(tmp_path)
    text = path.read_text()
    for proto, msg in (("pgd10-hx", "unknown protocol 'pgd10-hx'.*"), ("aa-standard", "")):
        path.write_text(text.replace("        protocol: clean\n        dataset: cifar10-c",
                                     f"        protocol: {proto}\n        dataset: cifar10-c", 1))
        with pytest.raises(ConfigError, match=rf"{msg}runs.rn18-100-clean-s0.eval_logs\[2\].protocol"):
            Graph({"hard_instances": load_spec(path)}, load_scale("paper"))


def test_paper_and_smoke_graphs():
    for scale, trains in (("paper", 21), ("smoke", 11)):
        dag = Dag({"scale": scale, "data_dir": "data", "work_dir": "work", "results_dir": "results"})
        arts = [a for a in dag.artifacts() if a.paper == "hard_instances" and a.name in ("table5", "figure10")]
        assert len(dag.train_jobs(arts)) == trains
        clean = dag.graph.runs[dag.graph.run_ids("hard_instances", "rn18-100-clean")[0]].cfg
        names = [e["name"] for e in clean["eval_logs"]]
        assert names[:2] == ["test", "holdout"] and len(names) == 2 + 18 * 5 and "c10c-snow-3" in names
        assert "cifar10-c" in dag.datasets_of(dag.graph.run_ids("hard_instances", "rn18-100-clean")[0])
        fgsm = dag.graph.runs[dag.graph.run_ids("hard_instances", "rn18-100-fgsm")[0]].cfg
        # protocol: selection follows the preset's selection protocol
        assert [e["protocol"] for e in fgsm["eval_logs"]] == ["noise8-hi", "noise8-hi"]
        svhn = dag.graph.runs[dag.graph.run_ids("hard_instances", "svhn-pgd-full")[0]].cfg
        assert [e["protocol"] for e in svhn["eval_logs"]] == ["pgd10-hi-svhn"] * 2


@pytest.mark.parametrize("scale,trains", [("smoke", 11), ("paper", 21)])
def test_snakemake_dry_run_expands_table5_and_figure10(scale, trains):
    # --forceall: the whole DAG, whatever an earlier smoke run left in work/
    targets = TARGETS if scale == "paper" else [t.replace("results/", f"results/{scale}/") for t in TARGETS]
    r = subprocess.run([SNAKEMAKE, "-n", "--forceall", "--config", f"scale={scale}", "--", *targets], cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    table = r.stdout.split("Job stats:")[-1]
    counts = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.M)}
    assert counts["train"] == trains and counts["render_table"] == 1 and counts["render_figure"] == 1, counts
    # d1: one test-log difficulty per run; one d_distance per row reads the 90 CIFAR-10-C logs in place
    assert counts["analyze_local"] == (24 if scale == "paper" else 15), counts
