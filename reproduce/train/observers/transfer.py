"""``transfer`` (run keys ``init``, ``freeze``): start from another run's weights (reproduce/train/transfer.py)."""

from __future__ import annotations

from ..state import TrainRun
from ..transfer import apply_freeze, init_epoch, load_init, source_checkpoint
from .base import Observer, register


@register("transfer")
class Transfer(Observer):
    keys = ("init", "freeze")  # and schedule.continue_from_init, which needs init

    def on_setup(self, run: TrainRun) -> None:
        # a resumed run has every weight in last.pt; a fresh one needs its source before any data loads
        if run.cfg.get("init") and not run.resuming:
            source_checkpoint(run.cfg, run.upstream)
        if run.cfg["schedule"].get("continue_from_init") == "best_epoch":
            run.epoch_offset = init_epoch(run.cfg, run.upstream)

    def on_model(self, run: TrainRun) -> None:
        if run.cfg.get("init") and not run.resuming:
            load_init(run.model, run.cfg, run.upstream, run.device)
        apply_freeze(run.model, run.cfg)  # freeze: trunk trains the heads on fixed features
