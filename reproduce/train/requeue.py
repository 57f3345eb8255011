"""Walltime chaining under SLURM: a training job that stopped itself asks SLURM to requeue it.

A run longer than its job's walltime stops ahead of the limit (``--signal=URG@N`` or its
own deadline) with a checkpoint. The exit code 75 that says "resume me" cannot reach SLURM
(the rule's shell and the plugin's in-job Snakemake turn every failure into exit 1), so a
cluster's ``RequeueExit=75`` never fires, and Snakemake's ``retries:`` is one number per
rule, shared by real failures. Instead the job requeues itself with ``scontrol requeue``
(needs ``sbatch --requeue``, which the profile asks for): SLURM puts the same job id back in
the queue, the executor plugin sees it pending again and waits, and the next start resumes
from ``last.pt``. A bad config therefore still fails once and is retried once, not N times.

SIGTERM is left alone: it comes from preemption or ``scontrol requeue`` (SLURM requeues the
job itself) or from ``scancel`` (the user wants it gone).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Mapping

SELF_REQUEUE_REASONS = ("SIGURG", "SIGUSR1", "walltime deadline")


def requeue_self(reason: str | None, env: Mapping[str, str] | None = None) -> str | None:
    """Requeue the SLURM job this process runs in after a chaining stop.

    Returns a line for the log, or None when nothing was asked of SLURM (not in a job, a
    SIGTERM, ``REPRODUCE_SLURM_REQUEUE=0``, or no ``scontrol``). On failure the exit code 75
    still lets Snakemake's one retry resume the run.
    """
    env = os.environ if env is None else env
    job = env.get("SLURM_JOB_ID")
    if not job or reason not in SELF_REQUEUE_REASONS or env.get("REPRODUCE_SLURM_REQUEUE", "1") == "0":
        return None
    scontrol = shutil.which("scontrol")
    if scontrol is None:
        return None
    try:
        r = subprocess.run([scontrol, "requeue", job], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"requeue of SLURM job {job} failed: {e}"
    if r.returncode != 0:
        return f"requeue of SLURM job {job} failed: {(r.stderr or r.stdout).strip()}"
    return f"requeued SLURM job {job}: the next start resumes the run"
