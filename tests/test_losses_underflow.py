"""MART's KL term where a clean probability underflows to exactly 0 (a logit gap above ~103 in float32).

torch.kl_div's gradient with respect to its target is NaN there since torch 2; the torch the papers'
code ran on masked it to 0. The shapes scale met it in HAT's cifar10-mart-b1 (resnet18 at lr 0.21,
batch 2) and a paper-scale run meets it the first time one example's clean softmax gives a class 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from reproduce.attacks.losses import kl_rows


def _logits() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    z = torch.randn(4, 10, generator=g)
    z[0, 3] = 150.0  # row 0: every other class underflows to 0
    return z


def test_torch_kl_div_gives_nan_gradients_there() -> None:
    """The hazard itself: if torch ever masks it again, this test says the guard is no longer needed."""
    z = _logits().requires_grad_()
    log_q = torch.log_softmax(torch.zeros(4, 10), 1)
    F.kl_div(log_q, F.softmax(z, 1), reduction="none").sum().backward()
    assert torch.isnan(z.grad).any()


def test_kl_rows_has_kl_div_values_and_finite_gradients() -> None:
    z = _logits().requires_grad_()
    log_q = torch.log_softmax(torch.randn(4, 10, generator=torch.Generator().manual_seed(1)), 1)
    p = F.softmax(z, 1)
    assert (p[0] == 0).sum() == 9
    ours = kl_rows(log_q, p)
    assert torch.equal(ours, F.kl_div(log_q, p, reduction="none").sum(1))  # bit for bit
    ours.sum().backward()
    assert torch.isfinite(z.grad).all()
    # where nothing underflows, the gradient is kl_div's
    z2 = torch.randn(4, 10, generator=torch.Generator().manual_seed(2), requires_grad=True)
    kl_rows(log_q, F.softmax(z2, 1)).sum().backward()
    ref = z2.detach().clone().requires_grad_()
    F.kl_div(log_q, F.softmax(ref, 1), reduction="none").sum().backward()
    assert torch.allclose(z2.grad, ref.grad, atol=1e-7, rtol=1e-6)
