"""Parity with independent implementations and with the authors' code, re-typed here.

- PGD (Linf, L2) against ``torchattacks`` 3.5.1;
- the AutoAttack adapter and ``evaluate`` against the installed AutoAttack driver's own API;
- TRADES and MART losses, gradients and BatchNorm running statistics against the official
  functions, re-typed below from the authors' repositories (commit hashes in the comments),
  with only ``.cuda()`` removed and ``size_average=False`` written as ``reduction="sum"``;
- and, for each option whose non-code reading exists, a check that the non-code reading
  does *not* reproduce the code (so the parity checks can fail).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from reproduce.config import resolve_run
from reproduce.data import Batch
from reproduce.errors import ConfigError
from reproduce.evaluate import PROTOCOLS, Protocol, evaluate
from reproduce.methods import METHODS, TrainContext

from .toys import template_data

torchattacks = pytest.importorskip("torchattacks")

C = 10
EPS, STEP, STEPS = 0.031, 0.007, 5


class BNNet(nn.Module):
    """Conv + BatchNorm2d + linear head: small, and BN makes the forward-pass structure visible."""

    def __init__(self, logit_scale: float = 1.0) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                                  nn.Flatten(), nn.Linear(128, 16), nn.BatchNorm1d(16), nn.ReLU())
        self.head = nn.Linear(16, C)
        self.logit_scale = logit_scale  # > 1: saturated softmax, where MART's log floor matters

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logit_scale * self.head(self.body(x))


def saturated_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Template images with many pixels at exactly 0 or 1, as real images have."""
    return template_data(n, seed, C, amplitude=1.0, noise=0.35)


def make_model(seed: int = 0, logit_scale: float = 1.0, train_steps: int = 20) -> BNNet:
    torch.manual_seed(seed)
    model = BNNet(logit_scale)
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    x, y = template_data(256, 1, C, amplitude=0.5, noise=0.1)
    for i in range(train_steps):
        j = (i * 64) % 256
        loss = F.cross_entropy(model(x[j:j + 64]), y[j:j + 64])
        opt.zero_grad()
        loss.backward()
        opt.step()
    for p in model.parameters():
        p.grad = None
    return model


@pytest.fixture(scope="module")
def trained() -> BNNet:
    return make_model().eval()


# --------------------------------------------------------------------------- PGD vs torchattacks


def test_pgd_linf_matches_torchattacks(trained):
    from reproduce.attacks import pgd

    x, y = saturated_data(32, 3)
    for random_start in (False, True):
        torch.manual_seed(7)  # torchattacks draws its uniform start from the global RNG
        theirs = torchattacks.PGD(trained, eps=8 / 255, alpha=2 / 255, steps=10, random_start=random_start)(x, y)
        # the same uniform draws: torch.rand(generator) and uniform_ on a seeded global RNG agree
        ours = pgd(trained, x, y, eps=8 / 255, step_size=2 / 255, steps=10, random_start=random_start,
                   generator=torch.Generator().manual_seed(7))
        assert (ours - theirs).abs().max() < 1e-5, random_start
        with torch.no_grad():
            assert torch.equal(trained(ours).argmax(1), trained(theirs).argmax(1))


def test_pgd_l2_matches_torchattacks(trained):
    from reproduce.attacks import pgd

    x, y = saturated_data(32, 4)
    # torchattacks' L2 start is not uniform in the ball (radius ~ U(0, eps)): compare from x itself
    theirs = torchattacks.PGDL2(trained, eps=0.5, alpha=0.1, steps=10, random_start=False)(x, y)
    ours = pgd(trained, x, y, eps=0.5, step_size=0.1, steps=10, norm="l2", random_start=False)
    assert (ours - theirs).abs().max() < 1e-5
    assert ((ours - x).flatten(1).norm(dim=1) <= 0.5 + 1e-5).all()


def test_adv_only_counting_is_what_torchattacks_users_compute(trained):
    x, y = saturated_data(48, 5)
    proto = Protocol("pgd10-test", "pgd", "linf", 8 / 255, 2 / 255, 10, 1, False, counting="adv_only")
    res = evaluate(trained, x, y, proto)
    x_adv = torchattacks.PGD(trained, eps=8 / 255, alpha=2 / 255, steps=10, random_start=False)(x, y)
    with torch.no_grad():
        theirs = trained(x_adv).argmax(1).eq(y)
    assert res["correct_mask"] == theirs.int().tolist()
    assert res["counting"] == "adv_only" and res["params"]["counting"] == "adv_only"


# --------------------------------------------------------------------------- AutoAttack


def test_autoattack_adapter_matches_the_package_api(trained):
    """``evaluate`` (through ``run_autoattack``) equals the installed AutoAttack driver called directly."""
    from reproduce.attacks import run_autoattack
    from reproduce.attacks.autoattack import backend

    x, y = saturated_data(24, 6)
    seed = 3
    res = evaluate(trained, x, y, "aa-custom-fast", seed=seed, batch_size=12)  # APGD-CE, Linf 8/255
    if backend() == "autoattack":
        from autoattack import AutoAttack  # type: ignore[import-not-found]

        aa = AutoAttack(trained.eval(), norm="Linf", eps=8 / 255, version="custom", seed=seed,
                        attacks_to_run=["apgd-ce"], device="cpu", verbose=False)
        x_theirs, y_theirs = aa.run_standard_evaluation(x, y, bs=12, return_labels=True)
    else:
        from pyautoattack import AutoAttack as PyAutoAttack

        for p in trained.parameters():
            p.requires_grad_(False)
        try:
            aa = PyAutoAttack(trained.eval(), attacks=["apgd-ce"], device="cpu", eps=8 / 255, norm="Linf",
                              seed=seed, version="custom")
            x_theirs, y_theirs = aa.run_standard_evaluation(x, y, batch_size=12)
        finally:
            for p in trained.parameters():
                p.requires_grad_(True)
    robust_theirs = y_theirs.eq(y)
    assert res["correct_mask"] == robust_theirs.int().tolist()
    assert 0 < robust_theirs.sum() < len(y)  # both outcomes exercised
    assert res["accuracy_by_counting"]["adv_only"] == res["accuracy_by_counting"]["clean_and_adv"]
    kw = dict(version="custom", attacks=["apgd-ce"], batch_size=12)
    x_ours, _ = run_autoattack(trained, x, y, eps=8 / 255, seed=seed, **kw)
    assert torch.allclose(x_ours, x_theirs, atol=1e-6)
    x_other, _ = run_autoattack(trained, x, y, eps=4 / 255, seed=seed, **kw)
    assert not torch.allclose(x_other, x_theirs, atol=1e-6)  # the comparison can tell attacks apart


# --------------------------------------------------------------------------- TRADES / MART, re-typed


def official_trades_loss(model, x_natural, y, optimizer, step_size=0.003, epsilon=0.031, perturb_steps=10,
                         beta=1.0):
    """``trades_loss`` of yaodongyu/TRADES @ 6e8e11b7c281371c2f027ffadfbaea80361f09de (trades.py), l_inf."""
    criterion_kl = nn.KLDivLoss(reduction="sum")
    model.eval()
    batch_size = len(x_natural)
    # generate adversarial example
    x_adv = x_natural.detach() + 0.001 * torch.randn(x_natural.shape).detach()
    for _ in range(perturb_steps):
        x_adv.requires_grad_()
        with torch.enable_grad():
            loss_kl = criterion_kl(F.log_softmax(model(x_adv), dim=1),
                                   F.softmax(model(x_natural), dim=1))
        grad = torch.autograd.grad(loss_kl, [x_adv])[0]
        x_adv = x_adv.detach() + step_size * torch.sign(grad.detach())
        x_adv = torch.min(torch.max(x_adv, x_natural - epsilon), x_natural + epsilon)
        x_adv = torch.clamp(x_adv, 0.0, 1.0)
    model.train()

    x_adv = torch.clamp(x_adv, 0.0, 1.0).detach()
    # zero gradient
    optimizer.zero_grad()
    # calculate robust loss
    logits = model(x_natural)
    loss_natural = F.cross_entropy(logits, y)
    loss_robust = (1.0 / batch_size) * criterion_kl(F.log_softmax(model(x_adv), dim=1),
                                                    F.softmax(model(x_natural), dim=1))
    loss = loss_natural + beta * loss_robust
    return loss


def official_mart_loss(model, x_natural, y, optimizer, step_size=0.007, epsilon=0.031, perturb_steps=10,
                       beta=6.0):
    """``mart_loss`` of YisenWang/MART @ 2d83e17b381dd2ee52223695e517bf6d5ff09c2c (mart.py), l_inf.

    imrahulr/hat @ 3177a4f827480e97ac8ea4c5c6acab197cf97e66 ``core/utils/mart.py`` is the same.
    """
    kl = nn.KLDivLoss(reduction="none")
    model.eval()
    batch_size = len(x_natural)
    # generate adversarial example
    x_adv = x_natural.detach() + 0.001 * torch.randn(x_natural.shape).detach()
    for _ in range(perturb_steps):
        x_adv.requires_grad_()
        with torch.enable_grad():
            loss_ce = F.cross_entropy(model(x_adv), y)
        grad = torch.autograd.grad(loss_ce, [x_adv])[0]
        x_adv = x_adv.detach() + step_size * torch.sign(grad.detach())
        x_adv = torch.min(torch.max(x_adv, x_natural - epsilon), x_natural + epsilon)
        x_adv = torch.clamp(x_adv, 0.0, 1.0)
    model.train()

    x_adv = torch.clamp(x_adv, 0.0, 1.0).detach()
    # zero gradient
    optimizer.zero_grad()

    logits = model(x_natural)
    logits_adv = model(x_adv)
    adv_probs = F.softmax(logits_adv, dim=1)
    tmp1 = torch.argsort(adv_probs, dim=1)[:, -2:]
    new_y = torch.where(tmp1[:, -1] == y, tmp1[:, -2], tmp1[:, -1])
    loss_adv = F.cross_entropy(logits_adv, y) + F.nll_loss(torch.log(1.0001 - adv_probs + 1e-12), new_y)
    nat_probs = F.softmax(logits, dim=1)
    true_probs = torch.gather(nat_probs, 1, (y.unsqueeze(1)).long()).squeeze()
    loss_robust = (1.0 / batch_size) * torch.sum(
        torch.sum(kl(torch.log(adv_probs + 1e-12), nat_probs), dim=1) * (1.0000001 - true_probs))
    loss = loss_adv + float(beta) * loss_robust
    return loss


def make_method(name: str, attack: dict[str, Any] | None = None, **params: Any):
    cfg = resolve_run({
        "name": "parity", "epochs": 1, "data": {"primary": "toy"}, "model": {"name": "mlp"},
        "method": {"name": name, **params},
        "attack": {"eps": EPS, "step_size": STEP, "steps": STEPS, "random_start": "normal", "bn_mode": "eval",
                   **(attack or {})},
    })
    ctx = TrainContext(cfg=cfg, device=torch.device("cpu"), num_classes=C, datasets={}, steps_per_epoch=1)
    return METHODS.get(name)(cfg, ctx)


def bn_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "num_batches" in k}


def one_step(model: nn.Module, loss_of) -> tuple[float, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """One SGD step from ``loss_of(model, opt)``; returns (loss, parameter grads, BN running statistics)."""
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    torch.manual_seed(11)  # both official functions and our methods draw the start from the global RNG
    model.train()
    loss = loss_of(model, opt)
    opt.zero_grad()
    loss.backward()
    grads = {k: p.grad.clone() for k, p in model.named_parameters()}
    opt.step()
    return loss.item(), grads, bn_state(model)


def run_ours(method, x, y):
    return lambda model, opt: method.step(model, Batch(x, y, torch.arange(len(y))), 0, 0).loss


def run_official(fn, x, y, eps: float = EPS, step: float = STEP):
    return lambda model, opt: fn(model, x, y, opt, step_size=step, epsilon=eps, perturb_steps=STEPS, beta=6.0)


def close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], atol: float) -> bool:
    return all(torch.allclose(a[k].float(), b[k].float(), atol=atol, rtol=0) for k in a)


@pytest.fixture(scope="module")
def trades_reference() -> tuple[float, dict, dict]:
    x, y = saturated_data(32, 8)
    return one_step(make_model(), run_official(official_trades_loss, x, y))


def test_trades_matches_the_official_code(trades_reference):
    x, y = saturated_data(32, 8)
    loss, grads, bn = one_step(make_model(), run_ours(make_method("trades", beta=6.0), x, y))
    ref_loss, ref_grads, ref_bn = trades_reference
    assert abs(loss - ref_loss) < 1e-5
    assert close(grads, ref_grads, 1e-5)
    assert close(bn, ref_bn, 1e-6)
    before = int(make_model().state_dict()["body.1.num_batches_tracked"])
    assert int(bn["body.1.num_batches_tracked"]) - before == 3  # clean, adversarial, clean


@pytest.mark.parametrize("option", [{"train_forwards": 2}, {"attack": {"random_start": "normal-clipped"}}])
def test_trades_non_code_readings_do_not_match(trades_reference, option):
    """The two-pass structure and the clipped start are detectably different from the code."""
    x, y = saturated_data(32, 8)
    option = dict(option)
    method = make_method("trades", attack=option.pop("attack", None), beta=6.0, **option)
    loss, grads, bn = one_step(make_model(), run_ours(method, x, y))
    ref_loss, ref_grads, ref_bn = trades_reference
    if "train_forwards" in option:
        assert abs(loss - ref_loss) < 1e-5 and close(grads, ref_grads, 1e-5)  # same loss and gradient...
        running = [k for k in bn if "running" in k]
        # ...but the running statistics move one momentum update less (0.02 apart here)
        assert not close({k: bn[k] for k in running}, {k: ref_bn[k] for k in running}, 1e-4)
    else:
        assert not close(grads, ref_grads, 1e-5)  # another starting point, another adversarial example


def test_mart_matches_the_official_code():
    x, y = saturated_data(32, 9)
    # logits x 30 and eps 0.1: confidently flipped adversarial examples whose probabilities of
    # the clean prediction underflow 1e-12, where the log floor bites (at eps 0.031 it does not)
    attack = {"eps": 0.1, "step_size": 0.025}
    ref = one_step(make_model(logit_scale=30.0), run_official(official_mart_loss, x, y, 0.1, 0.025))
    ours = one_step(make_model(logit_scale=30.0), run_ours(make_method("mart", attack, beta=6.0), x, y))
    assert abs(ours[0] - ref[0]) < 1e-5
    assert close(ours[1], ref[1], 1e-5)
    assert close(ours[2], ref[2], 1e-6)
    exact = one_step(make_model(logit_scale=30.0),
                     run_ours(make_method("mart", attack, beta=6.0, log_eps=0.0), x, y))
    assert abs(exact[0] - ref[0]) > 0.1  # without the floor: not the code's loss (1.33 apart here)


def test_bad_method_options_raise_config_errors():
    with pytest.raises(ConfigError, match="train_forwards"):
        make_method("trades", train_forwards=1)
    with pytest.raises(ConfigError, match="log_eps"):
        make_method("mart", log_eps=-1.0)
    assert make_method("mart", log_eps="1e-12").log_eps == 1e-12


def test_unclipped_normal_start_leaves_the_image_range():
    from reproduce.attacks import pgd, random_init

    x, y = saturated_data(8, 10)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    start = random_init(x, eps=EPS, norm="linf", random_start="normal", generator=g())
    clipped = random_init(x, eps=EPS, norm="linf", random_start="normal-clipped", generator=g())
    assert start.min() < 0 and start.max() > 1  # saturated pixels step outside [0, 1]...
    assert torch.equal(clipped, start.clamp(0, 1))
    out = pgd(make_model().eval(), x, y, eps=EPS, step_size=STEP, steps=0, random_start="normal", generator=g())
    assert torch.equal(out, clipped)  # ...and the code clamps only what it finally returns


# --------------------------------------------------------------------------- counting


class Wobble(nn.Module):
    """Two classes; class 1 wins iff cos(k (mean(x) - c)) > 0. Non-monotone, so one FGSM
    step of size eps can carry a misclassified input across into the correct class."""

    def __init__(self, eps: float) -> None:
        super().__init__()
        self.k = 1.5 * math.pi / eps  # one full step moves the phase by 1.5 pi
        self.c = 0.5 - 0.6 * math.pi / self.k  # at mean 0.5 the phase is 0.6 pi: cos < 0, wrong

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = 5.0 * torch.cos(self.k * (x.flatten(1).mean(1) - self.c))
        return torch.stack([torch.zeros_like(z), z], dim=1)


@pytest.mark.parametrize("counting,expected", [("adv_only", 100.0), ("clean_and_adv", 0.0)])
def test_counting_conventions(counting, expected):
    eps = 8 / 255
    model = Wobble(eps)
    x, y = torch.full((2, 3, 4, 4), 0.5), torch.ones(2, dtype=torch.long)
    proto = Protocol("wobble", "pgd", "linf", eps, eps, 1, 1, False, counting=counting)
    res = evaluate(model, x, y, proto)
    assert res["clean_accuracy"] == 0.0
    assert res["accuracy"] == expected and res["counting"] == counting
    assert res["accuracy_by_counting"] == {"clean_and_adv": 0.0, "adv_only": 100.0}
    x_ta = torchattacks.PGD(model, eps=eps, alpha=eps, steps=1, random_start=False)(x, y)
    assert model(x_ta).argmax(1).eq(y).all()  # torchattacks' users would count both as robust


def test_protocol_counting_declarations():
    with pytest.raises(ConfigError, match="counting"):
        Protocol("bad", "pgd", counting="both")
    for name in ("pgd20", "pgd100", "cw100", "aa-standard", "l2-pgd100"):
        assert PROTOCOLS.get(name).counting == "clean_and_adv"
    # BiaMAT's evaluation scripts (AT evaluate.py, TRADES evaluate.py) count the adversarial prediction alone
    for name in ("pgd10", "pgd100-advonly", "cw100-advonly", "pgd10-trades", "pgd100-trades", "cw100-trades"):
        assert PROTOCOLS.get(name).counting == "adv_only"
