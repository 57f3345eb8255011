"""Fine-tuning losses: vanilla / RW / KL / RW+KL with the code's weights (clean max-probability, not
detached) and the text's (adversarial true-label probability, detached), by hand."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from reproduce.errors import ConfigError

from .hard_methods import batch, make, model

ATTACK = {"eps": "8/255", "step_size": "2/255", "steps": 0, "random_start": True}


def _hand(loss, weight, weight_grad, gamma=6.0):
    net, b = model(), batch([0, 1, 2, 3])
    g = torch.Generator().manual_seed(2)
    x_adv = (b.x + (2 * torch.rand(b.x.shape, generator=g) - 1) * 8 / 255).clamp(0, 1)
    clean, adv = net(b.x), net(x_adv)
    if loss == "vanilla":
        return net, b, F.cross_entropy(adv, b.y)
    ce = -F.log_softmax(adv, 1).gather(1, b.y[:, None]).squeeze(1)
    kl = (F.softmax(clean, 1) * (F.log_softmax(clean, 1) - F.log_softmax(adv, 1))).sum(1)
    per = ce + (0.0 if loss == "rw" else gamma) * kl
    if loss == "kl":
        return net, b, per.mean()
    src = adv if weight == "adv_true" else clean
    p = F.softmax(src, 1)
    w = p.max(1)[0] if weight == "clean_max" else p.gather(1, b.y[:, None]).squeeze(1)
    w = w if weight_grad else w.detach()
    return net, b, (per * w).sum() / w.sum()


@pytest.mark.parametrize("loss, weight, weight_grad", [
    ("vanilla", "clean_max", True), ("kl", "clean_max", True), ("rw", "clean_max", True),
    ("rw_kl", "clean_max", True),  # the code's
    ("rw_kl", "adv_true", False),  # the text's
    ("rw_kl", "clean_true", True),
])
def test_loss_and_gradient_by_hand(loss, weight, weight_grad):
    net, b, want = _hand(loss, weight, weight_grad)
    want_grads = torch.autograd.grad(want, list(net.parameters()))
    m = make({"name": "finetune", "loss": loss, "weight": weight, "weight_grad": weight_grad}, ATTACK)
    torch.manual_seed(2)
    out = m.step(net, b, 0, 0)
    assert torch.allclose(out.loss, want, atol=1e-6)
    for got, exp in zip(torch.autograd.grad(out.loss, list(net.parameters())), want_grads):
        assert torch.allclose(got, exp, atol=1e-6)


def test_the_codes_weights_carry_a_gradient():
    """Detaching the clean max-probability changes the update: the code's weights are not detached."""
    net, _, with_grad = _hand("rw_kl", "clean_max", True)
    net2, _, detached = _hand("rw_kl", "clean_max", False)  # the same weights, built again
    ga = torch.autograd.grad(with_grad, list(net.parameters()))
    gb = torch.autograd.grad(detached, list(net2.parameters()))
    assert torch.allclose(with_grad, detached) and not all(torch.allclose(a, b) for a, b in zip(ga, gb))


def test_bad_parameters_are_one_line_errors():
    for bad, key in (({"loss": "rw+kl"}, "method.loss"), ({"weight": "max"}, "method.weight"),
                     ({"gamma": -1}, "method.gamma"), ({"weight_grad": 1}, "method.weight_grad")):
        with pytest.raises(ConfigError, match=key) as e:
            make({"name": "finetune", **bad}, ATTACK)
        assert "\n" not in str(e.value)
