"""Batches that mix a labelled primary split with pseudo-labelled extra data (RST, HAT Table 4).

As Carmon et al.'s semi-supervised sampler does: an epoch is ``ceil(epoch_images /
batch_size)`` batches; each takes the next ``(1 - fraction) * batch_size`` images of a
fresh permutation of the primary split and ``fraction * batch_size`` extra images drawn
uniformly with replacement. Both parts are augmented alike; the extra part's labels are
its pseudo-labels. Everything is a pure function of (seed, epoch), so resume is exact.

``order: pass`` is the hard-instance fine-tuning code's sampler instead (``run/tune_normal.py``,
notes hard_instances.md §3.5): an epoch is one pass over a permutation of the extra data
(``ceil(len(extra) / (fraction * batch_size))`` batches, the last one's extra part the remainder),
and the primary part walks through fresh permutations of the primary split, one after another.
``epoch_images`` is then not given. ``split`` names the extra dataset's split (default ``train``;
SVHN's ``extra``). Both keys are left out of a config at their defaults, so run ids stay as they were.

``epoch_images: primary_pass`` makes an epoch one pass over the primary split, as BiaMAT's RST rows
count it ("the same amount of primary and pseudo-labeled data" in every batch of a TRADES epoch):
``n_primary // primary_per_batch`` batches (``ceil`` with ``data.drop_last: false``), so a scale
with a smaller primary keeps that meaning. ``labels: {analysis: NAME}`` (a ``pseudo_labels``
analysis) replaces the extra split's own labels, and ``subset: {analysis: NAME, key: indices}``
(a ``topk_per_class`` analysis) keeps only the listed positions of the extra split; the trainer
resolves both (``reproduce/train/composite_refs.py``), this module sees the result.
"""

from __future__ import annotations

import math
from typing import Any, Iterator, Mapping

import torch

from ...errors import ConfigError
from .loader import Batch, DeviceDataset, augment_batch, epoch_generator, to_unit_float

KEYS = ("dataset", "fraction", "epoch_images", "order", "split", "labels", "subset")
ORDERS = ("replacement", "pass")
PRIMARY_PASS = "primary_pass"
REF_KEYS = ("labels", "subset")  # analysis references (reproduce/pipeline/references.py hashes their ids)


def _check_ref(spec: Mapping[str, Any], key: str, where: str) -> None:
    ref = spec.get(key)
    if ref is None:
        return
    allowed = {"analysis"} if key == "labels" else {"analysis", "key"}
    if not isinstance(ref, Mapping) or "analysis" not in ref or set(ref) - allowed:
        form = "{analysis: NAME}" if key == "labels" else "{analysis: NAME, key: indices}"
        raise ConfigError(f"{where}: data.composite.{key} must be {form}, got {ref!r}")


def check_composite(spec: Mapping[str, Any], where: str) -> None:
    bad = sorted(set(spec) - set(KEYS))
    if bad or "dataset" not in spec:
        raise ConfigError(f"{where}: data.composite takes {', '.join(KEYS)} (dataset required); got {dict(spec)}")
    f = spec.get("fraction", 0.5)
    if not isinstance(f, (int, float)) or not 0 < f < 1:
        raise ConfigError(f"{where}: data.composite.fraction must be in (0, 1), got {f!r}")
    order = spec.get("order", "replacement")
    if order not in ORDERS:
        raise ConfigError(f"{where}: data.composite.order must be one of {', '.join(ORDERS)}, got {order!r}")
    if order == "pass" and spec.get("epoch_images"):
        raise ConfigError(f"{where}: data.composite.order pass makes an epoch one pass over the extra data; "
                          f"drop epoch_images (got {spec['epoch_images']!r})")
    ep = spec.get("epoch_images")
    if ep is not None and ep != PRIMARY_PASS and (isinstance(ep, bool) or not isinstance(ep, int) or ep < 1):
        raise ConfigError(f"{where}: data.composite.epoch_images must be a positive image count or "
                          f"{PRIMARY_PASS!r}, got {ep!r}")
    for key in REF_KEYS:
        _check_ref(spec, key, where)


def extra_per_batch(spec: Mapping[str, Any], batch_size: int) -> int:
    return int(round(batch_size * float(spec.get("fraction", 0.5))))


def steps_per_epoch(spec: Mapping[str, Any], n_primary: int, batch_size: int, n_extra: int | None = None,
                    drop_last: bool = True) -> int:
    """Batches per epoch; ``drop_last`` (the run's ``data.drop_last``) matters for ``primary_pass`` only."""
    if spec.get("order") == "pass":
        if n_extra is None:
            raise ConfigError("data.composite.order pass: the extra split's size is needed to count the steps")
        return math.ceil(int(n_extra) / extra_per_batch(spec, batch_size))
    if spec.get("epoch_images") == PRIMARY_PASS:
        per = batch_size - extra_per_batch(spec, batch_size)
        if per < 1:
            raise ConfigError(f"data.composite: a batch of {batch_size} leaves no primary image at fraction "
                              f"{spec.get('fraction', 0.5)}")
        return int(n_primary) // per if drop_last else math.ceil(int(n_primary) / per)
    return math.ceil(int(spec.get("epoch_images") or n_primary) / batch_size)


def _pass_orders(n_primary: int, n_extra: int, steps: int, n_prim: int, n_ext: int,
                 g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """One permutation of the extra data cut into batches, beside consecutive fresh permutations of the
    primary split (the code cycles its primary loader, reshuffling each time it runs out)."""
    extra = torch.randperm(n_extra, generator=g)
    need = steps * n_prim
    chunks = [torch.randperm(n_primary, generator=g) for _ in range(math.ceil(need / n_primary))]
    starts = [min(b * n_ext, n_extra) for b in range(steps + 1)]
    return torch.cat(chunks)[:need], extra, starts


def composite_batches(primary: DeviceDataset, extra: DeviceDataset, spec: Mapping[str, Any], batch_size: int, *,
                      seed: int, epoch: int, augment: bool, pad: int, start_batch: int = 0,
                      drop_last: bool = True) -> Iterator[Batch]:
    n_extra = extra_per_batch(spec, batch_size)
    n_prim = batch_size - n_extra
    steps = steps_per_epoch(spec, len(primary), batch_size, len(extra), drop_last)
    g = epoch_generator(seed, epoch)
    if spec.get("order") == "pass":
        order, picks, starts = _pass_orders(len(primary), len(extra), steps, n_prim, n_extra, g)
    else:
        order = torch.randperm(len(primary), generator=g)
        need = steps * n_prim
        order = order.repeat(math.ceil(need / len(primary)))[:need]  # wraps when an epoch asks for more
        picks = torch.randint(len(extra), (steps * n_extra,), generator=g)
        starts = [b * n_extra for b in range(steps + 1)]
    crops = torch.randint(0, 2 * pad + 1, (steps * batch_size, 2), generator=g)
    flips = torch.randint(0, 2, (steps * batch_size,), generator=g).bool()
    for b in range(start_batch, steps):  # every draw is made up front: starting later changes none
        p_host, e_host = order[b * n_prim:(b + 1) * n_prim], picks[starts[b]:starts[b + 1]]
        p, e = p_host.to(primary.device), e_host.to(extra.device)
        # each part gathered where its split is stored (device or pinned host), joined on the device
        u8 = torch.cat([primary.gather_images(p_host if primary.storage == "host" else p),
                        extra.gather_images(e_host if extra.storage == "host" else e)])
        crop = flip = None
        if augment:  # a short last batch takes the first of its draws
            crop = crops[b * batch_size:b * batch_size + len(u8)]
            flip = flips[b * batch_size:b * batch_size + len(u8)]
            u8 = augment_batch(u8, crop, flip, pad)
        y = torch.cat([primary.labels[p], extra.labels[e]])
        # extra images are numbered after the primary split's
        idx = torch.cat([primary.indices[p], extra.indices[e] + len(primary)])
        yield Batch(to_unit_float(u8), y, idx, crop, flip)
