"""A killed ATTA / IAT / SAT / fine-tuning run resumes with the per-instance state, logs and weights of
an uninterrupted one."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from reproduce.errors import Preempted
from reproduce.train import train

from . import test_preempt
from .test_preempt import SignalAtPoll, _same_weights
from .test_preempt import _cfg as preempt_cfg

root = test_preempt.root  # 192 toy images, batch 32: 6 steps an epoch

ATTA_ATTACK = {"eps": "8/255", "step_size": "4/255", "steps": 1, "bn_mode": "train-update"}
PGD = {"eps": "8/255", "step_size": "2/255", "steps": 2, "random_start": True, "keep_best": "exclude_last",
       "bn_mode": "train-update"}
RUNS = {
    "atta": dict(method={"name": "atta", "reweight": "nat_prob", "beta": 0.1, "warmup": 1, "warmup_rw": 1},
                 attack=ATTA_ATTACK, data={"primary": "toy", "augment": False}),
    "iat": dict(method={"name": "iat", "warmup": 1}, attack=PGD),
    "sat": dict(method={"name": "sat", "warmup": 1, "gamma": "1/6"}, attack=PGD),
    "finetune": dict(method={"name": "finetune"}, attack=PGD),
}


def _cfg(name: str) -> dict:
    return preempt_cfg(name=f"t-{name}", epochs=3, log_per_instance=True, **RUNS[name])


def _metrics(run) -> list[dict]:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


@pytest.mark.parametrize("k", [3, 9, 12])  # inside epoch 1, inside epoch 2 (adapting), at the end of epoch 2
@pytest.mark.parametrize("name", sorted(RUNS))
def test_a_killed_run_resumes_exactly(root, tmp_path, name, k):
    torch.set_num_threads(1)
    ref, run = tmp_path / "ref", tmp_path / "run"
    train(_cfg(name), ref, data_root=root, device="cpu", progress=False)
    with pytest.raises(Preempted):
        train(_cfg(name), run, data_root=root, device="cpu", progress=False, stop=SignalAtPoll(k))
    train(_cfg(name), run, data_root=root, device="cpu", progress=False)
    _same_weights(ref / "last.pt", run / "last.pt")
    want = torch.load(ref / "last.pt", weights_only=True)["method"]
    got = torch.load(run / "last.pt", weights_only=True)["method"]
    assert want.keys() == got.keys()
    for key in want:  # the cache, targets, budgets
        assert torch.equal(want[key], got[key]), key
    assert _metrics(run) == _metrics(ref)
    files = sorted(p.name for p in ref.glob("adapted_*.npy")) + ["instance_losses.npy", "instance_correct.npy"]
    assert (name == "finetune") == (not any(f.startswith("adapted_") for f in files))
    for f in files:
        a, b = np.load(ref / f), np.load(run / f)
        assert (a.shape[0] == 3 or f == "adapted_indices.npy") and np.array_equal(a, b, equal_nan=True), f
