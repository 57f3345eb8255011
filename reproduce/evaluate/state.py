"""Per-batch progress of one evaluation, so a killed job resumes where it stopped.

An AutoAttack evaluation of a paper-size test set runs for hours; a cluster job killed at its
walltime or preempted would otherwise restart from zero. ``evaluate`` saves the correctness
masks of every finished batch (and, for PGD protocols, the state of the random-start generator
after it) under a key describing exactly what is evaluated: the same key resumes, any other key
(another checkpoint, seed, batch size, protocol setting, example count) starts afresh. A batch
is the unit: every batch is a pure function of its images, the model and the resumed generator
state, so a resumed evaluation ends with exactly the numbers of an uninterrupted one.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Mapping

import torch

FORMAT = 1


def state_path_for(out_json: str | Path) -> Path:
    """The state file beside a result JSON: hidden, and never named like a finished result."""
    p = Path(out_json)
    return p.with_name(f".{p.name}.state")


def checkpoint_identity(path: str | Path) -> dict[str, int]:
    """Size and modification time: a retrained or replaced checkpoint invalidates saved progress."""
    st = Path(path).stat()
    return {"size": int(st.st_size), "mtime_ns": int(st.st_mtime_ns)}


class EvalState:
    """Progress of one (model, protocol, data) evaluation, saved atomically after every batch."""

    def __init__(self, path: str | Path, key: Mapping[str, Any]) -> None:
        self.path = Path(path)
        self.key = {"format": FORMAT, **dict(key)}

    def load(self) -> dict[str, Any] | None:
        """Saved progress for this key, or None (no file, or saved for something else)."""
        if not self.path.exists():
            return None
        try:
            saved = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as e:  # a torn or foreign file is progress lost, never an error
            print(f"{self.path}: unreadable evaluation state ({type(e).__name__}); starting afresh", file=sys.stderr)
            return None
        if not isinstance(saved, dict) or saved.get("key") != self.key:
            print(f"{self.path}: saved for another checkpoint or setting; starting afresh", file=sys.stderr)
            return None
        return saved

    def save(self, clean: list[torch.Tensor], adv: list[torch.Tensor], generator: torch.Generator | None) -> None:
        from ..io import torch_save

        torch_save(self.path, {
            "key": self.key, "clean": [t.cpu() for t in clean], "adv": [t.cpu() for t in adv],
            "generator": generator.get_state() if generator is not None else None,
        })

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)
