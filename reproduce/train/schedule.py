"""Learning rate as a pure function of (epoch, iteration).

Keeping the LR stateless means a resumed run needs no scheduler state to land on
exactly the same values as an uninterrupted one.
"""

from __future__ import annotations

import math
from typing import Any, Mapping


def _milestone_epochs(milestones: list[float], epochs: int) -> list[float]:
    # Fractions (0.6, 0.9) are the BiaMAT code's way of saying 60% / 90% of training.
    if milestones and all(0 < m < 1 for m in milestones):
        return [m * epochs for m in milestones]
    return [float(m) for m in milestones]


def _cos(start: float, end: float, pct: float) -> float:
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)


def onecycle_lr(step: int, total_steps: int, max_lr: float, pct_start: float = 0.25,
                div_factor: float = 25.0, final_div_factor: float = 1e4) -> float:
    """torch.optim.lr_scheduler.OneCycleLR's cosine two-phase rule, evaluated at ``step``."""
    initial = max_lr / div_factor
    final = initial / final_div_factor
    up_end = float(pct_start * total_steps) - 1
    down_end = float(total_steps) - 1
    if step <= up_end:
        return _cos(initial, max_lr, step / up_end if up_end > 0 else 1.0)
    return _cos(max_lr, final, (step - up_end) / (down_end - up_end))


def onecycle_momentum(step: int, total_steps: int, pct_start: float = 0.25, base: float = 0.85,
                      top: float = 0.95) -> float:
    """OneCycleLR's ``cycle_momentum``: max -> base while the LR rises, base -> max while it falls."""
    up_end = float(pct_start * total_steps) - 1
    down_end = float(total_steps) - 1
    if step <= up_end:
        return _cos(top, base, step / up_end if up_end > 0 else 1.0)
    return _cos(base, top, (step - up_end) / (down_end - up_end))


def cosine_iter_lr(step: int, total_steps: int, lr: float, lr_min: float) -> float:
    """Hendrycks' ``cosine_annealing`` as a LambdaLR factor times ``lr`` (tune.py:114-125): from ``lr``
    at step 0 to ``lr_min`` at ``total_steps``, per optimizer step; the factor is evaluated as that
    code does (lr_max 1, lr_min / lr), so values agree to the last bit of a float."""
    factor = lr_min / lr + (1 - lr_min / lr) * 0.5 * (1 + math.cos(step / total_steps * math.pi))
    return lr * factor


def momentum_at(sched: Mapping[str, Any], epochs: int, epoch: int, it: int, steps_per_epoch: int) -> float | None:
    """SGD momentum for this step, or None where the schedule leaves ``optim.momentum`` alone."""
    if sched["kind"] != "onecycle" or not sched.get("cycle_momentum"):
        return None
    return onecycle_momentum(epoch * steps_per_epoch + it, epochs * steps_per_epoch, float(sched["pct_start"]),
                             float(sched["base_momentum"]), float(sched["max_momentum"]))


def lr_at(sched: Mapping[str, Any], base_lr: float, epochs: int, epoch: int, it: int,
          steps_per_epoch: int) -> float:
    """LR for iteration ``it`` (0-based) of ``epoch`` (0-based)."""
    kind = sched["kind"]
    t_iter = epoch * steps_per_epoch + it
    if kind == "onecycle":
        return onecycle_lr(t_iter, epochs * steps_per_epoch, base_lr, float(sched["pct_start"]))
    if kind == "cosine_epoch":
        # Carmon et al.'s RST: lr * 0.5 (1 + cos((e - 1) / E pi)) for 1-based epoch e, set once per epoch.
        # HAT's CosineLR (core/utils/rst.py) gives the same values: torch's _LRScheduler.__init__ calls
        # step() once, so epoch 1 runs at lr and epoch 2 at the e = 2 value (checked with torch 2.x).
        return base_lr * 0.5 * (1 + math.cos(epoch / epochs * math.pi))
    if kind == "cosine_iter":
        return cosine_iter_lr(t_iter + int(sched.get("step_offset") or 0), epochs * steps_per_epoch, base_lr,
                              float(sched.get("lr_min") or 0.0))
    warm = float(sched.get("warmup_epochs") or 0)
    t = epoch + it / steps_per_epoch if sched["per"] == "iteration" else float(epoch)
    if warm > 0 and epoch + it / steps_per_epoch < warm:
        return base_lr * (t_iter + 1) / (warm * steps_per_epoch)
    if kind == "constant":
        return base_lr
    drops = sum(1 for m in _milestone_epochs(list(sched["milestones"]), epochs) if t >= m)
    return base_lr * float(sched["gamma"]) ** drops
