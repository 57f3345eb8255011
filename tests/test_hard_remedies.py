"""The pieces the hard-instance remedies' artifacts need (issue 23, part 2), each against a hand computation:
the fine-tuning sampler's one pass over the extra data, the planner's composite epochs, the correlation of
adapted values with d, the group feature magnitudes, group curves of adapted values, the feature_stats key
and method warm-ups that follow a shorter schedule."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from reproduce.analyses.group_curves import GroupCurves, log_files
from reproduce.analyses.instance_correlation import matched, reduced
from reproduce.config import config_hash, resolve_run
from reproduce.data.feeding.composite import check_composite, composite_batches, steps_per_epoch
from reproduce.data.feeding.loader import DeviceDataset
from reproduce.errors import ConfigError
from reproduce.train.observers.features import group_lookup, magnitudes


def _split(n: int, first_id: int, seed: int) -> DeviceDataset:
    r = np.random.default_rng(seed)
    x = r.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)
    return DeviceDataset(x, r.integers(0, 10, n).astype(np.int64), indices=np.arange(first_id, first_id + n))


@pytest.mark.parametrize("augment", [False, True])
def test_pass_order_uses_every_extra_image_once_and_cycles_fresh_primary_permutations(augment):
    prim, extra = _split(7, 0, 1), _split(23, 0, 2)
    spec = {"dataset": "extra", "fraction": 0.5, "order": "pass"}
    batches = list(composite_batches(prim, extra, spec, 8, seed=3, epoch=2, augment=augment, pad=2))
    assert len(batches) == steps_per_epoch(spec, 7, 8, 23) == math.ceil(23 / 4) == 6
    extra_ids = torch.cat([b.idx[4:] for b in batches]) - len(prim)  # extra ids follow the primary's
    assert sorted(extra_ids.tolist()) == list(range(23))             # one pass: each once
    assert [len(b.idx) for b in batches] == [8, 8, 8, 8, 8, 7]       # the last extra part is the remainder
    prim_ids = torch.cat([b.idx[:4] for b in batches]).tolist()      # 24 draws = 3 fresh permutations of 7 ...
    assert all(sorted(prim_ids[k:k + 7]) == list(range(7)) for k in (0, 7, 14))
    again = list(composite_batches(prim, extra, spec, 8, seed=3, epoch=2, augment=augment, pad=2, start_batch=4))
    assert all(torch.equal(a.x, b.x) for a, b in zip(batches[4:], again))  # resume inside the epoch


def test_replacement_is_the_default_and_pass_refuses_epoch_images():
    prim, extra = _split(9, 0, 1), _split(30, 0, 2)
    old = {"dataset": "extra", "fraction": 0.5, "epoch_images": 24}
    a = list(composite_batches(prim, extra, old, 8, seed=1, epoch=0, augment=True, pad=2))
    b = list(composite_batches(prim, extra, {**old, "order": "replacement"}, 8, seed=1, epoch=0, augment=True, pad=2))
    assert len(a) == 3 and all(torch.equal(x.x, y.x) and torch.equal(x.idx, y.idx) for x, y in zip(a, b))
    with pytest.raises(ConfigError, match="order pass"):
        check_composite({**old, "order": "pass"}, "spec")
    with pytest.raises(ConfigError, match="order must be one of"):
        check_composite({"dataset": "x", "order": "once"}, "spec")


def _ft(composite: dict) -> dict:
    return resolve_run({"name": "ft", "epochs": 5, "batch_size": 128, "model": {"name": "resnet18"},
                        "method": {"name": "finetune"}, "data": {"primary": "cifar10", "composite": composite}})


def test_planner_counts_the_composite_epoch():
    from reproduce.pipeline.plan import train_images

    assert train_images(_ft({"dataset": "tinyimages-500k", "order": "pass"})) == math.ceil(500_000 / 64) * 128
    assert train_images(_ft({"dataset": "svhn", "split": "extra", "order": "pass"})) == math.ceil(531_131 / 64) * 128
    # the sampler's full batches: ceil(images / 128) of 128 (HAT's Table 4: 196 x 256 = 50,176 of 50,000)
    assert train_images(_ft({"dataset": "tinyimages-500k", "epoch_images": 100_000})) == math.ceil(100_000 / 128) * 128
    assert train_images(_ft({"dataset": "tinyimages-500k"})) == math.ceil(50_000 / 128) * 128  # the primary's


def test_reduce_and_match_adapted_values_by_original_index():
    table = np.array([[1.0, np.nan, 3.0, 4.0], [3.0, 2.0, np.nan, 8.0]], dtype=np.float32)
    assert reduced(table, "last", 0)[[0, 1, 3]].tolist() == [3.0, 2.0, 8.0] and np.isnan(reduced(table, "last", 0)[2])
    assert reduced(table, "mean", 0).tolist() == [2.0, 2.0, 3.0, 6.0]   # unseen epochs left out
    assert reduced(table, "mean", 1)[[0, 1, 3]].tolist() == [3.0, 2.0, 8.0]
    run_ids = np.array([10, 11, 12, 13])                # the adapting run's columns
    diff_ids, d = np.array([11, 12, 13, 14]), np.array([0.1, 0.2, 0.3, 0.4])  # d of another run's split
    ids, dd, v = matched(run_ids, reduced(table, "mean", 0), diff_ids, d, "t")
    assert ids.tolist() == [11, 12, 13] and dd.tolist() == [0.1, 0.2, 0.3] and v.tolist() == [2.0, 3.0, 6.0]
    ids, dd, v = matched(run_ids, reduced(table, "last", 0), diff_ids, d, "t")  # 12 has no value: left out
    assert ids.tolist() == [11, 13]
    with pytest.raises(ConfigError, match="fewer than 2"):
        matched(run_ids, reduced(table, "last", 0), np.array([12, 20]), np.array([0.5, 0.6]), "t")


def test_group_feature_magnitudes_by_hand():
    table, ks = group_lookup({"G0": [5, 2], "G1": [0], "sizes": [2, 1]}, torch.tensor([0, 2, 5, 7]))
    assert ks == [0, 1] and table.tolist() == [1, -1, 0, -1, -1, 0, -1, -1]
    f = torch.tensor([[1.0, -4.0], [-3.0, 0.0], [2.0, 2.0]])
    med, mean = magnitudes(f)  # |f| per dimension: median (2, 2), mean (2, 2)
    assert med == pytest.approx(math.sqrt(8)) and mean == pytest.approx(math.sqrt(8))
    med, mean = magnitudes(torch.tensor([[3.0, 0.0], [1.0, 0.0], [8.0, 6.0]]))
    assert med == pytest.approx(3.0) and mean == pytest.approx(math.hypot(4.0, 2.0))
    with pytest.raises(ConfigError, match="no groups"):
        group_lookup({"sizes": []}, torch.tensor([0]))


def test_group_curves_read_adapted_values():
    assert log_files("adapted:weight") == ("adapted_weight.npy", "adapted_indices.npy")
    assert log_files("loss") == ("instance_losses.npy", "instance_indices.npy")
    params = {**GroupCurves.params, "run": "r", "difficulty": "d", "metric": "adapted:weight"}
    GroupCurves.check(params, "t")
    assert GroupCurves.required_observers(params) == ("per_instance_adapted",)
    with pytest.raises(ConfigError, match="adapted:<key>"):
        GroupCurves.check({**params, "metric": "adapted:"}, "t")


def test_feature_stats_key_is_checked_and_hash_neutral_when_unset():
    base = {"name": "r", "epochs": 2, "model": {"name": "resnet18"}, "method": {"name": "at"},
            "data": {"primary": "cifar10"}}
    assert config_hash(resolve_run(base)) == config_hash(resolve_run({**base, "feature_stats": None}))
    on = resolve_run({**base, "feature_stats": {"groups": {"analysis": "g"}, "protocol": "pgd20"}})
    assert config_hash(on) != config_hash(resolve_run(base))
    with pytest.raises(ConfigError, match="feature_stats takes groups"):
        resolve_run({**base, "feature_stats": {"groups": {"analysis": "g"}}})


def test_method_warmups_follow_a_shorter_schedule():
    from reproduce.pipeline.scales import _rescale

    run = {"epochs": 200, "method": {"name": "sat", "warmup": 90}}
    cfg = {"epochs": 6, "method": {"name": "sat", "warmup": 90}}
    _rescale(cfg, run, 200, 6, False)
    assert cfg["method"]["warmup"] == 3  # 90 of 200 is 2.7 of 6
    run = {"epochs": 38, "method": {"name": "atta", "warmup": 5, "warmup_rw": 0}}
    cfg = {"epochs": 6, "method": dict(run["method"])}
    _rescale(cfg, run, 38, 6, False)
    assert cfg["method"]["warmup"] == 1 and cfg["method"]["warmup_rw"] == 0  # 0 stays 0
