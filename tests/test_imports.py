"""Imported checkpoints as runs, Hendrycks' WRN key mapping and the cosine_iter schedule."""

from __future__ import annotations

import hashlib
import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from reproduce.config import config_hash, resolve_run
from reproduce.errors import ConfigError
from reproduce.models import build_model
from reproduce.models.formats import hendrycks_wrn
from reproduce.train import checkpoint
from reproduce.train.imported import import_run, store
from reproduce.train.schedule import lr_at


# --- a WRN written as Hendrycks' models/wrn.py names it (BasicBlock in NetworkBlock.layer, convShortcut,
# the final bn1, fc): the reference the mapping must reproduce, output for output
class _Basic(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(cout), nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.equal = cin == cout
        self.convShortcut = None if self.equal else nn.Conv2d(cin, cout, 1, stride, 0, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = F.relu(self.bn1(x))
        out = self.conv2(F.relu(self.bn2(self.conv1(act))))
        return (x if self.equal else self.convShortcut(act)) + out


class _Group(nn.Module):
    def __init__(self, n: int, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.layer = nn.Sequential(*[_Basic(cin if i == 0 else cout, cout, stride if i == 0 else 1) for i in range(n)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


class _HendrycksWRN(nn.Module):
    def __init__(self, depth: int, classes: int, widen: int) -> None:
        super().__init__()
        n, w = (depth - 4) // 6, [16, 16 * widen, 32 * widen, 64 * widen]
        self.conv1 = nn.Conv2d(3, w[0], 3, 1, 1, bias=False)
        self.block1, self.block2, self.block3 = _Group(n, w[0], w[1], 1), _Group(n, w[1], w[2], 2), _Group(n, w[2], w[3], 2)
        self.bn1, self.fc = nn.BatchNorm2d(w[3]), nn.Linear(w[3], classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.block3(self.block2(self.block1(self.conv1(x))))))
        return self.fc(F.avg_pool2d(out, 8).flatten(1))


def _hendrycks_state(classes: int = 10, seed: int = 0) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    torch.manual_seed(seed)
    ref = _HendrycksWRN(16, classes, 10)
    for m in ref.modules():  # non-trivial BN statistics, so a swapped bn1 / bn would show
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.1, 0.1)
    ref.eval()
    return ref, {f"module.{k}": v for k, v in ref.state_dict().items()}  # saved from DataParallel


HALF = {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}


def test_hendrycks_keys_map_onto_the_harness_wrn():
    _, state = _hendrycks_state()
    out = hendrycks_wrn(state)
    assert "trunk.block1.0.shortcut.weight" in out and "trunk.block2.1.conv2.weight" in out
    assert "trunk.bn.running_var" in out and "heads.primary.bias" in out
    assert not any("layer" in k or "convShortcut" in k or k.startswith("module.") for k in out)
    model = build_model("wrn-16-10", 10)
    own = {k for k in model.state_dict() if k not in ("mean", "std")}
    assert set(out) == own


def test_the_mapped_model_computes_what_hendrycks_model_does_on_2x_minus_1():
    ref, state = _hendrycks_state()
    model = build_model("wrn-16-10", 10, mean=HALF["mean"], std=HALF["std"])
    model.load_state_dict({**hendrycks_wrn(state), "mean": model.mean, "std": model.std}, strict=True)
    model.eval()
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), ref(x * 2 - 1), atol=1e-5)


def test_old_checkpoints_without_bn_counters_still_load():
    _, state = _hendrycks_state()
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    model = build_model("wrn-16-10", 10)
    model.load_state_dict({**hendrycks_wrn(state), "mean": model.mean, "std": model.std}, strict=True)


def _cfg(sha: str | None) -> dict:
    return resolve_run({"name": "ext", "epochs": 5, "data": {"primary": "cifar10"}, "method": {"name": "at"},
                        "model": {"name": "wrn-16-10", "normalize": HALF},
                        "import": {"file": "w.pt", "sha256": sha, "format": "hendrycks-wrn",
                                   "url": "https://example.org/w.pt", "provenance": {"paper": "P"}}})


@pytest.fixture()
def weights(tmp_path):
    _, state = _hendrycks_state()
    path = tmp_path / "dl" / "w.pt"
    path.parent.mkdir()
    torch.save(state, path)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def test_an_import_writes_a_run_directory_with_its_checksum(tmp_path, weights):
    path, sha = weights
    root = tmp_path / "data"
    (root / "checkpoints").mkdir(parents=True)
    (root / "checkpoints" / "w.pt").write_bytes(path.read_bytes())
    cfg = _cfg(sha)
    done = import_run(cfg, tmp_path / "runs" / "ext-1", root)
    run = tmp_path / "runs" / "ext-1"
    assert json.loads((run / "done.json").read_text()) == done
    assert done["import"]["sha256_found"] == sha and done["external"] and done["config_hash"] == config_hash(cfg)
    weights_out = checkpoint.load(run / "best.pt")["model"]
    assert torch.equal(weights_out["trunk.bn.running_mean"], torch.load(path)["module.bn1.running_mean"])
    assert weights_out["mean"].flatten().tolist() == [0.5, 0.5, 0.5]


def test_a_differing_checksum_is_one_line_naming_file_and_both_hashes(tmp_path, weights):
    path, sha = weights
    wrong = "0" * 64
    with pytest.raises(ConfigError) as e:
        store("ext", _cfg(wrong)["import"], path, tmp_path / "data", None)
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg and sha in msg and wrong in msg
    assert not (tmp_path / "data" / "checkpoints" / "w.pt").exists()


def test_an_unpinned_file_needs_sha256_and_then_records_it(tmp_path, weights):
    path, sha = weights
    imp = _cfg(None)["import"]
    with pytest.raises(ConfigError, match="--sha256"):
        store("ext", imp, path, tmp_path / "data", None)
    dest = store("ext", imp, path, tmp_path / "data", sha.upper())
    assert (dest.parent / "w.pt.sha256").read_text().strip() == sha
    done = import_run(_cfg(None), tmp_path / "runs" / "ext-1", tmp_path / "data")  # the job reads the pin
    assert done["import"]["sha256_found"] == sha and "pinned" in done["import"]["sha256_source"]


def test_a_missing_file_names_the_url_and_the_command(tmp_path):
    with pytest.raises(ConfigError) as e:
        import_run(_cfg(None), tmp_path / "runs" / "ext-1", tmp_path / "data")
    msg = str(e.value)
    assert "https://example.org/w.pt" in msg and "reproduce models import ext --from-file w.pt --sha256" in msg


def test_a_file_of_another_class_count_is_refused(tmp_path):
    _, state = _hendrycks_state(classes=100)
    path = tmp_path / "w.pt"
    torch.save(state, path)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(ConfigError, match="100-class"):
        import_run(_cfg(sha), tmp_path / "run", tmp_path, source=path)


def test_cosine_iter_matches_hand_values_of_lambdalr_stepped_before_the_update():
    sched = {"kind": "cosine_iter", "lr_min": 0.0, "step_offset": 1, "per": "epoch", "milestones": []}
    # 2 epochs x 2 steps: T = 4; step t uses factor(t + 1) = (1 + cos(pi (t + 1) / 4)) / 2
    got = [lr_at(sched, 1.0, 2, e, i, 2) for e in range(2) for i in range(2)]
    want = [(1 + math.cos(math.pi * k / 4)) / 2 for k in (1, 2, 3, 4)]
    assert got == pytest.approx(want, abs=1e-12)
    assert got[-1] == pytest.approx(0.0) and got[1] == pytest.approx(0.5)
    at0 = [lr_at({**sched, "step_offset": 0, "lr_min": 0.1}, 1.0, 2, e, i, 2) for e in range(2) for i in range(2)]
    assert at0[0] == pytest.approx(1.0) and at0[2] == pytest.approx(0.55)


def test_cosine_iter_equals_torch_lambdalr_with_hendrycks_lambda():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1e-3)
    total = 6
    fn = lambda s: 1e-6 / 1e-3 + (1 - 1e-6 / 1e-3) * 0.5 * (1 + math.cos(s / total * math.pi))  # noqa: E731
    sch = torch.optim.lr_scheduler.LambdaLR(opt, fn)
    seen = []
    for _ in range(total):
        sch.step()  # tune.py: before optimizer.step()
        seen.append(opt.param_groups[0]["lr"])
    sched = {"kind": "cosine_iter", "lr_min": 1e-6, "step_offset": 1, "per": "epoch", "milestones": []}
    assert [lr_at(sched, 1e-3, 2, e, i, 3) for e in range(2) for i in range(3)] == pytest.approx(seen, rel=1e-12)


ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def _dag(scale: str, tmp_path):
    from reproduce.pipeline.dag import Dag

    return Dag({"scale": scale, "work_dir": str(tmp_path / "w"), "results_dir": str(tmp_path / "r"),
                "data_dir": str(tmp_path / "d")}, pipelines_dir=str(ROOT / "pipelines"))


def test_the_cli_refuses_a_differing_checksum_in_one_line(tmp_path, monkeypatch, capsys):
    from reproduce.cli import main

    monkeypatch.chdir(ROOT)
    f = tmp_path / "cifar10wrn_baseline_epoch_4.pt"
    f.write_bytes(b"not the released file")
    code = main(["models", "import", "hendrycks-c10-tuned", "--from-file", str(f), "--sha256", "ab" * 32,
                 "--scale", "paper", "--work-dir", str(tmp_path / "w"), "--data-dir", str(tmp_path / "d")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    found = hashlib.sha256(b"not the released file").hexdigest()
    assert str(f) in err[0] and "ab" * 32 in err[0] and found in err[0]
    assert not (tmp_path / "d").exists() and not (tmp_path / "w" / "paper" / "runs").exists()


def test_paper_imports_cost_nothing_and_depend_on_nothing_while_smoke_trains_stand_ins(tmp_path):
    from reproduce.pipeline.plan import gpu_hours

    paper = _dag("paper", tmp_path)
    tuned = paper.graph.runs[paper.run_id("biamat", "hendrycks-c10-tuned")]
    assert tuned.deps == [] and tuned.cfg.get("init") is None
    assert gpu_hours(tuned.cfg, graph=paper.graph) == 0.0
    ft = paper.graph.runs[paper.run_id("biamat", "cifar10-ft-in32-at")]
    assert ft.deps == [("run", paper.run_id("biamat", "hendrycks-in32-at"))]
    # Hendrycks' tune.py: 5 epochs x 50k images x (10 attack steps + 1 update) x 0.031 V100-h per pass-epoch
    assert gpu_hours(ft.cfg, graph=paper.graph) == pytest.approx(5 * 11 * 0.031)
    retrain = paper.configs[paper.run_id("biamat", "hendrycks-in32-at-retrain")]
    assert retrain["import"] is None and gpu_hours(retrain) == pytest.approx(100 * 1281167 / 50000 * 11 * 0.031)
    smoke = _dag("smoke", tmp_path)
    tuned = smoke.graph.runs[smoke.run_id("biamat", "hendrycks-c10-tuned")]
    assert tuned.cfg["import"]["stand_in"] is True
    assert tuned.deps == [("run", smoke.run_id("biamat", "hendrycks-in32-at"))]
    assert gpu_hours(tuned.cfg, graph=smoke.graph) > 0


def test_a_schedule_continued_from_the_init_runs_best_epoch(tmp_path):
    from reproduce.train.transfer import init_epoch

    (tmp_path / "src").mkdir()
    checkpoint.save(tmp_path / "src" / "best.pt", {"model": {}, "epoch": 65, "score": 0.4})
    cfg = resolve_run({"name": "ft", "epochs": 35, "data": {"primary": "cifar10"}, "method": {"name": "at"},
                       "model": {"name": "wrn-28-10"}, "optim": {"lr": 0.1},
                       "init": {"run": "src", "checkpoint": "best", "load": "trunk"},
                       "schedule": {"milestones": [60, 90], "per": "iteration", "continue_from_init": "best_epoch"}})
    off = init_epoch(cfg, tmp_path)
    assert off == 65
    # 000 App. I [1164-1166]: best at epoch 65 -> the fine-tune starts at 0.01 and drops to 0.001 after 25 epochs
    lrs = [lr_at(cfg["schedule"], 0.1, 35, e + off, 0, 10) for e in (0, 24, 25, 34)]
    assert lrs == pytest.approx([0.01, 0.01, 0.001, 0.001])
    checkpoint.save(tmp_path / "src" / "best.pt", {"model": {}, "epoch": None, "score": None})
    with pytest.raises(ConfigError, match="records no epoch"):
        init_epoch(cfg, tmp_path)


def test_the_training_entry_point_imports_instead_of_training(tmp_path, weights):
    from reproduce.train import train

    path, sha = weights
    (tmp_path / "data" / "checkpoints").mkdir(parents=True)
    (tmp_path / "data" / "checkpoints" / "w.pt").write_bytes(path.read_bytes())
    done = train(_cfg(sha), tmp_path / "runs" / "ext-1", data_root=tmp_path / "data", device="cpu")
    assert done["external"] and not (tmp_path / "runs" / "ext-1" / "metrics.jsonl").exists()
    stand_in = {**_cfg(sha), "import": {**_cfg(sha)["import"], "stand_in": True}}
    assert config_hash(stand_in) != config_hash(_cfg(sha))  # a stand-in is never taken for the file
