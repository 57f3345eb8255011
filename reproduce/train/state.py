"""What a run in training holds: the object the loop passes to every observer hook.

Fields fill in as the run is set up (data, then model and method, then optimizer); an observer
reads what its hook needs and writes nothing here except what its docstring names.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import torch

from .refs import Upstream


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed every random draw of 0-based ``epoch`` derives from, so a resumed run redraws it exactly."""
    return (int(seed) * 1_000_003 + epoch * 7919) % (2**31 - 1)


@dataclasses.dataclass
class TrainRun:
    cfg: dict[str, Any]  # resolved
    out: Path
    config_hash: str
    device: torch.device
    data_root: str | Path
    upstream: Upstream
    resuming: bool  # last.pt existed when the run started
    data: dict[str, Any] | None = None
    model: torch.nn.Module | None = None
    method: Any = None
    step_model: torch.nn.Module | None = None  # what steps call (compiled or channels-last); checkpoints save `model`
    optimizer: torch.optim.Optimizer | None = None
    observers: Any = None  # the run's Observers (reproduce/train/observers/base.py)
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # metrics.jsonl rows
    step_rows: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # steps.jsonl rows
    # the selected epoch so far; the selection observer keeps it, the loop reports it
    best: dict[str, Any] = dataclasses.field(default_factory=lambda: {"score": -math.inf, "epoch": None})
    # schedule.continue_from_init: the epochs the init run trained before its checkpoint (the transfer observer)
    epoch_offset: int = 0

    @property
    def epochs(self) -> int:
        return int(self.cfg["epochs"])

    @property
    def last(self) -> Path:
        return self.out / "last.pt"

    def epoch_seed(self, epoch: int) -> int:
        return epoch_seed(self.cfg["seed"], epoch)
