"""Per-instance state of a method, stored in dense rows of the primary training split.

Batches carry original dataset ids (``Batch.idx``); a subset run's ids are sparse, so a method
keeps its caches, targets and budgets in one row per training instance and looks rows up here.
"""

from __future__ import annotations

import hashlib

import torch
from torch import Tensor

from ..speclang.numbers import parse_number
from ..errors import ConfigError
from .base import TrainContext


class InstanceRows:
    """Original dataset id -> row of the primary training split (0..n-1), on the training device."""

    def __init__(self, ctx: TrainContext) -> None:
        ds = ctx.datasets[ctx.cfg["data"]["primary"]]
        ids = torch.as_tensor(ds.indices).to(ctx.device).long()
        self.n = int(ids.numel())
        lookup = torch.full((int(ids.max()) + 1 if self.n else 0,), -1, dtype=torch.long, device=ctx.device)
        lookup[ids] = torch.arange(self.n, device=ctx.device)
        self._lookup = lookup
        self.labels = torch.as_tensor(ds.labels).to(ctx.device).long()  # by row

    def __call__(self, idx: Tensor) -> Tensor:
        return self._lookup[idx.to(self._lookup.device)]


def check_number(method: str, key: str, value: object, lo: float | None = None, hi: float | None = None) -> float:
    """``value`` (a number or a fraction like 1.9/255) within [lo, hi], else one line naming the key."""
    where = f"method {method}: method.{key}"
    v = parse_number(value, where)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise ConfigError(f"{where} must lie in [{lo if lo is not None else '-inf'}, "
                          f"{hi if hi is not None else 'inf'}], got {value!r}")
    return v


def check_choice(method: str, key: str, value: object, allowed: tuple[object, ...]) -> None:
    """``value`` one of ``allowed`` (true and 1 differ), else one line naming the key."""
    if not any(type(value) is type(a) and value == a for a in allowed):
        raise ConfigError(f"method {method}: method.{key} must be one of {', '.join(map(str, allowed))}, "
                          f"got {value!r}")


def keyed_generator(*key: object) -> torch.Generator:
    """A CPU generator that is a pure function of ``key`` (e.g. method, seed, epoch): a method's own
    draws then neither consume nor depend on the training streams, on any device."""
    digest = hashlib.sha256(("reproduce.method:" + ":".join(map(str, key))).encode()).digest()
    return torch.Generator(device="cpu").manual_seed(int.from_bytes(digest[:8], "little") >> 1)
