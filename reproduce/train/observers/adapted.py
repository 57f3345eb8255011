"""``per_instance_adapted`` (declared by the method: its class lists ``adapts``): what a method adapts per instance.

Each step a method such as ``atta``, ``iat`` or ``sat`` reports, in ``StepOutput.adapted``, the values
it has just used or set for the batch's instances (ATTA's weight and target[y], IAT's budget, SAT's
weight and accuracies against the ground truth and the adaptive target). They are kept per epoch by
the instance's **original** dataset index, the columns of the per-instance logs
(``instance_indices.npy``), and written atomically after each epoch, reloaded on resume:

- ``adapted_<key>.npy``   float32 [epochs x N]; NaN where an instance was not seen that epoch;
- ``adapted_indices.npy`` int64 [N]; original index of column j.

No run-config key switches it on (a run id stays what it was): every run of such a method has it,
as analyses of these methods read the files (F13, F14, F15, F18, F19).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from ...errors import ConfigError
from ...methods import METHODS
from ..state import TrainRun
from .base import Observer, register, save_array

PREFIX, INDICES = "adapted_", "adapted_indices.npy"


@register("per_instance_adapted")
class Adapted(Observer):
    """Per-epoch tables of a method's per-instance adaptive values over the primary training split."""

    @classmethod
    def declared(cls, cfg: Mapping[str, Any]) -> bool:
        return bool(METHODS.get(cfg["method"]["name"], where="method.name").adapts)

    def on_start(self, run: TrainRun) -> None:
        self.indices = run.data["train"][run.cfg["data"]["primary"]].indices.detach().cpu().long()
        n = int(self.indices.numel())
        column = torch.full((int(self.indices.max()) + 1 if n else 0,), -1, dtype=torch.long)
        column[self.indices] = torch.arange(n)
        self._column = column.to(run.device)
        self.keys = tuple(run.method.adapts)
        self.epochs: dict[str, list[np.ndarray]] = {k: [] for k in self.keys}

    def on_epoch_start(self, run: TrainRun, epoch: int) -> None:
        n = int(self.indices.numel())
        self._now = {k: torch.full((n,), float("nan"), device=run.device) for k in self.keys}

    def on_step(self, run: TrainRun, epoch: int, it: int, batch: Any, out: Any) -> None:
        values = out.adapted or {}
        unknown = sorted(set(values) - set(self.keys))
        if unknown:
            raise ConfigError(f"method {run.cfg['method']['name']}: reports adapted {unknown}, not in its adapts")
        cols = self._column[batch.idx]
        for key, v in values.items():
            self._now[key][cols] = v.detach().float()

    def partial_state_dict(self, run: TrainRun) -> dict[str, Any]:
        return {"adapted": {k: v.cpu() for k, v in self._now.items()}}

    def load_partial(self, run: TrainRun, partial: Mapping[str, Any]) -> None:
        for k, v in (partial.get("adapted") or {}).items():
            self._now[k] = v.to(run.device)

    def on_epoch_end(self, run: TrainRun, epoch: int, row: dict[str, Any]) -> None:
        for key in self.keys:
            self.epochs[key].append(self._now[key].cpu().numpy())
            save_array(run.out / f"{PREFIX}{key}.npy", np.stack(self.epochs[key]).astype(np.float32))
        if not (run.out / INDICES).exists():
            save_array(run.out / INDICES, self.indices.numpy().astype(np.int64))

    def load_state_dict(self, run: TrainRun, ck: Mapping[str, Any]) -> None:
        """The rows of the checkpointed epochs, from the files (a row written after the checkpoint is dropped)."""
        start = int(ck["epoch"]) + 1
        for key in self.keys:
            f = Path(run.out) / f"{PREFIX}{key}.npy"
            self.epochs[key] = list(np.load(f)[:start]) if f.exists() else []
            if len(self.epochs[key]) != start:
                raise ConfigError(f"{f}: holds {len(self.epochs[key])} epochs, the checkpoint {start}")
