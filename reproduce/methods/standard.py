"""Standard training and Madry et al.'s PGD adversarial training."""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from ..attacks import pgd
from .base import METHODS, Method, StepOutput


@METHODS.register("standard")
class Standard(Method):
    """Cross-entropy on clean images."""

    attacks = False

    def step(self, model: nn.Module, batch, epoch: int, it: int) -> StepOutput:
        logits = model(batch.x)
        per = F.cross_entropy(logits, batch.y, reduction="none")
        right = (logits.argmax(1) == batch.y).float()
        # training-time entropy and 0-1 error per example: the Subset AT rankings' raw material
        p = logits.detach().float().log_softmax(1)
        extra = {"entropy": -(p.exp() * p).sum(1), "error": 1.0 - right}
        return StepOutput(per.mean(), per.detach(), {"train_acc": right.mean()}, per_instance=extra,
                          per_example_correct=right.bool())


@METHODS.register("at")
class MadryAT(Method):
    """Cross-entropy on PGD examples (Madry et al., 2018)."""

    def step(self, model: nn.Module, batch, epoch: int, it: int) -> StepOutput:
        x_adv = pgd(model, batch.x, batch.y, loss="ce", **self.attack_kwargs)
        logits = model(x_adv)
        per = F.cross_entropy(logits, batch.y, reduction="none")
        hit = logits.argmax(1) == batch.y
        return StepOutput(per.mean(), per.detach(), {"train_adv_acc": hit.float().mean()}, per_example_correct=hit)
