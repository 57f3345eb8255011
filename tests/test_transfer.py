"""Transfer runs: a head trained on another run's frozen trunk (``init.load: trunk``, ``freeze: trunk``,
``model.head: {hidden: H}``; reproduce/train/transfer.py), from the run config to the DAG and the planner."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from reproduce.config import config_hash, resolve_run
from reproduce.data.generated.synthetic import write_generated
from reproduce.errors import ConfigError
from reproduce.models import MODELS, build_model
from reproduce.pipeline.dag import Dag
from reproduce.pipeline.nodes import Graph
from reproduce.pipeline.scales import load_scale
from reproduce.pipeline.papers import load_spec
from reproduce.train import train
from reproduce.train.stop import StopRequest
from reproduce.train.transfer import load_init

ROOT = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------- the spec a CIFAR-100 -> CIFAR-10 fine-tune uses
# (the same YAML a pipelines/<paper>/spec.yaml would hold; notes subset_at §2.5, the code's
# config/cifar10/transferred_from_cifar100_SESAT_*/template.yaml)
SPEC_YAML = """
paper: px
title: transfer fixture
presets:
  code:
    batch_size: 128
    epochs: 201
    optim: {lr: 0.1, momentum: 0.9, nesterov: false, weight_decay: 5.0e-4}
    schedule: {kind: piecewise, milestones: [100, 150], gamma: 0.1, per: epoch}
    data: {primary: cifar100, pad: 4, drop_last: true, rotate: 2, color_jitter: [0.25, 0.25, 0.25]}
    model: {name: sat_preact_resnet18, normalize: {mean: [0.4914, 0.4822, 0.4465], std: [0.2023, 0.1994, 0.2010]}}
    attack: {norm: l2, eps: 0.5, step_size: 0.1, steps: 7, random_start: false, bn_mode: eval, loss: ce}
    selection: {protocol: aa-l2-standard, split: test, n: 1000, at_epochs: [15, 50, 101, 151, 200]}
runs:
  c100-full: {presets: [code], method: {name: at}, seed: 123}
  # fixed-feature transfer to CIFAR-10: frozen trunk and BatchNorm, a new fc1 -> ReLU -> fc head,
  # no attack while it trains (iterations: 0); 41 epochs, LR 0.1 x 0.1 at epochs 20 and 30
  c10-from-c100-full:
    data: {primary: cifar10, pad: 4, drop_last: true, rotate: 2, color_jitter: [0.25, 0.25, 0.25]}
    model: {name: sat_preact_resnet18, head: {hidden: 512},
            normalize: {mean: [0.4914, 0.4822, 0.4465], std: [0.2023, 0.1994, 0.2010]}}
    init: {run: c100-full, checkpoint: best, load: trunk}
    freeze: trunk
    method: {name: standard}            # no attack while the head trains
    epochs: 41
    batch_size: 128
    optim: {lr: 0.1, momentum: 0.9, nesterov: false, weight_decay: 5.0e-4}
    schedule: {kind: piecewise, milestones: [20, 30], gamma: 0.1, per: epoch}
    selection: {protocol: aa-l2-standard, split: test, n: 1000, at_epochs: [5, 21, 31, 40]}
    seed: 123
protocol_sets:
  s: {clean: clean}
artifacts:
  t:
    kind: table
    title: t
    source: s
    protocols: s
    columns: [clean]
    rows:
      ft: {run: c10-from-c100-full}
"""


def _spec_raw() -> dict:
    return yaml.safe_load(SPEC_YAML)


def _write_spec(tmp_path: Path, raw: dict) -> Path:
    path = tmp_path / "pipelines" / raw["paper"] / "spec.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture
def in_repo(monkeypatch):
    monkeypatch.chdir(ROOT)


# ---------------------------------------------------------------- toy runs on generated data
SRC_CLASSES, TGT_CLASSES, HIDDEN = 6, 4, 16


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    r = tmp_path_factory.mktemp("data")
    # the target's classes share the source's class prototypes in part (as the smoke scale's cifar100 and
    # cifar10 do); the source trains long enough for its BatchNorm running statistics to settle, which a
    # frozen (eval-mode) trunk then uses
    write_generated("src", r, num_classes=SRC_CLASSES, image_size=16, n_train=256, n_test=32, domain=0, contrast=2)
    write_generated("tgt", r, num_classes=TGT_CLASSES, image_size=16, n_train=128, n_test=32, domain=3, contrast=2,
                    related_to=0, relatedness=0.8, related_classes=TGT_CLASSES)
    return r


BASE = {"scale": "test", "seed": 1, "model": {"name": "small_cnn"}, "optim": {"lr": 0.05}, "batch_size": 32,
        "method": {"name": "standard"}}


def _source_cfg(**over) -> dict:
    return {**copy.deepcopy(BASE), "name": "src", "data": {"primary": "src"}, "epochs": 4, **over}


def _target_cfg(**over) -> dict:
    cfg = {**copy.deepcopy(BASE), "name": "ft", "data": {"primary": "tgt"}, "epochs": 5, "optim": {"lr": 0.1},
           "model": {"name": "small_cnn", "head": {"hidden": HIDDEN}},
           "init": {"run": "src-1", "checkpoint": "best", "load": "trunk"}, "freeze": "trunk",
           "snapshots": [0]}
    cfg.update(over)
    return cfg


@pytest.fixture(scope="module")
def runs(root, tmp_path_factory):
    """runs/src-1: a trained source run, as the DAG leaves it before the fine-tune starts."""
    torch.set_num_threads(1)
    r = tmp_path_factory.mktemp("runs")
    train(_source_cfg(), r / "src-1", data_root=root, device="cpu", progress=False)
    return r


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["model"]


def test_fine_tune_keeps_the_source_trunk_bit_for_bit_and_trains_a_new_head(root, runs):
    out = runs / "ft-1"
    train(_target_cfg(), out, data_root=root, device="cpu", progress=False)
    src = _weights(runs / "src-1" / "best.pt")
    start, end = _weights(out / "checkpoints" / "epoch_0.pt"), _weights(out / "last.pt")
    trunk = [k for k in src if k.startswith("trunk.")]
    # parameters and every BatchNorm running statistic (running_mean/var, num_batches_tracked)
    assert any(k.endswith("running_mean") for k in trunk) and any(k.endswith("num_batches_tracked") for k in trunk)
    assert sorted(trunk) == sorted(k for k in end if k.startswith("trunk."))
    for k in trunk:
        assert torch.equal(end[k], src[k]), k
        assert torch.equal(_weights(out / "best.pt")[k], src[k]), k
    # the new head: target's classes behind a hidden ReLU layer, and it trained
    assert end["heads.primary.0.weight"].shape == (HIDDEN, 128)
    assert end["heads.primary.2.weight"].shape == (TGT_CLASSES, HIDDEN)
    assert not any(k.startswith("heads.primary.weight") for k in end)
    for k in ("heads.primary.0.weight", "heads.primary.2.weight", "heads.primary.2.bias"):
        assert not torch.equal(start[k], end[k]), k
    losses = [json.loads(x)["loss"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert losses[-1] < 0.85 * losses[0], losses  # 1.28 -> 0.92 here
    # the fine-tune evaluates as any run does: the model rebuilds from its directory with the new head
    from reproduce.train.setup import build_from_run_dir

    cfg, model, _ = build_from_run_dir(out, root, torch.device("cpu"))
    assert model.num_classes == TGT_CLASSES and model.head_sizes == {"primary": TGT_CLASSES}
    assert cfg["freeze"] == "trunk" and cfg["init"]["load"] == "trunk"


def test_the_source_head_is_not_loaded(root, runs):
    """load: trunk drops the source's fc even where it would fit (same class count): the head keeps its init."""
    cfg = resolve_run(_target_cfg(data={"primary": "src"}, model={"name": "small_cnn"}))
    src = _weights(runs / "src-1" / "best.pt")
    torch.manual_seed(3)
    model = build_model("small_cnn", SRC_CLASSES, image_size=16)
    fresh = copy.deepcopy(model.state_dict())
    assert fresh["heads.primary.weight"].shape == src["heads.primary.weight"].shape
    load_init(model, cfg, runs, torch.device("cpu"))
    got = model.state_dict()
    for k in got:
        want = src[k] if k.startswith("trunk.") else fresh[k]
        assert torch.equal(got[k], want), k
    assert not torch.equal(got["heads.primary.weight"], src["heads.primary.weight"])
    # load: all (HAT's fine-tune) takes the head too
    load_init(model, resolve_run({**_target_cfg(data={"primary": "src"}, model={"name": "small_cnn"}),
                                  "init": {"run": "src-1", "checkpoint": "best"}}), runs, torch.device("cpu"))
    assert torch.equal(model.state_dict()["heads.primary.weight"], src["heads.primary.weight"])


class _StopAt(StopRequest):
    def __init__(self, k: int) -> None:
        super().__init__()
        self.k, self.polls = k, 0

    def requested(self):
        self.polls += 1
        return "test stop" if self.polls >= self.k else None


def test_a_stopped_fine_tune_resumes_exactly_without_its_source(root, runs, tmp_path):
    from reproduce.errors import Preempted

    ref = runs / "ft-ref"
    train(_target_cfg(epochs=2), ref, data_root=root, device="cpu", progress=False)
    work = tmp_path / "runs"
    (work / "src-1").mkdir(parents=True)
    (work / "src-1" / "best.pt").write_bytes((runs / "src-1" / "best.pt").read_bytes())
    with pytest.raises(Preempted):
        train(_target_cfg(epochs=2), work / "ft", data_root=root, device="cpu", progress=False, stop=_StopAt(6))
    (work / "src-1" / "best.pt").unlink()  # last.pt holds every weight a resumed run needs
    train(_target_cfg(epochs=2), work / "ft", data_root=root, device="cpu", progress=False)
    a, b = _weights(ref / "last.pt"), _weights(work / "ft" / "last.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_missing_source_is_a_one_line_error_naming_run_and_path(root, tmp_path):
    out = tmp_path / "runs" / "ft-1"
    with pytest.raises(ConfigError) as e:
        train(_target_cfg(), out, data_root=root, device="cpu", progress=False)
    msg = str(e.value)
    assert "\n" not in msg and "src-1" in msg and str(tmp_path / "runs" / "src-1" / "best.pt") in msg
    assert not out.exists()  # nothing written: the check comes before any data is read


@pytest.mark.parametrize("name, size", [("small_cnn", 16), ("mlp", 8), ("sat_preact_resnet18", 32),
                                        ("resnet50", 32)])
def test_every_model_splits_into_a_trunk_to_freeze_and_a_head(name, size, tmp_path):
    """The trunk/head split is the Classifier's, so any registered model transfers alike."""
    assert name in MODELS
    torch.manual_seed(0)
    src = build_model(name, 7, image_size=size)
    src.train()
    with torch.no_grad():  # move the BatchNorm statistics away from their init
        src(torch.rand(4, 3, size, size))
    (tmp_path / "s").mkdir()
    torch.save({"model": src.state_dict()}, tmp_path / "s" / "best.pt")
    cfg = resolve_run({**_target_cfg(), "model": {"name": name, "head": {"hidden": 8}},
                       "init": {"run": "s", "load": "trunk"}})
    model = build_model(name, 3, image_size=size, head_hidden=8)
    load_init(model, cfg, tmp_path, torch.device("cpu"))
    model.freeze_trunk()
    model.train()
    assert model.num_classes == 3 and not model.trunk.training and model.heads.training
    assert all(not m.training for m in model.trunk.modules())
    assert not any(p.requires_grad for p in model.trunk.parameters())
    assert all(p.requires_grad for p in model.heads.parameters())
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1, weight_decay=5e-4)
    loss = nn.functional.cross_entropy(model(torch.rand(2, 3, size, size)), torch.tensor([0, 2]))
    loss.backward()
    opt.step()
    state = model.state_dict()
    for k, v in src.state_dict().items():
        if k.startswith("trunk."):
            assert torch.equal(state[k], v), k


def test_a_head_follows_its_trunks_init_rule():
    """WRN zeroes linear biases (init_head): both layers of a hidden-layer head get the same rule."""
    model = build_model("wrn-16-10", 5, image_size=8, head_hidden=6)
    head = model.heads["primary"]
    assert isinstance(head, nn.Sequential) and [type(m) for m in head] == [nn.Linear, nn.ReLU, nn.Linear]
    assert not head[0].bias.any() and not head[2].bias.any()


# ---------------------------------------------------------------- config keys
@pytest.mark.parametrize("over, needle", [
    ({"init": {"run": "src-1", "chekpoint": "best"}}, "chekpoint"),
    ({"init": {"run": "src-1", "load": "trunks"}}, "init.load"),
    ({"init": {"run": "src-1", "checkpoint": "bset"}}, "bset"),
    ({"init": [{"run": "a"}, {"run": "b"}]}, "seed group"),
    ({"init": "src-1"}, "init must be"),
    ({"freeze": "backbone"}, "freeze"),
    ({"freeze": "trunk", "init": None}, "needs init"),
    ({"model": {"name": "small_cnn", "head": {"hiden": 512}}}, "model.head"),
    ({"model": {"name": "small_cnn", "head": {"hidden": 0}}}, "model.head.hidden"),
])
def test_bad_transfer_keys_are_one_line_errors(over, needle):
    with pytest.raises(ConfigError) as e:
        resolve_run({**_target_cfg(), **over}, where="cfg.yaml")
    assert needle in str(e.value) and "\n" not in str(e.value) and "cfg.yaml" in str(e.value)


def test_new_keys_leave_old_run_ids_alone():
    plain = {**copy.deepcopy(BASE), "name": "x", "data": {"primary": "tgt"}, "epochs": 2}
    h = config_hash(resolve_run(plain))
    assert h == config_hash(resolve_run({**plain, "freeze": None, "model": {"name": "small_cnn", "head": None}}))
    init = {**plain, "init": {"run": "s-1", "checkpoint": "best"}}
    assert config_hash(resolve_run(init)) == config_hash(resolve_run({**init, "init": {**init["init"], "load": "all"}}))
    assert config_hash(resolve_run(init)) != config_hash(resolve_run({**init, "init": {**init["init"], "load": "trunk"}}))


# ---------------------------------------------------------------- spec, node graph, DAG, planner
def test_the_guide_shows_this_files_fine_tune():
    text = (ROOT / "docs/GUIDE.md").read_text()  # the README's implementer detail lives in the guide
    block = text.split("fine-tune on a source run `c100-full`")[1].split("```yaml\n")[1].split("```")[0]
    block = "\n".join(line[2:] for line in block.splitlines())
    assert yaml.safe_load(block) == {"c10-from-c100-full": _spec_raw()["runs"]["c10-from-c100-full"]}


def test_the_source_run_id_enters_the_fine_tunes_id(tmp_path, in_repo):
    g = Graph({"px": load_spec(_write_spec(tmp_path, _spec_raw()))}, load_scale("paper"))
    src_id, ft_id = g.run_id("px", "c100-full"), g.run_id("px", "c10-from-c100-full")
    ft = g.runs[ft_id]
    assert ft.cfg["init"] == {"run": src_id, "checkpoint": "best", "load": "trunk"} and ("run", src_id) in ft.deps
    assert ft.cfg["freeze"] == "trunk" and ft.cfg["model"]["head"] == {"hidden": 512}
    raw = _spec_raw()
    raw["presets"]["code"]["optim"]["weight_decay"] = 1.0e-4  # the source changes: the fine-tune is a new run
    g2 = Graph({"px": load_spec(_write_spec(tmp_path / "b", raw))}, load_scale("paper"))
    assert g2.run_id("px", "c100-full") != src_id and g2.run_id("px", "c10-from-c100-full") != ft_id
    raw = _spec_raw()
    raw["runs"]["c10-from-c100-full"]["init"]["checkpoint"] = "last"
    g3 = Graph({"px": load_spec(_write_spec(tmp_path / "c", raw))}, load_scale("paper"))
    assert g3.run_id("px", "c100-full") == src_id and g3.run_id("px", "c10-from-c100-full") != ft_id


def test_at_smoke_scale_source_and_target_are_both_small_cnn(tmp_path, in_repo):
    g = Graph({"px": load_spec(_write_spec(tmp_path, _spec_raw()))}, load_scale("smoke"))
    src = g.runs[g.run_id("px", "c100-full")].cfg
    ft = g.runs[g.run_id("px", "c10-from-c100-full")].cfg
    assert src["model"]["name"] == ft["model"]["name"] == "small_cnn"
    assert ft["model"]["head"] == {"hidden": 512} and ft["freeze"] == "trunk"
    assert ft["schedule"]["milestones"] == [3, 4]  # epochs 20 and 30 of 41, at 6 epochs
    assert ft["init"]["run"] == g.run_id("px", "c100-full")


def test_the_dag_trains_the_source_first(tmp_path, in_repo):
    _write_spec(tmp_path, _spec_raw())
    for scale in ("paper", "smoke"):
        dag = Dag({"scale": scale, "data_dir": "data", "work_dir": "work", "results_dir": "results",
                   "device": "cpu", "download": False}, pipelines_dir=str(tmp_path / "pipelines"))
        src, ft = dag.run_id("px", "c100-full"), dag.run_id("px", "c10-from-c100-full")
        assert dag.done(src) in dag.train_inputs(ft)
        assert set(dag.train_jobs([dag.artifact("px", "t")])) == {src, ft}


@pytest.mark.parametrize("edit, needle", [
    (lambda r: r["runs"]["c10-from-c100-full"]["init"].update({"laod": "trunk"}), "laod"),
    (lambda r: r["runs"]["c10-from-c100-full"].update({"freeze": "trunks"}), "trunks"),
    (lambda r: r["runs"]["c10-from-c100-full"]["model"].update({"head": {"hiden": 512}}), "hiden"),
    (lambda r: r["runs"]["c10-from-c100-full"]["init"].update({"run": "c100-ful"}), "c100-ful"),
    (lambda r: r["presets"]["code"].update({"freeze": "trunks"}), "trunks"),  # presets are checked alike
    # the trunk must be the source's architecture and see inputs normalized as the source did
    (lambda r: r["runs"]["c10-from-c100-full"]["model"].update({"name": "resnet18"}), "sat_preact_resnet18"),
    (lambda r: r["runs"]["c10-from-c100-full"]["model"].update({"normalize": "none"}), "normalize"),
])
def test_bad_transfer_specs_name_the_file_and_key(tmp_path, in_repo, edit, needle):
    raw = _spec_raw()
    edit(raw)
    path = _write_spec(tmp_path, raw)
    with pytest.raises(ConfigError) as e:
        load_spec(path)
    assert str(path) in str(e.value) and needle in str(e.value)


def test_the_planner_costs_a_frozen_trunk_fine_tune_as_a_forward_pass(tmp_path, in_repo):
    from reproduce.costs.memory import model_memory
    from reproduce.pipeline.plan import gpu_hours, passes_per_step

    g = Graph({"px": load_spec(_write_spec(tmp_path, _spec_raw()))}, load_scale("paper"))
    ft = g.runs[g.run_id("px", "c10-from-c100-full")].cfg
    assert passes_per_step(ft) == pytest.approx(0.34)
    unfrozen = {**ft, "freeze": None}
    assert passes_per_step(unfrozen) == 1
    assert gpu_hours(ft) == pytest.approx(0.34 * gpu_hours(unfrozen))
    # 41 epochs x 50k images x 0.0197 h per pass-epoch x 0.34 (notes §5.2: about 0.3 h)
    assert gpu_hours(ft) == pytest.approx(41 * 0.0197 * 0.34)
    frozen_mem = model_memory(ft, classes=10, shape=(3, 32, 32))
    full_mem = model_memory(unfrozen, classes=10, shape=(3, 32, 32))
    head = 513 * 512 + 513 * 10
    assert frozen_mem["parameters"] == full_mem["parameters"] == 21_328_704 + head  # trunk + fc1 + fc
    assert frozen_mem["model_bytes"] < full_mem["model_bytes"] / 2
