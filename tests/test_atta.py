"""ATTA: the padded cache follows the image through crop and flip; one step, target and weights by hand."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from reproduce.errors import ConfigError
from reproduce.methods.padded import pad_frame, paste, window

from .hard_methods import K, batch, make, model

ATTACK = {"eps": "8/255", "step_size": "4/255", "steps": 1, "bn_mode": "train-update"}


def _code_window(frame, top, left, flip, h, w):
    """util/augmentation.py load_delta: slice at the offsets, then flip(2) (the W axis)."""
    out = frame[:, top:top + h, left:left + w]
    return out.flip(2) if flip else out


def test_window_and_paste_are_the_codes_crop_flip_and_its_inverse():
    g = torch.Generator().manual_seed(0)
    frame = torch.rand((5, 3, 12, 12), generator=g)
    crop = torch.randint(0, 9, (5, 2), generator=g)
    flip = torch.tensor([True, False, True, True, False])
    cut = window(frame, crop, flip, 4, 4)
    for i in range(5):
        assert torch.equal(cut[i], _code_window(frame[i], int(crop[i, 0]), int(crop[i, 1]), bool(flip[i]), 4, 4))
    assert torch.equal(paste(frame, crop, flip, cut), frame)  # pasting a window back changes nothing
    patch = torch.rand((5, 3, 4, 4), generator=g)
    new = paste(frame, crop, flip, patch)
    assert torch.equal(window(new, crop, flip, 4, 4), patch)  # the round trip
    for i in range(5):  # update_delta: un-flip, write at the offsets; the rest of the frame keeps its values
        t, l = int(crop[i, 0]), int(crop[i, 1])
        want = frame[i].clone()
        want[:, t:t + 4, l:l + 4] = patch[i].flip(2) if flip[i] else patch[i]
        assert torch.equal(new[i], want)


def test_pad_frame_uses_the_codes_constant():
    x = torch.zeros((1, 1, 2, 2))
    f = pad_frame(x, 4, 0.5)
    assert f.shape == (1, 1, 10, 10) and f[0, 0, 0, 0] == 0.5 and f[0, 0, 4, 4] == 0


def _hand_step(m, net, b, epoch, reweight, rho, beta, warmup):
    """adv_fast.py for one batch, instance by instance, from the method's cache and crops before the step."""
    eps, alpha = 8 / 255, 4 / 255
    rows = m.rows(b.idx)
    delta0, target0 = m.delta.clone(), m.target.clone()
    xs, ds = [], []
    for j, r in enumerate(rows.tolist()):
        t, l, fl = int(m.crops[r, 0]), int(m.crops[r, 1]), bool(m.flips[r])
        xs.append(_code_window(F.pad(b.x[j], (4, 4, 4, 4), "constant", 0.5), t, l, fl, 4, 4))
        ds.append(_code_window(delta0[r], t, l, fl, 4, 4))
    x, d = torch.stack(xs), torch.stack(ds).requires_grad_()
    onehot = F.one_hot(b.y, K).float()
    logits = net(x + d)
    grad = torch.autograd.grad(-(F.log_softmax(logits, -1) * onehot).sum(1).mean(), d)[0]
    new = torch.clamp(d.detach() + grad.sign() * alpha, -eps, eps)
    new = torch.clamp(x + new, 0, 1) - x
    cache = delta0.clone()
    for j, r in enumerate(rows.tolist()):
        t, l, fl = int(m.crops[r, 0]), int(m.crops[r, 1]), bool(m.flips[r])
        cache[r][:, t:t + 4, l:l + 4] = new[j].flip(2) if fl else new[j]
    targets = target0.clone()
    if epoch >= warmup:
        p = F.softmax(logits.detach(), 1)
        for j, r in enumerate(rows.tolist()):
            targets[r] = target0[r] * rho + p[j] * (1 - rho)
        used = onehot * beta + targets[rows] * (1 - beta)
    else:
        used = onehot
    adv = net(x + new)
    ref = net(x) if reweight == "nat_prob" else adv
    w = F.softmax(ref, -1).gather(1, b.y[:, None]).squeeze(1).detach() if reweight != "none" else torch.ones(len(b))
    loss = (-(F.log_softmax(adv, -1) * used).sum(1) * w).sum() / w.sum()
    return loss, cache, targets, w, used.gather(1, b.y[:, None]).squeeze(1)


@pytest.mark.parametrize("reweight", ["none", "prob", "nat_prob"])
@pytest.mark.parametrize("epoch", [0, 2])
def test_one_step_matches_the_code_by_hand(reweight, epoch):
    rho, beta = 0.9, 0.25
    m = make({"name": "atta", "reweight": reweight, "rho": rho, "beta": beta, "warmup": 1, "warmup_rw": 0},
             ATTACK, {"augment": False})
    net = model()
    b = batch([4, 1, 2])
    m.start_epoch(net, epoch)
    if epoch:  # targets that already moved away from one-hot
        m.target = torch.softmax(torch.randn(m.target.shape, generator=torch.Generator().manual_seed(3)), 1)
    loss, cache, targets, w, target_y = _hand_step(m, net, b, epoch, reweight, rho, beta, warmup=1)
    out = m.step(net, b, epoch, 0)
    assert torch.allclose(out.loss, loss, atol=1e-6)
    assert torch.equal(m.delta, cache)  # the new perturbation went back into the padded frame, and only there
    assert torch.allclose(m.target, targets, atol=1e-7)
    assert torch.allclose(out.adapted["weight"], w) and torch.allclose(out.adapted["target_y"], target_y)
    untouched = [r for r in range(6) if r not in m.rows(b.idx).tolist()]
    assert torch.equal(m.target[untouched], targets[untouched])


def test_the_adaptive_target_follows_the_pre_step_logits_unless_told():
    net, b = model(), batch([0, 3])
    outs = {}
    for where in ("pre_step", "post_step"):
        m = make({"name": "atta", "beta": 0.0, "rho": 0.5, "warmup": 0, "target_from": where}, ATTACK,
                 {"augment": False})
        m.start_epoch(net, 0)
        rows = m.rows(b.idx)
        x, crop, flip = m.augmented(b, rows)
        pre = net(x + window(m.delta[rows], crop, flip, 4, 4))
        m.step(net, b, 0, 0)
        post = net(x + window(m.delta[rows], crop, flip, 4, 4))
        onehot = F.one_hot(b.y, K).float()
        seen = pre if where == "pre_step" else post
        outs[where] = m.target[rows]
        assert torch.allclose(m.target[rows], 0.5 * onehot + 0.5 * F.softmax(seen, 1), atol=1e-6), where
    assert not torch.allclose(outs["pre_step"], outs["post_step"])


def test_the_cache_is_drawn_at_reset_epochs_only_and_follows_the_seed():
    m = make({"name": "atta", "delta_reset": 2}, ATTACK, {"augment": False})
    net = model()
    m.start_epoch(net, 0)
    first, crops0 = m.delta.clone(), m.crops.clone()
    assert first.shape == (6, 3, 12, 12) and first.abs().max() <= 8 / 255 and first.std() > 0.01
    m.delta.add_(1.0)
    m.start_epoch(net, 1)
    assert torch.equal(m.delta, first + 1.0)  # kept
    m.start_epoch(net, 2)
    assert not torch.equal(m.delta, first + 1.0) and m.delta.abs().max() <= 8 / 255
    again = make({"name": "atta", "delta_reset": 2}, ATTACK, {"augment": False})
    again.start_epoch(net, 0)
    assert torch.equal(again.delta, first) and torch.equal(again.crops, crops0)  # a pure function of (seed, epoch)
    assert int(again.crops.max()) <= 7  # the code's randint(0, 8): offsets 0..7


def test_loop_augmentation_uses_the_batchs_crop_and_flip():
    m = make({"name": "atta", "augment": "loop"}, ATTACK, {"augment": True})
    m.start_epoch(model(), 0)
    b = batch([0, 1])
    crop, flip = torch.tensor([[0, 8], [3, 1]]), torch.tensor([True, False])
    from dataclasses import replace

    x, c, f = m.augmented(replace(b, crop=crop, flip=flip), m.rows(b.idx))
    assert torch.equal(x, b.x) and torch.equal(c, crop) and torch.equal(f, flip)


@pytest.mark.parametrize("method, data, match", [
    ({"reweight": "weights"}, {"augment": False}, "method.reweight"),
    ({"rho": 1.5}, {"augment": False}, "method.rho"),
    ({"warmup": -1}, {"augment": False}, "method.warmup"),
    ({}, {"augment": True}, "data.augment: false"),
    ({"augment": "loop"}, {"augment": False}, "data.augment: true"),
])
def test_bad_parameters_are_one_line_errors(method, data, match):
    with pytest.raises(ConfigError, match=match) as e:
        make({"name": "atta", **method}, ATTACK, data)
    assert "\n" not in str(e.value)
