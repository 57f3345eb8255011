"""Stopping a run on purpose: a signal or a walltime deadline ends it at the next step.

A SLURM job is told to stop (``--signal=URG@N`` ahead of the limit, SIGTERM at the
limit or on preemption) or knows its own walltime (``--walltime-min``). SIGURG, not
SIGUSR1, is the profile's signal: SLURM sends it to every process of the job step, and
only SIGURG's default action is to ignore it, so the in-job Snakemake and the rule's
shell above the trainer survive it (SIGUSR1 kills them, and with them, on a cgroup
cluster, the trainer before its checkpoint). SIGUSR1 is still honoured by hand. Either way
the loop writes a mid-epoch checkpoint and raises :class:`Preempted`; the CLI exits
with ``EXIT_PREEMPTED`` so Snakemake retries the job, which resumes at that step.
"""

from __future__ import annotations

import signal
import threading
import time
from types import FrameType
from typing import Any

from ..errors import EXIT_PREEMPTED, Preempted

SIGNALS = (signal.SIGURG, signal.SIGUSR1, signal.SIGTERM)
__all__ = ["EXIT_PREEMPTED", "Preempted", "StopRequest"]


class StopRequest:
    """Becomes true once a stop signal arrives or the deadline passes.

    Polling is a host-side flag read (no device sync), cheap enough for every step.
    Handlers are installed only from the main thread (Python allows no other) and
    restored on ``close``.
    """

    def __init__(self, walltime_min: float | None = None, margin_min: float = 5.0) -> None:
        self.reason: str | None = None
        self.deadline = None if walltime_min is None else time.monotonic() + 60 * (walltime_min - margin_min)
        self._old: dict[int, Any] = {}

    def install(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for s in SIGNALS:
                self._old[s] = signal.signal(s, self._on_signal)
        return self

    def close(self) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)
        self._old = {}

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.reason = signal.Signals(signum).name

    def requested(self) -> str | None:
        if self.reason is None and self.deadline is not None and time.monotonic() >= self.deadline:
            self.reason = "walltime deadline"
        return self.reason

    def __enter__(self) -> "StopRequest":
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.close()
