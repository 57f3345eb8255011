"""TRADES (Zhang et al., 2019) and MART (Wang et al., 2020)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..attacks import pgd
from .base import METHODS, Method, StepOutput


def kl_per_example(logits_adv: torch.Tensor, logits_clean: torch.Tensor) -> torch.Tensor:
    """KL(p_clean || p_adv) per example, as TRADES' KLDivLoss(log p_adv, p_clean) computes it."""
    p_clean = F.softmax(logits_clean, dim=1)
    return (p_clean * (F.log_softmax(logits_clean, dim=1) - F.log_softmax(logits_adv, dim=1))).sum(1)


@METHODS.register("trades")
class Trades(Method):
    """CE(clean) + beta * KL(clean || adv); inner max is the KL from x + 0.001 N(0, I)."""

    params = {"beta": 6.0}

    def step(self, model: nn.Module, batch, epoch: int, it: int) -> StepOutput:
        kw = dict(self.attack_kwargs)
        x_adv = pgd(model, batch.x, batch.y, loss="kl", **kw)
        logits = model(batch.x)
        logits_adv = model(x_adv)
        ce = F.cross_entropy(logits, batch.y, reduction="none")
        kl = kl_per_example(logits_adv, logits)
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

    params = {"beta": 6.0}

    def step(self, model: nn.Module, batch, epoch: int, it: int) -> StepOutput:
        x_adv = pgd(model, batch.x, batch.y, loss="ce", **self.attack_kwargs)
        logits = model(batch.x)
        logits_adv = model(x_adv)
        p_adv = F.softmax(logits_adv, dim=1)
        # the largest wrong-class probability: MART's "boosted" margin term
        top2 = p_adv.topk(2, dim=1).indices
        wrong = torch.where(top2[:, 0] == batch.y, top2[:, 1], top2[:, 0])
        bce = F.cross_entropy(logits_adv, batch.y, reduction="none") - torch.log(
            1.0001 - p_adv.gather(1, wrong[:, None]).squeeze(1)
        )
        p_clean = F.softmax(logits, dim=1)
        true_prob = p_clean.gather(1, batch.y[:, None]).squeeze(1)
        kl = kl_per_example(logits_adv, logits) * (1.0000001 - true_prob)
        per = bce + self.p["beta"] * kl
        return StepOutput(per.mean(), per.detach(), {"bce": bce.mean().detach(), "kl": kl.mean().detach()})
