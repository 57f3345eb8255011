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


def lr_at(sched: Mapping[str, Any], base_lr: float, epochs: int, epoch: int, it: int,
          steps_per_epoch: int) -> float:
    """LR for iteration ``it`` (0-based) of ``epoch`` (0-based)."""
    kind = sched["kind"]
    t_iter = epoch * steps_per_epoch + it
    if kind == "onecycle":
        return onecycle_lr(t_iter, epochs * steps_per_epoch, base_lr, float(sched["pct_start"]))
    warm = float(sched.get("warmup_epochs") or 0)
    t = epoch + it / steps_per_epoch if sched["per"] == "iteration" else float(epoch)
    if warm > 0 and epoch + it / steps_per_epoch < warm:
        return base_lr * (t_iter + 1) / (warm * steps_per_epoch)
    if kind == "constant":
        return base_lr
    drops = sum(1 for m in _milestone_epochs(list(sched["milestones"]), epochs) if t >= m)
    return base_lr * float(sched["gamma"]) ** drops
