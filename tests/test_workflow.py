"""The Snakemake DAG: paper-scale dry runs plan the right jobs; the smoke DAG survives SIGKILL."""

from __future__ import annotations

import csv
import html
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from .ci_scale import ci_scale_dict

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")


def _snakemake(args: list[str], cwd: Path = ROOT, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([SNAKEMAKE, *args], cwd=cwd, capture_output=True, text=True, timeout=900, **kw)


def _job_counts(out: str) -> dict[str, int]:
    table = out.split("Job stats:")[-1]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.M)}


def test_paper_dry_run_plans_30_trainings_without_data():
    r = _snakemake(["-n", "--config", "scale=paper", "data_dir=/nonexistent", "--",
                    "results/biamat/table1.csv", "results/table2.csv"])
    assert r.returncode == 0, r.stderr[-2000:]
    counts = _job_counts(r.stdout)
    assert counts["train"] == 30, counts
    assert counts["prepare_data"] == 8


def test_slurm_profile_dry_run_requests_a_gpu_per_training():
    r = _snakemake(["--profile", "workflow/profiles/slurm", "-n", "--config", "scale=paper", "--",
                    "results/table2.csv"])
    assert r.returncode == 0, r.stderr[-2000:]
    blocks = [b for b in r.stdout.split("\n\n") if "rule train:" in b]
    assert len(blocks) == 22
    assert all(re.search(r"resources:.*\bgpu=1\b", b) for b in blocks)
    # no placeholder account (the plugin finds the user's own); the stop signal and append mode
    assert not any("slurm_account=" in b for b in blocks)
    assert all("--signal=URG@300 --open-mode=append" in b for b in blocks)
    # the profile's walltime cap (cluster.yaml, 24 h) bounds every training's runtime
    assert all(int(m) <= 1440 for b in blocks for m in re.findall(r"\bruntime=(\d+)", b))


def test_every_target_dry_runs_at_paper_scale():
    r = _snakemake(["-n", "--config", "scale=paper", "--", "all"])
    assert r.returncode == 0, r.stderr[-2000:]
    # every distinct training of every paper, once: BiaMAT's 186 (46 + Tables 3, 7 and 8's 20: 2 labellers,
    # 11 RST runs, 4 fine-tunes, 3 imports; Table 5's 100, Figure 3's 10, Table 15's 10 students), HAT's 81
    # (helpers and sweep points included), and those of the papers in progress
    from reproduce.pipeline.dag import Dag

    dag = Dag({"scale": "paper", "data_dir": "data", "work_dir": "work", "results_dir": "results"})
    per_paper = {p: len(dag.train_jobs([a for a in dag.artifacts() if a.paper == p])) for p in dag.specs}
    assert per_paper["biamat"] == 186 and per_paper["hat"] == 81
    assert _job_counts(r.stdout)["train"] == len(dag.train_jobs(dag.artifacts()))


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    """A copy of the workflow with a still smaller `ci` scale, so runs stay seconds long."""
    box = tmp_path_factory.mktemp("wf")
    for name in ("Snakefile", "workflow", "config", "pipelines"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, box / name)
    (box / "config/scales/ci.yaml").write_text(yaml.safe_dump(ci_scale_dict()))
    return box


def _cells(path: Path) -> dict[tuple[str, str], str]:
    with open(path) as f:
        return {(r["row"], c): r[c] for r in csv.DictReader(f) for c in ("clean", "pgd100", "cw100", "aa")}


TARGETS = ["results/biamat/table6.csv", "results/biamat/table6.diff.csv"]


def test_smoke_dag_killed_and_restarted_gives_the_same_numbers(sandbox):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ref = _snakemake(["--cores", "2", "--config", "scale=ci", "work_dir=w_ref", "results_dir=r_ref", "--",
                      *[t.replace("results/", "r_ref/ci/") for t in TARGETS]], cwd=sandbox, env=env)
    assert ref.returncode == 0, ref.stderr[-3000:]
    args = ["--cores", "2", "--config", "scale=ci", "work_dir=w_kill", "results_dir=r_kill", "--",
            *[t.replace("results/", "r_kill/ci/") for t in TARGETS]]
    proc = subprocess.Popen([SNAKEMAKE, *args], cwd=sandbox, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    runs = sandbox / "w_kill/ci/runs"
    deadline = time.time() + 300
    # kill the whole process group once one run has finished and another is mid-training
    while time.time() < deadline:
        done = list(runs.glob("*/done.json")) if runs.exists() else []
        started = list(runs.glob("*/last.pt")) if runs.exists() else []
        if done and len(started) > len(done):
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (sandbox / "r_kill/ci/biamat/table6.csv").exists()
    assert _snakemake(["--unlock", *args], cwd=sandbox, env=env).returncode == 0
    again = _snakemake(["--rerun-incomplete", *args], cwd=sandbox, env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert _cells(sandbox / "r_kill/ci/biamat/table6.csv") == _cells(sandbox / "r_ref/ci/biamat/table6.csv")
    diff = (sandbox / "r_kill/ci/biamat/table6.diff.csv").read_text()
    assert "not comparable (ci scale)" in diff and "match" not in diff
    md = (sandbox / "r_kill/ci/biamat/table6.md").read_text()
    assert "NOT COMPARABLE" in md


FIGURE = ["r_ref/ci/subset_at/figure1.png", "r_ref/ci/subset_at/figure1.diff.csv"]  # published 17.1 / 37.8


def _chromium() -> str | None:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and os.environ.get("CI") == "true":  # CI installs it (.ci/run): never skip there
        pytest.fail("no chromium on PATH in CI (.ci/run installs Debian's chromium)")
    if found is None:
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium) to load the pages")
    return found


def _browse(chromium: str, page: Path, profile: Path, shot: Path | None = None) -> tuple[str, list[str]]:
    """The DOM after load (scripts run) and the console lines; with ``shot``, a screenshot there too."""
    base = [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", "--virtual-time-budget=15000"]
    shown = subprocess.run([*base, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=180)
    assert shown.returncode == 0, shown.stderr[-2000:]
    if shot is not None:
        snap = subprocess.run([*base, f"--screenshot={shot}", "--window-size=1400,2400", page.as_uri()],
                              capture_output=True, text=True, timeout=180)
        assert snap.returncode == 0 and shot.stat().st_size > 10_000, snap.stderr[-2000:]
    console = [ln for ln in shown.stderr.splitlines() if "CONSOLE" in ln]
    return shown.stdout, console


def _text(dom: str) -> str:
    """What a reader sees: no scripts, no tags, one space between words."""
    dom = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", dom)).split())


def test_results_pages_and_report_show_numbers_verdicts_and_figures_in_chromium(sandbox, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cfg = ["--config", "scale=ci", "work_dir=w_ref", "results_dir=r_ref", "--"]
    arts = [t.replace("results/", "r_ref/ci/") for t in TARGETS] + FIGURE
    # status.csv and index.html read the artifacts that exist when their DAG is built: artifacts first
    for step in (arts, [*arts, "r_ref/ci/status.csv", "r_ref/ci/index.html"]):
        built = _snakemake(["--cores", "2", *cfg, *step], cwd=sandbox, env=env)  # table6: no-ops after the test above
        assert built.returncode == 0, built.stderr[-3000:]
    with open(sandbox / "r_ref/ci/status.csv") as f:
        status = {(r["paper"], r["artifact"]): r["status"] for r in csv.DictReader(f)}
    assert status[("biamat", "table6")] == "not comparable"  # ci numbers never read as a match
    assert status[("biamat", "table2")] == "not yet run" and len(status) >= 30
    with open(sandbox / "r_ref/ci/subset_at/figure1.csv") as f:
        regenerated = {r["row"]: r for r in csv.DictReader(f)}
    rep = _snakemake(["--report", "r_ref/report.html", *cfg, *arts, "r_ref/ci/index.html"], cwd=sandbox, env=env)
    assert rep.returncode == 0, rep.stderr[-3000:]
    assert "figure1.html" in (sandbox / "r_ref/report.html").read_text()  # the page is in the report

    chromium = _chromium()
    shots = {name: tmp_path / f"{name}.png" for name in ("landing", "artifact", "report")}
    checks = [("landing", sandbox / "r_ref/ci/index.html"), ("artifact", sandbox / "r_ref/ci/subset_at/figure1.html"),
              ("report", sandbox / "r_ref/report.html")]
    for name, page in checks:
        dom, console = _browse(chromium, page, tmp_path / f"profile-{name}", shots[name])
        assert not [ln for ln in console if "Uncaught" in ln or ":ERROR:" in ln or ":WARNING:" in ln], console
        text = _text(dom)
        if name == "report":  # the report opens on the landing table and the built artifacts' cells
            assert "biamat/table6" in text or "table6" in text
            assert "published 17.1" in text and "not comparable" in text
            continue
        assert "published 17.1" in text and "published 37.8" in text  # the paper's numbers, as text
        assert f"{regenerated['car']['rob_B']}" in text  # the regenerated number beside it
        assert "not comparable (ci scale)" in text  # a verdict
        assert 'data-figures-loaded="1/1"' in dom if name == "artifact" else re.search(
            r'data-figures-loaded="(\d+)/\1"', dom), "a figure did not load"
        if name == "landing":
            assert "not built" in text and "table6" in text and "Lee & Lee, WACV 2023" in text
    print("screenshots:", *[str(p) for p in shots.values()])
