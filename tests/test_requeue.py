"""A training stopped for chaining requeues its own SLURM job; other stops leave SLURM alone."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reproduce.train.requeue import requeue_self


@pytest.fixture
def scontrol(tmp_path, monkeypatch) -> Path:
    """A stand-in scontrol first on PATH that records its arguments (exit code from $RC)."""
    calls = tmp_path / "calls"
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "scontrol"
    exe.write_text(f'#!/bin/sh\necho "$@" >> "{calls}"\n[ "${{RC:-0}}" = 0 ] || echo "Job is not requeueable" >&2\n'
                   'exit "${RC:-0}"\n')
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return calls


def test_usr1_and_the_deadline_requeue_the_job(scontrol):
    for reason in ("SIGURG", "SIGUSR1", "walltime deadline"):
        said = requeue_self(reason, {"SLURM_JOB_ID": "42"})
        assert said == "requeued SLURM job 42: the next start resumes the run"
    assert scontrol.read_text().splitlines() == ["requeue 42"] * 3


def test_sigterm_outside_a_job_or_opted_out_asks_nothing(scontrol):
    # SIGTERM: preemption or `scontrol requeue` (SLURM requeues itself) or scancel (the user's call)
    assert requeue_self("SIGTERM", {"SLURM_JOB_ID": "42"}) is None
    assert requeue_self("SIGUSR1", {}) is None  # a local run
    assert requeue_self("SIGUSR1", {"SLURM_JOB_ID": "42", "REPRODUCE_SLURM_REQUEUE": "0"}) is None
    assert not scontrol.exists()


def test_a_refused_requeue_is_reported(scontrol, monkeypatch):
    monkeypatch.setenv("RC", "1")
    said = requeue_self("SIGUSR1", {"SLURM_JOB_ID": "42"})
    assert said == "requeue of SLURM job 42 failed: Job is not requeueable"
