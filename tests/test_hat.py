"""HAT: the loss equals a re-typed copy of the authors' hat_loss / at_hat_loss on a fixed batch."""

from __future__ import annotations

import copy
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from reproduce.attacks.pgd import random_init
from reproduce.config import config_hash, resolve_run
from reproduce.data.feeding.loader import Batch
from reproduce.errors import ConfigError
from reproduce.methods import METHODS, TrainContext

EPS, STEP, STEPS = 8 / 255, 2 / 255, 3


def _net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 8 * 8, 3))


def _cfg(**method):
    m = {"name": "hat", "beta": 2.5, "gamma": 0.5, "helper": {"run": "std-x", "checkpoint": "best"}, **method}
    return resolve_run({"name": "t-hat", "data": {"primary": "toy"}, "model": {"name": "small_cnn"},
                        "method": m, "attack": {"eps": "8/255", "step_size": "2/255", "steps": STEPS},
                        "epochs": 1})


def _method(monkeypatch, helper_net: nn.Module, **method):
    cfg = _cfg(**method)
    asked = []

    class Refs:  # the trainer's side of methods.base.References
        def model(self, ref):
            asked.append(dict(ref))
            return helper_net

    ctx = TrainContext(cfg=cfg, device=torch.device("cpu"), num_classes=3, datasets={}, steps_per_epoch=1,
                       refs=Refs())
    hat = METHODS.get("hat")(cfg, ctx)
    hat.attach(None)
    assert asked == [{"run": "std-x", "checkpoint": "best"}]  # the helper came through the context
    return hat


def _batch():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(6, 3, 8, 8, generator=g)
    x[:, :, 0, 0] = 0.0  # pixels at the range's edges: x_h must leave [0, 1] there
    x[:, :, 0, 1] = 1.0
    return Batch(x, torch.tensor([0, 1, 2, 0, 1, 2]), torch.arange(6))


def _reference_kl(model, helper, x, y, beta, gamma, h):
    """core/utils/hat.py:hat_loss, re-typed (linf-pgd branch)."""
    kl = nn.KLDivLoss(reduction="sum")
    model.eval()
    x_adv = x.detach() + 0.001 * torch.randn(x.shape)
    p_natural = F.softmax(model(x), dim=1)
    for _ in range(STEPS):
        x_adv.requires_grad_()
        with torch.enable_grad():
            loss_kl = kl(F.log_softmax(model(x_adv), dim=1), p_natural)
        grad = torch.autograd.grad(loss_kl, [x_adv])[0]
        x_adv = x_adv.detach() + STEP * torch.sign(grad.detach())
        x_adv = torch.min(torch.max(x_adv, x - EPS), x + EPS).clamp(0.0, 1.0)
    model.train()
    x_adv = x_adv.clamp(0.0, 1.0)
    x_hr = x + h * (x_adv - x)
    with torch.no_grad():
        y_hr = helper(x_adv).argmax(dim=1)
    out_clean, out_adv, out_help = model(x), model(x_adv), model(x_hr)
    return (F.cross_entropy(out_clean, y) + beta * (1 / len(x)) * kl(F.log_softmax(out_adv, 1), F.softmax(out_clean, 1))
            + gamma * F.cross_entropy(out_help, y_hr))


def _reference_ce(model, helper, x, y, beta, gamma, h):
    """core/utils/hat.py:at_hat_loss, re-typed; the uniform draw follows the harness's rand() use."""
    model.eval()
    x_adv = (x + (2 * torch.rand(x.shape) - 1) * EPS).clamp(0, 1)
    for _ in range(STEPS):
        x_adv.requires_grad_()
        grad = torch.autograd.grad(F.cross_entropy(model(x_adv), y), [x_adv])[0]
        x_adv = torch.min(torch.max(x_adv.detach() + STEP * grad.sign(), x - EPS), x + EPS).clamp(0, 1)
    model.train()
    x_hr = x + h * (x_adv - x)
    with torch.no_grad():
        y_hr = helper(x_adv).argmax(dim=1)
    out_clean, out_adv, out_help = model(x), model(x_adv), model(x_hr)
    return F.cross_entropy(out_clean, y) + beta * F.cross_entropy(out_adv, y) + gamma * F.cross_entropy(out_help, y_hr)


@pytest.mark.parametrize("robust_loss,reference", [("kl", _reference_kl), ("ce", _reference_ce)])
def test_loss_matches_the_authors_code(monkeypatch, robust_loss, reference):
    helper = _net(7).eval()
    for p in helper.parameters():
        p.requires_grad_(False)
    helper_state = copy.deepcopy(helper.state_dict())
    model, ref_model = _net(3), _net(3)
    b = _batch()
    torch.manual_seed(11)
    want = reference(ref_model, helper, b.x, b.y, 2.5, 0.5, 2.0)
    hat = _method(monkeypatch, helper, robust_loss=robust_loss)
    seen = []
    model.register_forward_pre_hook(lambda m, inp: seen.append(inp[0].detach().clone()))
    model.train()
    torch.manual_seed(11)
    tracked = model[1].num_batches_tracked.item()
    out = hat.step(model, b, 0, 0)
    assert out.loss.item() == pytest.approx(want.item(), rel=1e-5)
    # gradients agree too (p_clean is not detached in the KL term)
    g = torch.autograd.grad(out.loss, list(model.parameters()))
    g_ref = torch.autograd.grad(want, list(ref_model.parameters()))
    for a, r in zip(g, g_ref):
        assert torch.allclose(a, r, rtol=1e-4, atol=1e-6)
    # three separate train-mode passes: BN's running statistics were updated three times
    assert model[1].num_batches_tracked.item() == tracked + 3
    assert torch.allclose(model[1].running_mean, ref_model[1].running_mean)
    # the helper example (last forward) is not clipped to [0, 1]
    x_h = seen[-1]
    assert x_h.min().item() < 0.0 and x_h.max().item() > 1.0
    assert (x_h - b.x).abs().amax() <= 2 * EPS + 1e-6
    # the helper is untouched
    for k, v in helper.state_dict().items():
        assert torch.equal(v, helper_state[k]), k
    assert ("kl" if robust_loss == "kl" else "adv_ce") in out.stats and "helper_flip" in out.stats


def test_unclamped_normal_start():
    x = torch.zeros(2, 3, 4, 4)
    torch.manual_seed(0)
    raw = random_init(x, eps=EPS, norm="linf", random_start="normal")
    torch.manual_seed(0)
    clamped = random_init(x, eps=EPS, norm="linf", random_start="normal-clipped")
    assert raw.min() < 0 and clamped.min() == 0
    assert torch.equal(raw.clamp(0, 1), clamped)


@pytest.mark.parametrize("over,needle", [({"beta": None}, "beta"), ({"robust_loss": "mart"}, "robust_loss"),
                                         ({"helper": "std"}, "helper"), ({"start": "x"}, "start"),
                                         ({"bn_mode": "x"}, "bn_mode"), ({"delta": 1}, "delta")])
def test_bad_params(monkeypatch, over, needle):
    with pytest.raises(ConfigError, match=needle):
        _method(monkeypatch, _net(0), **over)


def test_helper_run_changes_the_hash():
    assert config_hash(_cfg()) != config_hash(_cfg(helper={"run": "std-y", "checkpoint": "best"}))


def test_trains_with_a_real_helper_run(tmp_path):
    from reproduce.data.generated.synthetic import write_generated
    from reproduce.train import train

    root = tmp_path / "data"
    write_generated("toy", root, num_classes=4, image_size=16, n_train=64, n_test=32, domain=0)
    base = {"scale": "test", "seed": 1, "data": {"primary": "toy"}, "model": {"name": "small_cnn"},
            "optim": {"lr": 0.05}, "epochs": 1, "batch_size": 32}
    runs = tmp_path / "runs"
    train({**base, "name": "std", "method": {"name": "standard"}}, runs / "std-1", data_root=root,
          device="cpu", progress=False)
    cfg = {**base, "name": "hat", "attack": {"steps": 2},
           "method": {"name": "hat", "beta": 2.5, "gamma": 0.5, "helper": {"run": "std-1", "checkpoint": "best"}}}
    train(cfg, runs / "hat-1", data_root=root, device="cpu", progress=False)
    row = json.loads((runs / "hat-1" / "metrics.jsonl").read_text().splitlines()[0])
    assert {"ce", "kl", "help_ce", "helper_acc"} <= set(row)
    # the helper stays out of the trained model's checkpoint
    ck = torch.load(runs / "hat-1" / "best.pt", weights_only=True)
    assert not any("helper" in k for k in ck["model"])
