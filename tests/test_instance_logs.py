"""Per-instance logs keyed by original ids, the data hold-out, exact resume; PGD exclude_last; Adam."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from torch import nn

from reproduce.attacks.pgd import pgd, random_init
from reproduce.config import resolve_run
from reproduce.data.feeding.holdout import split_holdout
from reproduce.data.generated.synthetic import write_generated
from reproduce.errors import ConfigError
from reproduce.train import train
from reproduce.train.observers import InstanceLog
from reproduce.train.optim import make_optimizer


def _cfg(**over):
    cfg = {
        "name": "t-log", "scale": "test", "seed": 1,
        "data": {"primary": "toy", "augment": True, "drop_last": False},
        "model": {"name": "small_cnn"}, "method": {"name": "at"},
        "attack": {"eps": "8/255", "step_size": "2/255", "steps": 1, "bn_mode": "train-update",
                   "keep_best": "exclude_last"},
        "optim": {"lr": 0.05}, "epochs": 3, "batch_size": 24, "log_per_instance": True,
    }
    cfg.update(over)
    return cfg


@pytest.fixture(scope="module")
def toy_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_generated("toy", root, num_classes=4, image_size=8, n_train=100, n_test=16, domain=0)
    return root


def test_subset_logs_use_original_ids_and_cover_every_instance(toy_root, tmp_path):
    keep = [3, 7, 8, 20, 41, 42, 43, 60, 61, 62, 77, 90, 91, 95, 98, 99, 5, 6, 9, 10, 11, 12, 13, 14, 15, 16]
    cfg = _cfg(data={"primary": "toy", "drop_last": False, "subset": {"indices": keep},
                     "holdout": {"kind": "first", "fraction": 0.1}})
    train(cfg, tmp_path / "r", data_root=toy_root, device="cpu", progress=False)
    ids = np.load(tmp_path / "r" / "instance_indices.npy")
    held = np.load(tmp_path / "r" / "holdout_indices.npy")
    # int(0.1 * 26) = 2 held out: the first two of the sorted subset ids
    assert held.tolist() == [3, 5]
    assert sorted(ids.tolist() + held.tolist()) == sorted(keep)
    losses = np.load(tmp_path / "r" / "instance_losses.npy")
    correct = np.load(tmp_path / "r" / "instance_correct.npy")
    assert losses.shape == correct.shape == (3, 24)
    assert np.isfinite(losses).all() and set(np.unique(correct)) <= {0, 1}


def test_drop_last_leaves_unseen_marks(toy_root, tmp_path):
    train(_cfg(data={"primary": "toy", "drop_last": True}, epochs=1), tmp_path / "r", data_root=toy_root,
          device="cpu", progress=False)
    losses = np.load(tmp_path / "r" / "instance_losses.npy")
    correct = np.load(tmp_path / "r" / "instance_correct.npy")
    assert np.isnan(losses).sum() == 100 - 96 == (correct == 255).sum()
    assert (np.isnan(losses) == (correct == 255)).all()


def test_random_holdout_is_seeded():
    ids = np.arange(10, 60)
    a = split_holdout(ids, {"kind": "random", "fraction": 0.02}, 0)
    assert a[1].size == 1 and (split_holdout(ids, {"kind": "random", "fraction": 0.02}, 0)[1] == a[1]).all()
    with pytest.raises(ConfigError, match="data.holdout"):
        resolve_run(_cfg(data={"primary": "toy", "holdout": {"kind": "last", "fraction": 0.1}}))


def test_resume_after_crash_gives_identical_logs(toy_root, tmp_path, monkeypatch):
    train(_cfg(), tmp_path / "ref", data_root=toy_root, device="cpu", progress=False)
    real = InstanceLog.on_epoch_end
    calls = {"n": 0}

    def crash(self, run, epoch, row):  # dies after epoch 2's logs are written, before its checkpoint
        real(self, run, epoch, row)
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(InstanceLog, "on_epoch_end", crash)
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(), tmp_path / "run", data_root=toy_root, device="cpu", progress=False)
    assert np.load(tmp_path / "run" / "instance_losses.npy").shape[0] == 2
    monkeypatch.setattr(InstanceLog, "on_epoch_end", real)
    train(_cfg(), tmp_path / "run", data_root=toy_root, device="cpu", progress=False)
    for f in ("instance_losses.npy", "instance_correct.npy", "instance_indices.npy"):
        assert np.array_equal(np.load(tmp_path / "run" / f), np.load(tmp_path / "ref" / f), equal_nan=True), f


class _Linear(nn.Module):
    """logits = [0, w.x]: with y = 1 the CE falls as w.x grows, so sign steps against w raise it."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w)

    def forward(self, x):
        s = (x.flatten(1) * self.w).sum(1)
        return torch.stack([torch.zeros_like(s), s], 1)


def test_exclude_last_returns_the_best_iterate_before_the_last():
    x = torch.full((1, 1, 2, 2), 0.5)
    y = torch.tensor([1])
    model = _Linear(torch.tensor([1.0, -1.0, 1.0, -1.0]))
    kw = dict(eps=1.0, step_size=0.1, steps=3, random_start=False)
    # the loss rises every step: keep_best True returns x_3, exclude_last x_2 (x_3 is never scored)
    last = pgd(model, x, y, keep_best=True, **kw).flatten()
    excl = pgd(model, x, y, keep_best="exclude_last", **kw).flatten()
    assert torch.allclose(last, torch.tensor([0.2, 0.8, 0.2, 0.8]))
    assert torch.allclose(excl, torch.tensor([0.3, 0.7, 0.3, 0.7]))
    # one step ("FGSM" in the hard-instance code) returns the random start itself
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    one = pgd(model, x, y, keep_best="exclude_last", eps=0.1, step_size=0.1, steps=1, generator=g1)
    assert torch.equal(one, random_init(x, eps=0.1, norm="linf", random_start=True, generator=g2))
    with pytest.raises(ConfigError, match="keep_best"):
        pgd(model, x, y, keep_best="last", **kw)


def test_ties_go_to_the_later_iterate():
    # a loss whose value is the same everywhere but whose gradient is 1: every iterate ties
    x = torch.full((1, 4), 0.5)

    def flat(xa):
        return 2.0 + (xa - xa.detach()).sum(1)

    kw = dict(eps=1.0, step_size=0.1, steps=3, random_start=False, loss_fn=flat)
    excl = pgd(nn.Identity(), x, None, keep_best="exclude_last", **kw)
    best = pgd(nn.Identity(), x, None, keep_best=True, **kw)
    assert torch.allclose(excl, torch.full((1, 4), 0.7))  # x_2: ties update (the code's >=)
    assert torch.equal(best, x)  # keep_best True keeps the first of equals (strict >)


def test_adam_optimizer_and_bad_name():
    p = [nn.Parameter(torch.zeros(2))]
    opt, impl = make_optimizer(p, {"name": "adam", "lr": 1e-4, "weight_decay": 0.0}, {}, torch.device("cpu"))
    assert isinstance(opt, torch.optim.Adam) and impl == "adam" and opt.param_groups[0]["lr"] == 1e-4
    with pytest.raises(ConfigError, match="optim.name"):
        resolve_run(_cfg(optim={"name": "rmsprop"}))
