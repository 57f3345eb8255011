"""Start-up of a smoke training job, process start to its first batch: plan file vs re-derived config.

Before plan files, every `train` job re-parsed every spec, rebuilt the whole node graph at its
scale and checked the hash against its directory name (`train --paper P --run R --scale S`); now
it reads one plan file (`train --plan FILE`). Both commands are timed here in one run, interleaved
so background load hits them alike: the "before" command runs from a checkout of ``--before``
(default: the last commit without plan files), the "after" one from this tree.

A job's "first batch" is its optimizer's first ``zero_grad``: the wrapper exits there, so the time
is interpreter start, imports, config, data and model set-up, and one forward pass.

Run: ``python benchmarks/job_startup.py [--before REF] [--reps 5] [--run biamat/cifar10-at]``.
The last line is ``start-up, before / after: X.XXx``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEFORE = "774e93e"  # the last commit whose jobs re-derived their configs from the specs
FIRST_BATCH = ("import os, runpy, sys, torch; "
               "torch.optim.Optimizer.zero_grad = lambda *a, **k: os._exit(0); "
               "sys.argv = ['reproduce', *sys.argv[1:]]; runpy.run_module('reproduce', run_name='__main__')")


def _timed(cmd: list[str], cwd: Path) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env={"OMP_NUM_THREADS": "1",
                                                                          "PATH": "/usr/bin:/bin"})
    if r.returncode != 0:
        sys.exit(f"error: {' '.join(cmd[:4])}... failed in {cwd}: {r.stderr.strip()[-400:]}")
    return time.perf_counter() - t0


def _prepare(work: Path, paper: str, name: str) -> tuple[str, str, Path]:
    """Plan the smoke DAG into ``work`` and generate the run's datasets; returns (run id, plan, data root)."""
    from reproduce.pipeline.dag import Dag

    dag = Dag({"scale": "smoke", "work_dir": str(work), "results_dir": str(work / "results"), "data_dir": "data"})
    dag.write_plans()
    rid = dag.run_id(paper, name)
    for ds in dag.datasets_of(rid):
        subprocess.run([sys.executable, "-m", "reproduce", "prepare-data", ds, "--scale", "smoke", "--work-dir",
                        str(work)], cwd=ROOT, check=True, capture_output=True)
    return rid, dag.plan_path("run", rid), dag.data_root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", default=BEFORE, help="git ref of the re-deriving version")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--run", default="biamat/cifar10-at", help="PAPER/RUN at the smoke scale")
    args = ap.parse_args()
    paper, name = args.run.split("/")
    with tempfile.TemporaryDirectory() as tmp:
        tmp_p = Path(tmp)
        old = tmp_p / "before"
        subprocess.run(["git", "worktree", "add", "--detach", str(old), args.before], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            rid, plan, data = _prepare(tmp_p / "w", paper, name)
            py = [sys.executable, "-c", FIRST_BATCH, "train"]
            common = ["--data-root", str(data), "--device", "cpu", "--no-progress", "--threads", "1"]
            before = py + ["--paper", paper, "--run", name, "--scale", "smoke", "--out", str(tmp_p / "old" / rid),
                           *common]
            after = py + ["--plan", plan, *common]
            times: dict[str, list[float]] = {"before": [], "after": []}
            for _ in range(args.reps):
                times["before"].append(_timed(before, old))
                times["after"].append(_timed(after, ROOT))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT, capture_output=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in times.items():
        print(f"{k:>6}: median {med[k]:.2f} s (min {min(v):.2f}, max {max(v):.2f}) over {len(v)} runs")
    print(f"run {rid}, smoke scale, process start to first batch")
    print(f"start-up, before / after: {med['before'] / med['after']:.2f}x")


if __name__ == "__main__":
    main()
