"""SAT: the clean-output EMA targets, the weights max_c t_ic, the KL term divided by gamma, by hand."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from .hard_methods import K, batch, make, model

ATTACK = {"eps": "8/255", "step_size": "2/255", "steps": 0, "random_start": True}


def _start(x, g, eps=8 / 255):
    return (x + (2 * torch.rand(x.shape, generator=g) - 1) * eps).clamp(0, 1)


@pytest.mark.parametrize("epoch, moves", [(0, False), (1, False), (2, True)])
def test_a_step_by_hand(epoch, moves):
    alpha, gamma = 0.7, 1 / 6
    m = make({"name": "sat", "alpha": alpha, "gamma": gamma, "warmup": 2}, ATTACK)
    net, b = model(), batch([5, 0, 3])
    rows = m.rows(b.idx)
    m.target[rows] = torch.tensor([[0.2, 0.1, 0.7], [0.9, 0.05, 0.05], [0.4, 0.5, 0.1]])
    t0 = m.target.clone()
    g = torch.Generator().manual_seed(4)
    torch.manual_seed(4)
    out = m.step(net, b, epoch, 0)
    clean = net(b.x)
    p = F.softmax(clean, 1).detach()
    t = alpha * t0[rows] + (1 - alpha) * p if moves else t0[rows]  # epoch 0 only initialises; then the warm-up
    w, pred_t = t.max(1)
    soft = -(F.log_softmax(clean, 1) * t).sum(1)
    x_trades = _start(b.x, g)
    x_adv = _start(b.x, g)  # the logged CE attack draws next
    kl = (p * (F.log_softmax(clean, 1).detach() - F.log_softmax(net(x_trades), 1))).sum(1).mean()
    want = (soft * w).sum() / w.sum() + kl / gamma  # divided, as the code does
    assert torch.allclose(out.loss, want, atol=1e-6)
    assert torch.allclose(m.target[rows], t) and torch.equal(m.target[[1, 2, 4]], t0[[1, 2, 4]])
    assert torch.allclose(out.adapted["weight"], w)
    pred = clean.argmax(1)
    assert out.adapted["acc_gt"].tolist() == (pred == b.y).float().tolist()
    assert out.adapted["acc_target"].tolist() == (pred == pred_t).float().tolist()
    assert out.adapted["adv_acc_gt"].tolist() == (net(x_adv).argmax(1) == b.y).float().tolist()


def test_targets_start_one_hot_and_the_weight_can_be_switched_off():
    m = make({"name": "sat", "use_weight": False, "log_attack": False}, ATTACK)
    assert torch.equal(m.target, F.one_hot(torch.arange(6) % K, K).float())
    out = m.step(model(), batch([0, 1]), 3, 0)
    assert torch.equal(out.adapted["weight"], torch.ones(2)) and "adv_acc_gt" not in out.adapted
    assert m.adapts == ("weight", "acc_gt", "acc_target")


def test_the_trades_attack_keeps_the_iterate_of_highest_cross_entropy():
    """pgd ascends the KL but ranks iterates by the CE of the same forward (util/attack.py:190-200)."""
    from reproduce.attacks import pgd

    net, b = model(), batch([0, 1, 2, 3])

    def objective(xa):
        lp = F.log_softmax(net(xa), 1)
        return lp[:, 0], -lp.gather(1, b.y[:, None]).squeeze(1)  # ascend class 0's log-probability

    torch.manual_seed(0)
    x_best = pgd(net, b.x, None, eps=0.3, step_size=0.1, steps=3, loss_fn=objective, keep_best="exclude_last")
    iterates, x = [], None
    for s in range(3):  # the iterates x_0, x_1, x_2 from the same start
        torch.manual_seed(0)
        x = pgd(net, b.x, None, eps=0.3, step_size=0.1, steps=s, loss_fn=objective)
        iterates.append(x)
    ce = torch.stack([F.cross_entropy(net(xi), b.y, reduction="none") for xi in iterates])
    pick = ce.flip(0).argmax(0)  # ties to the later iterate
    want = torch.stack([iterates[2 - int(k)][i] for i, k in enumerate(pick)])
    assert torch.equal(x_best, want)
    assert not torch.equal(x_best, iterates[2])  # the CE, not the ascended objective, chose
