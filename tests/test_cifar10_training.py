"""Real CIFAR-10 on the CPU (slow): the small CNN learns, and adversarial training buys robustness."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from reproduce.data import import_dataset, load_split
from reproduce.evaluate import evaluate
from reproduce.train import train
from reproduce.train.setup import build_from_run_dir, select_device

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _accuracy(run: Path, root: Path, protocol: str, n: int | None) -> float:
    dev = select_device("cpu")
    _, model, _ = build_from_run_dir(run, root, dev)
    x, y = load_split("cifar10", "test", root)
    return evaluate(model, x, y, protocol, device=dev, n=n)["accuracy"]


def test_standard_one_epoch_then_at_two_epochs(cifar10_jpeg_tree: Path, tmp_path: Path) -> None:
    root = tmp_path / "data"
    import_dataset("cifar10", root, from_folder=cifar10_jpeg_tree)
    cfgs = {k: yaml.safe_load((ROOT / f"examples/cifar10-small-cnn-{k}.yaml").read_text()) for k in ("standard", "at")}
    for k, cfg in cfgs.items():
        train(cfg, tmp_path / k, data_root=root, device="cpu", progress=False)
    std_clean = _accuracy(tmp_path / "standard", root, "clean", None)
    std_pgd = _accuracy(tmp_path / "standard", root, "pgd20", 1000)
    at_pgd = _accuracy(tmp_path / "at", root, "pgd20", 1000)
    assert std_clean > 35.0
    assert at_pgd > std_pgd + 10.0, (std_pgd, at_pgd)
