"""The budget scale: each paper's headline artifacts in about one H100-day, claims evaluated."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from reproduce.cli import main
from reproduce.pipeline.scales import load_scale

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch):
    monkeypatch.chdir(ROOT)


def _plan(capsys) -> dict:
    targets = list(load_scale("budget").selected)
    capsys.readouterr()
    assert main(["plan", *targets, "--scale", "budget", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_budget_plan_fits_about_one_h100_day(capsys):
    p = _plan(capsys)
    assert p["scale"] == "budget" and not load_scale("budget").comparable
    assert {a.split("/")[0] for a in p["artifacts"]} == {"biamat", "hat", "subset_at", "hard_instances"}
    assert p["h100_assumed"] and p["total_h100_hours"] <= 30, p["total_h100_hours"]
    # the paper's wide ResNets are swapped for ResNet-18, schedules cut to 15 epochs
    assert not [r for r in p["runs"] if r["model"].startswith("wrn")]
    assert max(r["epochs"] for r in p["runs"]) == 15
    # BiaMAT Table 2 keeps its CIFAR-10 rows only
    assert all(r["run_id"].startswith("cifar10-") for r in p["runs"] if "biamat/table2" in r["artifacts"])


def test_budget_run_configs_say_what_changed():
    from reproduce.pipeline.nodes import run_config
    from reproduce.pipeline.papers import load_all

    specs = load_all("pipelines")
    cfg = run_config(specs["biamat"], "cifar10-trades", scale=load_scale("budget"))
    assert cfg["scale"] == "budget" and cfg["model"]["name"] == "resnet18" and cfg["epochs"] == 15
    assert cfg["perf"]["amp"] == "bf16"
    # TRADES' absolute milestones (100, 105 of 110) keep their place in the shorter schedule
    assert cfg["schedule"]["milestones"] == [13, 14]  # round(99 x 15/110), round(104 x 15/110)


def test_budget_dry_run_builds_only_the_headline_artifacts():
    r = subprocess.run([SNAKEMAKE, "-n", "all", "--config", "scale=budget", "data_dir=/nonexistent"],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    counts = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", r.stdout.split("Job stats:")[-1], re.M)}
    assert counts["diff"] == len(load_scale("budget").selected)
    assert counts["train"] == 51
