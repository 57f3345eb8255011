"""Checkpoints that hold everything needed to resume, written atomically."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..io import torch_save


def rng_state() -> dict[str, Any]:
    state = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state()[1].tolist(),
        "python": repr(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def save(path: Path, payload: dict[str, Any]) -> None:
    torch_save(path, payload)


def load(path: Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    # weights_only keeps a tampered checkpoint from running code on load
    return torch.load(path, map_location=device, weights_only=True)
