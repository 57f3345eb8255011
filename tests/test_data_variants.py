"""Declared data variants (BiaMAT 000 Table 5 and Figure 3): named parts of the training split with a
fixed noise (``data.parts``) and a seeded aux subsample (``data.aux_subsample``), checked against hand
counts on tiny inputs; then what a run, the BiaMAT head and the planner make of them."""

from __future__ import annotations

import numpy as np
import pytest

from reproduce.config import config_hash, resolve_run
from reproduce.data.feeding.parts import (add_uniform_noise, check_parts, choose_parts, noisy_images,
                                          part_fractions, split_parts)
from reproduce.data.feeding.subsample import check_aux_subsample, kept_classes, subsample
from reproduce.errors import ConfigError

PAPER = {"sizes": {"a": 25000, "b": 12500, "c": 12500}, "seed": 0, "use": ["a", "c"],
         "noise": {"c": {"uniform": 0.5, "seed": 0}}}


def _labels(per_class: int, classes: int = 10) -> np.ndarray:
    # interleaved as in a real split, not sorted by class
    return np.tile(np.arange(classes), per_class)


def test_paper_sizes_split_cifar10_exactly_and_class_balanced():
    y = _labels(5000)
    parts = split_parts(y, part_fractions(PAPER, 50000), seed=0)
    assert {k: len(v) for k, v in parts.items()} == {"a": 25000, "b": 12500, "c": 12500}
    for name, want in (("a", 2500), ("b", 1250), ("c", 1250)):
        assert np.bincount(y[parts[name]], minlength=10).tolist() == [want] * 10
    allp = np.concatenate(list(parts.values()))
    assert len(np.unique(allp)) == 50000  # disjoint and covering


def test_a_smaller_split_keeps_the_same_fractions():
    y = _labels(64)  # the smoke stand-in: 640 images
    parts = split_parts(y, part_fractions(PAPER, 50000), seed=0)
    assert [len(parts[k]) for k in "abc"] == [320, 160, 160]
    assert np.bincount(y[parts["b"]]).tolist() == [16] * 10
    # a pool of 500 per class (the cpu scale): 2,500 / 1,250 / 1,250
    assert [len(v) for v in split_parts(_labels(500), part_fractions(PAPER, 50000), 0).values()] == [2500, 1250, 1250]


def test_uneven_classes_stay_balanced_within_one_image():
    y = np.array([0] * 7 + [1] * 5 + [2] * 4)
    parts = split_parts(y, {"a": 0.5, "b": 0.5}, seed=3)
    assert len(parts["a"]) == 8 and len(parts["b"]) == 8
    for c, n in ((0, 7), (1, 5), (2, 4)):
        assert abs((y[parts["a"]] == c).sum() - n / 2) <= 1


def test_the_split_is_a_function_of_its_seed():
    y = _labels(50)
    f = part_fractions(PAPER, 50000)
    one, two, other = split_parts(y, f, 0), split_parts(y, f, 0), split_parts(y, f, 1)
    assert all(np.array_equal(one[k], two[k]) for k in one)
    assert not np.array_equal(one["a"], other["a"])


def test_parts_summing_to_less_than_the_split_leave_the_rest_unused():
    y = _labels(100)
    parts = split_parts(y, part_fractions({"sizes": {"a": 10000, "b": 5000}, "use": ["a"]}, 50000), 0)
    assert len(parts["a"]) == 200 and len(parts["b"]) == 100


def test_noise_stays_in_its_bounds_is_seeded_by_image_and_quantised():
    img = np.full((40, 4, 4, 3), 128, dtype=np.uint8)
    ids = np.arange(100, 140)
    out = add_uniform_noise(img, ids, 0.5, seed=0)
    assert out.dtype == np.uint8
    d = out.astype(int) - 128
    # |U| <= 0.5 -> at most 0.5 * 255 grey levels, rounded; clipped at 0 and 255
    assert d.min() >= -128 and d.max() <= 127 and d.std() > 50
    # mean of U(-0.5, 0.5) x 255 over 1920 values: 0 within a few levels
    assert abs(d.mean()) < 6
    again = add_uniform_noise(img[::-1], ids[::-1], 0.5, seed=0)[::-1]
    assert np.array_equal(out, again)  # per image, not per position in the batch
    assert not np.array_equal(out, add_uniform_noise(img, ids, 0.5, seed=1))
    small = add_uniform_noise(img, ids, 0.1, seed=0).astype(int) - 128
    assert np.abs(small).max() <= round(0.1 * 255)
    white = add_uniform_noise(np.full((5, 2, 2, 3), 255, np.uint8), np.arange(5), 0.5, 0)
    assert white.max() == 255 and white.min() >= 127  # clipped at 1, never wraps around


def test_only_the_noisy_part_changes_and_alike_in_every_combination():
    y = _labels(20)
    x = np.random.default_rng(0).integers(0, 256, (len(y), 4, 4, 3), dtype=np.uint8)
    ac = {**PAPER, "use": ["a", "c"]}
    abc = {**PAPER, "use": ["a", "b", "c"]}
    ids_ac, parts = choose_parts(ac, y, 50000)
    ids_abc, _ = choose_parts(abc, y, 50000)
    got_ac = noisy_images(ac, x[ids_ac], ids_ac, parts)
    got_abc = noisy_images(abc, x[ids_abc], ids_abc, parts)
    in_c = np.isin(ids_ac, parts["c"])
    assert np.array_equal(got_ac[~in_c], x[ids_ac][~in_c]) and not np.array_equal(got_ac[in_c], x[ids_ac][in_c])
    c_ids = parts["c"]
    assert np.array_equal(got_ac[np.isin(ids_ac, c_ids)], got_abc[np.isin(ids_abc, c_ids)])
    assert np.array_equal(noisy_images({**PAPER, "use": ["a", "b"]}, x[:4], np.arange(4), parts), x[:4])


def test_subsample_by_classes_keeps_whole_classes_and_renumbers():
    y = np.repeat(np.arange(20), 5)
    spec = {"by": "classes", "ratio": 0.25, "seed": 0}
    pos, lab = subsample(y, 20, spec)
    kept = np.unique(y[pos])
    assert len(kept) == 5 == kept_classes(20, spec) and len(pos) == 25
    assert lab.tolist() == np.searchsorted(kept, y[pos]).tolist() and set(lab.tolist()) == set(range(5))
    assert np.array_equal(subsample(y, 20, spec)[0], pos)
    assert not np.array_equal(subsample(y, 20, {**spec, "seed": 1})[0], pos)
    assert kept_classes(1000, {"by": "classes", "ratio": 0.025}) == 25


def test_subsample_by_samples_keeps_every_class_with_its_share():
    y = np.repeat(np.arange(4), [100, 40, 10, 3])
    pos, lab = subsample(y, 4, {"by": "samples", "ratio": 0.1, "seed": 0})
    assert np.bincount(lab).tolist() == [10, 4, 1, 1]  # round(r n_c), at least one
    assert np.array_equal(lab, y[pos]) and len(np.unique(pos)) == len(pos)
    assert kept_classes(1000, {"by": "samples", "ratio": 0.01}) == 1000


@pytest.mark.parametrize("bad, words", [
    ({"sizes": {"a": 5}, "use": ["b"]}, "use"),
    ({"sizes": {"a": 0}, "use": ["a"]}, "sizes"),
    ({"sizes": {"a": 5}, "use": ["a"], "noise": {"a": {"uniform": 0}}}, "noise.a"),
    ({"sizes": {"a": 5}, "use": ["a"], "noise": {"b": {"uniform": 0.5}}}, "noise names part 'b'"),
    ({"sizes": {"a": 5}}, "data.parts must be"),
])
def test_bad_parts_are_one_line_errors(bad, words):
    with pytest.raises(ConfigError, match="^run x: .*" + words.replace(".", r"\.").replace("(", r"\(")):
        check_parts(bad, "run x")


def test_bad_subsamples_are_one_line_errors():
    with pytest.raises(ConfigError, match="not in data.aux"):
        check_aux_subsample({"svhn": {"by": "classes", "ratio": 0.1}}, ["imagenet32"], "run x")
    with pytest.raises(ConfigError, match=r"aux_subsample\.imagenet32"):
        check_aux_subsample({"imagenet32": {"by": "classes", "ratio": 1.5}}, ["imagenet32"], "run x")


def _cfg(**data):
    return {"name": "t", "data": {"primary": "cifar10", **data}, "model": {"name": "small_cnn"},
            "method": {"name": "standard"}, "epochs": 1}


def test_the_options_enter_the_run_hash_only_when_set():
    plain = resolve_run(_cfg())
    assert config_hash(plain) == config_hash(resolve_run(_cfg(parts=None, aux_subsample=None)))
    assert config_hash(resolve_run(_cfg(parts=PAPER))) != config_hash(plain)
    other = {**PAPER, "noise": {"c": {"uniform": 0.25, "seed": 0}}}
    assert config_hash(resolve_run(_cfg(parts=PAPER))) != config_hash(resolve_run(_cfg(parts=other)))


def test_the_planner_counts_the_used_parts():
    from reproduce.costs.memory import primary_images
    from reproduce.pipeline.plan import train_images

    for use, n in ((["a"], 25000), (["a", "b"], 37500), (["a", "b", "c"], 50000)):
        cfg = resolve_run(_cfg(parts={**PAPER, "use": use}))
        assert train_images(cfg) == n and primary_images(cfg, 50000, 10) == n
    assert train_images(resolve_run(_cfg(pool=5000, parts=PAPER))) == 3750


def test_a_run_trains_on_its_parts_with_the_noise_and_records_them(tmp_path):
    """load_run_data on a generated dataset: the union's size, only part C noised, done.json's record."""
    import torch

    from reproduce.data import load_split
    from reproduce.data.generated.synthetic import write_generated
    from reproduce.train.run_data import load_run_data, training_parts

    write_generated("cifar10", tmp_path, 10, 8, 640, 20)
    cfg = resolve_run(_cfg(parts={**PAPER, "use": ["a", "c"]}))
    data = load_run_data(cfg, tmp_path, torch.device("cpu"))
    ds = data["train"]["cifar10"]
    assert len(ds) == 480  # 0.75 of 640
    rec = data["provenance"]["cifar10"]["parts"]
    assert rec["sizes"] == {"a": 320, "b": 160, "c": 160} and rec["per_class"]["c"] == [16] * 10
    x, y = load_split("cifar10", "train", tmp_path)
    parts = training_parts(cfg, y)
    ids = ds.indices.numpy()
    assert set(ids.tolist()) == set(parts["a"].tolist()) | set(parts["c"].tolist())
    got = ds.images.permute(0, 2, 3, 1).numpy()
    in_c = np.isin(ids, parts["c"])
    assert np.array_equal(got[~in_c], x[ids[~in_c]])
    assert np.array_equal(got[in_c], add_uniform_noise(x[ids[in_c]], ids[in_c], 0.5, 0))


def test_a_subsampled_aux_set_sizes_the_biamat_head(tmp_path):
    import torch

    from reproduce.data.generated.synthetic import write_generated
    from reproduce.methods import METHODS, TrainContext
    from reproduce.train.run_data import load_run_data

    write_generated("cifar10", tmp_path, 10, 8, 100, 20)
    write_generated("imagenet32", tmp_path, 20, 8, 400, 20, domain=4)
    raw = _cfg(aux=["imagenet32"], aux_subsample={"imagenet32": {"by": "classes", "ratio": 0.25, "seed": 0}})
    raw["method"] = {"name": "biamat", "base": "at", "labels": "ytilde", "warmup_epochs": 0, "aux_batch_size": 8}
    raw["batch_size"] = 8
    cfg = resolve_run(raw)
    data = load_run_data(cfg, tmp_path, torch.device("cpu"))
    aux = data["train"]["imagenet32"]
    assert len(aux) == 100 and sorted(set(aux.labels.tolist())) == list(range(5))
    assert data["provenance"]["imagenet32"]["subsample"]["classes"] == 5
    ctx = TrainContext(cfg=cfg, device=torch.device("cpu"), num_classes=10, datasets=data["train"],
                       steps_per_epoch=1, extra={"data_root": str(tmp_path)})
    assert METHODS.get("biamat")(cfg, ctx).heads() == {"primary": 10, "imagenet32": 5}


def test_a_subsample_by_classes_draws_among_the_classes_that_hold_images():
    """A shape-true stand-in of ImageNet32: 4 images of 1,000 classes; 1% of the classes is 10, of which
    only the 4 present can hold images: all 4 are kept, renumbered 0..3 (the head keeps its 10)."""
    y = np.array([999, 0, 666, 333])
    pos, lab = subsample(y, 1000, {"by": "classes", "ratio": 0.01, "seed": 0})
    assert pos.tolist() == [0, 1, 2, 3] and lab.tolist() == [3, 0, 2, 1]
    assert kept_classes(1000, {"by": "classes", "ratio": 0.01}) == 10


def test_complement_turns_accuracy_into_error_with_the_same_spread():
    from reproduce.artifacts.base import check_source
    from reproduce.jobs.values import _scaled, aggregate

    src = {"eval": "clean", "complement": 100}
    acc = [90.42, 90.68, 89.9]
    err = aggregate([_scaled(v, src) for v in acc])
    plain = aggregate(acc)
    assert err.value == pytest.approx(100 - plain.value) and err.sd == pytest.approx(plain.sd)
    assert err.value == pytest.approx((9.58 + 9.32 + 10.1) / 3)
    assert _scaled(0.9, {"eval": "clean", "scale": 100, "complement": 100}) == pytest.approx(10.0)
    assert _scaled([90.0, None], src) == [10.0, None]
    with pytest.raises(ConfigError, match="complement"):
        check_source({"eval": "clean", "complement": "100%"}, "t.columns.err")
