"""A real single-node SLURM cluster for the tests (tests/cluster/slurm-up), and what they read from it.

The cluster is started once per test module and torn down after it, unless one was already
running (a developer's), which is left as found. Where it cannot start (no root, no SLURM
packages) the tests skip with the reason; under CI (CI=true, where .ci/run installs the
packages) they fail instead, so a broken install never passes as skipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
UP, DOWN = ROOT / "tests/cluster/slurm-up", ROOT / "tests/cluster/slurm-down"
DAEMONS = ("munged", "mariadbd", "slurmdbd", "slurmctld", "slurmd", "sbatch", "sacct", "scontrol")


def _ours_running() -> bool:
    if shutil.which("scontrol") is None:
        return False
    r = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=30)
    return r.returncode == 0 and any(line.split("=", 1)[-1].strip() == "repro"
                                     for line in r.stdout.splitlines() if line.startswith("ClusterName"))


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "a SLURM cluster needs root (it writes /etc/slurm and starts daemons)"
    conf = Path("/etc/slurm/slurm.conf")
    if conf.exists() and "written by reproduce tests/cluster/slurm-up" not in conf.read_text(errors="replace"):
        return f"{conf} belongs to a real SLURM installation: the test cluster would replace it"
    missing = [d for d in DAEMONS if shutil.which(d) is None]
    if missing:
        return (f"SLURM is not installed ({', '.join(missing)} missing): apt-get install -y slurmctld slurmd "
                "slurmdbd slurm-client munge mariadb-server")
    return None


def _unavailable(why: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run the SLURM cluster tests: {why}")
    pytest.skip(why)


@pytest.fixture(scope="module")
def slurm_cluster(request: pytest.FixtureRequest) -> Iterator[str]:
    """The cluster's name (``repro``), up for the module; its start-up time goes to the terminal."""
    def report(line: str) -> None:  # past pytest's capture, so `make test`'s output shows it
        term = request.config.pluginmanager.get_plugin("terminalreporter")
        capman = request.config.pluginmanager.get_plugin("capturemanager")
        if term is None or capman is None:
            return
        with capman.global_and_fixture_disabled():
            term.write_line(line)

    if _ours_running():
        yield "repro"
        return
    why = _why_not()
    if why:
        _unavailable(why)
    t0 = time.monotonic()
    r = subprocess.run([str(UP)], capture_output=True, text=True, timeout=240)
    if r.returncode != 0:
        subprocess.run([str(DOWN)], capture_output=True, timeout=120)
        pytest.fail(f"slurm-up failed:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}")
    report(f"\nSLURM test cluster up in {time.monotonic() - t0:.1f} s ({r.stdout.strip()})")
    try:
        yield "repro"
    finally:
        d = subprocess.run([str(DOWN)], capture_output=True, text=True, timeout=180)
        report(f"SLURM test cluster down: {d.stdout.strip()} {d.stderr.strip()[-500:]}")


def derive_profile(dst: Path, logdir: Path) -> Path:
    """The tracked profile (workflow/profiles/slurm) with only what a seconds-long test needs changed."""
    cfg = yaml.safe_load((ROOT / "workflow/profiles/slurm/config.yaml").read_text())
    cfg["slurm-logdir"] = str(logdir)
    cfg["slurm-init-seconds-before-status-checks"] = 2  # jobs take seconds here, not hours
    cfg["latency-wait"] = 5
    cfg["jobs"] = 4
    # the test cluster's GPU type (four fake GPUs): the type setting the profile documents
    cfg["default-resources"]["gpu_model"] = "fake"
    dst.mkdir(parents=True, exist_ok=True)
    (dst / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return dst


def sacct_records(since: str) -> list[dict[str, str]]:
    """Every record of every job since ``since`` (``-D``: a requeued job's earlier runs too)."""
    r = subprocess.run(["sacct", "-D", "-X", "-n", "-P", "-S", since, "-o", "JobIDRaw,JobName,State,ExitCode,Comment"],
                       capture_output=True, text=True, timeout=60, check=True)
    keys = ("id", "name", "state", "exit", "comment")
    return [dict(zip(keys, line.split("|", 4))) for line in r.stdout.splitlines() if line.strip()]


def squeue_rows() -> list[tuple[str, str, str, str]]:
    """(job id, state, job name, comment) of every job in the queue."""
    r = subprocess.run(["squeue", "-h", "-o", "%i|%T|%j|%k"], capture_output=True, text=True, timeout=60)
    return [tuple(line.split("|", 3)) for line in r.stdout.splitlines() if line.count("|") == 3]  # type: ignore[misc]
