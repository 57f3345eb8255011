"""``feature_stats`` (run key ``feature_stats``): per-epoch penultimate-feature magnitude of difficulty groups.

As the hard-instance code's feature tracker does after each training epoch (``util/train.py:90-129``,
``visualize/plot_activation.py``; notes hard_instances.md §3.8, trap T22): the model in eval mode, the
**augmented** training split attacked under ``protocol`` (the run's test attacker), the penultimate
features of the adversarial images (``model.features``), and per group G_k of the ``groups`` analysis
(original indices) the per-dimension median and mean of |feature|. The epoch's metrics row gets

- ``feat_median_G<k>``: the L2 norm over dimensions of the per-dimension median (what the authors'
  figure plots: ``metric='median', norm=2``);
- ``feat_mean_G<k>``: the same of the per-dimension mean (the text's "average l2 norm" [L214-215] is
  closest to this; both are kept).

Augmentation and attack draw from a generator of their own, seeded from (run seed, epoch): the
training stream, hence the weights, are those of the same run without it. The rows are in
``metrics.jsonl``, so a resumed run keeps them; nothing else to checkpoint.
"""

from __future__ import annotations

import zlib
from typing import Any

import torch

from ...attacks.pgd import attack_mode
from ...errors import ConfigError
from ..refs import analysis_values
from ..state import TrainRun
from .base import Observer, register

BATCH = 256
TAG = "feature_stats"


def group_lookup(values: dict[str, Any], ids: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
    """Group number by original index, up to the largest of ``ids`` (-1: in no group), and the group numbers."""
    ks = sorted(int(k[1:]) for k in values if k.startswith("G") and k[1:].isdigit())
    if not ks:
        raise ConfigError("feature_stats.groups: the analysis lists no groups G0, G1, ...")
    top = int(ids.max()) + 1 if ids.numel() else 0
    table = torch.full((top,), -1, dtype=torch.long)
    for k in ks:
        members = torch.as_tensor([int(i) for i in values[f"G{k}"] if int(i) < top], dtype=torch.long)
        table[members] = k
    return table, ks


def magnitudes(feats: torch.Tensor) -> tuple[float, float]:
    """(L2 norm of the per-dimension median |f|, of the per-dimension mean |f|) over one group's rows."""
    a = feats.abs().float()
    return float(a.median(dim=0).values.norm()), float(a.mean(dim=0).norm())


@register("feature_stats")
class FeatureStats(Observer):
    keys = ("feature_stats",)

    def on_start(self, run: TrainRun) -> None:
        spec = run.cfg["feature_stats"]
        values = analysis_values(spec["groups"], run.upstream, "feature_stats.groups")
        self.ds = run.data["train"][run.cfg["data"]["primary"]]
        self.group, self.ks = group_lookup(values, self.ds.indices.detach().cpu().long())
        from ...evaluate import PROTOCOLS

        self.proto = PROTOCOLS.get(spec["protocol"], where="feature_stats.protocol")
        if self.proto.kind not in ("pgd", "clean"):
            raise ConfigError(f"feature_stats.protocol: a pgd or clean protocol, got {self.proto.name} "
                              f"({self.proto.kind})")

    def on_epoch_end(self, run: TrainRun, epoch: int, row: dict[str, Any]) -> None:
        from ...attacks import pgd
        from ...data.feeding.loader import iterate

        seed = (run.epoch_seed(epoch) + zlib.crc32(TAG.encode())) % (2**31 - 1)
        gen = torch.Generator(device=run.device).manual_seed(seed)
        d, p = run.cfg["data"], self.proto
        group = self.group.to(run.device)
        parts: dict[int, list[torch.Tensor]] = {k: [] for k in self.ks}
        for b in iterate(self.ds, BATCH, shuffle=False, augment=True, pad=int(d["pad"]), seed=seed, epoch=epoch):
            x = b.x
            if p.kind == "pgd":
                x = pgd(run.model, b.x, b.y, eps=p.eps, step_size=p.step_size, steps=p.steps, norm=p.norm,
                        random_start=p.random_start, bn_mode="eval", generator=gen)
            with attack_mode(run.model, "eval"), torch.no_grad():
                f = run.model.features(x)
            g = group[b.idx.to(run.device)]
            for k in self.ks:
                parts[k].append(f[g == k].cpu())
        for k in self.ks:
            feats = torch.cat(parts[k]) if parts[k] else torch.empty(0)
            med, mean = magnitudes(feats) if len(feats) else (float("nan"), float("nan"))
            row[f"feat_median_G{k}"], row[f"feat_mean_G{k}"] = med, mean
