"""Subset AT: the attack touches only A, the weights and sum(wl)/sum(w), the best-iterate rule."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from reproduce.attacks.pgd import pgd
from reproduce.config import resolve_run
from reproduce.data.feeding.loader import Batch
from reproduce.errors import ConfigError
from reproduce.methods import METHODS, TrainContext
from reproduce.methods import subset_at as sat


def _cfg(**method):
    m = {"name": "subset_at", "subset": [0], **method}
    return resolve_run({"name": "t-sat", "data": {"primary": "toy"}, "model": {"name": "small_cnn"},
                        "method": m, "attack": {"norm": "l2", "eps": 0.5, "step_size": 0.1, "steps": 7,
                                                "random_start": False}, "epochs": 1})


def _method(num_classes=3, **method):
    cfg = _cfg(**method)
    ctx = TrainContext(cfg=cfg, device=torch.device("cpu"), num_classes=num_classes, datasets={},
                       steps_per_epoch=1)
    return METHODS.get("subset_at")(cfg, ctx)


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 8 * 8, 3))


def _batch():
    g = torch.Generator().manual_seed(1)
    return Batch(torch.rand(6, 3, 8, 8, generator=g), torch.tensor([0, 1, 2, 0, 1, 2]), torch.arange(10, 16))


@pytest.mark.parametrize("scheme,f,tenths,want", [
    ("increasing", 0.1, None, 18.0),      # (1 + 1) * 9
    ("increasing", 0.5, None, 6.0),       # (1 + 5) * 1
    ("increasing", 0.9, None, 10 / 9),    # (1 + 9) / 9
    ("increasing", 0.0999, 1, 18.0),      # the code's i overrides a ragged fraction
    ("balanced", 0.2, None, 4.0),         # 0.8 / 0.2
    ("none", 0.3, None, 1.0),
])
def test_weights(scheme, f, tenths, want):
    assert sat.subset_weight(scheme, f, tenths) == pytest.approx(want)


def test_weighted_mean_by_hand():
    per, w = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([18.0, 1.0, 1.0])
    assert float(sat.weighted_mean(per, w)) == pytest.approx((18 + 2 + 3) / 20)


def test_attack_touches_only_a(monkeypatch):
    seen = {}

    def fake_pgd(model, x, y, **kw):
        seen["y"], seen["kw"] = y.clone(), kw
        return x + 0.25

    monkeypatch.setattr(sat, "pgd", fake_pgd)
    m = _method(subset=[0], weights="increasing")
    net, b = _net(), _batch()
    inputs = []
    net.register_forward_pre_hook(lambda mod, args: inputs.append(args[0].clone()))
    out = m.step(net, b, 0, 0)
    assert seen["y"].tolist() == [0, 0]
    assert seen["kw"]["keep_best"] and not seen["kw"]["score_last"] and seen["kw"]["bn_mode"] == "eval"
    (x_fwd,) = inputs  # one forward of the mixed batch
    a = torch.tensor([True, False, False, True, False, False])
    assert torch.equal(x_fwd[~a], b.x[~a]) and torch.allclose(x_fwd[a], b.x[a] + 0.25)
    # w_A = (1 + 10/3) * 2 for one class of three; B weighs 1
    w_a = (1 + 10 / 3) * 2
    per = F.cross_entropy(net(x_fwd), b.y, reduction="none")
    w = torch.where(a, torch.tensor(w_a), torch.tensor(1.0))
    assert float(out.loss) == pytest.approx(float((w * per).sum() / w.sum()), rel=1e-5)


def test_esat_selects_by_instance_id(monkeypatch):
    seen = {}

    def fake_pgd(model, x, y, **kw):
        seen["y"] = y.clone()
        return x

    monkeypatch.setattr(sat, "pgd", fake_pgd)
    m = _method(by="example", subset={"indices": [11, 15, 99]})
    m.step(_net(), _batch(), 0, 0)
    assert seen["y"].tolist() == [1, 2]  # ids 11 and 15 sit at positions 1 and 5


def test_empty_a_in_batch_is_plain_ce(monkeypatch):
    monkeypatch.setattr(sat, "pgd", lambda *a, **k: pytest.fail("no member of A in the batch"))
    m = _method(subset=[5], num_classes=10)
    net, b = _net(), _batch()
    out = m.step(net, b, 0, 0)
    assert float(out.loss) == pytest.approx(float(F.cross_entropy(net(b.x), b.y)), rel=1e-5)


@pytest.mark.parametrize("steps,score_last,keep,want", [
    (2, False, True, 0.2),   # linear loss: x0 = .1, x1 = .2 scored; x2 = .3 never (the code)
    (2, True, True, 0.3),    # scoring the last iterate too
    (2, True, False, 0.3),   # plain PGD returns the last iterate
])
def test_best_iterate_linear(steps, score_last, keep, want):
    x = torch.full((1, 1, 1, 1), 0.1)
    got = pgd(nn.Identity(), x, None, eps=0.5, step_size=0.1, steps=steps, norm="l2", random_start=False,
              keep_best=keep, score_last=score_last, loss_fn=lambda xa: xa.flatten(1).sum(1))
    assert float(got) == pytest.approx(want)


def test_best_iterate_can_be_the_clean_input():
    # loss -(x - .55)^2 from .5 with step .2 oscillates .5, .7, .5, .7: the clean start wins (strict >)
    x = torch.full((1, 1, 1, 1), 0.5)
    kw = dict(eps=0.5, step_size=0.2, steps=3, norm="l2", random_start=False,
              loss_fn=lambda xa: -(xa.flatten(1).sum(1) - 0.55) ** 2)
    assert float(pgd(nn.Identity(), x, None, keep_best=True, score_last=False, **kw)) == pytest.approx(0.5)
    assert float(pgd(nn.Identity(), x, None, keep_best=False, **kw)) == pytest.approx(0.7)


@pytest.mark.parametrize("over,needle", [({"by": "pixel"}, "by"), ({"weights": "heavy"}, "weights"),
                                         ({"best_of": "x"}, "best_of"), ({"subset": 3}, "subset"),
                                         ({"by": "example", "subset": {"classes": [1]}}, "by: class")])
def test_bad_params(over, needle):
    with pytest.raises(ConfigError, match=needle):
        _method(**over)


def test_sat_model_matches_the_code_count():
    from reproduce.models import build_model, count_parameters

    m = build_model("sat_preact_resnet18", 10)
    # 21,333,834 as measured from the authors' config (notes §2.3); every block has a 1x1 shortcut
    assert count_parameters(m) == 21_333_834
    assert sum(1 for n, _ in m.named_modules() if n.endswith("shortcut")) == 8


def test_normalize_constants_from_the_config():
    from reproduce.train.setup import model_normalization

    cfg = {"name": "r", "model": {"normalize": {"mean": [0.4914, 0.4822, 0.4465], "std": [0.2023, 0.1994, 0.2010]}},
           "data": {"primary": "cifar100"}}
    mean, std = model_normalization(cfg, {"channels": 3, "manifest": {}})
    assert mean == (0.4914, 0.4822, 0.4465) and std == (0.2023, 0.1994, 0.2010)
    with pytest.raises(ConfigError, match="model.normalize"):
        model_normalization({**cfg, "model": {"normalize": {"mean": [0.5]}}}, {"channels": 3, "manifest": {}})


def test_color_jitter_by_hand():
    from reproduce.data.feeding.color import jitter_batch

    px = torch.tensor([[100, 50, 200]], dtype=torch.uint8).view(1, 3, 1, 1).repeat(2, 1, 1, 2)
    px[1, :, 0, 1] = torch.tensor([0, 0, 0], dtype=torch.uint8)
    # brightness 1.5 only (contrast and saturation factor 1): 150, 75, 255 (300 clipped)
    out = jitter_batch(px[:1], torch.tensor([[1.5, 1.0, 1.0]]), torch.tensor([[0, 1, 2]]))
    assert out[0, :, 0, 0].tolist() == [150, 75, 255]
    # saturation 0: grey L = .299*100 + .587*50 + .114*200 = 82.15 -> 82 in every channel
    out = jitter_batch(px[:1], torch.tensor([[1.0, 1.0, 0.0]]), torch.tensor([[2, 0, 1]]))
    assert out[0, :, 0, 0].tolist() == [82, 82, 82]
    # contrast 0 on image 2: solid grey of the mean L = floor((82.15->82 + 0) / 2 + .5) = 41
    out = jitter_batch(px[1:], torch.tensor([[1.0, 0.0, 1.0]]), torch.tensor([[1, 0, 2]]))
    assert out.unique().tolist() == [41]


def test_color_jitter_keeps_other_streams():
    from reproduce.data.feeding.loader import DeviceDataset, iterate

    g = torch.Generator().manual_seed(0)
    ds = DeviceDataset((torch.rand(8, 6, 6, 3, generator=g) * 255).to(torch.uint8), torch.zeros(8), "cpu")
    plain = [b.x for b in iterate(ds, 4, augment=True, seed=1, rotate=2)]
    jit = [b.x for b in iterate(ds, 4, augment=True, seed=1, rotate=2, color_jitter=(0.0, 0.0, 0.0))]
    assert all(torch.equal(a, b) for a, b in zip(plain, jit))
    jit = [b.x for b in iterate(ds, 4, augment=True, seed=1, color_jitter=(0.25, 0.25, 0.25))]
    assert not torch.equal(jit[0], [b.x for b in iterate(ds, 4, augment=True, seed=1)][0])


def test_eval_permutation_first_indices():
    from reproduce.analyses.subset_rankings import eval_permutation

    # torch.manual_seed(90622); randperm(10000) as in model/evaluations.py:1207-1209 (notes §2.4)
    assert eval_permutation(10000)[:10].tolist() == [4566, 7893, 6911, 3409, 7016, 7049, 5131, 2618, 1550, 8510]


def test_binning_and_ranking_by_hand():
    import numpy as np

    from reproduce.analyses.subset_rankings import bin_keys, epoch_means, rank

    scores = np.array([0.1, 0.9, 0.5, 0.7, 0.3, 0.2, 0.8])
    dec = rank(scores, "decreasing")
    assert dec.tolist() == [1, 6, 3, 2, 4, 5, 0] and rank(scores, "increasing").tolist() == dec[::-1].tolist()
    keys = bin_keys(dec, 3)  # width 7 // 3 = 2; the leftover example 0 is never in A
    assert keys == {"top_1": [1, 6], "top_2": [1, 2, 3, 6]}
    per_epoch = np.array([[1.0, np.nan], [3.0, 4.0]])
    assert epoch_means(per_epoch, None).tolist() == [2.0, 4.0] and epoch_means(per_epoch, 1).tolist() == [3.0, 4.0]
