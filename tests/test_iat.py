"""IAT: the per-instance budget update, the budgets each attack uses and the mixed loss, by hand."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from reproduce.errors import ConfigError

from .hard_methods import batch, make, model

EPS = 8 / 255
ATTACK = {"eps": "8/255", "step_size": "2/255", "steps": 0, "random_start": True}


def test_the_budget_update_is_the_codes():
    m = make({"name": "iat", "gamma": 0.01, "beta": 0.1, "max_eps": 0.055}, ATTACK)
    rows = torch.tensor([0, 1, 2, 3])
    m.eps[rows] = torch.tensor([0.05, 0.05, 0.005, 0.0], dtype=torch.float64)
    m.seen[rows] = torch.tensor([True, True, True, False])
    strong = torch.tensor([True, False, False, False])
    normal = torch.tensor([True, True, False, True])
    used = m.update(rows, strong, normal)
    # strong: 0.9 eps + 0.1 min(max, eps + g), trained at min(max, eps + g); normal: kept;
    # neither: 0.9 eps + 0.1 max(0, eps - g), trained at max(0, eps - g); unseen starts from attack.eps
    want = [0.9 * 0.05 + 0.1 * 0.055, 0.05, 0.9 * 0.005 + 0.1 * 0.0, EPS]
    assert m.eps[rows].tolist() == pytest.approx(want, abs=1e-15)
    assert used.tolist() == pytest.approx([0.055, 0.05, 0.0, EPS], abs=1e-15)
    assert m.seen[rows].all()


def _start(x, eps, g):
    """pgd's uniform start with 0 steps: clamp(x + U(-eps, eps)), per example."""
    u = torch.rand(x.shape, generator=g)
    return (x + (2 * u - 1) * eps.view(-1, 1, 1, 1)).clamp(0, 1)


@pytest.mark.parametrize("mixed", [True, False])
def test_a_step_attacks_at_each_instances_budgets_and_mixes_the_loss(mixed):
    m = make({"name": "iat", "gamma": 0.02, "beta": 0.5, "warmup": 1, "mixed_loss": mixed}, ATTACK)
    net, b = model(), batch([0, 1, 2, 3, 4, 5])
    rows = m.rows(b.idx)
    m.eps[rows] = torch.tensor([0.01, 0.2, 0.03, 0.5, 0.0, 0.04], dtype=torch.float64)
    m.seen[rows] = True
    last = m.eps[rows].clone()
    g = torch.Generator().manual_seed(7)
    torch.manual_seed(7)
    out = m.step(net, b, 1, 0)
    # by hand, replaying the three attacks' draws in order (the global stream, as pgd draws them)
    strong = net(_start(b.x, (last + 0.02).float(), g)).argmax(1) == b.y
    normal = net(_start(b.x, last.float(), g)).argmax(1) == b.y
    used = torch.where(strong, last + 0.02, torch.where(normal, last, (last - 0.02).clamp(min=0)))
    new = torch.where(strong, 0.5 * last + 0.5 * (last + 0.02),
                      torch.where(normal, last, 0.5 * last + 0.5 * (last - 0.02).clamp(min=0)))
    adv, clean = net(_start(b.x, used.float(), g)), net(b.x)
    right = (clean.argmax(1) == b.y).float()[:, None]
    logits = adv * right + clean * (1 - right) if mixed else adv
    assert torch.allclose(out.loss, F.cross_entropy(logits, b.y), atol=1e-6)
    assert torch.allclose(m.eps[rows], new) and torch.allclose(out.adapted["eps"], new.float())
    assert strong.any() and not strong.all()  # the batch exercises both branches


def test_warmup_epochs_are_plain_at_and_keep_the_budgets():
    m = make({"name": "iat", "warmup": 2}, {**ATTACK, "random_start": False})
    net, b = model(), batch([0, 1])
    out = m.step(net, b, 1, 0)
    assert torch.allclose(out.loss, F.cross_entropy(net(b.x), b.y))
    assert not m.seen.any() and torch.equal(out.adapted["eps"], torch.full((2,), EPS).float())


def test_the_post_step_log_replaces_the_step_logs():
    m = make({"name": "iat", "warmup": 0}, {**ATTACK, "random_start": False})
    net, b = model(), batch([0, 1, 2])
    out = m.step(net, b, 0, 0)
    with torch.no_grad():
        net[1].bias.add_(torch.tensor([5.0, 0.0, 0.0]))  # "the optimizer step": class 0 wins everywhere
    m.after_step(net, b, 0, 0, out)
    assert out.per_example_correct.tolist() == (b.y == 0).tolist()
    assert torch.allclose(out.per_example, F.cross_entropy(net(b.x), b.y, reduction="none"))


def test_bad_parameters_are_one_line_errors():
    for bad, key in (({"beta": 2}, "method.beta"), ({"mixed_loss": "yes"}, "method.mixed_loss"),
                     ({"gamma": "x"}, "method.gamma"), ({"warmup": 1.5}, "method.warmup")):
        with pytest.raises(ConfigError, match=key) as e:
            make({"name": "iat", **bad}, ATTACK)
        assert "\n" not in str(e.value)
