"""PGD with one budget per example: equal budgets give the scalar attack bit for bit; unequal ones
give each example the attack at its own budget."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from reproduce.attacks import pgd
from reproduce.errors import ConfigError


def _net(bn: bool) -> nn.Module:
    torch.manual_seed(0)
    layers = [nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()] if bn else [nn.Conv2d(3, 4, 3), nn.ReLU()]
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(4 * 6 * 6, 5))


def _data():
    g = torch.Generator().manual_seed(1)
    return torch.rand((12, 3, 8, 8), generator=g), torch.randint(0, 5, (12,), generator=g)


@pytest.mark.parametrize("norm, eps, step", [("linf", 8 / 255, 2 / 255), ("l2", 0.5, 0.125)])
@pytest.mark.parametrize("keep_best", [False, True, "exclude_last"])
@pytest.mark.parametrize("start", [True, False, "normal"])
def test_equal_budgets_give_the_scalar_attack_bit_for_bit(norm, eps, step, keep_best, start):
    net, (x, y) = _net(bn=True), _data()
    kw = dict(steps=3, norm=norm, keep_best=keep_best, random_start=start, bn_mode="train")
    a = pgd(net, x, y, eps=eps, step_size=step, generator=torch.Generator().manual_seed(5), **kw)
    b = pgd(net, x, y, eps=torch.full((12,), eps), step_size=torch.full((12,), step),
            generator=torch.Generator().manual_seed(5), **kw)
    assert torch.equal(a, b)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_each_example_is_attacked_at_its_own_budget(norm):
    net, (x, y) = _net(bn=False), _data()  # no batch statistics: examples do not interact
    eps = torch.tensor([0.0, 0.01, 0.03, 0.1] * 3)
    got = pgd(net, x, y, eps=eps, step_size=eps / 4, steps=4, norm=norm, random_start=False)
    for e in eps.unique():
        rows = eps == e
        want = pgd(net, x[rows], y[rows], eps=float(e), step_size=float(e) / 4, steps=4, norm=norm, random_start=False)
        assert torch.allclose(got[rows], want, atol=1e-7), float(e)
    dist = (got - x).flatten(1).abs().amax(1) if norm == "linf" else (got - x).flatten(1).norm(dim=1)
    assert (dist <= eps + 1e-6).all() and dist[eps == 0].max() == 0


def test_a_budget_of_the_wrong_shape_is_refused():
    net, (x, y) = _net(bn=False), _data()
    with pytest.raises(ConfigError, match=r"shape \(12,\)"):
        pgd(net, x, y, eps=torch.full((3,), 0.1), step_size=0.01, steps=1)
