"""Holding a validation part out of the training split (``data.holdout``).

The hard-instance code (``--valid_ratio 0.02``) holds out the *first* 2% of the training indices
of a full run (CIFAR-10: ids 0..999, deterministic) and a random 2% of a subset run's indices
(unseeded there; seeded by the run seed here). ``{kind: first|random, fraction: F}``; the held-out
count is ``int(F * N)`` as in the code.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ...errors import ConfigError

KINDS = ("first", "random")


def check_holdout(spec: Any, where: str) -> None:
    if spec is None:
        return
    if not isinstance(spec, Mapping) or set(spec) - {"kind", "fraction"} or spec.get("kind") not in KINDS:
        raise ConfigError(f"{where}: data.holdout must be {{kind: first|random, fraction: F}}, got {spec!r}")
    f = spec.get("fraction")
    if isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 < f < 1:
        raise ConfigError(f"{where}: data.holdout.fraction must lie in (0, 1), got {f!r}")


def split_holdout(ids: np.ndarray, spec: Mapping[str, Any] | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(kept positions, held-out positions) into ``ids`` (the training ids, in split order)."""
    n = len(ids)
    if not spec:
        return np.arange(n), np.arange(0)
    k = int(float(spec["fraction"]) * n)
    order = np.arange(n) if spec["kind"] == "first" else np.random.default_rng(seed).permutation(n)
    return np.sort(order[k:]), np.sort(order[:k])
