"""Small fixtures for the hard-instance methods' tests: a tiny dataset with sparse original ids, a linear model."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from reproduce.config import resolve_run
from reproduce.data.feeding.loader import Batch, DeviceDataset
from reproduce.methods import METHODS, TrainContext

K = 3  # classes
IDS = np.array([40, 3, 17, 8, 25, 11])  # original dataset ids of the 6 training images (a subset run's)


def dataset(seed: int = 0) -> DeviceDataset:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(len(IDS), 4, 4, 3), dtype=np.uint8)
    return DeviceDataset(images, np.arange(len(IDS)) % K, "cpu", indices=IDS)


def make(method: dict, attack: dict | None = None, data: dict | None = None):
    """The method built for a run on :func:`dataset` (6 images 3x4x4, 3 classes)."""
    cfg = resolve_run({"name": "t", "seed": 1, "epochs": 3, "data": {"primary": "pri", **(data or {})},
                       "model": {"name": "mlp"}, "method": method,
                       "attack": {"steps": 0, "random_start": False, **(attack or {})}})
    ctx = TrainContext(cfg=cfg, device=torch.device("cpu"), num_classes=K, datasets={"pri": dataset()},
                       steps_per_epoch=2)
    return METHODS.get(method["name"])(cfg, ctx)


def model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, K))


def batch(rows: list[int], seed: int = 0) -> Batch:
    """Rows of :func:`dataset`, un-augmented, with their original ids."""
    ds = dataset(seed)
    return ds.batch(torch.tensor(rows))
