"""Per-epoch sums and the divergence check, kept on the device between host syncs.

A ``.item()`` per step stalls the GPU until the step finishes, so the loop
keeps its sums as device tensors and reads them only at sync points. Sums are
float64 and add ``value * n`` in step order, which is exactly what Python
floats computed before, so CPU logs are bit-identical to the synchronous loop.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor

from ..errors import TrainingDivergedError


class EpochTally:
    """Weighted sums of a step's loss and stats, plus the first non-finite loss of the epoch."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        # MPS has no float64; elsewhere float64 keeps the sums equal to the old host-side floats
        self.dtype = torch.float32 if device.type == "mps" else torch.float64
        self.sums: dict[str, Tensor | float] = {}
        self.n_seen = 0
        self._bad_batch = torch.full((), -1, dtype=torch.long, device=device)
        self._bad_loss = torch.zeros((), dtype=torch.float32, device=device)
        self._rows: list[dict[str, Any]] = []

    def watch(self, loss: Tensor, it: int) -> None:
        """Remember batch ``it`` if its loss is the epoch's first non-finite one (no host sync)."""
        loss = loss.detach().float()
        first = (~torch.isfinite(loss)) & (self._bad_batch < 0)
        self._bad_batch = torch.where(first, torch.full_like(self._bad_batch, it), self._bad_batch)
        self._bad_loss = torch.where(first, loss, self._bad_loss)

    def raise_if_diverged(self, run: str, epoch: int) -> None:
        """Host sync: raise naming the first bad batch seen so far (1-based epoch and batch)."""
        b = int(self._bad_batch.item())
        if b >= 0:
            raise TrainingDivergedError(
                f"run {run}: loss is {self._bad_loss.item()} at epoch {epoch + 1}, batch {b + 1}")

    def add(self, values: Mapping[str, Tensor | float], n: int) -> None:
        self.n_seen += n
        for k, v in values.items():
            if isinstance(v, Tensor):
                term: Tensor | float = v.detach().to(self.dtype) * n
            else:
                term = float(v) * n
            prev = self.sums.get(k)
            self.sums[k] = term if prev is None else prev + term

    def mean(self, key: str) -> float:
        return _num(self.sums[key]) / max(self.n_seen, 1)

    def means(self) -> dict[str, float]:
        """Host sync: every sum divided by the examples seen."""
        return {k: _num(v) / max(self.n_seen, 1) for k, v in self.sums.items()}

    def log_row(self, row: dict[str, Any]) -> None:
        """A steps.jsonl row whose values may still be device tensors."""
        self._rows.append(row)

    def state_dict(self) -> dict[str, Any]:
        """Everything a mid-epoch checkpoint needs to continue these sums exactly."""
        return {"sums": dict(self.sums), "n_seen": self.n_seen, "bad_batch": self._bad_batch,
                "bad_loss": self._bad_loss, "rows": self.step_rows()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.sums = {k: v.to(self.device) if isinstance(v, Tensor) else v for k, v in state["sums"].items()}
        self.n_seen = int(state["n_seen"])
        self._bad_batch = state["bad_batch"].to(self.device)
        self._bad_loss = state["bad_loss"].to(self.device)
        self._rows = list(state["rows"])

    def step_rows(self) -> list[dict[str, Any]]:
        """Host sync: the rows logged this epoch, with tensors turned into numbers."""
        return [{k: _num(v) for k, v in r.items()} for r in self._rows]


def _num(v: Any) -> Any:
    return v.item() if isinstance(v, Tensor) else v
