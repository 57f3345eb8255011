"""The extra state a checkpoint taken inside an epoch needs: step, tallies, RNG streams.

An epoch's batches are a pure function of (seed, epoch) and the loader can start at
any batch, but a method's own randomness (PGD random starts) has advanced by the
stop step, so the RNG states are saved and restored as they were at that step.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch


def rng_state(device: torch.device) -> dict[str, Any]:
    """torch (CPU and current CUDA device) and numpy global RNG states, as tensors and numbers
    (``weights_only`` loading accepts no numpy arrays)."""
    name, key, pos, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "np_key": torch.from_numpy(key.astype(np.int64)),
                             "np_pos": int(pos), "np_has_gauss": int(has_gauss), "np_gauss": float(gauss)}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: Mapping[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"].cpu())
    key = state["np_key"].cpu().numpy().astype(np.uint32)
    np.random.set_state(("MT19937", key, state["np_pos"], state["np_has_gauss"], state["np_gauss"]))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)


def partial_state(epoch: int, step: int, tally_state: dict[str, Any], observed: Mapping[str, Any],
                  device: torch.device) -> dict[str, Any]:
    """``last.pt``'s ``partial`` entry: ``step`` batches of 0-based ``epoch`` are done;
    ``observed`` holds the observers' epochs so far (``Observers.partial_state_dict``)."""
    return {"epoch": epoch, "step": step, "tally": tally_state, "rng": rng_state(device), **observed}
