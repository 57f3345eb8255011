"""Attacks: PGD / FGSM with input-only gradients, and the AutoAttack adapter.

``ATTACKS`` maps config names to callables ``(model, x, y, **params) -> x_adv``
(``autoattack`` returns ``(x_adv, robust_mask)``).
"""

from __future__ import annotations

from typing import Callable

from ..registry import Registry
from .autoattack import import_robustbench, run_autoattack
from .losses import ce_loss, cw_loss, cw_margin, kl_loss, per_example_loss
from .pgd import RANDOM_STARTS, attack_mode, fgsm, pgd, random_init

ATTACKS: Registry[Callable[..., object]] = Registry("attack")
ATTACKS.add("fgsm", fgsm)
ATTACKS.add("pgd", pgd)
ATTACKS.add("autoattack", run_autoattack)

__all__ = [
    "ATTACKS",
    "RANDOM_STARTS",
    "attack_mode",
    "ce_loss",
    "cw_loss",
    "cw_margin",
    "fgsm",
    "import_robustbench",
    "kl_loss",
    "per_example_loss",
    "pgd",
    "random_init",
    "run_autoattack",
]
