"""Checkpoints that hold everything needed to resume, written atomically.

No RNG state is stored: every epoch re-derives its randomness from (seed, epoch).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..io import torch_save


def save(path: Path, payload: dict[str, Any]) -> None:
    torch_save(path, payload)


def load(path: Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    # weights_only keeps a tampered checkpoint from running code on load
    return torch.load(path, map_location=device, weights_only=True)
