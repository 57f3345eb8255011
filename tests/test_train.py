"""The training loop: resume after SIGKILL is exact, LR schedules, NaN stops, bad configs fail cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from reproduce.data.generated.synthetic import write_generated
from reproduce.errors import ConfigError, TrainingDivergedError
from reproduce.train import train
from reproduce.train.schedule import lr_at, onecycle_lr

ROOT = Path(__file__).resolve().parents[1]


def _cfg(**over):
    cfg = {
        "name": "t-at", "scale": "test", "seed": 3,
        "data": {"primary": "toy", "augment": True},
        "model": {"name": "small_cnn"},
        "method": {"name": "at"},
        "attack": {"eps": "8/255", "step_size": "2/255", "steps": 2, "bn_mode": "train"},
        "optim": {"lr": 0.05, "weight_decay": 5e-4},
        "schedule": {"kind": "piecewise", "milestones": [2], "gamma": 0.1},
        "epochs": 3, "batch_size": 32,
        "selection": {"protocol": "pgd20", "n": 64},
    }
    for k, v in over.items():
        cfg[k] = v
    return cfg


@pytest.fixture(scope="module")
def toy_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_generated("toy", root, num_classes=4, image_size=16, n_train=256, n_test=64, domain=0)
    return root


def _metrics(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for r in rows:
        r.pop("seconds")
    return rows


def test_training_writes_outputs_and_selects_best(toy_root, tmp_path):
    summary = train(_cfg(), tmp_path / "run", data_root=toy_root, device="cpu", progress=False)
    run = tmp_path / "run"
    for f in ("last.pt", "best.pt", "metrics.jsonl", "config.yaml", "done.json"):
        assert (run / f).exists(), f
    rows = _metrics(run)
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    scores = [r["selection_pgd20"] for r in rows]
    assert summary["best"]["score"] == max(scores)
    assert rows[2]["lr"] == pytest.approx(0.005)  # milestone at epoch index 2
    # a finished run is not trained again
    assert train(_cfg(), run, data_root=toy_root, device="cpu", progress=False) == summary


def test_sigkill_mid_epoch_then_restart_gives_identical_metrics(toy_root, tmp_path):
    cfg = _cfg(epochs=3, batch_size=16, name="t-kill")
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    cmd = [sys.executable, "-m", "reproduce", "train", "--config", str(cfg_path), "--data-root", str(toy_root),
           "--device", "cpu", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ref = subprocess.run(cmd + ["--out", str(tmp_path / "ref")], env=env, cwd=ROOT, capture_output=True, text=True)
    assert ref.returncode == 0, ref.stderr
    run = tmp_path / "killed"
    proc = subprocess.Popen(cmd + ["--out", str(run)], env=env, cwd=ROOT)
    deadline = time.time() + 120
    while not (run / "metrics.jsonl").exists() and time.time() < deadline:
        time.sleep(0.05)
    assert (run / "metrics.jsonl").exists(), "first epoch never finished"
    epoch_seconds = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])["seconds"]
    time.sleep(epoch_seconds / 2)  # half way through the second epoch
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run / "done.json").exists()
    assert len(_metrics(run)) == 1, "the kill should land during the second epoch"
    again = subprocess.run(cmd + ["--out", str(run)], env=env, cwd=ROOT, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert _metrics(run) == _metrics(tmp_path / "ref")
    assert not list(run.glob(".*.tmp")), "temporary files left behind"


def test_nan_loss_stops_with_epoch_and_batch(toy_root, tmp_path):
    from reproduce.methods import METHODS, StepOutput
    from reproduce.methods.standard import Standard

    if "test-nan" not in METHODS:
        @METHODS.register("test-nan")
        class NanAtBatch3(Standard):
            def step(self, model, batch, epoch, it):
                out = super().step(model, batch, epoch, it)
                return StepOutput(out.loss * float("nan"), None, {}) if (epoch, it) == (1, 2) else out

    cfg = _cfg(method={"name": "test-nan"}, epochs=3)
    with pytest.raises(TrainingDivergedError, match=r"epoch 2, batch 3"):
        train(cfg, tmp_path / "nan", data_root=toy_root, device="cpu", progress=False)
    assert not (tmp_path / "nan" / "done.json").exists()


@pytest.mark.parametrize("over, needle", [
    ({"epoch": 3}, "epoch"),
    ({"method": {"name": "madry"}}, "madry"),
    ({"model": {"name": "wrn-99-1"}}, "wrn-99-1"),
    ({"method": {"name": "trades", "gamma": 1}}, "gamma"),
])
def test_bad_config_fails_before_writing(toy_root, tmp_path, over, needle):
    run = tmp_path / "bad"
    with pytest.raises(ConfigError, match=needle):
        train(_cfg(**over), run, data_root=toy_root, device="cpu", progress=False)
    assert not (run / "last.pt").exists() and not (run / "done.json").exists()


def test_cli_reports_errors_without_traceback(tmp_path, toy_root):
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(_cfg(data={"primary": "nonexistent"})))
    r = subprocess.run([sys.executable, "-m", "reproduce", "train", "--config", str(cfg_path), "--out",
                        str(tmp_path / "x"), "--data-root", str(toy_root)], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode != 0
    assert "nonexistent" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "x" / "done.json").exists()


def test_schedules():
    sched = {"kind": "piecewise", "milestones": [0.6, 0.9], "gamma": 0.1, "per": "epoch", "warmup_epochs": 0}
    assert lr_at(sched, 0.1, 100, 59, 0, 10) == pytest.approx(0.1)
    assert lr_at(sched, 0.1, 100, 60, 0, 10) == pytest.approx(0.01)
    assert lr_at(sched, 0.1, 100, 90, 0, 10) == pytest.approx(0.001)
    import torch

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.21)
    ref = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.21, total_steps=50, pct_start=0.25)
    for step in range(50):
        assert onecycle_lr(step, 50, 0.21, 0.25) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-6), step
        opt.step()
        ref.step()


def test_onecycle_lr_and_momentum_match_torch_as_hat_configures_it():
    """HAT's core/utils/train.py: OneCycleLR(max_lr, pct_start=0.25, steps_per_epoch=floor(N/B)+1, epochs)
    with torch's defaults (cos anneal, div_factor 25, final_div_factor 1e4, momentum 0.95 -> 0.85 -> 0.95)."""
    import torch

    from reproduce.train.schedule import momentum_at

    sched = {"kind": "onecycle", "pct_start": 0.25, "cycle_momentum": True, "base_momentum": 0.85,
             "max_momentum": 0.95, "per": "epoch"}
    epochs, spe = 3, 7  # N = 50, B = 8: floor(50/8) + 1 = 7 = ceil(50/8), the partial batch counted
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.21, momentum=0.9, nesterov=True)
    ref = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.21, pct_start=0.25, steps_per_epoch=spe, epochs=epochs)
    assert (ref.anneal_func.__name__ if hasattr(ref, "anneal_func") else ref._anneal_func_type) in ("_annealing_cos", "cos")
    for e in range(epochs):
        for it in range(spe):
            g = opt.param_groups[0]
            assert lr_at(sched, 0.21, epochs, e, it, spe) == pytest.approx(g["lr"], rel=1e-9), (e, it)
            assert momentum_at(sched, epochs, e, it, spe) == pytest.approx(g["momentum"], rel=1e-9), (e, it)
            opt.step()
            ref.step()
    # hand-computed ends: start 0.21/25, momentum 0.95 at step 0 and 0.85 at the peak (step 0.25*21-1)
    assert lr_at(sched, 0.21, epochs, 0, 0, spe) == pytest.approx(0.0084)
    assert momentum_at(sched, epochs, 0, 0, spe) == pytest.approx(0.95)
    assert lr_at(sched, 0.21, epochs, 2, 6, spe) == pytest.approx(0.0084 / 1e4)
    assert momentum_at({**sched, "cycle_momentum": False}, epochs, 0, 0, spe) is None


def test_cosine_epoch_schedule():
    sched = {"kind": "cosine_epoch", "per": "epoch", "warmup_epochs": 0}
    assert [lr_at(sched, 0.1, 4, e, 3, 10) for e in range(4)] == pytest.approx(
        [0.1, 0.1 * 0.5 * (1 + 2 ** -0.5), 0.05, 0.1 * 0.5 * (1 - 2 ** -0.5)])


def test_partial_last_batch_is_a_step(toy_root, tmp_path):
    """256 images at batch 48: 5 steps with drop_last, 6 without (the momentum cycles over 6)."""
    import torch

    from reproduce.config import resolve_run
    from reproduce.train.run_data import load_run_data

    for drop, want in ((True, 5), (False, 6)):
        cfg = resolve_run(_cfg(batch_size=48, data={"primary": "toy", "drop_last": drop}))
        assert load_run_data(cfg, toy_root, "cpu")["steps_per_epoch"] == want
    cfg = _cfg(batch_size=48, epochs=1, data={"primary": "toy", "drop_last": False}, method={"name": "standard"},
               schedule={"kind": "onecycle", "cycle_momentum": True}, selection={"protocol": None})
    train(cfg, tmp_path / "r", data_root=toy_root, device="cpu", progress=False)
    last = torch.load(tmp_path / "r" / "last.pt", weights_only=True)
    # the last step (index 5 of 6) ran at the final momentum 0.95 and final LR 0.05 / 25 / 1e4
    assert last["optimizer"]["param_groups"][0]["momentum"] == pytest.approx(0.95)
    assert last["history"][0]["lr"] == pytest.approx(0.05 / 25 / 1e4)
    with pytest.raises(ConfigError, match="drop_last"):
        resolve_run(_cfg(data={"primary": "toy", "drop_last": "no"}))


@pytest.mark.parametrize("ties,want", [("first", 1), ("latest", 3)])
def test_selection_ties(toy_root, tmp_path, ties, want):
    """LR 1e-12 on a BN-free MLP (an LR of 0 is refused): every epoch scores the same, so the tie rule
    alone picks the epoch."""
    cfg = _cfg(epochs=3, model={"name": "mlp"}, method={"name": "standard"}, optim={"lr": 1e-12, "weight_decay": 0},
               schedule={"kind": "constant"}, selection={"protocol": "clean", "n": 32, "ties": ties})
    summary = train(cfg, tmp_path / "r", data_root=toy_root, device="cpu", progress=False)
    assert len({r["selection_clean"] for r in _metrics(tmp_path / "r")}) == 1
    assert summary["best"]["epoch"] == want
