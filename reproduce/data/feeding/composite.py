"""Batches that mix a labelled primary split with pseudo-labelled extra data (RST, HAT Table 4).

As Carmon et al.'s semi-supervised sampler does: an epoch is ``ceil(epoch_images /
batch_size)`` batches; each takes the next ``(1 - fraction) * batch_size`` images of a
fresh permutation of the primary split and ``fraction * batch_size`` extra images drawn
uniformly with replacement. Both parts are augmented alike; the extra part's labels are
its pseudo-labels. Everything is a pure function of (seed, epoch), so resume is exact.
"""

from __future__ import annotations

import math
from typing import Any, Iterator, Mapping

import torch

from ...errors import ConfigError
from .loader import Batch, DeviceDataset, augment_batch, epoch_generator, to_unit_float

KEYS = ("dataset", "fraction", "epoch_images")


def check_composite(spec: Mapping[str, Any], where: str) -> None:
    bad = sorted(set(spec) - set(KEYS))
    if bad or "dataset" not in spec:
        raise ConfigError(f"{where}: data.composite takes {', '.join(KEYS)} (dataset required); got {dict(spec)}")
    f = spec.get("fraction", 0.5)
    if not isinstance(f, (int, float)) or not 0 < f < 1:
        raise ConfigError(f"{where}: data.composite.fraction must be in (0, 1), got {f!r}")


def steps_per_epoch(spec: Mapping[str, Any], n_primary: int, batch_size: int) -> int:
    return math.ceil(int(spec.get("epoch_images") or n_primary) / batch_size)


def composite_batches(primary: DeviceDataset, extra: DeviceDataset, spec: Mapping[str, Any], batch_size: int, *,
                      seed: int, epoch: int, augment: bool, pad: int, start_batch: int = 0) -> Iterator[Batch]:
    n_extra = int(round(batch_size * float(spec.get("fraction", 0.5))))
    n_prim = batch_size - n_extra
    steps = steps_per_epoch(spec, len(primary), batch_size)
    g = epoch_generator(seed, epoch)
    order = torch.randperm(len(primary), generator=g)
    need = steps * n_prim
    order = order.repeat(math.ceil(need / len(primary)))[:need]  # wraps when an epoch asks for more
    picks = torch.randint(len(extra), (steps * n_extra,), generator=g)
    crops = torch.randint(0, 2 * pad + 1, (steps * batch_size, 2), generator=g)
    flips = torch.randint(0, 2, (steps * batch_size,), generator=g).bool()
    for b in range(start_batch, steps):  # every draw is made up front: starting later changes none
        p_host, e_host = order[b * n_prim:(b + 1) * n_prim], picks[b * n_extra:(b + 1) * n_extra]
        p, e = p_host.to(primary.device), e_host.to(extra.device)
        # each part gathered where its split is stored (device or pinned host), joined on the device
        u8 = torch.cat([primary.gather_images(p_host if primary.storage == "host" else p),
                        extra.gather_images(e_host if extra.storage == "host" else e)])
        crop = flip = None
        if augment:
            crop = crops[b * batch_size:(b + 1) * batch_size]
            flip = flips[b * batch_size:(b + 1) * batch_size]
            u8 = augment_batch(u8, crop, flip, pad)
        y = torch.cat([primary.labels[p], extra.labels[e]])
        # extra images are numbered after the primary split's
        idx = torch.cat([primary.indices[p], extra.indices[e] + len(primary)])
        yield Batch(to_unit_float(u8), y, idx, crop, flip)
