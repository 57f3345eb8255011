"""Every done.json and evaluation JSON says where it ran; auto on CPU at paper scale needs consent."""

from __future__ import annotations

import json
import subprocess

import pytest
import torch

from reproduce.cli import main
from reproduce.data.generated.synthetic import write_generated
from reproduce.errors import ConfigError
from reproduce.provenance import PROVENANCE_KEYS, git_commit
from reproduce.train import train
from reproduce.train.setup import select_device


def _cfg(scale: str = "test") -> dict:
    return {"name": "prov", "scale": scale, "seed": 5, "data": {"primary": "toy"},
            "model": {"name": "small_cnn"}, "method": {"name": "standard"}, "epochs": 1, "batch_size": 32}


@pytest.fixture(scope="module")
def toy_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_generated("toy", root, num_classes=4, image_size=8, n_train=64, n_test=16, domain=0)
    return root


def _check(prov: dict, seed: int, scale: str) -> None:
    missing = [k for k in PROVENANCE_KEYS if k not in prov]
    assert not missing, missing
    assert prov["device"] == "cpu" and prov["gpu"] is None
    assert prov["torch"] == torch.__version__ and prov["cuda"] == torch.version.cuda
    assert set(prov["autoattack"]) == {"backend", "version"}
    assert prov["seed"] == seed and prov["scale"] == scale
    assert prov["git_commit"]


def test_done_json_and_eval_json_carry_provenance(toy_root, tmp_path):
    run = tmp_path / "run"
    train(_cfg(), run, data_root=toy_root, device="cpu", progress=False)
    _check(json.loads((run / "done.json").read_text())["provenance"], seed=5, scale="test")
    out = tmp_path / "clean.json"
    assert main(["evaluate", "--run", str(run), "--protocol", "clean", "--out", str(out), "--seed", "7",
                 "--data-root", str(toy_root), "--device", "cpu"]) == 0
    _check(json.loads(out.read_text())["provenance"], seed=7, scale="test")


def test_auto_landing_on_cpu_at_paper_scale_needs_allow_cpu(monkeypatch, toy_root, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match=r"device 'auto'.*scale 'paper'.*allow_cpu"):
        select_device("auto", scale="paper", allow_cpu=False)
    assert select_device("auto", scale="paper", allow_cpu=True).type == "cpu"
    assert select_device("auto", scale="smoke", allow_cpu=False).type == "cpu"  # not comparable
    assert select_device("cpu", scale="paper", allow_cpu=False).type == "cpu"  # asked for explicitly
    with pytest.raises(ConfigError, match="allow_cpu"):
        train(_cfg("paper"), tmp_path / "p", data_root=toy_root, device="auto", progress=False)
    assert not (tmp_path / "p").exists()  # refused before anything was written
    train(_cfg("paper"), tmp_path / "p", data_root=toy_root, device="auto", progress=False, allow_cpu=True)
    # the CLI flag the Snakemake rules pass when config allow_cpu is true
    assert main(["evaluate", "--run", str(tmp_path / "p"), "--protocol", "clean", "--out", str(tmp_path / "e.json"),
                 "--data-root", str(toy_root)]) == 2
    assert main(["evaluate", "--run", str(tmp_path / "p"), "--protocol", "clean", "--out", str(tmp_path / "e.json"),
                 "--data-root", str(toy_root), "--allow-cpu"]) == 0


def test_untracked_files_do_not_make_the_commit_dirty(tmp_path):
    def git(*a: str) -> None:
        subprocess.run(["git", *a], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "a.txt").write_text("a")
    git("add", "a.txt")
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "a")
    (tmp_path / "scratch.txt").write_text("untracked")
    clean = git_commit(str(tmp_path))
    assert clean != "unknown" and not clean.endswith("+dirty")
    (tmp_path / "a.txt").write_text("changed")
    git_commit.cache_clear()
    assert git_commit(str(tmp_path)).endswith("+dirty")
