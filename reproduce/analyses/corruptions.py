"""Common-corruption accuracy (CIFAR-10-C): RobustBench's 15 corruptions x 5 severities.

HAT's ``eval-rb.py`` calls ``robustbench.benchmark(threat_model='corruptions', n_examples=
args.num_samples)`` with ``--num-samples`` defaulting to 1000; whether the authors passed 10000 is
unstated. ``n_per`` is the number of images per corruption x severity cell: the first ``n_per`` of
each 10,000-image severity block (RobustBench's loader does not shuffle); 10000 (all) by default,
1000 as the code-default reading. The reported value is the mean of the 75 cell accuracies.
Cells are read with ``load_split('cifar10-c', '<corruption>-<severity>')``; ``data import cifar10-c
--from-robustbench DIR`` prepares them through robustbench's own ``load_cifar10c`` (``data/importers/npy.py``).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

from ..errors import ConfigError
from .base import ANALYSES, REQUIRED, Analysis, AnalysisContext, positive_ints

# RobustBench's CORRUPTIONS (the benchmark's 15; the tar's 4 held-out extras are not used)
ROBUSTBENCH_CORRUPTIONS = (
    "shot_noise", "motion_blur", "snow", "pixelate", "gaussian_noise", "defocus_blur", "brightness",
    "fog", "zoom_blur", "frost", "glass_blur", "impulse_noise", "contrast", "jpeg_compression",
    "elastic_transform",
)  # fmt: skip
SEVERITIES = (1, 2, 3, 4, 5)


@torch.no_grad()
def accuracy(model: torch.nn.Module, images: np.ndarray, labels: np.ndarray, device: torch.device,
             batch_size: int) -> float:
    """Top-1 accuracy of ``model`` (eval mode) on uint8 NHWC images."""
    model.eval()
    correct = 0
    for i in range(0, len(labels), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(images[i:i + batch_size])).to(device)
        x = x.permute(0, 3, 1, 2).float().div_(255)
        y = torch.from_numpy(np.asarray(labels[i:i + batch_size])).to(device)
        correct += int((model(x).argmax(1) == y).sum())
    return correct / max(len(labels), 1)


@ANALYSES.register("corruptions")
class Corruptions(Analysis):
    """Accuracy per corruption x severity, per corruption, and the mean of the 75 cells."""

    params = {"run": REQUIRED, "dataset": "cifar10-c", "n_per": 10000, "checkpoint": "best",
              "batch_size": 500}
    references = {"run": "run"}
    gpu = True

    @classmethod
    def check(cls, params: Mapping[str, Any], where: str) -> None:
        positive_ints(params, ("n_per", "batch_size"), where)
        if params["checkpoint"] not in ("best", "last"):
            raise ConfigError(f"{where}: checkpoint must be best or last, got {params['checkpoint']!r}")

    def run(self, ctx: AnalysisContext) -> dict[str, Any]:
        from ..data import load_split
        from ..train.setup import build_from_run_dir

        p = ctx.params
        _, model, meta = build_from_run_dir(ctx.inputs["run"], ctx.data_root, ctx.device, f"{p['checkpoint']}.pt")
        cells: dict[str, float] = {}
        n_used: set[int] = set()
        for c in ROBUSTBENCH_CORRUPTIONS:
            for s in SEVERITIES:
                images, labels = load_split(p["dataset"], f"{c}-{s}", ctx.data_root)
                n = min(int(p["n_per"]), len(labels))
                n_used.add(n)
                cells[f"{c}-{s}"] = accuracy(model, images[:n], labels[:n], ctx.device, int(p["batch_size"]))
        per_corruption = {c: float(np.mean([cells[f"{c}-{s}"] for s in SEVERITIES])) for c in ROBUSTBENCH_CORRUPTIONS}
        per_severity = {str(s): float(np.mean([cells[f"{c}-{s}"] for c in ROBUSTBENCH_CORRUPTIONS])) for s in SEVERITIES}
        return {"accuracy": float(np.mean(list(cells.values()))), "cells": cells,
                "per_corruption": per_corruption, "per_severity": per_severity,
                "n_per": sorted(n_used), "checkpoint_epoch": meta.get("epoch")}
