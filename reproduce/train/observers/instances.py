"""``per_instance`` (run key ``log_per_instance``): each training instance's loss and correctness per epoch.

For every training instance and every epoch, the training-time loss and correctness a method
reports for the batch (for ``at``: the CE of the train-mode PGD example before the optimizer
step, as the hard-instance code logs it). Rows are keyed by the instance's **original** index in
the dataset split (``instance_indices.npy``), so a subset run's log lines up with a full run's.
Files, rewritten atomically after each epoch and reloaded on resume:

- ``instance_losses.npy``  float32 [epochs x N]; NaN where an instance was not seen (drop_last);
- ``instance_correct.npy`` uint8 [epochs x N]; 1 correct, 0 wrong, 255 not seen;
- ``instance_indices.npy`` int64 [N]; original index of column j;
- ``instance_<key>.npy``   float32 [epochs x N] for each further value a method reports in
  ``StepOutput.per_instance`` (Subset AT's entropy and 0-1 error of the training forward).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from ...errors import ConfigError
from ..state import TrainRun
from .base import Observer, register, save_array

LOSSES, CORRECT, INDICES = "instance_losses.npy", "instance_correct.npy", "instance_indices.npy"
UNSEEN = 255


@register("per_instance")
class InstanceLog(Observer):
    """Per-epoch per-instance loss and correctness over the primary training set, by original id."""

    keys = ("log_per_instance",)

    def on_start(self, run: TrainRun) -> None:
        self.indices = run.data["train"][run.cfg["data"]["primary"]].indices.detach().cpu().long()
        n = int(self.indices.numel())
        # original id -> column; a dense lookup is fine for dataset-sized ids
        size = int(self.indices.max()) + 1 if n else 0
        column = torch.full((size,), -1, dtype=torch.long)
        column[self.indices] = torch.arange(n)
        self._column = column.to(run.device)
        self.device = run.device
        self.losses: list[np.ndarray] = []
        self.correct: list[np.ndarray] = []
        self.extra: dict[str, list[np.ndarray]] = {}

    def on_epoch_start(self, run: TrainRun, epoch: int) -> None:
        n = int(self.indices.numel())
        self._loss = torch.full((n,), float("nan"), device=self.device)
        self._corr = torch.full((n,), UNSEEN, dtype=torch.uint8, device=self.device)
        self._extra: dict[str, torch.Tensor] = {}

    def on_step(self, run: TrainRun, epoch: int, it: int, batch: Any, out: Any) -> None:
        # logged from the pre-step forward, as the hard-instance code does
        self.record(batch.idx, out.per_example, out.per_example_correct, out.per_instance)

    def record(self, idx: torch.Tensor, loss: torch.Tensor | None, correct: torch.Tensor | None,
               extra: dict[str, torch.Tensor] | None = None) -> None:
        """Store a batch's per-example values at the columns of its original ids (no host sync)."""
        cols = self._column[idx]
        for key, v in (extra or {}).items():
            if key not in self._extra:
                self._extra[key] = torch.full_like(self._loss, float("nan"))
            self._extra[key][cols] = v.detach().float()
        if loss is not None:
            self._loss[cols] = loss.detach().float()
        if correct is not None:
            self._corr[cols] = correct.detach().to(torch.uint8)

    def partial_state_dict(self, run: TrainRun) -> dict[str, Any]:
        """The epoch so far, for a checkpoint taken inside it (CPU tensors)."""
        return {"per_inst": {"loss": self._loss.cpu(), "correct": self._corr.cpu(),
                             **{f"extra.{k}": v.cpu() for k, v in self._extra.items()}}}

    def load_partial(self, run: TrainRun, partial: Mapping[str, Any]) -> None:
        state = partial.get("per_inst")
        if state is None:
            return
        self._loss = state["loss"].to(self.device)
        self._corr = state["correct"].to(self.device)
        self._extra = {k[len("extra."):]: v.to(self.device) for k, v in state.items() if k.startswith("extra.")}

    def on_epoch_end(self, run: TrainRun, epoch: int, row: dict[str, Any]) -> None:
        out = run.out
        self.losses.append(self._loss.cpu().numpy())
        self.correct.append(self._corr.cpu().numpy())
        save_array(out / LOSSES, np.stack(self.losses).astype(np.float32))
        save_array(out / CORRECT, np.stack(self.correct).astype(np.uint8))
        for key, v in self._extra.items():
            self.extra.setdefault(key, []).append(v.cpu().numpy())
            save_array(out / f"instance_{key}.npy", np.stack(self.extra[key]).astype(np.float32))
        if not (out / INDICES).exists():
            save_array(out / INDICES, self.indices.numpy().astype(np.int64))

    def load_state_dict(self, run: TrainRun, ck: Mapping[str, Any]) -> None:
        """Reload the rows of the checkpointed epochs from the files; a row written after the
        checkpoint (kill between the two writes) is dropped and recomputed."""
        out, start = run.out, int(ck["epoch"]) + 1
        if (out / LOSSES).exists():
            self.losses = list(np.load(out / LOSSES)[:start])
        if (out / CORRECT).exists():
            self.correct = list(np.load(out / CORRECT)[:start])
        for f in Path(out).glob("instance_*.npy"):
            if f.name not in (LOSSES, CORRECT, INDICES):
                self.extra[f.stem[len("instance_"):]] = list(np.load(f)[:start])
        if len(self.losses) != start or len(self.correct) != start:
            raise ConfigError(f"{out}: per-instance logs hold {len(self.losses)} epochs, checkpoint {start}")
