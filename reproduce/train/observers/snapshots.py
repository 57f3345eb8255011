"""``checkpoints`` (run key ``snapshots``): the weights of chosen epochs as ``checkpoints/epoch_N.pt``.

Epoch 0 is the weights training starts from (after any ``init``); epochs past the run's end are ignored.
"""

from __future__ import annotations

from typing import Any

from .. import checkpoint
from ..state import TrainRun
from .base import Observer, register


@register("checkpoints")
class Snapshots(Observer):
    keys = ("snapshots",)

    def _epochs(self, run: TrainRun) -> set[int]:
        return {int(e) for e in run.cfg.get("snapshots") or [] if 0 <= int(e) <= run.epochs}

    def _save(self, run: TrainRun, epoch: int) -> None:
        checkpoint.save(run.out / "checkpoints" / f"epoch_{epoch}.pt",
                        {"model": run.model.state_dict(), "epoch": epoch, "config_hash": run.config_hash})

    def on_start(self, run: TrainRun) -> None:
        # a resumed run's epoch 0 is already there: its model now holds later weights
        if 0 in self._epochs(run) and not (run.out / "checkpoints" / "epoch_0.pt").exists():
            self._save(run, 0)

    def on_epoch_end(self, run: TrainRun, epoch: int, row: dict[str, Any]) -> None:
        if epoch + 1 in self._epochs(run):
            self._save(run, epoch + 1)
