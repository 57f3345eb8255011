"""Per-example inner-maximisation losses used by the attacks.

Every function returns one value per example (shape ``(N,)``): the attacks
sum them before differentiating, so each example's gradient is its own and a
batch-mean's 1/N factor cannot change a sign step or a normalised L2 step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import ConfigError


def ce_loss(logits: Tensor, y: Tensor) -> Tensor:
    """Cross-entropy per example."""
    return F.cross_entropy(logits, y, reduction="none")


def cw_margin(logits: Tensor, y: Tensor) -> Tensor:
    """``z_y - max_{j != y} z_j`` per example (negative when misclassified)."""
    true_logit = logits.gather(1, y[:, None]).squeeze(1)
    # Mask the true class with -inf rather than the papers' "- 1e4 * onehot":
    # identical whenever logits are far below 1e4 in size, and exact otherwise.
    others = logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), float("-inf"))
    return true_logit - others.amax(dim=1)


def cw_loss(logits: Tensor, y: Tensor, kappa: float = 50.0) -> Tensor:
    """The CW-K evaluation loss of the TRADES / BiaMAT code: ``-clamp(margin, min=-kappa)``.

    What the papers' code does (looked up in the public repositories):
    - BiaMAT, AT part (TensorFlow, ``Saehyung-Lee/BiaMAT`` ``AT/pgd_attack.py``,
      ``loss_func == 'cw'``): correct_logit = sum(onehot * logits);
      wrong_logit = max((1 - onehot) * logits - 1e4 * onehot);
      loss = -relu(correct_logit - wrong_logit + 50), maximised with the same
      Linf PGD loop (sign step, clip to the ball, clip to the pixel range) as
      the cross-entropy attack.
    - BiaMAT, TRADES part (``TRADES/evaluate.py``, ``_cw_whitebox``) and the
      under-review copy (``BiaMAT/BiaMAT_under_review`` ``TRADES/pgd_attack_cifar10.py``):
      the same expression in PyTorch with margin 50.0, then ``.mean()``
      before ``backward()``.
    ``-relu(m + kappa) = -clamp(m, min=-kappa) - kappa``: the constant does
    not change any gradient, and we drop it so the loss reads as "minus the
    margin, saturating once the example is misclassified by kappa". The
    saturation matters: it stops pushing an example once it is confidently
    wrong, so the attack does not waste steps on it.
    """
    return -cw_margin(logits, y).clamp(min=-kappa)


def kl_rows(log_q: Tensor, p: Tensor) -> Tensor:
    """``KLDivLoss(reduction="none")(log_q, p).sum(1)`` with the same values, and a gradient that stays
    finite where a probability of ``p`` underflows to exactly 0.

    ``torch.kl_div`` computes ``xlogy(p, p) - p * log_q``; since torch 2 its gradient with respect
    to ``p`` is ``xlogy``'s ``p / p``, which is 0/0 = NaN where ``p`` is 0, so one example whose
    softmax gives some class 0 (a logit gap above about 103 in float32) turns every gradient NaN.
    The torch the papers' code ran on masked that gradient to 0 (``kl_div_target_backward``);
    taking the log of 1 where ``p`` is 0 does the same and leaves every value as it was.
    """
    safe = torch.where(p > 0, p, torch.ones_like(p))
    return (torch.xlogy(p, safe) - p * log_q).sum(dim=1)


def kl_loss(logits_adv: Tensor, p_clean: Tensor) -> Tensor:
    """TRADES inner loss per example: ``sum_c KL(p_clean || softmax(logits_adv))``.

    TRADES' code uses ``KLDivLoss(size_average=False)`` (a sum over the batch);
    per example it is this row sum.
    """
    return F.kl_div(F.log_softmax(logits_adv, dim=1), p_clean, reduction="none").sum(dim=1)


LOSSES = ("ce", "cw", "kl")


def check_loss_name(loss: str) -> None:
    if loss not in LOSSES:
        raise ConfigError(f"unknown attack loss {loss!r}; known: {', '.join(LOSSES)}")


def per_example_loss(
    name: str,
    logits: Tensor,
    y: Tensor | None,
    *,
    p_clean: Tensor | None = None,
    cw_kappa: float = 50.0,
) -> Tensor:
    """Dispatch on the loss name used in configs."""
    if name == "ce":
        assert y is not None
        return ce_loss(logits, y)
    if name == "cw":
        assert y is not None
        return cw_loss(logits, y, cw_kappa)
    if name == "kl":
        assert p_clean is not None
        return kl_loss(logits, p_clean)
    check_loss_name(name)
    raise AssertionError("unreachable")


@torch.no_grad()
def clean_probabilities(model: torch.nn.Module, x: Tensor) -> Tensor:
    """Softmax of the model on clean inputs, computed once and without a graph."""
    return F.softmax(model(x), dim=1)
