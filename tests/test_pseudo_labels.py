"""BiaMAT's pseudo-labelling rows as DAG nodes (issue 24): the labeller's labels, the top-k selection, the
composite sampler reading both from analyses, and the planner's count of a 50/50 epoch, each against a
hand computation on tiny inputs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from reproduce import io
from reproduce.analyses.pseudo_labels import label_images
from reproduce.analyses.topk_per_class import scaled_k, top_k_per_class
from reproduce.config import resolve_run
from reproduce.data.feeding.composite import check_composite, composite_batches, steps_per_epoch
from reproduce.data.feeding.loader import DeviceDataset
from reproduce.errors import ConfigError
from reproduce.train.composite_refs import composite_extra
from reproduce.train.refs import Upstream


def test_top_k_keeps_the_most_confident_per_class_ties_to_the_lower_index_and_short_classes_whole():
    labels = np.array([0, 1, 0, 0, 1, 2, 0])
    conf = np.array([0.9, 0.8, 0.9, 0.5, 0.8, 0.7, 0.95], dtype=np.float32)
    idx, achieved = top_k_per_class(labels, conf, 2, 4)
    # class 0: 6 (0.95), then 0 and 2 tie at 0.9 -> 0; class 1: both; class 2: its one image; class 3: none
    assert idx.tolist() == [0, 1, 4, 5, 6] and achieved == [2, 2, 1, 0]
    idx, achieved = top_k_per_class(labels, conf, 1, 3)
    assert idx.tolist() == [1, 5, 6] and achieved == [1, 1, 1]  # class 1's tie: position 1, not 4
    idx, achieved = top_k_per_class(labels, conf, 10, 3)
    assert idx.tolist() == list(range(7)) and achieved == [4, 2, 1]


def test_k_shrinks_with_the_scale_data_as_a_fraction_of_the_real_split():
    assert scaled_k(50000, 640, "imagenet32", "train") == round(50000 * 640 / 1_281_167) == 25
    assert scaled_k(10, 640, "imagenet32", "train") == 1  # at least one per class
    assert scaled_k(5000, 1_281_167, "imagenet32", "train") == 5000  # the real split: as given


class _ChannelMeans(torch.nn.Module):
    """Logits = 4 x the three channel means: a model whose softmax is easy to write down."""

    def forward(self, x):
        return 4 * x.mean(dim=(2, 3))


def test_labels_are_the_argmax_and_confidence_the_max_softmax_of_clean_inputs():
    imgs = np.zeros((5, 2, 2, 3), dtype=np.uint8)
    imgs[0, ..., 0] = 255            # channel 0 bright -> class 0
    imgs[1, ..., 2] = 255            # class 2
    imgs[2, ..., 1] = 102            # class 1, mean 0.4
    imgs[3] = 51                     # all equal: the tie goes to class 0
    imgs[4, ..., 1] = imgs[4, ..., 2] = 255  # tie between 1 and 2 -> 1
    labels, conf = label_images(_ChannelMeans(), imgs, 2, torch.device("cpu"))  # 3 batches of <= 2
    assert labels.tolist() == [0, 2, 1, 0, 1]
    e = math.exp
    want = [e(4) / (e(4) + 2), e(4) / (e(4) + 2), e(1.6) / (e(1.6) + 2), 1 / 3, e(4) / (2 * e(4) + 1)]
    assert np.allclose(conf, want, atol=1e-6)
    assert conf.dtype == np.float32 and labels.dtype == np.int64


def _split(n: int, seed: int) -> DeviceDataset:
    r = np.random.default_rng(seed)
    return DeviceDataset(r.integers(0, 256, (n, 4, 4, 3), dtype=np.uint8), r.integers(0, 10, n).astype(np.int64))


def test_primary_pass_is_one_pass_over_the_primary_part_of_each_batch():
    spec = {"dataset": "x", "fraction": 0.5, "epoch_images": "primary_pass"}
    assert steps_per_epoch(spec, 10, 8, 99) == 10 // 4 == 2
    assert steps_per_epoch(spec, 10, 8, 99, drop_last=False) == 3
    assert steps_per_epoch(spec, 50000, 256) == 390  # 128 primary a batch, as the TRADES+BiaMAT rows
    prim, extra = _split(10, 1), _split(30, 2)
    batches = list(composite_batches(prim, extra, spec, 8, seed=0, epoch=1, augment=False, pad=0, drop_last=False))
    assert len(batches) == 3
    prim_ids = torch.cat([b.idx[:4] for b in batches]).tolist()[:10]
    assert sorted(prim_ids) == list(range(10))  # each primary image once before the wrap fills the last batch
    with pytest.raises(ConfigError, match="epoch_images must be a positive image count or 'primary_pass'"):
        check_composite({**spec, "epoch_images": "one_pass"}, "spec")
    with pytest.raises(ConfigError, match=r"data.composite.labels must be \{analysis: NAME\}"):
        check_composite({**spec, "labels": "pl"}, "spec")
    with pytest.raises(ConfigError, match="order pass"):
        check_composite({**spec, "order": "pass"}, "spec")


def _analysis(tmp_path, aid: str, values: dict, params: dict | None = None, **arrays) -> None:
    d = tmp_path / aid
    d.mkdir()
    if arrays:
        np.savez(d / "pseudo_labels.npz", **arrays)
    io.write_json(d / "result.json", {"id": aid, "values": values, "params": params or {}})


@pytest.fixture()
def upstream(tmp_path):
    pl = {"dataset": "imagenet32", "split": "train", "num_classes": 10, "file": "pseudo_labels.npz"}
    _analysis(tmp_path, "pl", pl, labels=np.array([3, 1, 4, 1, 5, 9]), confidence=np.ones(6, np.float32))
    _analysis(tmp_path, "pl100", {**pl, "num_classes": 100}, labels=np.zeros(6, np.int64),
              confidence=np.ones(6, np.float32))
    _analysis(tmp_path, "pl-short", pl, labels=np.zeros(5, np.int64), confidence=np.ones(5, np.float32))
    _analysis(tmp_path, "top", {"indices": [4, 0, 2]}, {"labels": {"analysis": "pl"}})
    _analysis(tmp_path, "top-other", {"indices": [1]}, {"labels": {"analysis": "pl100"}})
    _analysis(tmp_path, "top-far", {"indices": [6]}, {"labels": {"analysis": "pl"}})
    names = ["pl", "pl100", "pl-short", "top", "top-other", "top-far"]
    return Upstream({}, {a: str(tmp_path / a) for a in names}, "plan.json")


def test_the_extra_split_takes_the_analysis_labels_and_keeps_the_selected_positions(upstream):
    images = np.arange(6 * 2).reshape(6, 2).astype(np.uint8)
    own = np.full(6, 7)
    comp = {"dataset": "imagenet32", "labels": {"analysis": "pl"}}
    x, y, ids = composite_extra(comp, images, own, 10, upstream)
    assert y.tolist() == [3, 1, 4, 1, 5, 9] and ids is None and x is images
    x, y, ids = composite_extra({**comp, "subset": {"analysis": "top", "key": "indices"}}, images, own, 10, upstream)
    assert ids.tolist() == [0, 2, 4] and y.tolist() == [3, 4, 5] and np.array_equal(x, images[[0, 2, 4]])


@pytest.mark.parametrize("comp,words", [
    ({"dataset": "imagenet32", "labels": {"analysis": "pl100"}}, ("data.composite.labels", "pl100", "100 classes", "has 10")),
    ({"dataset": "imagenet32", "labels": {"analysis": "pl-short"}}, ("pl-short", "5 labels", "6 images")),
    ({"dataset": "places365-32", "labels": {"analysis": "pl"}}, ("labelled imagenet32:train", "places365-32:train")),
    ({"dataset": "imagenet32", "labels": {"analysis": "pl"}, "subset": {"analysis": "top-other"}},
     ("data.composite.subset", "top-other", "pseudo-labels pl100")),
    ({"dataset": "imagenet32", "subset": {"analysis": "top-far"}}, ("top-far", "position 6", "6 images")),
    ({"dataset": "imagenet32", "subset": {"analysis": "top", "key": "picks"}}, ("no value 'picks'",)),
])
def test_a_mismatched_analysis_is_one_line_naming_key_and_analysis(upstream, comp, words):
    with pytest.raises(ConfigError) as e:
        composite_extra(comp, np.zeros((6, 2), np.uint8), np.zeros(6, np.int64), 10, upstream)
    msg = str(e.value)
    assert "\n" not in msg and all(w in msg for w in words), msg


def _rst(**data) -> dict:
    return resolve_run({"name": "rst", "epochs": 110, "batch_size": 256, "model": {"name": "wrn-34-10"},
                        "method": {"name": "trades", "beta": 6.0},
                        "data": {"primary": "cifar10", **data}})


def test_the_planner_counts_both_halves_of_a_composite_epoch():
    from reproduce.pipeline.plan import gpu_hours, train_images

    rst = _rst(composite={"dataset": "imagenet32", "fraction": 0.5, "epoch_images": "primary_pass"})
    assert train_images(rst) == 390 * 256 == 99840  # a 50/50 batch of 256 over one pass of the 50k primary
    # 110 epochs x ~2 pass-epochs x 12 passes (TRADES-10 + 2) x 0.039 V100-h: BiaMAT's Table 11 103 h
    assert gpu_hours(rst) == pytest.approx(110 * 99840 / 50000 * 12 * 0.039)
    assert round(gpu_hours(rst)) == 103
    hat = _rst(composite={"dataset": "tinyimages-500k", "fraction": 0.5, "epoch_images": None})
    assert train_images(hat) == math.ceil(50000 / 256) * 256  # Carmon's 196 full batches of 256
    assert train_images(_rst()) == 50000


def test_rst_runs_hash_their_pseudo_labels_and_selection_and_wait_for_them():
    from reproduce.pipeline.dag import Dag

    dag = Dag({"scale": "paper", "work_dir": "work", "results_dir": "results", "data_dir": "data"})
    g = dag.graph
    node = g.runs[g.run_id("biamat", "cifar10-rst-imagenet500k")]
    comp = node.cfg["data"]["composite"]
    pl, top = comp["labels"]["analysis"], comp["subset"]["analysis"]
    assert pl == g.analysis_id("biamat", "pl-c10-imagenet32") and top == g.analysis_id("biamat", "top-c10-in32-50000")
    assert ("analysis", pl) in node.deps and ("analysis", top) in node.deps
    assert ("analysis", pl) in g.analyses[top].deps
    labeller = g.run_id("biamat", "cifar10-std-wrn28")
    assert ("run", labeller) in g.analyses[pl].deps
    assert dag.analysis_result(top) in dag.train_inputs(node.id)
    # the whole-ImageNet row differs only by the selection: another run
    assert g.run_id("biamat", "cifar10-rst-imagenet") != node.id
    assert g.analyses[top].params["k"] == 50000 and g.analyses[top].params["scale_n"] is False
