"""HAT: helper-based adversarial training (Rade & Moosavi-Dezfooli, ICLR 2022).

What the authors' code does (imrahulr/hat, ``core/utils/hat.py``), which this follows:

- ``robust_loss: kl`` (``hat_loss``, CIFAR-10/100, SVHN): the TRADES inner maximisation, model in
  eval mode, starting from x + 0.001 N(0, I) *not clamped* before the first gradient; loss =
  CE(f(x), y) + beta * mean KL(p_clean || p_adv) + gamma * CE(f(x_h), y_h).
- ``robust_loss: ce`` (``at_hat_loss``, Tiny-ImageNet-200): a PGD-CE attack from a uniform start in
  eval mode; loss = CE(f(x), y) + beta * CE(f(x_adv), y) + gamma * CE(f(x_h), y_h) (the clean CE is
  kept).
- Helper example x_h = x + h (x_adv - x), h = 2.0 (the Trainer passes ``args.h``; the function's
  own default 3.5 is never used), *not clipped* to [0, 1].
- Helper label y_h = argmax of the frozen standard model on x_adv (not on x_h), in eval mode.
- Three separate train-mode forward passes (clean, adversarial, helper): BatchNorm sees three
  batches and updates its running statistics three times; concatenating them would differ.

The code has no MART-based HAT: the Trainer dispatches helper+beta to HAT before ``--mart``.

The attack's start and BatchNorm mode belong to the method here (``start``, ``bn_mode``), because
the code fixes them per variant; ``attack.random_start`` and ``attack.bn_mode`` are not read.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ..attacks import pgd
from ..attacks.pgd import BN_MODES
from ..errors import ConfigError
from .base import METHODS, Method, StepOutput, TrainContext
from .trades import kl_per_example

ROBUST_LOSSES = ("kl", "ce")
# the code's start per variant: TRADES' unclamped normal start for kl, advertorch's uniform for ce
CODE_START = {"kl": "normal", "ce": "uniform"}
STARTS = {"normal": "normal", "normal-clipped": "normal-clipped", "uniform": True, "none": False}


@METHODS.register("hat")
class Hat(Method):
    """CE(clean) + beta * robust term + gamma * CE(f(x + h (x_adv - x)), argmax helper(x_adv))."""

    params = {"beta": None, "gamma": 1.0, "h": 2.0, "robust_loss": "kl", "helper": None,
              "start": None, "bn_mode": "eval"}
    references = ("helper",)

    def __init__(self, cfg: Mapping[str, Any], ctx: TrainContext) -> None:
        super().__init__(cfg, ctx)
        p = self.p
        for key in ("beta", "gamma", "h"):
            v = p[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ConfigError(f"method hat: {key} must be a number, got {v!r}")
        if p["robust_loss"] not in ROBUST_LOSSES:
            raise ConfigError(f"method hat: robust_loss must be one of {ROBUST_LOSSES}, got {p['robust_loss']!r}")
        if not isinstance(p["helper"], Mapping) or "run" not in p["helper"]:
            raise ConfigError(f"method hat: helper must be a run reference {{run: RUN, checkpoint: best}}, "
                              f"got {p['helper']!r}")
        start = p["start"] if p["start"] is not None else CODE_START[p["robust_loss"]]
        if start not in STARTS:
            raise ConfigError(f"method hat: start must be one of {sorted(STARTS)}, got {start!r}")
        if p["bn_mode"] not in BN_MODES:
            raise ConfigError(f"method hat: bn_mode must be one of {BN_MODES}, got {p['bn_mode']!r}")
        self.attack_kwargs.update(random_start=STARTS[start], bn_mode=p["bn_mode"])
        self.helper: nn.Module | None = None

    def attach(self, model: nn.Module) -> None:
        # kept on the method, not the model: it is neither in model.state_dict() nor the optimiser;
        # the config hash pins it through the referenced run id
        self.helper = self.referenced_model("helper")

    def step(self, model: nn.Module, batch, epoch: int, it: int) -> StepOutput:
        assert self.helper is not None, "Hat.attach was not called"
        x, y = batch.x, batch.y
        kl_variant = self.p["robust_loss"] == "kl"
        x_adv = pgd(model, x, None if kl_variant else y, loss="kl" if kl_variant else "ce", **self.attack_kwargs)
        x_h = x + float(self.p["h"]) * (x_adv - x)  # deliberately not clipped (hat.py:65)
        with torch.no_grad():
            self.helper.eval()
            y_h = self.helper(x_adv).argmax(1)
        lc = model(x)
        la = model(x_adv)
        lh = model(x_h)
        ce = F.cross_entropy(lc, y, reduction="none")
        robust = kl_per_example(la, lc) if kl_variant else F.cross_entropy(la, y, reduction="none")
        help_ce = F.cross_entropy(lh, y_h, reduction="none")
        per = ce + float(self.p["beta"]) * robust + float(self.p["gamma"]) * help_ce
        stats = {
            "ce": ce.mean().item(),
            ("kl" if kl_variant else "adv_ce"): robust.mean().item(),
            "help_ce": help_ce.mean().item(),
            "helper_acc": (lh.argmax(1) == y_h).float().mean().item(),
            "helper_flip": (y_h != y).float().mean().item(),
            "train_acc": (lc.argmax(1) == y).float().mean().item(),
            "train_adv_acc": (la.argmax(1) == y).float().mean().item(),
        }
        return StepOutput(per.mean(), per.detach(), stats)
