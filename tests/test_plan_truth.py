"""The plan as the one source of truth: tampered, stale or malformed outputs end in a rebuild or a
one-line error, never in a rendered number.

One small DAG (BiaMAT Table 6 at the `ci` scale: three trainings of seconds each) is built once in a
sandbox; each case then tampers with a copy of what it needs and runs the job the DAG would run.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from reproduce.cli import main

from .ci_scale import ci_scale_dict

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
TARGETS = ["r/biamat/table6.csv", "r/biamat/table6.diff.csv"]
CFG = ["--config", "scale=ci", "work_dir=w", "results_dir=r", "--"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _snakemake(box: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([SNAKEMAKE, *args], cwd=box, capture_output=True, text=True, timeout=900, env=ENV)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    box = tmp_path_factory.mktemp("truth")
    for name in ("Snakefile", "workflow", "config", "pipelines"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, box / name)
    (box / "config/scales/ci.yaml").write_text(yaml.safe_dump(ci_scale_dict()))
    r = _snakemake(box, "--cores", "2", *CFG, *TARGETS)
    assert r.returncode == 0, r.stderr[-3000:]
    return box


def _one_line_error(argv: list[str], capsys, cwd: Path, *words: str) -> str:
    old = os.getcwd()
    os.chdir(cwd)
    try:
        capsys.readouterr()
        code = main(argv)
    finally:
        os.chdir(old)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    lines = err.splitlines()
    assert len([ln for ln in lines if ln.startswith("error: ")]) == 1 and lines[-1].startswith("error: "), err
    assert "Traceback" not in err
    for w in words:
        assert w in lines[-1], (w, lines[-1])
    return lines[-1]


def _plans(box: Path, kind: str) -> list[Path]:
    return sorted((box / "w/ci/plan" / kind).rglob("*.json"))


def _table6_plan(box: Path) -> Path:
    return box / "w/ci/plan/artifact/biamat/table6.json"


def _run_ids(box: Path) -> list[str]:
    return sorted(json.loads(_table6_plan(box).read_text())["run_nodes"])


def test_jobs_read_plan_files_and_outputs_record_their_node(built):
    for kind in ("run", "eval", "artifact"):
        assert _plans(built, kind), kind
    for rid in _run_ids(built):
        plan = json.loads((built / f"w/ci/plan/run/{rid}.json").read_text())
        done = json.loads((built / f"w/ci/runs/{rid}/done.json").read_text())
        assert done["config_hash"] == plan["config_hash"] == rid.rsplit("-", 1)[1]
        for ev in (built / f"w/ci/evals/{rid}").glob("*.json"):
            res = json.loads(ev.read_text())
            assert (res["run"], res["config_hash"]) == (rid, plan["config_hash"])
    rules = "\n".join(p.read_text() for p in (built / "workflow/rules").glob("*.smk"))
    for job in ("train", "evaluate", "analyze", "render", "diff"):
        assert f"{{RP}} {job} --plan {{input.plan:q}}" in rules, job


def test_an_evaluation_of_another_run_is_refused(built, capsys, tmp_path):
    a, b = _run_ids(built)[:2]
    box = tmp_path / "box"
    shutil.copytree(built / "w", box / "w")
    proto = sorted(p.name for p in (box / f"w/ci/evals/{a}").glob("*.json"))[0]
    shutil.copy(box / f"w/ci/evals/{a}/{proto}", box / f"w/ci/evals/{b}/{proto}")
    plan = str(box / "w/ci/plan/artifact/biamat/table6.json")
    line = _one_line_error(["render", "--plan", plan, "--out", str(tmp_path / "t6.csv")], capsys, box,
                           f"evals/{b}/{proto}", "records run", a, b)
    assert "plan" in line and not (tmp_path / "t6.csv").exists()


def test_an_edited_run_config_is_refused_by_the_evaluation(built, capsys, tmp_path):
    box = tmp_path / "box"
    shutil.copytree(built / "w", box / "w")  # plan paths are relative to the workflow directory
    rid = _run_ids(built)[0]
    cfg_path = box / f"w/ci/runs/{rid}/config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["data"]["eval_split"] = "train"
    cfg_path.write_text(yaml.safe_dump(cfg))
    plan = next(p for p in _plans(box, "eval") if rid in p.name)
    _one_line_error(["evaluate", "--plan", str(plan), "--data-root", "w/ci/data", "--device", "cpu"],
                    capsys, box, "config.yaml", "hashes to config", rid.rsplit("-", 1)[1])
    assert not list((box / "w/ci/evals").glob("*.json.tmp*"))


def test_a_spec_edit_without_snakemake_metadata_rebuilds_exactly_the_changed_nodes(built, tmp_path):
    box = tmp_path / "box"
    shutil.copytree(built, box, symlinks=True)
    shutil.rmtree(box / ".snakemake")  # metadata gone: a fresh clone over a persistent work dir
    spec = box / "pipelines/biamat/spec.yaml"
    text = spec.read_text()
    old = "  imgnet100-at: {presets: [at, wrn16, imgnet100]}"
    assert old in text
    spec.write_text(text.replace(old, "  imgnet100-at: {presets: [at, wrn16, imgnet100], seed: 7}"))
    dry = _snakemake(box, "-n", *CFG, *TARGETS)
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert "Nothing to be done" not in dry.stdout
    counts = {ln.split()[0]: int(ln.split()[1]) for ln in dry.stdout.split("Job stats:")[-1].splitlines()
              if len(ln.split()) == 2 and ln.split()[1].isdigit()}
    assert counts.get("train") == 1 and counts.get("render_table") == 1 and counts.get("diff") == 1, counts
    # the stale table (old run ids) is refused by the diff until it is re-rendered
    plan = box / "w/ci/plan/artifact/biamat/table6.json"
    stale = subprocess.run([sys.executable, "-m", "reproduce", "diff", "--plan", str(plan), "--regenerated",
                            str(box / "r/biamat/table6.csv"), "--out", str(tmp_path / "d.diff.csv")],
                           cwd=box, capture_output=True, text=True, env=ENV)
    assert stale.returncode == 2 and "stale" in stale.stderr and not (tmp_path / "d.diff.csv").exists()
    run = _snakemake(box, "--cores", "2", *CFG, *TARGETS)
    assert run.returncode == 0, run.stderr[-3000:]
    new_ids = json.loads(plan.read_text())["runs"]["imgnet100-at"]
    rows = {r["row"]: r for r in csv.DictReader(open(box / "r/biamat/table6.csv"))}
    assert rows["imgnet100-at"]["run_id"] == " ".join(new_ids) and new_ids[0] not in _run_ids(built)


def test_a_published_csv_that_lost_a_column_is_an_error(built, tmp_path, capsys):
    box = tmp_path / "box"
    shutil.copytree(built, box, symlinks=True)
    pub = box / "pipelines/biamat/published/table6.csv"
    rows = list(csv.reader(pub.open()))
    keep = [i for i, c in enumerate(rows[0]) if c != "aa"]
    with pub.open("w", newline="") as f:
        csv.writer(f).writerows([[r[i] for i in keep] for r in rows])
    dry = _snakemake(box, "-n", *CFG, *TARGETS)
    said = dry.stdout + dry.stderr  # Snakemake reports a Snakefile error on stdout
    assert dry.returncode != 0 and "table6.csv: no column 'aa'" in said
    # the diff job reads the published CSV itself: the same one-line error there
    plan = str(box / "w/ci/plan/artifact/biamat/table6.json")
    _one_line_error(["diff", "--plan", plan, "--regenerated", str(box / "r/biamat/table6.csv"),
                     "--out", str(tmp_path / "d.diff.csv")], capsys, box, "table6.csv", "'aa'")


def test_a_duplicated_or_ragged_regenerated_row_is_an_error(built, tmp_path, capsys):
    plan = str(_table6_plan(built))
    lines = (built / "r/biamat/table6.csv").read_text().splitlines()
    dup = tmp_path / "dup.csv"
    dup.write_text("\n".join([*lines, lines[1]]) + "\n")
    _one_line_error(["diff", "--plan", plan, "--regenerated", str(dup), "--out", str(tmp_path / "d.diff.csv")],
                    capsys, built, "dup.csv", "more than once")
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("\n".join([*lines[:2], lines[2] + ",extra"]) + "\n")
    _one_line_error(["diff", "--plan", plan, "--regenerated", str(ragged), "--out", str(tmp_path / "d.diff.csv")],
                    capsys, built, "ragged.csv", "line 3")
    assert not (tmp_path / "d.diff.csv").exists()


def _hand_plan(built: Path, tmp_path: Path, cells: dict, analysis: dict | None = None) -> Path:
    """Table 6's plan reduced to one row whose cells read what the case tampers with."""
    plan = json.loads(_table6_plan(built).read_text())
    row = dict(plan["artifact"]["rows"][0], cells=cells)
    plan["artifact"].update(rows=[row], columns=list(cells), published=None)
    plan["claims"] = []
    if analysis:
        plan["analyses"] = {"a": [analysis["id"]]}
        plan["analysis_dirs"] = {analysis["id"]: str(analysis["dir"])}
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    return path


def test_a_non_numeric_analysis_value_is_an_error_not_a_dropped_row(built, tmp_path, capsys):
    adir = tmp_path / "analyses/a-123"
    adir.mkdir(parents=True)
    (adir / "result.json").write_text(json.dumps({"id": "a-123", "scale": "ci", "values": {"value": "n/a"}}))
    plan = _hand_plan(built, tmp_path, {"v": {"analysis": "a", "key": "value"}}, {"id": "a-123", "dir": adir})
    _one_line_error(["render", "--plan", str(plan), "--out", str(tmp_path / "f.csv")], capsys, built,
                    "result.json", "values.value", "expected a number", "'n/a'")
    assert not (tmp_path / "f.csv").exists()


def test_a_per_epoch_log_with_gaps_or_a_torn_line_is_an_error(built, tmp_path, capsys):
    rid = json.loads(_table6_plan(built).read_text())["runs"]["imgnet100-at"][0]
    run = tmp_path / "run"
    shutil.copytree(built / f"w/ci/runs/{rid}", run)
    plan = _hand_plan(built, tmp_path, {"loss": {"log": "loss", "over": "epoch"}})
    doc = json.loads(plan.read_text())
    doc["run_nodes"][rid]["dir"] = str(run)
    plan.write_text(json.dumps(doc))
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2
    (run / "metrics.jsonl").write_text(lines[1] + "\n")  # epoch 1 lost: reads as a run that ended early
    _one_line_error(["render", "--plan", str(plan), "--out", str(tmp_path / "f.csv")], capsys, built,
                    "metrics.jsonl", "missing [1]")
    (run / "metrics.jsonl").write_text(lines[0] + "\n" + lines[1][: len(lines[1]) // 2] + "\n")
    _one_line_error(["render", "--plan", str(plan), "--out", str(tmp_path / "f.csv")], capsys, built,
                    "metrics.jsonl", "line 2", "not valid JSON")
    assert not (tmp_path / "f.csv").exists()
