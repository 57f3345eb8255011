"""The workflow on a real SLURM cluster (tests/cluster/slurm-up) through `snakemake --executor slurm`.

The profile is the tracked workflow/profiles/slurm with only the log folder, status-poll delay
and the test cluster's GPU type changed (tests/slurm_cluster.py). Runs are the `ci` scale's
(seconds long), in a copy of the workflow; a local run of the same targets is the reference.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest
import torch
import yaml

from .ci_scale import ci_scale_dict
from .slurm_cluster import ROOT, derive_profile, sacct_records, slurm_cluster, squeue_rows  # noqa: F401

EPOCHS = 16  # long enough (a few seconds) for a signal to land mid-run
HEAD_LIMIT_S = 420  # the head process is SIGKILLed past this: a stuck test never hangs CI


@contextlib.contextmanager
def _cwd(path: Path) -> Iterator[None]:
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def _smk(box: Path, work: str, args: list[str], targets: list[str], **config: str) -> list[str]:
    cfg = {"scale": "ci", "device": "cpu", "work_dir": str(box / work), "results_dir": str(box / f"results-{work}"),
           **config}
    return ["timeout", "-s", "KILL", str(HEAD_LIMIT_S), sys.executable, "-m", "snakemake", *args,
            "--config", *(f"{k}={v}" for k, v in cfg.items()), "--", *targets]


def _start(box: Path, work: str, args: list[str], targets: list[str], env: dict, **config: str) -> dict:
    """Start one snakemake (local, or a head with a profile in ``args``); output to a file, never a
    pipe (an undrained pipe deadlocks it: tests/test_slurm.py)."""
    out = box / f"{work}.out"
    with open(out, "w") as sink:
        proc = subprocess.Popen(_smk(box, work, args, targets, **config), cwd=box, env=env, stdout=sink,
                                stderr=subprocess.STDOUT, start_new_session=True)
    return {"proc": proc, "out": out}


def _finish(run: dict) -> tuple[int, str]:
    """Wait for a started snakemake (`timeout -s KILL` bounds it) and return its code and output."""
    try:
        rc = run["proc"].wait(timeout=HEAD_LIMIT_S + 30)
    finally:
        if run["proc"].poll() is None:
            os.killpg(run["proc"].pid, signal.SIGKILL)
    return rc, run["out"].read_text(errors="replace")


def _head_args(box: Path, work: str, *extra: str) -> list[str]:
    return ["--profile", str(derive_profile(box / f"profile-{work}", box / f"slurm-logs-{work}")), *extra]


@pytest.fixture(scope="module")
def box(tmp_path_factory, slurm_cluster) -> Iterator[dict]:
    """A workflow copy at the `ci` scale (asking one GPU per job). The local reference runs and
    the heads nobody watches (chaining, a failing config) start at once, so their waits overlap."""
    b = tmp_path_factory.mktemp("slurmbox")
    for name in ("Snakefile", "workflow", "config", "pipelines"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, b / name)
    scale = ci_scale_dict(epochs=EPOCHS)
    scale["resources"]["gpu"] = 1  # every submitted job asks for a (fake) GPU of the profile's type
    (b / "config/scales/ci.yaml").write_text(yaml.safe_dump(scale))
    # the chaining test's scale: one epoch of two steps, so each job's one step is half of it
    short = ci_scale_dict(epochs=1, n_train=64)
    short.update(scale="cichain", resources=scale["resources"])
    (b / "config/scales/cichain.yaml").write_text(yaml.safe_dump(short))
    from reproduce.pipeline.dag import Dag

    with _cwd(b):
        dag = Dag({"scale": "ci", "data_dir": "data", "work_dir": "w", "results_dir": "r", "device": "cpu"})
        x, y = dag.run_id("hard_instances", "c10-pgd8-full"), dag.run_id("hard_instances", "c10-pgd8-full-600")
        z = Dag({"scale": "cichain", "data_dir": "data", "work_dir": "w", "results_dir": "r", "device": "cpu"}
                ).run_id("hard_instances", "c10-pgd8-full-600")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    targets = lambda work: [f"{b / ('results-' + work)}/ci/hard_instances/figure20.csv",  # noqa: E731
                            f"{b / work}/ci/runs/{y}/done.json"]
    zdone = lambda work: [f"{b / work}/cichain/runs/{z}/done.json"]  # noqa: E731
    runs = {
        "ref": _start(b, "ref", ["--cores", "1"], targets("ref"), env),
        "refchain": _start(b, "refchain", ["--cores", "1"], zdone("refchain"), env, scale="cichain"),
        "chain": _start(b, "chain", _head_args(b, "chain", "--set-resources", "train:runtime=1"), zdone("chain"),
                        env, scale="cichain"),
        "bad": _start(b, "bad", _head_args(b, "bad"), zdone("bad"), env, scale="cichain", device="cuda"),
    }
    try:
        yield {"dir": b, "x": x, "y": y, "z": z, "targets": targets, "env": env, "runs": runs}
    finally:
        for r in runs.values():
            if r["proc"].poll() is None:
                os.killpg(r["proc"].pid, signal.SIGKILL)


def _reference(box: dict, name: str) -> None:
    rc, out = _finish(box["runs"][name])
    assert rc == 0, out[-4000:]


def _records(out: str) -> list[dict[str, str]]:
    """sacct records of the jobs of the head that printed ``out`` (its job name, from its output)."""
    m = re.search(r"SLURM run ID: (\S+)", out)
    assert m, out[-3000:]
    return [r for r in sacct_records("now-1hours") if r["name"] == m.group(1)]


def _weights(run: Path) -> dict[str, dict]:
    return {f: torch.load(run / f, weights_only=True)["model"] for f in ("last.pt", "best.pt")}


def _assert_same_run(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    for f in wa:
        assert wa[f].keys() == wb[f].keys()
        for k in wa[f]:
            assert torch.equal(wa[f][k], wb[f][k]), (f, k)
    rows = lambda p: [{k: v for k, v in json.loads(s).items() if k != "seconds"}  # noqa: E731
                      for s in (p / "metrics.jsonl").read_text().splitlines()]
    assert rows(a) == rows(b)


def _progress(run: Path) -> int:
    m = run / "metrics.jsonl"
    return len(m.read_text().splitlines()) if m.exists() else 0


def _jobs(records: list[dict], comment: str) -> dict[str, list[str]]:
    """Job id -> its states in order (a requeued job has one record per start) for one comment."""
    out: dict[str, list[str]] = {}
    for r in records:
        if r["comment"] == comment:
            out.setdefault(r["id"], []).append(r["state"])
    return out


def test_smoke_dag_on_slurm_with_walltime_signal_and_preemption(slurm_cluster, box):
    """One head process: figure 20 (train + a GPU analysis on the cluster, the rest local) and
    a second training. The first training gets URG mid-run (what `--signal=URG@300` sends
    before the limit): it checkpoints, requeues its own job and resumes. The second is
    `scontrol requeue`d mid-run (preemption): SLURM requeues it, it resumes. Both end with
    the reference run's weights; sacct shows each requeue; squeue showed rule and run."""
    b, x, y = box["dir"], box["x"], box["y"]
    sent: dict[str, str] = {}
    seen: set[tuple[str, str]] = set()
    head_name: list[str] = []

    def poll() -> None:
        if not head_name:  # this head's job name: the other heads' jobs run beside its own
            m = re.search(r"SLURM run ID: (\S+)", (b / "work.out").read_text(errors="replace"))
            head_name.extend([m.group(1)] if m else [])
        for jid, state, name, comment in squeue_rows():
            if name not in head_name:
                continue
            seen.add((name, comment))
            for run, how in ((x, ["scancel", "--signal=URG", jid]), (y, ["scontrol", "requeue", jid])):
                if (run not in sent and state == "RUNNING" and comment == f"rule_train_wildcards_{run}"
                        and _progress(b / "work/ci/runs" / run) >= 3):
                    subprocess.run(how, check=True, capture_output=True, timeout=30)
                    sent[run] = jid

    head = _start(b, "work", _head_args(b, "work"), box["targets"]("work"), box["env"])
    while head["proc"].poll() is None:
        poll()
        time.sleep(0.5)
    rc, out = _finish(head)
    assert rc == 0, out[-5000:]
    assert set(sent) == {x, y}, f"a training ended before its signal: {sent}\n{out[-3000:]}"
    records = _records(out)
    _reference(box, "ref")
    rules = {r["comment"].split("_wildcards_")[0] for r in records if r["name"].startswith("reproduce_")}
    assert rules == {"rule_train", "rule_analyze"}, rules  # prepare_data, analyze_local, render: local
    for run in (x, y):
        jobs = _jobs(records, f"rule_train_wildcards_{run}")
        assert list(jobs) == [sent[run]], jobs  # one job: requeued, never resubmitted by Snakemake
        states = jobs[sent[run]]
        assert states.count("REQUEUED") >= 1 and states[-1] == "COMPLETED", states
        _assert_same_run(b / "ref/ci/runs" / run, b / "work/ci/runs" / run)
    ref_csv, csv = (b / f"results-{w}/ci/hard_instances/figure20.csv" for w in ("ref", "work"))
    assert csv.read_text() == ref_csv.read_text()
    # squeue: job name <prefix>_<uuid> (the plugin's handle), rule and run in the comment
    assert any(n.startswith("reproduce_") and c == f"rule_train_wildcards_{x}" for n, c in seen), seen
    # logs of successful jobs are kept, and a requeued job's log holds every start (append)
    logs = b / "slurm-logs-work"
    for run in (x, y):
        log = logs / "rule_train" / run / f"{sent[run]}.log"
        assert log.exists(), sorted(p.relative_to(logs) for p in logs.rglob("*.log"))
        assert log.read_text().count("Building DAG of jobs") >= 2, log.read_text()[-3000:]
    assert list((logs / "rule_analyze").rglob("*.log"))


def test_walltime_deadline_chains_jobs_until_done(slurm_cluster, box):
    """A training longer than its job: runtime 1 minute, less the 5-minute stop margin, so the
    deadline has passed when the first step ends. Every job stops mid-epoch after one step with
    a checkpoint, requeues itself, and the same SLURM job resumes until the run is done."""
    b, z = box["dir"], box["z"]
    rc, out = _finish(box["runs"]["chain"])
    assert rc == 0, out[-5000:]
    _reference(box, "refchain")
    jobs = _jobs(_records(out), f"rule_train_wildcards_{z}")
    assert len(jobs) == 1, jobs  # chained by requeue: no Snakemake retry
    states = next(iter(jobs.values()))
    assert states.count("REQUEUED") >= 1 and states[-1] == "COMPLETED", states
    _assert_same_run(b / "refchain/cichain/runs" / z, b / "chain/cichain/runs" / z)
    # the run stopped mid-epoch (one epoch of two steps) and its own requeue ended the first start
    log = next((b / "slurm-logs-chain/rule_train").rglob("*.log")).read_text()
    assert "DUE TO JOB REQUEUE" in log, log[-3000:]


def test_a_bad_config_fails_once_and_is_retried_once(slurm_cluster, box):
    """A training that cannot start (device cuda on a machine without one) fails its job; the
    profile's one retry resubmits it once; the head exits non-zero and names the error."""
    rc, out = _finish(box["runs"]["bad"])
    assert rc != 0
    jobs = _jobs(_records(out), f"rule_train_wildcards_{box['z']}")
    assert len(jobs) == 2 and all(s[-1] == "FAILED" for s in jobs.values()), jobs
    assert "Error in rule train" in out and "cuda" in out.lower(), out[-3000:]
