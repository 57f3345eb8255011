"""A run told to stop (SIGURG/SIGUSR1/SIGTERM or its walltime) checkpoints mid-epoch and resumes exactly."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import torch

from reproduce.cli import main
from reproduce.data.generated.synthetic import write_generated
from reproduce.errors import EXIT_PREEMPTED, Preempted
from reproduce.train import train
from reproduce.train.stop import StopRequest

import yaml


def _cfg(**over):
    cfg = {"name": "t-pre", "scale": "test", "seed": 5, "data": {"primary": "toy", "augment": True},
           "model": {"name": "small_cnn"}, "method": {"name": "at"},
           # a random start draws from the torch RNG every step: resume must restore its state
           "attack": {"eps": "8/255", "step_size": "2/255", "steps": 1, "random_start": True},
           "optim": {"lr": 0.05}, "schedule": {"kind": "piecewise", "milestones": [1], "gamma": 0.1},
           "epochs": 2, "batch_size": 32, "selection": {"protocol": "clean", "n": 32}}
    cfg.update(over)
    return cfg


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    r = tmp_path_factory.mktemp("data")
    write_generated("toy", r, num_classes=4, image_size=8, n_train=192, n_test=32, domain=0)
    return r


class SignalAtPoll(StopRequest):
    """Sends ``sig`` to this process at the ``k``-th poll (one poll per step), through the real handler."""

    def __init__(self, k: int, sig: int = signal.SIGUSR1) -> None:
        super().__init__()
        self.k, self.sig, self.polls = k, sig, 0

    def requested(self):
        self.polls += 1
        if self.polls == self.k:
            os.kill(os.getpid(), self.sig)
        return super().requested()


def _metrics(run: Path) -> list[dict]:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def _same_weights(a: Path, b: Path) -> None:
    wa = torch.load(a, weights_only=True)["model"]
    wb = torch.load(b, weights_only=True)["model"]
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


@pytest.mark.parametrize("sig,k", [(signal.SIGURG, 5), (signal.SIGUSR1, 9), (signal.SIGTERM, 3)])
def test_signal_mid_epoch_checkpoints_and_resumes_exactly(root, tmp_path, sig, k):
    torch.set_num_threads(1)
    ref = tmp_path / "ref"
    train(_cfg(), ref, data_root=root, device="cpu", progress=False)
    run = tmp_path / "run"
    with pytest.raises(Preempted, match=r"step \d+/6"):
        train(_cfg(), run, data_root=root, device="cpu", progress=False, stop=SignalAtPoll(k, sig))
    ck = torch.load(run / "last.pt", weights_only=True)
    assert ck["partial"]["step"] == (k - 1) % 6 + 1 and ck["partial"]["epoch"] == (k - 1) // 6
    assert not (run / "done.json").exists()
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL or callable(signal.getsignal(signal.SIGUSR1))
    train(_cfg(), run, data_root=root, device="cpu", progress=False)
    assert _metrics(run) == _metrics(ref)
    _same_weights(run / "last.pt", ref / "last.pt")
    _same_weights(run / "best.pt", ref / "best.pt")
    assert "partial" not in torch.load(run / "last.pt", weights_only=True)


def test_cli_walltime_deadline_exits_retryable_then_resumes(root, tmp_path, monkeypatch):
    torch.set_num_threads(1)
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(_cfg()))
    base = ["train", "--config", str(cfg_path), "--data-root", str(root), "--device", "cpu", "--no-progress"]
    assert main(base + ["--out", str(tmp_path / "ref")]) == 0
    monkeypatch.setenv("SLURM_JOB_ID", "123")
    monkeypatch.setenv("REPRODUCE_SLURM_REQUEUE", "0")  # never requeue a real job 123 (tests/test_requeue.py)
    # a walltime already spent: the run stops after its first step
    rc = main(base + ["--out", str(tmp_path / "run"), "--walltime-min", "0", "--stop-margin-min", "0"])
    assert rc == EXIT_PREEMPTED
    assert torch.load(tmp_path / "run" / "last.pt", weights_only=True)["partial"]["step"] == 1
    monkeypatch.delenv("SLURM_JOB_ID")
    # outside a SLURM job the walltime flag is ignored: a local rerun never stops early
    assert main(base + ["--out", str(tmp_path / "run"), "--walltime-min", "0", "--stop-margin-min", "0"]) == 0
    assert _metrics(tmp_path / "run") == _metrics(tmp_path / "ref")
    _same_weights(tmp_path / "run" / "best.pt", tmp_path / "ref" / "best.pt")
