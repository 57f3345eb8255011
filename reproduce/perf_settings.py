"""The ``perf:`` config section: its defaults, checks and the part that names a run.

Kept apart from ``reproduce.perf`` (which applies the switches) so that configs
are read and hashed without importing torch. See ``reproduce.perf`` for what
each switch does and why only ``HASHED`` enters the run id.
"""

from __future__ import annotations

from typing import Any, Mapping

from .errors import ConfigError

PERF_DEFAULTS: dict[str, Any] = {
    "amp": "none",              # none | bf16: autocast for training forwards and training-time attacks
    "channels_last": False,     # NHWC weights and batches (tensor cores like it)
    "compile": False,           # torch.compile the model used for training steps
    "fused_optimizer": False,   # fused SGD (CUDA), else the multi-tensor foreach SGD
    "cudnn_benchmark": False,   # let cuDNN time its algorithms for the fixed batch shape
    "sync_every": 1,            # read the on-device NaN flag every N steps (and at epoch end)
    "data_placement": "auto",   # auto | device | host: training splits on the GPU or streamed (data/feeding/placement.py)
}
HASHED = ("amp", "compile")
AMP_MODES = ("none", "bf16")
DATA_PLACEMENTS = ("auto", "device", "host")


def check_perf(perf: Mapping[str, Any], where: str = "run") -> None:
    """One-line ConfigError naming the key and value of a bad ``perf`` entry."""
    if perf["amp"] not in AMP_MODES:
        raise ConfigError(f"{where}: perf.amp must be one of {AMP_MODES}, got {perf['amp']!r}")
    for key in ("channels_last", "compile", "fused_optimizer", "cudnn_benchmark"):
        if not isinstance(perf[key], bool):
            raise ConfigError(f"{where}: perf.{key} must be true or false, got {perf[key]!r}")
    if perf["data_placement"] not in DATA_PLACEMENTS:
        raise ConfigError(f"{where}: perf.data_placement must be one of {DATA_PLACEMENTS}, "
                          f"got {perf['data_placement']!r}")
    n = perf["sync_every"]
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"{where}: perf.sync_every must be a positive integer, got {n!r}")


def hashed_perf(perf: Mapping[str, Any]) -> dict[str, Any]:
    """The part of ``perf`` that names a run: numeric switches away from their defaults.

    Leaving defaults out keeps every run id made before the section existed.
    """
    return {k: perf[k] for k in HASHED if perf.get(k, PERF_DEFAULTS[k]) != PERF_DEFAULTS[k]}
