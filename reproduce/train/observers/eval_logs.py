"""``eval_log`` (run key ``eval_logs``): per-epoch eval-mode per-instance logs (reproduce/train/eval_logs.py)."""

from __future__ import annotations

from typing import Any, Mapping

from ..eval_logs import EvalLogs
from ..state import TrainRun
from .base import Observer, register


@register("eval_log")
class EvalLogObserver(Observer):
    keys = ("eval_logs",)

    def on_start(self, run: TrainRun) -> None:
        self.logs = EvalLogs(run.cfg, run.data, run.data_root)

    def load_state_dict(self, run: TrainRun, ck: Mapping[str, Any]) -> None:
        self.logs.resume(run.out, int(ck["epoch"]) + 1)  # the logs are their own files

    def on_epoch_end(self, run: TrainRun, epoch: int, row: dict[str, Any]) -> None:
        # eval mode, own generators: the training stream is untouched
        row.update(self.logs.run_epoch(run.model, run.out, epoch_seed=run.epoch_seed(epoch), device=run.device))

    def selection_score(self, sel: Mapping[str, Any]) -> float | None:
        """This epoch's accuracy under the selection rule, if a log already attacked the model so."""
        return self.logs.selection_score(sel)
