"""Checkpoints that hold everything needed to resume, written atomically.

No RNG state is stored: every epoch re-derives its randomness from (seed, epoch).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pickle

import torch

from ..errors import ReproduceError
from ..io import torch_save


def save(path: Path, payload: dict[str, Any]) -> None:
    torch_save(path, payload)


def load(path: Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    # weights_only keeps a tampered checkpoint from running code on load
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError) as e:
        # truncated or not a checkpoint at all; other RuntimeErrors (a CUDA checkpoint on a CPU box) stay as they are
        if isinstance(e, RuntimeError) and "zip archive" not in str(e) and "PytorchStreamReader" not in str(e):
            raise
        raise ReproduceError(f"{path}: unreadable checkpoint ({' '.join(str(e).split())[:120]}); "
                             "delete it and rerun its training") from None
