"""TRADES (Zhang et al., 2019) and MART (Wang et al., 2020), as their official code computes them.

Options where the authors' code and a plain reading of the papers differ (defaults follow
the code that made the published numbers; the other reading is a named value):

- ``trades.train_forwards`` (default 3): the official ``trades_loss`` (yaodongyu/TRADES,
  ``trades.py``) runs three train-mode forwards per step after its eval-mode attack:
  ``model(x_natural)`` for the CE, ``model(x_adv)``, then ``model(x_natural)`` again for the
  KL's reference distribution. The loss and its gradient equal the two-pass version (the
  third pass repeats the first in train mode), but every train-mode forward moves the
  BatchNorm running statistics, so the evaluated model differs. ``2`` is the HAT
  repository's ``trades_loss`` (imrahulr/hat ``core/utils/trades.py``: clean, adversarial)
  and the structure of BiaMAT's own TRADES variants.
- ``mart.log_eps`` (default 1e-12): the official ``mart_loss`` (YisenWang/MART ``mart.py``;
  the HAT repository's ``core/utils/mart.py`` is the same) takes ``log(p + 1e-12)`` for both
  the boosted term ``log(1.0001 - p_adv + 1e-12)`` and the KL's ``log(p_adv + 1e-12)``: the
  log-probability is floored near log(1e-12) and its gradient vanishes once p_adv is far
  below 1e-12. ``0`` is the paper's formula (exact log-softmax).

The attack's start (``attack.random_start: normal`` = the code's unclipped x + 0.001 N(0, I))
is an attack setting (``reproduce.attacks.pgd``). The resolved options are written to every
epoch's row of ``metrics.jsonl`` (``epoch_stats``), since defaults are not part of config.yaml.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ..attacks import pgd
from ..attacks.losses import kl_rows
from ..speclang.numbers import parse_number
from ..errors import ConfigError
from .base import METHODS, Method, StepOutput, TrainContext


def kl_per_example(logits_adv: torch.Tensor, logits_clean: torch.Tensor) -> torch.Tensor:
    """KL(p_clean || p_adv) per example, as TRADES' KLDivLoss(log p_adv, p_clean) computes it."""
    p_clean = F.softmax(logits_clean, dim=1)
    return (p_clean * (F.log_softmax(logits_clean, dim=1) - F.log_softmax(logits_adv, dim=1))).sum(1)


@METHODS.register("trades")
class Trades(Method):
    """CE(clean) + beta * KL(clean || adv); inner max is the KL from x + 0.001 N(0, I)."""

    params = {"beta": 6.0, "train_forwards": 3}

    def __init__(self, cfg: Mapping[str, Any], ctx: TrainContext) -> None:
        super().__init__(cfg, ctx)
        if self.p["train_forwards"] not in (2, 3) or isinstance(self.p["train_forwards"], bool):
            raise ConfigError(f"method.train_forwards must be 3 (official TRADES: clean, adv, clean) or 2 "
                              f"(clean, adv), got {self.p['train_forwards']!r}")

    def epoch_stats(self) -> dict[str, float]:
        return {"opt_train_forwards": float(self.p["train_forwards"])}

    def step(self, model: nn.Module, batch, epoch: int, it: int) -> StepOutput:
        kw = dict(self.attack_kwargs)
        x_adv = pgd(model, batch.x, batch.y, loss="kl", **kw)
        logits = model(batch.x)
        logits_adv = model(x_adv)
        # the official code's third train-mode pass: same values, one more BN momentum update
        reference = model(batch.x) if self.p["train_forwards"] == 3 else logits
        ce = F.cross_entropy(logits, batch.y, reduction="none")
        kl = kl_per_example(logits_adv, reference)
        per = ce + self.p["beta"] * kl
        return StepOutput(
            per.mean(),
            per.detach(),
            {"ce": ce.mean().detach(), "kl": kl.mean().detach(),
             "train_acc": (logits.argmax(1) == batch.y).float().mean()},
        )


@METHODS.register("mart")
class Mart(Method):
    """Boosted CE on adversarial examples + beta * KL weighted by (1 - p_y(clean))."""

    params = {"beta": 6.0, "log_eps": 1e-12}

    def __init__(self, cfg: Mapping[str, Any], ctx: TrainContext) -> None:
        super().__init__(cfg, ctx)
        v = parse_number(self.p["log_eps"], "method.log_eps")
        if not 0 <= v < 1e-3:
            raise ConfigError(f"method.log_eps must be in [0, 1e-3) (official MART: 1e-12; "
                              f"0: exact log-softmax), got {self.p['log_eps']!r}")
        self.log_eps = v

    def epoch_stats(self) -> dict[str, float]:
        return {"opt_log_eps": self.log_eps}

    def step(self, model: nn.Module, batch, epoch: int, it: int) -> StepOutput:
        x_adv = pgd(model, batch.x, batch.y, loss="ce", **self.attack_kwargs)
        logits = model(batch.x)
        logits_adv = model(x_adv)
        p_adv = F.softmax(logits_adv, dim=1)
        eps = self.log_eps
        # the largest wrong-class probability: MART's "boosted" margin term
        top2 = p_adv.topk(2, dim=1).indices
        wrong = torch.where(top2[:, 0] == batch.y, top2[:, 1], top2[:, 0])
        p_wrong = p_adv.gather(1, wrong[:, None]).squeeze(1)
        bce = F.cross_entropy(logits_adv, batch.y, reduction="none") - torch.log(1.0001 - p_wrong + eps)
        p_clean = F.softmax(logits, dim=1)
        true_prob = p_clean.gather(1, batch.y[:, None]).squeeze(1)
        if eps > 0:
            # the code's KLDivLoss(log(p_adv + eps), p_clean): the floored log of p_adv; p_clean is
            # not detached there, so its gradient must survive a probability that underflows to 0
            kl_raw = kl_rows(torch.log(p_adv + eps), p_clean)
        else:
            kl_raw = kl_per_example(logits_adv, logits)
        kl = kl_raw * (1.0000001 - true_prob)
        per = bce + self.p["beta"] * kl
        return StepOutput(per.mean(), per.detach(), {"bce": bce.mean().detach(), "kl": kl.mean().detach()})
