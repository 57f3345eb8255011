"""PGD / FGSM / losses: the properties the training methods and protocols rely on."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from reproduce.attacks import ATTACKS, cw_loss, cw_margin, fgsm, kl_loss, pgd
from reproduce.errors import ConfigError

from .toys import template_data

C = 4


def make_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    return template_data(n, seed, C, amplitude=0.3, noise=0.15)


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8 * 16, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn(self.conv(x)))
        return self.fc(F.max_pool2d(h, 2).flatten(1))


@pytest.fixture(scope="module")
def trained() -> TinyNet:
    torch.manual_seed(0)
    model = TinyNet()
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    x, y = make_data(1024, 1)
    for _ in range(15):
        for i in range(0, 1024, 128):
            loss = F.cross_entropy(model(x[i : i + 128]), y[i : i + 128])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    for p in model.parameters():
        p.grad = None
    return model


@pytest.fixture
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    return make_data(64, 2)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return model(x).argmax(1).eq(y).float().mean().item()


def ce(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return F.cross_entropy(model(x), y, reduction="none")


@pytest.mark.parametrize("random_start", [True, False, "normal"])
@pytest.mark.parametrize("loss", ["ce", "cw", "kl"])
def test_linf_stays_in_ball_and_image_range(trained, batch, random_start, loss):
    x, y = batch
    eps = 0.05
    x_adv = pgd(trained, x, y, eps=eps, step_size=0.02, steps=5, loss=loss, random_start=random_start)
    assert x_adv.shape == x.shape and not x_adv.requires_grad
    assert (x_adv - x).abs().max() <= eps + 1e-6
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert (x_adv - x).abs().max() > eps / 2  # it moved


@pytest.mark.parametrize("random_start", [True, False])
@pytest.mark.parametrize("keep_best", [False, True])
def test_l2_stays_in_ball_and_image_range(trained, batch, random_start, keep_best):
    x, y = batch
    eps = 0.5
    x_adv = pgd(trained, x, y, eps=eps, step_size=0.2, steps=6, norm="l2",
                random_start=random_start, keep_best=keep_best)
    norms = (x_adv - x).flatten(1).norm(dim=1)
    assert norms.max() <= eps + 1e-5
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert norms.mean() > eps / 2


def test_l2_random_start_is_inside_ball():
    from reproduce.attacks import random_init

    x = torch.full((32, 3, 8, 8), 0.5)
    x0 = random_init(x, eps=0.3, norm="l2", random_start=True, generator=torch.Generator().manual_seed(0))
    norms = (x0 - x).flatten(1).norm(dim=1)
    assert norms.max() <= 0.3 + 1e-6 and norms.min() > 0.2  # uniform in 192-d ball: near the sphere


@pytest.mark.parametrize("norm,eps,step", [("linf", 0.03, 0.01), ("l2", 0.5, 0.15)])
def test_attack_increases_loss(trained, batch, norm, eps, step):
    x, y = batch
    x_adv = pgd(trained, x, y, eps=eps, step_size=step, steps=10, norm=norm)
    assert ce(trained, x_adv, y).mean() > 2 * ce(trained, x, y).mean()


@pytest.mark.parametrize("norm,eps,step", [("linf", 0.05, 0.03), ("l2", 0.8, 0.5)])
def test_keep_best_not_worse_than_last_iterate(trained, batch, norm, eps, step):
    x, y = batch
    # A step far too large makes the loss oscillate, so the last iterate is often not the best.
    kw = dict(eps=eps, step_size=step, steps=8, norm=norm)
    last = pgd(trained, x, y, generator=torch.Generator().manual_seed(3), **kw)
    best = pgd(trained, x, y, generator=torch.Generator().manual_seed(3), keep_best=True, **kw)
    l_last, l_best = ce(trained, last, y), ce(trained, best, y)
    assert (l_best >= l_last - 1e-6).all()
    assert (l_best > l_last + 1e-4).any()  # keep_best actually chose earlier iterates somewhere


def test_keep_best_counts_the_starting_point(trained, batch):
    x, y = batch
    # A zero-size step never moves: the best iterate must be the start itself.
    out = pgd(trained, x, y, eps=0.03, step_size=0.0, steps=3, random_start=False, keep_best=True)
    assert torch.equal(out, x)


def test_pgd_beats_fgsm_on_a_trained_model(trained):
    x, y = make_data(256, 5)
    eps = 0.035
    clean = accuracy(trained, x, y)
    acc_fgsm = accuracy(trained, fgsm(trained, x, y, eps=eps), y)
    acc_pgd = accuracy(trained, pgd(trained, x, y, eps=eps, step_size=eps / 4, steps=10), y)
    assert clean > 0.95
    assert acc_fgsm < clean
    assert acc_pgd < acc_fgsm - 0.02


def test_fast_at_fgsm_variant_stays_in_ball(trained, batch):
    x, y = batch
    eps = 0.03
    x_adv = fgsm(trained, x, y, eps=eps, random_start=True, step_size=1.25 * eps,
                 generator=torch.Generator().manual_seed(0))
    assert (x_adv - x).abs().max() <= eps + 1e-6
    assert ce(trained, x_adv, y).mean() > ce(trained, x, y).mean()


def test_cw_margin_matches_formula_on_hand_made_logits():
    logits = torch.tensor([[1.0, 3.0, 2.0], [5.0, 0.0, -1.0], [0.0, 100.0, 0.0], [2.0, 2.0, -7.0]])
    y = torch.tensor([1, 0, 0, 1])
    # margin = z_y - max_{j != y} z_j
    expected_margin = torch.tensor([3.0 - 2.0, 5.0 - 0.0, 0.0 - 100.0, 2.0 - 2.0])
    assert torch.allclose(cw_margin(logits, y), expected_margin)
    # loss = -clamp(margin, min=-kappa): saturates at kappa once misclassified by kappa
    assert torch.allclose(cw_loss(logits, y, kappa=50.0), torch.tensor([-1.0, -5.0, 50.0, 0.0]))
    assert torch.allclose(cw_loss(logits, y, kappa=10.0), torch.tensor([-1.0, -5.0, 10.0, 0.0]))
    # equals the papers' -relu(margin + kappa) up to the constant kappa
    papers = -F.relu(expected_margin + 50.0)
    assert torch.allclose(cw_loss(logits, y), papers + 50.0)


def test_kl_loss_zero_at_clean_and_positive_after_attack(trained, batch):
    x, _ = batch
    with torch.no_grad():
        logits = trained(x)
    p_clean = F.softmax(logits, 1)
    assert kl_loss(logits, p_clean).abs().max() < 1e-6
    x_adv = pgd(trained, x, None, eps=0.03, step_size=0.01, steps=5, loss="kl", random_start="normal",
                generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        after = kl_loss(trained(x_adv), p_clean)
    assert (after > 0).all() and after.mean() > 1e-3


def test_normal_start_is_small_gaussian(batch):
    from reproduce.attacks import random_init

    x, _ = batch
    x0 = random_init(x, eps=0.03, norm="linf", random_start="normal", start_sigma=0.001,
                     generator=torch.Generator().manual_seed(0))
    d = x0 - x
    inside = (x > 0.01) & (x < 0.99)
    assert 0.0008 < d[inside].std() < 0.0012
    # "normal" is the TRADES code's unclipped start; "normal-clipped" clamps it to [0, 1]
    x1 = random_init(x, eps=0.03, norm="linf", random_start="normal-clipped", start_sigma=0.001,
                     generator=torch.Generator().manual_seed(0))
    assert torch.equal(x1, x0.clamp(0, 1))
    assert x1.min() >= 0 and x1.max() <= 1


@pytest.mark.parametrize("start_training", [True, False])
def test_bn_mode_eval_leaves_running_stats_and_restores_mode(batch, start_training):
    x, y = batch
    model = TinyNet()
    model.train(start_training)
    before = (model.bn.running_mean.clone(), model.bn.running_var.clone(), int(model.bn.num_batches_tracked))
    pgd(model, x, y, eps=0.03, step_size=0.01, steps=3, bn_mode="eval")
    assert model.training is start_training and model.bn.training is start_training
    assert torch.equal(model.bn.running_mean, before[0])
    assert torch.equal(model.bn.running_var, before[1])
    assert int(model.bn.num_batches_tracked) == before[2]


@pytest.mark.parametrize("start_training", [True, False])
def test_bn_mode_train_update_updates_running_stats_and_restores_mode(batch, start_training):
    x, y = batch
    model = TinyNet()
    model.train(start_training)
    before = model.bn.running_mean.clone()
    pgd(model, x, y, eps=0.03, step_size=0.01, steps=3, bn_mode="train-update")
    assert model.training is start_training and model.bn.training is start_training
    assert not torch.equal(model.bn.running_mean, before)
    assert int(model.bn.num_batches_tracked) == 3


def test_bn_mode_train_uses_batch_stats_but_keeps_running_stats(batch):
    x, y = batch
    model = TinyNet().train()
    before = (model.bn.running_mean.clone(), model.bn.running_var.clone(), int(model.bn.num_batches_tracked))
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    x_train = pgd(model, x, y, eps=0.03, step_size=0.01, steps=3, bn_mode="train", generator=g())
    assert torch.equal(model.bn.running_mean, before[0]) and torch.equal(model.bn.running_var, before[1])
    assert int(model.bn.num_batches_tracked) == before[2]
    # batch statistics were used: the attack differs from one run with running statistics
    x_eval = pgd(model, x, y, eps=0.03, step_size=0.01, steps=3, bn_mode="eval", generator=g())
    assert not torch.equal(x_train, x_eval)


def test_mixed_submodule_modes_are_restored(batch):
    x, y = batch
    model = TinyNet().train()
    model.bn.eval()  # e.g. a frozen BatchNorm
    pgd(model, x, y, eps=0.03, step_size=0.01, steps=2, bn_mode="train")
    assert model.training and model.conv.training and not model.bn.training


@pytest.mark.parametrize("loss", ["ce", "kl"])
def test_parameter_grads_untouched(batch, loss):
    x, y = batch
    model = TinyNet().train()
    model.conv.weight.grad = torch.full_like(model.conv.weight, 7.0)
    model.fc.bias.requires_grad_(False)  # a frozen parameter must stay frozen
    pgd(model, x, y, eps=0.03, step_size=0.01, steps=3, loss=loss, keep_best=True)
    assert torch.equal(model.conv.weight.grad, torch.full_like(model.conv.weight, 7.0))
    for name, p in model.named_parameters():
        if name != "conv.weight":
            assert p.grad is None, name
        assert p.requires_grad is (name != "fc.bias"), name


def test_parameter_grads_untouched_with_loss_fn(batch):
    x, y = batch
    model = TinyNet()
    loss_fn = lambda xa: F.cross_entropy(model(xa), y, reduction="none")  # noqa: E731
    pgd(model, x, None, eps=0.03, step_size=0.01, steps=3, loss_fn=loss_fn)
    assert all(p.grad is None for p in model.parameters())


def test_loss_fn_matches_builtin_loss(trained, batch):
    x, y = batch
    kw = dict(eps=0.03, step_size=0.01, steps=4)
    a = pgd(trained, x, y, generator=torch.Generator().manual_seed(1), **kw)
    b = pgd(trained, x, None, generator=torch.Generator().manual_seed(1),
            loss_fn=lambda xa: F.cross_entropy(trained(xa), y, reduction="none"), **kw)
    assert torch.equal(a, b)


@pytest.mark.parametrize("norm,random_start", [("linf", True), ("l2", True), ("linf", "normal")])
def test_generator_makes_random_start_reproducible(trained, batch, norm, random_start):
    x, y = batch
    kw = dict(eps=0.03, step_size=0.01, steps=2, norm=norm, random_start=random_start)
    a = pgd(trained, x, y, generator=torch.Generator().manual_seed(11), **kw)
    b = pgd(trained, x, y, generator=torch.Generator().manual_seed(11), **kw)
    c = pgd(trained, x, y, generator=torch.Generator().manual_seed(12), **kw)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_works_under_no_grad(trained, batch):
    x, y = batch
    with torch.no_grad():
        x_adv = pgd(trained, x, y, eps=0.03, step_size=0.01, steps=3)
    assert ce(trained, x_adv, y).mean() > ce(trained, x, y).mean()


def test_bad_settings_raise_config_errors(trained, batch):
    x, y = batch
    with pytest.raises(ConfigError):
        pgd(trained, x, y, eps=0.03, step_size=0.01, steps=1, norm="l3")
    with pytest.raises(ConfigError):
        pgd(trained, x, y, eps=0.03, step_size=0.01, steps=1, loss="hinge")
    with pytest.raises(ConfigError):
        pgd(trained, x, y, eps=0.03, step_size=0.01, steps=1, bn_mode="frozen")
    with pytest.raises(ConfigError):
        pgd(trained, x, None, eps=0.03, step_size=0.01, steps=1, loss="ce")


def test_registry():
    assert ATTACKS.names() == ["autoattack", "fgsm", "pgd"]
    assert ATTACKS.get("pgd") is pgd
