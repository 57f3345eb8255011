"""Subset adversarial training (CSAT / ESAT; "On Adversarial Training without Perturbing all Examples").

What the authors' code does (mlosch/SAT, ``model/adversarial_model.py``), which this follows:

- A is a set of classes (CSAT, ``DomainAttackerModel``: mask = y in A) or of training examples
  (ESAT, ``InstanceDomainAttackerModel``: mask = image id in A); only the A part of a batch is
  attacked, in eval mode (BN running statistics), and written back into the batch.
- One train-mode forward of the mixed batch (A adversarial, B clean): BN batch statistics span both.
- Loss: unweighted CE, or per-example weights w_A for A and 1 for B with sum(w l) / sum(w) over the
  batch (PyTorch's weighted CE and the code's ``InstanceWeightedCrossEntropyLoss`` both normalise so).
  ``increasing`` is the code's "weightedincreasing2to10": w_A = (1 + i) (1 - f) / f with f = i / 10 the
  fraction of A (i tenths; classes for CSAT, examples for ESAT); ``balanced`` is w_A = (1 - f) / f.
- The attack loss is the unweighted per-example CE; L2 PGD without random start that returns the best
  of x_0..x_{K-1} (``use_best``: the last iterate is never scored, the clean input can win).

The apex-AMP early exit of the code's attack (mean loss NaN or > 10) is not reproduced: runs here
use fp32 or autocast without a static loss scale (notes §10 D6).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..attacks import pgd
from ..errors import ConfigError
from .base import METHODS, Method, StepOutput, TrainContext

BY = ("class", "example")
WEIGHTS = ("none", "balanced", "increasing")
# code: x_0..x_{K-1} scored; all: the final iterate too (the text's "PGD-7" reading); none: last iterate
BEST_OF = ("before_step", "all", "none")


def subset_weight(scheme: str, fraction: float, tenths: int | None = None) -> float:
    """w_A for a subset that is ``fraction`` of the classes (CSAT) or examples (ESAT); w_B = 1.

    ``tenths`` (the code's i) overrides the fraction with i / 10, as the generators compute it.
    """
    if scheme == "none":
        return 1.0
    f = tenths / 10.0 if tenths is not None else float(fraction)
    if not 0.0 < f < 1.0:
        raise ConfigError(f"method subset_at: weights need 0 < |A|/|D| < 1, got {f}")
    ratio = (1.0 - f) / f
    return ratio if scheme == "balanced" else (1.0 + 10.0 * f) * ratio


def weighted_mean(per: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """sum(w l) / sum(w): the batch normalisation of a weighted CE."""
    return (w * per).sum() / w.sum()


@METHODS.register("subset_at")
class SubsetAT(Method):
    """Adversarial examples for the subset A only; one forward of the mixed batch; optional w_A."""

    params = {"by": "class", "subset": None, "ranking": None, "weights": "none", "tenths": None, "w_A": None,
              "best_of": "before_step", "bn_mode": "eval"}
    # ranking: {analysis: NAME, key: K} (an analysis's list of classes or example ids) instead of subset;
    # the spec layer resolves it to the analysis id before hashing
    references = ("ranking",)

    def __init__(self, cfg: Mapping[str, Any], ctx: TrainContext) -> None:
        super().__init__(cfg, ctx)
        p = self.p
        if p["by"] not in BY:
            raise ConfigError(f"method subset_at: by must be one of {BY}, got {p['by']!r}")
        if p["weights"] not in WEIGHTS:
            raise ConfigError(f"method subset_at: weights must be one of {WEIGHTS}, got {p['weights']!r}")
        if p["best_of"] not in BEST_OF:
            raise ConfigError(f"method subset_at: best_of must be one of {BEST_OF}, got {p['best_of']!r}")
        if (p["subset"] is None) == (p["ranking"] is None):
            raise ConfigError("method subset_at: give exactly one of subset: and ranking:")
        self.members = self._members(p["subset"] if p["ranking"] is None else p["ranking"], ctx)
        self.attack_kwargs.update(keep_best=p["best_of"] != "none", score_last=p["best_of"] == "all",
                                  bn_mode=p["bn_mode"])
        if p["w_A"] is not None:
            self.w_a = float(p["w_A"])
        else:
            total = ctx.num_classes if p["by"] == "class" else self._n_examples(ctx)
            self.w_a = subset_weight(p["weights"], len(self.members) / max(total, 1), p["tenths"])
        self._ids: torch.Tensor | None = None

    @classmethod
    def attacked_fraction(cls, method, num_classes, n_train, ref_fraction) -> float:
        """|A| / |D|: the attack runs on the A part of a batch only (notes §5.2)."""
        if method.get("tenths") is not None:
            return int(method["tenths"]) / 10.0
        sub = method.get("subset") if method.get("ranking") is None else method["ranking"]
        if isinstance(sub, list):
            sub = {"classes" if method.get("by", "class") == "class" else "indices": sub}
        if not isinstance(sub, Mapping):
            return 1.0
        if "classes" in sub:
            return len(sub["classes"]) / max(num_classes, 1)
        if "indices" in sub:
            return min(1.0, len(sub["indices"]) / max(n_train, 1))
        f = ref_fraction(sub)
        return 1.0 if f is None else float(f)

    @classmethod
    def canonical(cls, method: dict[str, Any]) -> dict[str, Any]:
        """A ranking the spec layer inlined as a list (a static analysis: a seeded class draw) is the
        listed subset it names: a random draw equal to a listed A is the same run (notes §3.3)."""
        listed = method.get("ranking")
        if isinstance(listed, list):
            by = method.get("by", cls.params["by"])
            method = {k: v for k, v in method.items() if k != "ranking"}
            method["subset"] = {"classes" if by == "class" else "indices": sorted(int(i) for i in listed)}
        return method

    def _members(self, subset: Any, ctx: TrainContext) -> np.ndarray:
        if isinstance(subset, list):
            subset = {"classes" if self.p["by"] == "class" else "indices": subset}
        if not isinstance(subset, Mapping):
            raise ConfigError(f"method subset_at: subset must be a list, {{classes: [...]}}, {{indices: [...]}} "
                              f"or {{analysis: NAME, key: K}}, got {subset!r}")
        if "classes" in subset:
            if self.p["by"] != "class":
                raise ConfigError("method subset_at: subset.classes needs by: class")
            return np.asarray(sorted(int(c) for c in subset["classes"]), dtype=np.int64)
        if "indices" in subset:
            return np.asarray(sorted(int(i) for i in subset["indices"]), dtype=np.int64)
        if "analysis" in subset:
            if ctx.refs is None:
                raise ConfigError(f"method subset_at: subset {dict(subset)} names an analysis, but this training "
                                  "context resolves no references")
            return ctx.refs.indices(subset, np.zeros(0))
        raise ConfigError(f"method subset_at: subset needs classes:, indices: or analysis:, got {dict(subset)}")

    @staticmethod
    def _n_examples(ctx: TrainContext) -> int:
        primary = ctx.cfg["data"]["primary"]
        return len(ctx.datasets[primary]) if primary in ctx.datasets else 0

    def in_a(self, batch: Any) -> torch.Tensor:
        """Boolean mask of the batch's members of A (by label or by instance id)."""
        key = batch.y if self.p["by"] == "class" else batch.idx
        if self._ids is None or self._ids.device != key.device:
            self._ids = torch.as_tensor(self.members, device=key.device)
        return torch.isin(key, self._ids)

    def step(self, model: nn.Module, batch: Any, epoch: int, it: int) -> StepOutput:
        x, y = batch.x, batch.y
        mask = self.in_a(batch)
        if bool(mask.any()):
            x = x.clone()
            x[mask] = pgd(model, x[mask], y[mask], loss="ce", **self.attack_kwargs)
        logits = model(x)
        per = F.cross_entropy(logits, y, reduction="none")
        w = torch.where(mask, torch.full_like(per, self.w_a), torch.ones_like(per))
        loss = weighted_mean(per, w)
        correct = (logits.argmax(1) == y).float()
        stats = {"frac_A": mask.float().mean(), "train_acc": correct.mean()}
        return StepOutput(loss, per.detach(), stats)
