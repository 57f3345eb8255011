"""The real SLURM executor on the paper-scale Table 2 DAG, with stand-in sbatch/sacct on PATH.

No job may ask for more than the walltime cap, CPU-only steps are never submitted, every
submitted job is a GPU job with the stop signal, and evaluations are sized per protocol.
"""

from __future__ import annotations

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

from reproduce.pipeline.dag import Dag

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")

STANDIN = """#!/bin/bash
# stand-in for SLURM: sbatch records its arguments and prints a job id; sacct says RUNNING
log="$SLURM_STANDIN_LOG"
case "$(basename "$0")" in
  sbatch) printf '%s\\n' "$@" > "$log/sbatch.$$.args"; echo "$$";;
  sacct) case "$*" in *Account*) echo standin; exit 0;; esac  # the plugin's account guess
         for f in "$log"/sbatch.*.args; do [ -e "$f" ] || continue; i=${f#*sbatch.}; echo "${i%.args}|RUNNING"; done;;
  sinfo) echo "gpu*|up";;
  sacctmgr) echo "standin";;
esac
exit 0
"""


def _config(tmp: Path, **over) -> dict:
    cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    cfg.update(yaml.safe_load((ROOT / "workflow/profiles/slurm/cluster.yaml").read_text()))  # the profile's cap
    cfg.update(work_dir=str(tmp / "work"), results_dir=str(tmp / "results"), data_dir=str(tmp / "data"), **over)
    return cfg


def _stage(tmp: Path) -> tuple[Dag, list[str], list[str]]:
    """Fake manifests for every dataset; half the runs already trained, so both kinds of job appear."""
    dag = Dag(_config(tmp))
    runs = dag.train_jobs([dag.artifact("biamat", "table2")])
    for r in runs:
        for ds in dag.datasets_of(r):
            Path(dag.manifest(ds)).parent.mkdir(parents=True, exist_ok=True)
            Path(dag.manifest(ds)).write_text("{}")
    done = runs[::2]
    later = time.time() + 5  # newer than the manifests: mtime says these runs are finished
    for r in done:
        p = Path(dag.done(r))
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("{}")
        os.utime(p, (later, later))
    return dag, [r for r in runs if r not in done], done


def _submissions(log: Path) -> list[dict]:
    subs = []
    for f in log.glob("sbatch.*.args"):
        args = f.read_text().splitlines()
        if not any(a.startswith("rule_") for a in args) or "-t" not in args:
            continue  # still being written by the stand-in
        rule = next(a for a in args if a.startswith("rule_")).split("_wildcards_")[0][len("rule_"):]
        subs.append({"rule": rule, "comment": next(a for a in args if a.startswith("rule_")),
                     "minutes": int(args[args.index("-t") + 1]), "gpus": [a for a in args if a.startswith("--gpus")],
                     "extra": args})
    return subs


@pytest.mark.skipif(not SNAKEMAKE.exists(), reason="snakemake not installed beside python")
def test_slurm_executor_submissions_respect_cap_and_gpu(tmp_path):
    dag, to_train, trained = _stage(tmp_path)
    bindir, log = tmp_path / "bin", tmp_path / "log"
    bindir.mkdir()
    log.mkdir()
    (bindir / "slurm").write_text(STANDIN)
    (bindir / "slurm").chmod(0o755)
    for c in ("sbatch", "sacct", "squeue", "sinfo", "sacctmgr", "scontrol", "scancel"):
        (bindir / c).symlink_to(bindir / "slurm")
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}", "SLURM_STANDIN_LOG": str(log),
           "PYTHONPATH": str(ROOT)}
    expected = len(to_train) + 4 * len(trained)  # Table 2 evaluates four protocols per run
    cfg = _config(tmp_path)
    cmd = [str(SNAKEMAKE), "--profile", "workflow/profiles/slurm", "--nolock", "--jobs", "500", "--scheduler", "greedy",
           "--max-jobs-per-second", "100",
           "--slurm-logdir", str(tmp_path / "slurm_logs"),
           "--config", *(f"{k}={cfg[k]}" for k in ("work_dir", "results_dir", "data_dir")),
           "--", f"{cfg['results_dir']}/table2.csv"]
    # Snakemake's output goes to a file: an undrained pipe deadlocks it. Its main thread prints
    # every selected job (about 1.6 KB each) while two submission threads call sbatch; once
    # 64 KiB sit in the pipe the main thread blocks in write() holding the logging lock, and the
    # threads block on their next log line. How many sbatch calls got through first depended on
    # load: 3 on a busy 2-core box, so this test waited for a 4th that never came.
    with open(tmp_path / "snakemake.out", "w") as sink:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.time() + 180
            # submissions are slow on a busy 2-core machine: enough to see both rules is enough
            while time.time() < deadline and proc.poll() is None:
                if len(_submissions(log)) >= min(expected, 4):
                    break
                time.sleep(0.5)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    out = (tmp_path / "snakemake.out").read_text(errors="replace")
    subs = _submissions(log)
    assert len(subs) >= min(expected, 4), out[-3000:]
    cap = cfg["walltime_cap_min"]
    assert {s["rule"] for s in subs} <= {"train", "evaluate"}, "CPU-only steps must stay local"
    for s in subs:
        assert 0 < s["minutes"] <= cap, s["comment"]
        assert s["gpus"] == ["--gpus=1"], s["comment"]
        # the profile's stop signal, requeue and append mode; the account the plugin found itself
        assert {"--signal=URG@300", "--open-mode=append", "--requeue"} <= set(s["extra"]), s["comment"]
        assert s["extra"][s["extra"].index("-A") + 1] == "standin", s["comment"]
    train = [s for s in subs if s["rule"] == "train"]
    assert {s["comment"].split("_wildcards_")[1] for s in train} <= set(to_train)
    assert all(s["minutes"] == dag.resources(s["comment"].split("_wildcards_")[1])["runtime"] for s in train)
    evals = {re.sub(r"^rule_evaluate_wildcards_", "", s["comment"]): s["minutes"] for s in subs if s["rule"] == "evaluate"}
    assert all(r in trained for r in {k.rsplit("_", 1)[0] for k in evals})
    for key, minutes in evals.items():
        run, protocol = key.rsplit("_", 1)
        assert minutes == dag.eval_runtime(run, protocol), key
        if protocol == "clean":
            assert minutes <= 60, key
    # the sizing itself, per protocol, for one trained run: clean < PGD-100 < AutoAttack
    run = trained[0]
    times = [dag.eval_runtime(run, p) for p in ("clean", "pgd100", "aa-standard")]
    assert times[0] < times[1] < times[2] <= cap and times[2] > 10 * times[1] / 2, times


def test_chaining_needs_no_retries_and_stays_under_the_cap(tmp_path):
    from reproduce.pipeline.dag import STOP_MARGIN_MIN
    from reproduce.pipeline.resources import chunks

    for cap in (600, 2880):
        dag = Dag(_config(tmp_path, walltime_cap_min=cap))
        # a run longer than the cap chains by requeueing its own job: retries are for failures only
        assert dag.train_retries() == 1
        longest = max(dag.train_minutes(r) for r in dag.graph.runs)
        assert chunks(longest, cap, STOP_MARGIN_MIN) * (cap - 15) >= longest  # 5 min margin + 10 min startup
        assert all(dag.resources(r)["runtime"] <= cap for r in dag.graph.runs)


def test_host_memory_adds_the_training_data(tmp_path):
    from reproduce.costs.memory import data_bytes

    dag = Dag(_config(tmp_path))
    base = dag.scale.resources["mem_mb"]
    for r in dag.graph.runs:
        data = data_bytes(dag.configs[r], dag.scale)
        mem = dag.resources(r)["mem_mb"]
        assert mem >= base + (data or 0) / 2**20, r
    # Places365-64 runs keep about 20 GiB of images in (pinned) host memory beside the base
    assert max(dag.resources(r)["mem_mb"] for r in dag.graph.runs) > base + 20 * 1024


def test_walltime_cap_must_be_minutes(tmp_path):
    from reproduce.errors import ConfigError

    with pytest.raises(ConfigError, match="walltime_cap_min.*'2d'"):
        Dag(_config(tmp_path, walltime_cap_min="2d"))
