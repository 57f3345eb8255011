"""Instance-adaptive adversarial training (IAT; Balaji et al. 2019) as the hard-instance code runs it
(``run/train_instancewise.py``, ``util/train.py:193-357``; notes ``hard_instances.md`` §3.6, trap T29).

Epochs before ``warmup`` are plain PGD AT. After that, per batch, each instance i has a budget eps_i
(``attack.eps`` until first updated):

1. PGD at eps_i + gamma ("strong") and at eps_i ("normal"), step eps * step_size / (eps + 1e-6) per
   instance (the code's ``adjust_threshold`` keeps the configured step/eps ratio), each followed by a
   train-mode forward for the prediction.
2. Robust under strong: eps_i <- (1 - beta) eps_i + beta min(max_eps, eps_i + gamma), train at
   min(max_eps - min_eps, eps_i + gamma - min_eps); else robust under normal: keep eps_i, train at
   eps_i - min_eps; else eps_i <- (1 - beta) eps_i + beta max(min_eps, eps_i - gamma), train at
   max(0, eps_i - gamma - min_eps). The text's eps_i +- Delta has no EMA: ``beta: 1``.
3. A third PGD at the budgets used; ``mixed_loss`` (default, the code's): CE of the adversarial
   logits where the clean input is classified correctly, of the clean logits elsewhere (both
   train-mode forwards, adversarial first); ``mixed_loss: false``: CE of the adversarial logits.
4. ``post_step_log`` (default true, the code's): after the optimizer step, PGD at ``attack.eps``
   (the test attacker, in the model's train mode) gives the per-instance loss and accuracy and the
   epoch's ``train_adv_acc``; it also moves the BatchNorm statistics, as the code's does.

``min_eps`` is the value ``train_instancewise`` receives (the script passes minus its flag; 0 by
default). The budgets (float64, as the code's Python floats) are in ``state_dict``. Not replicated:
the code's attack returns the clean batch untouched when every budget of the batch is below 1e-6.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..attacks import pgd
from ..errors import ConfigError
from .base import METHODS, StepOutput, TrainContext
from .instances import InstanceRows, check_choice, check_number
from .standard import MadryAT


@METHODS.register("iat")
class Iat(MadryAT):
    """Per-instance budgets grown on robust instances, shrunk on the others; mixed clean/adversarial CE."""

    params = {"gamma": 0.00745, "beta": 0.1, "min_eps": 0.0, "max_eps": None, "warmup": 5,
              "mixed_loss": True, "post_step_log": True}
    adapts = ("eps",)
    epoch_params = ("warmup",)

    def __init__(self, cfg: Mapping[str, Any], ctx: TrainContext) -> None:
        super().__init__(cfg, ctx)
        p = self.p
        self.gamma = check_number("iat", "gamma", p["gamma"], 0.0)
        self.beta = check_number("iat", "beta", p["beta"], 0.0, 1.0)
        self.min_eps = check_number("iat", "min_eps", p["min_eps"])
        self.max_eps = math.inf if p["max_eps"] is None else check_number("iat", "max_eps", p["max_eps"], 0.0)
        for key in ("mixed_loss", "post_step_log"):
            check_choice("iat", key, p[key], (True, False))
        if isinstance(p["warmup"], bool) or not isinstance(p["warmup"], int) or p["warmup"] < 0:
            raise ConfigError(f"method iat: method.warmup must be an integer >= 0, got {p['warmup']!r}")
        a = self.attack_kwargs
        self.default = a["eps"]
        self.ratio = a["step_size"] / (a["eps"] + 1e-6)  # util/attack.py step_size_threshold_ratio
        self.rows = InstanceRows(ctx)
        self.eps = torch.full((self.rows.n,), self.default, dtype=torch.float64, device=ctx.device)
        self.seen = torch.zeros((self.rows.n,), dtype=torch.bool, device=ctx.device)

    def attack_at(self, model: nn.Module, x: Tensor, y: Tensor, budget: Tensor) -> Tensor:
        kw = {**self.attack_kwargs, "eps": budget.float(), "step_size": (budget * self.ratio).float()}
        return pgd(model, x, y, loss="ce", **kw)

    def robust_at(self, model: nn.Module, x: Tensor, y: Tensor, budget: Tensor) -> Tensor:
        """Is each instance classified correctly under PGD at its budget (a train-mode forward)?"""
        x_adv = self.attack_at(model, x, y, budget)
        with torch.no_grad():
            return model(x_adv).argmax(1) == y

    def update(self, rows: Tensor, strong: Tensor, normal: Tensor) -> Tensor:
        """New budgets of ``rows`` from the two robustness bits; returns the budgets to train at."""
        last = torch.where(self.seen[rows], self.eps[rows], torch.full_like(self.eps[rows], self.default))
        g, b, lo, hi = self.gamma, self.beta, self.min_eps, self.max_eps
        up = (1 - b) * last + b * (last + g).clamp(max=hi)
        down = (1 - b) * last + b * (last - g).clamp(min=lo)
        self.eps[rows] = torch.where(strong, up, torch.where(normal, last, down))
        self.seen[rows] = True
        used_up = (last + g - lo).clamp(max=hi - lo)
        used_down = (last - g - lo).clamp(min=0.0)
        return torch.where(strong, used_up, torch.where(normal, last - lo, used_down))

    def step(self, model: nn.Module, batch: Any, epoch: int, it: int) -> StepOutput:
        rows = self.rows(batch.idx)
        if epoch < int(self.p["warmup"]):
            out = super().step(model, batch, epoch, it)
            out.adapted = {"eps": self.eps[rows].float()}
            return out
        x, y = batch.x, batch.y
        # a new instance's first budget is attack.eps + min_eps (util/train.py:240), its "last" attack.eps
        current = torch.where(self.seen[rows], self.eps[rows], torch.full_like(self.eps[rows], self.default + self.min_eps))
        strong = self.robust_at(model, x, y, current + self.gamma)
        normal = self.robust_at(model, x, y, current)
        used = self.update(rows, strong, normal)
        adv_out = model(self.attack_at(model, x, y, used))
        clean_out = model(x)
        clean_right = (clean_out.argmax(1) == y).to(adv_out.dtype).view(-1, 1)
        out = adv_out * clean_right + clean_out * (1.0 - clean_right) if self.p["mixed_loss"] else adv_out
        per = F.cross_entropy(out, y, reduction="none")
        stats = {"train_adv_acc": (adv_out.argmax(1) == y).float().mean(), "eps_mean": self.eps[rows].float().mean()}
        return StepOutput(F.cross_entropy(out, y), per.detach(), stats,
                          per_example_correct=adv_out.argmax(1) == y, adapted={"eps": self.eps[rows].float()})

    def after_step(self, model: nn.Module, batch: Any, epoch: int, it: int, out: StepOutput) -> None:
        if epoch < int(self.p["warmup"]) or not self.p["post_step_log"]:
            return
        x_adv = pgd(model, batch.x, batch.y, loss="ce", **self.attack_kwargs)
        with torch.no_grad():
            logits = model(x_adv)  # train mode, as the code's test attacker after the step
        hit = logits.argmax(1) == batch.y
        out.per_example = F.cross_entropy(logits, batch.y, reduction="none")
        out.per_example_correct = hit
        out.stats["train_adv_acc"] = hit.float().mean()

    def state_dict(self) -> dict[str, Any]:
        return {"eps": self.eps, "seen": self.seen}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if "eps" not in state:  # a checkpoint written before the budgets existed cannot resume this run
            raise ConfigError("method iat: the checkpoint holds no per-instance budgets")
        self.eps = state["eps"].to(self.ctx.device).clone()
        self.seen = state["seen"].to(self.ctx.device).clone()
