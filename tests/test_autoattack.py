"""The AutoAttack adapter and the robustbench / autoattack import shims."""

from __future__ import annotations

import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from reproduce.attacks import run_autoattack
from reproduce.attacks.autoattack import backend, import_robustbench
from reproduce.errors import ConfigError

from .toys import template_data

C = 10  # the standard version targets 9 classes, so the toy task needs 10


def make_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    return template_data(n, seed, C, amplitude=0.4, noise=0.1)


class TwoHeadNet(nn.Module):
    """A BatchNorm MLP with an auxiliary head: forward(x) is the primary head, like ``Classifier``."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(192, 32), nn.BatchNorm1d(32), nn.ReLU())
        self.primary = nn.Linear(32, C)
        self.aux = nn.Linear(32, 3)

    def forward(self, x: torch.Tensor, head: str | None = None) -> torch.Tensor:
        h = self.body(x)
        return self.aux(h) if head == "aux" else self.primary(h)


@pytest.fixture(scope="module")
def trained() -> TwoHeadNet:
    torch.manual_seed(0)
    model = TwoHeadNet()
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    x, y = make_data(512, 1)
    for _ in range(10):
        for i in range(0, 512, 128):
            loss = F.cross_entropy(model(x[i : i + 128]), y[i : i + 128])
            opt.zero_grad()
            loss.backward()
            opt.step()
    for p in model.parameters():
        p.grad = None
    return model


def test_backend_is_known():
    assert backend() in ("autoattack", "pyautoattack")


def test_custom_apgd_ce_mask_matches_predictions(trained):
    x, y = make_data(24, 2)
    eps = 0.07  # about two thirds of these survive APGD-CE: both outcomes are exercised
    trained.train()  # the adapter must switch to eval mode itself and restore this
    rng_before = torch.random.get_rng_state()
    x_adv, robust = run_autoattack(trained, x, y, norm="Linf", eps=eps, version="custom",
                                   attacks=["apgd-ce"], seed=0, batch_size=16)
    assert torch.equal(torch.random.get_rng_state(), rng_before)  # AA re-seeds the global RNG
    assert trained.training and trained.body[2].training
    assert all(p.grad is None and p.requires_grad for p in trained.parameters())
    assert x_adv.shape == x.shape and robust.dtype == torch.bool and robust.shape == y.shape
    assert (x_adv - x).abs().max() <= eps + 1e-5
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    trained.eval()
    with torch.no_grad():
        clean_ok = trained(x).argmax(1).eq(y)
        adv_ok = trained(x_adv).argmax(1).eq(y)
    assert torch.equal(robust, adv_ok)
    assert not (robust & ~clean_ok).any()  # robust implies clean-correct
    assert clean_ok.float().mean() > 0.8
    assert robust.sum() < clean_ok.sum()  # the attack broke something
    # untouched robust points are returned unchanged
    assert torch.equal(x_adv[robust], x[robust])


def test_same_seed_same_result(trained):
    x, y = make_data(16, 3)
    kw = dict(norm="L2", eps=0.5, version="custom", attacks=["apgd-ce"], seed=5)
    a = run_autoattack(trained, x, y, **kw)
    b = run_autoattack(trained, x, y, **kw)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert ((a[0] - x).flatten(1).norm(dim=1) <= 0.5 + 1e-4).all()


def test_bad_arguments(trained):
    x, y = make_data(4, 4)
    with pytest.raises(ConfigError):
        run_autoattack(trained, x, y, eps=0.03, version="custom")
    with pytest.raises(ConfigError):
        run_autoattack(trained, x, y, eps=0.03, version="standard", attacks=["apgd-ce"])
    with pytest.raises(ConfigError):
        run_autoattack(trained, x, y, eps=0.03, version="custom", attacks=["pgd"])
    with pytest.raises(ConfigError):
        run_autoattack(trained, x, y, eps=0.03, norm="L3")


def test_robustbench_imports_through_the_shim():
    rb = import_robustbench()
    assert callable(rb.load_model)  # robustbench 1.1.1 (PyPI) ships benchmark() commented out
    import autoattack  # noqa: F401  (real package or our shim: either way importable now)

    from autoattack import AutoAttack
    from autoattack.state import EvaluationState  # noqa: F401

    assert "autoattack" in sys.modules and AutoAttack is not None


def test_shim_has_the_official_api(trained):
    import_robustbench()
    from autoattack import AutoAttack

    x, y = make_data(8, 6)
    adversary = AutoAttack(trained.eval(), norm="Linf", eps=0.03, version="custom",
                           attacks_to_run=["apgd-ce"], device="cpu", verbose=False, seed=0)
    x_adv = adversary.run_standard_evaluation(x, y, bs=8)
    assert isinstance(x_adv, torch.Tensor) and x_adv.shape == x.shape
    x_adv2, y_adv = adversary.run_standard_evaluation(x, y, bs=8, return_labels=True)
    assert y_adv.shape == y.shape
    for p in trained.parameters():
        p.grad = None


@pytest.mark.slow
def test_full_standard_version_on_a_handful(trained):
    x, y = make_data(8, 7)
    x_adv, robust = run_autoattack(trained, x, y, norm="Linf", eps=0.07, version="standard",
                                   seed=0, batch_size=8)
    trained.eval()
    with torch.no_grad():
        assert torch.equal(robust, trained(x_adv).argmax(1).eq(y))
    assert (x_adv - x).abs().max() <= 0.07 + 1e-5
    assert 0 < robust.sum() < len(y)
