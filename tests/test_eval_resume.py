"""A killed evaluation resumes batch by batch and ends with the numbers of an uninterrupted one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from reproduce.cli import main
from reproduce.data.generated.synthetic import write_generated
from reproduce.evaluate.protocols import evaluate
from reproduce.evaluate.state import EvalState, state_path_for
from reproduce.train import train

VOLATILE = ("seconds", "wall_seconds", "resumed_at_example", "provenance", "perf", "git_commit")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_generated("toy", root, num_classes=10, image_size=8, n_train=200, n_test=48, domain=0)
    run = tmp_path_factory.mktemp("runs") / "run"
    cfg = {"name": "resume", "scale": "test", "seed": 3, "data": {"primary": "toy"},
           "model": {"name": "small_cnn"}, "method": {"name": "standard"}, "epochs": 2, "batch_size": 25}
    train(cfg, run, data_root=root, device="cpu", progress=False)
    return root, run


def _stable(path: Path) -> dict:
    return {k: v for k, v in json.loads(path.read_text()).items() if k not in VOLATILE}


class DiesAfter(nn.Module):
    """Raises at the ``k``-th forward pass: a job killed in the middle of a batch."""

    def __init__(self, model: nn.Module, k: int) -> None:
        super().__init__()
        self.model, self.k, self.calls = model, k, 0

    def forward(self, x):
        self.calls += 1
        if self.calls == self.k:
            raise KeyboardInterrupt("killed")
        return self.model(x)


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 16), nn.ReLU(), nn.Linear(16, 10))


@pytest.mark.parametrize("protocol", ["pgd20", "cw100", "aa-custom-fast"])
def test_interrupted_evaluation_resumes_to_identical_masks(tmp_path, protocol):
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(40, 3, 8, 8, generator=g), torch.randint(0, 10, (40,), generator=g)
    counted = DiesAfter(_net(), 0)
    ref = evaluate(counted, x, y, protocol, batch_size=8, seed=4)
    key = {"protocol": protocol, "what": "unit test"}
    st = EvalState(tmp_path / "s", key)
    with pytest.raises(KeyboardInterrupt):
        # halfway through the forward passes of the whole evaluation: inside some batch
        evaluate(DiesAfter(_net(), counted.calls // 2 + 1), x, y, protocol, batch_size=8, seed=4, state=st)
    saved = torch.load(st.path, weights_only=True)
    assert 1 <= len(saved["clean"]) < 5, "the kill must land after a saved batch and before the end"
    done = evaluate(_net(), x, y, protocol, batch_size=8, seed=4, state=EvalState(st.path, key))
    assert done["resumed_at_example"] == 8 * len(saved["clean"])
    assert done["correct_mask"] == ref["correct_mask"]
    assert done["clean_accuracy"] == ref["clean_accuracy"]
    # another key is another evaluation: the saved batches are not reused
    other = evaluate(_net(), x, y, protocol, batch_size=8, seed=4, state=EvalState(st.path, {**key, "seed": 9}))
    assert other["resumed_at_example"] == 0


def test_unreadable_state_starts_afresh(tmp_path, capsys):
    path = tmp_path / "s"
    path.write_bytes(b"not a torch file")
    x, y = torch.rand(8, 3, 8, 8), torch.randint(0, 10, (8,))
    res = evaluate(_net(), x, y, "clean", batch_size=4, state=EvalState(path, {"k": 1}))
    assert res["resumed_at_example"] == 0 and res["n"] == 8
    assert "unreadable evaluation state" in capsys.readouterr().err


def test_killed_autoattack_job_resumes_to_the_identical_result(trained, tmp_path):
    """SIGKILL a real ``reproduce evaluate`` (AutoAttack standard) after some batches; rerun it."""
    root, run = trained
    common = ["--run", str(run), "--protocol", "aa-standard", "--batch-size", "4", "--n", "12",
              "--data-root", str(root), "--device", "cpu", "--threads", "1"]
    ref = tmp_path / "ref.json"
    assert main(["evaluate", *common, "--out", str(ref)]) == 0
    assert not state_path_for(ref).exists(), "a finished job leaves no state behind"

    out = tmp_path / "killed.json"
    state = state_path_for(out)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-m", "reproduce", "evaluate", *common, "--out", str(out)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    batches = 0
    deadline = time.time() + 300
    while proc.poll() is None and time.time() < deadline:
        if state.exists():
            try:
                batches = len(torch.load(state, weights_only=True)["clean"])
            except Exception:  # caught between write and rename: try again
                batches = 0
            if batches >= 1:
                proc.send_signal(signal.SIGKILL)
                break
        time.sleep(0.01)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the job finished before it could be killed"
    assert not out.exists() and state.exists()

    assert main(["evaluate", *common, "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["resumed_at_example"] >= 4
    assert _stable(out) == _stable(ref)
    assert not state.exists()
