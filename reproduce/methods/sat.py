"""Self-adaptive training on TRADES (SAT; Huang et al. 2020) as the hard-instance code runs it
(``run/train_movetarget.py``, ``util/train.py:505-673``; notes ``hard_instances.md`` §3.7, trap T28).

Per batch (model in train mode throughout, as the code):

1. ``clean = f(x)``. Targets t_i start one-hot; from epoch max(1, ``warmup``) on,
   t_i <- alpha t_i + (1 - alpha) softmax(clean_i) (the clean output, detached). The weight is
   w_i = max_c t_ic (1 for every i with ``use_weight: false``).
2. PGD on the TRADES KL(p_clean.detach || p) from the configured start; with ``attack.keep_best``
   the iterates are ranked by their cross-entropy, as the code's attack does whatever it ascends.
3. ``log_attack`` (default true, the code's): a second PGD on the CE, used only for the logged
   adversarial accuracy; its forwards, and one at its result, move the BatchNorm statistics.
4. loss = sum_i w_i (-sum_c t_ic log softmax(clean_i)_c) / sum_i w_i
   + mean_i KL(p_clean.detach || p(x_trades)) / ``gamma``.

``gamma`` divides the KL term, as the code does (its default 1); Huang et al.'s script uses TRADES
beta 6, i.e. ``gamma: 1/6``, and the paper trains with ``warmup: 90``. Per-instance logs
(``adapted``): the weight, and the clean prediction's accuracy against the ground truth and against
argmax t (``acc_gt``, ``acc_target``: what the code logs, lines 594-595); with ``log_attack`` also
the adversarial prediction's (``adv_acc_gt``, ``adv_acc_target``: the text's reading [L1480-1481]).
The targets (N x classes) are in ``state_dict``.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..attacks import pgd
from ..errors import ConfigError
from .base import METHODS, Method, StepOutput, TrainContext
from .instances import InstanceRows, check_choice, check_number


@METHODS.register("sat")
class Sat(Method):
    """Weighted soft-target CE on clean inputs + TRADES KL / gamma; targets an EMA of clean outputs."""

    params = {"alpha": 0.9, "gamma": 1.0, "warmup": 0, "use_weight": True, "log_attack": True}
    adapts = ("weight", "acc_gt", "acc_target", "adv_acc_gt", "adv_acc_target")
    epoch_params = ("warmup",)

    def __init__(self, cfg: Mapping[str, Any], ctx: TrainContext) -> None:
        super().__init__(cfg, ctx)
        p = self.p
        self.alpha = check_number("sat", "alpha", p["alpha"], 0.0, 1.0)
        self.gamma = check_number("sat", "gamma", p["gamma"], 1e-12)
        for key in ("use_weight", "log_attack"):
            check_choice("sat", key, p[key], (True, False))
        if isinstance(p["warmup"], bool) or not isinstance(p["warmup"], int) or p["warmup"] < 0:
            raise ConfigError(f"method sat: method.warmup must be an integer >= 0, got {p['warmup']!r}")
        if not p["log_attack"]:  # no adversarial prediction to log
            self.adapts = tuple(k for k in self.adapts if not k.startswith("adv_"))
        self.rows = InstanceRows(ctx)
        self.target = F.one_hot(self.rows.labels, ctx.num_classes).float()

    def targets(self, rows: Tensor, clean: Tensor, epoch: int) -> Tensor:
        """The batch's targets after this step's update (epoch 0 only initialises, util/train.py:558-564)."""
        if epoch > 0 and epoch >= int(self.p["warmup"]):
            probs = F.softmax(clean.detach().float(), dim=-1)
            self.target[rows] = self.alpha * self.target[rows] + (1.0 - self.alpha) * probs
        return self.target[rows]

    def step(self, model: nn.Module, batch: Any, epoch: int, it: int) -> StepOutput:
        x, y, rows = batch.x, batch.y, self.rows(batch.idx)
        clean = model(x)
        target = self.targets(rows, clean, epoch)
        weight, target_pred = target.max(dim=1)
        if not self.p["use_weight"]:
            weight = torch.ones_like(weight)
        log_p, p_clean = F.log_softmax(clean.detach(), dim=-1), F.softmax(clean.detach(), dim=-1)

        def trades_objective(xa: Tensor) -> tuple[Tensor, Tensor]:
            lp = F.log_softmax(model(xa), dim=-1)  # one forward: the KL to ascend, the CE to keep the best by
            return (p_clean * (log_p - lp)).sum(dim=1), -lp.gather(1, y[:, None]).squeeze(1)

        x_trades = pgd(model, x, None, loss_fn=trades_objective, **self.attack_kwargs)
        x_adv = pgd(model, x, y, loss="ce", **self.attack_kwargs) if self.p["log_attack"] else None
        soft_ce = -(F.log_softmax(clean, dim=-1) * target).sum(dim=1)
        weighted = (soft_ce * weight).sum() / weight.sum()
        trades_logits = model(x_trades)
        kl = (p_clean * (log_p - F.log_softmax(trades_logits, dim=-1))).sum(dim=1)
        loss = weighted + kl.mean() / self.gamma
        pred = clean.detach().argmax(1)
        adapted = {"weight": weight, "acc_gt": (pred == y).float(), "acc_target": (pred == target_pred).float()}
        stats = {"weight_mean": weight.mean(), "kl": kl.mean().detach(), "train_acc": (pred == y).float().mean()}
        if x_adv is not None:
            with torch.no_grad():
                adv_pred = model(x_adv).argmax(1)  # a train-mode forward, as the code's adv_logits
            adapted.update(adv_acc_gt=(adv_pred == y).float(), adv_acc_target=(adv_pred == target_pred).float())
            stats["train_adv_acc"] = (adv_pred == y).float().mean()
        return StepOutput(loss, F.cross_entropy(clean.detach(), y, reduction="none"), stats,
                          per_example_correct=pred == y, adapted=adapted)

    def state_dict(self) -> dict[str, Any]:
        return {"target": self.target}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.target = state["target"].to(self.ctx.device).clone()
