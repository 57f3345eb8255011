"""Fine-tuning a robust model on batches mixed with extra data, with reweighting and a KL term (the
hard-instance paper's §6.2, Tables 2 and 7; notes ``hard_instances.md`` §3.5, traps T16, T20), as the
authors' ``loss_in_tune`` (``util/train.py:822-885``) computes it.

The batches (half primary, half extra, an epoch one pass over the extra data) come from
``data.composite``; the starting weights from ``init``. ``loss`` picks one of Table 7's rows:

- ``vanilla`` (the code's ``tune_mode base``): PGD, then CE(f(x_adv), y) averaged.
- ``rw`` (``kl`` with gamma 0), ``kl`` (``kl`` with ada_weight 0), ``rw_kl`` (``kl``, gamma 6): a clean
  train-mode forward first, then PGD (CE), then l_i = CE(f(x_adv)_i, y_i) + gamma_i KL(p(x_i) || p(x_adv_i))
  with the gradient through both sides, and loss = sum_i w_i l_i / sum_i w_i (w_i = 1 without
  reweighting; the KL term is 0 x KL for ``rw``, as the code's gamma 0).
- ``weight``: ``clean_max`` (default, the code's ``max_prob_as_weight``): max_c softmax(f(x_i))_c;
  ``clean_true``: softmax(f(x_i))[y_i]; ``adv_true``: softmax(f(x_adv_i))[y_i], the text's "same as
  Section 6.1" [L464]. ``weight_grad`` (default true, the code's ``diff_weight``): the gradient flows
  through the weights; the text's reading is ``weight: adv_true, weight_grad: false``.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..attacks import pgd
from .base import METHODS, Method, StepOutput, TrainContext
from .instances import check_choice, check_number

LOSSES = ("vanilla", "rw", "kl", "rw_kl")
WEIGHTS = ("clean_max", "clean_true", "adv_true")


@METHODS.register("finetune")
class Finetune(Method):
    """CE on PGD examples, optionally + gamma KL(clean || adv), weighted per example."""

    params = {"loss": "rw_kl", "gamma": 6.0, "weight": "clean_max", "weight_grad": True}

    def __init__(self, cfg: Mapping[str, Any], ctx: TrainContext) -> None:
        super().__init__(cfg, ctx)
        check_choice("finetune", "loss", self.p["loss"], LOSSES)
        check_choice("finetune", "weight", self.p["weight"], WEIGHTS)
        check_choice("finetune", "weight_grad", self.p["weight_grad"], (True, False))
        self.gamma = check_number("finetune", "gamma", self.p["gamma"], 0.0)

    def weights(self, clean: Tensor, adv: Tensor, y: Tensor) -> Tensor:
        how = self.p["weight"]
        logits = adv if how == "adv_true" else clean
        p = F.softmax(logits, dim=1)
        w = p.max(dim=1)[0] if how == "clean_max" else p.gather(1, y[:, None]).squeeze(1)
        return w if self.p["weight_grad"] else w.detach()

    def step(self, model: nn.Module, batch: Any, epoch: int, it: int) -> StepOutput:
        x, y, how = batch.x, batch.y, self.p["loss"]
        if how == "vanilla":
            logits = model(pgd(model, x, y, loss="ce", **self.attack_kwargs))
            ce = F.cross_entropy(logits, y, reduction="none")
            hit = logits.argmax(1) == y
            return StepOutput(F.cross_entropy(logits, y), ce.detach(), {"train_adv_acc": hit.float().mean()},
                              per_example_correct=hit)
        clean = model(x)  # before the attack: its train-mode forward comes first in the code
        logits = model(pgd(model, x, y, loss="ce", **self.attack_kwargs))
        ce = -F.log_softmax(logits, dim=1).gather(1, y[:, None]).squeeze(1)
        kl = (F.softmax(clean, dim=1) * (F.log_softmax(clean, dim=1) - F.log_softmax(logits, dim=1))).sum(dim=1)
        per = ce + (0.0 if how == "rw" else self.gamma) * kl
        w = self.weights(clean, logits, y) if how in ("rw", "rw_kl") else torch.ones_like(per)
        loss = (per * w).sum() / w.sum()
        hit = logits.argmax(1) == y
        return StepOutput(loss, ce.detach(), {"train_adv_acc": hit.float().mean(), "kl": kl.mean().detach(),
                                             "weight_mean": w.mean().detach()}, per_example_correct=hit)
