"""Pseudo-labels of a dataset split under a trained classifier (BiaMAT's "Carmon et al." rows, T3/T7).

``pseudo_labels``: the ``model`` run's network (``{run: NAME, checkpoint: last}``) in eval mode, on
the clean, unaugmented images of ``dataset``:``split``, fp32. Per image, the primary head's
argmax is the label (the first maximal class on ties, as ``torch.argmax``) and its max softmax
the confidence, as Carmon et al.'s ``generate_pseudolabels.py`` labels unlabelled data and BiaMAT
sorts ImageNet "based on the confidence in the CIFAR-10 classes" [000:L500-501].

Arrays (``pseudo_labels.npz``): ``labels`` (int64, one per image of the split, in its order) and
``confidence`` (float32). Values: ``dataset``, ``split``, ``n``, ``num_classes`` (the head's),
``per_class`` (images per pseudo-label), ``mean_confidence``, ``file``. A composite run reads the
labels through ``data.composite.labels`` (``reproduce/train/composite_refs.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from ..errors import ConfigError
from .base import ANALYSES, REQUIRED, Analysis, AnalysisContext, positive_ints
from .margins import save_npz

PSEUDO_FILE = "pseudo_labels.npz"


@torch.no_grad()
def label_images(model: torch.nn.Module, images: Any, batch_size: int,
                 device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """(argmax labels, max softmax) of the primary head for NHWC images (uint8, or float in [0, 1]),
    read ``batch_size`` at a time so a memory-mapped 1.28M-image split never sits in memory whole."""
    from ..data.feeding.loader import to_unit_float

    model.eval()
    labels, conf = [], []
    for start in range(0, len(images), batch_size):
        chunk = torch.from_numpy(np.ascontiguousarray(images[start:start + batch_size]))
        x = to_unit_float(chunk.to(device)).permute(0, 3, 1, 2).contiguous()
        # softmax in float64: near-ties in confidence decide which images a top-k keeps
        p = torch.softmax(model(x).double(), dim=1)
        top, arg = p.max(dim=1)  # ties: the first maximal class
        labels.append(arg.cpu().numpy().astype(np.int64))
        conf.append(top.cpu().numpy().astype(np.float32))
    if not labels:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    return np.concatenate(labels), np.concatenate(conf)


@ANALYSES.register("pseudo_labels")
class PseudoLabels(Analysis):
    """A trained classifier's labels and confidences for every image of a dataset split."""

    params = {"model": REQUIRED, "dataset": REQUIRED, "split": "train", "batch_size": 500}
    references = {"model": "run"}
    gpu = True

    @classmethod
    def check(cls, params: Mapping[str, Any], where: str) -> None:
        from ..config.references import checkpoint_file
        from ..data.catalog import DATASETS

        positive_ints(params, ("batch_size",), where)
        ds = params["dataset"]
        if not isinstance(ds, str):
            raise ConfigError(f"{where}: dataset must be a dataset name, got {ds!r}")
        DATASETS.get(ds, where=f"{where}.dataset")
        if params["split"] not in DATASETS.get(ds).splits:
            raise ConfigError(f"{where}: split {params['split']!r} is not a split of {ds} "
                              f"({', '.join(DATASETS.get(ds).splits)})")
        if isinstance(params["model"], Mapping):
            checkpoint_file(params["model"])

    @classmethod
    def forward_images(cls, params: Mapping[str, Any]) -> dict[str, int]:
        from ..data.catalog import DATASETS

        ds = DATASETS.get(str(params["dataset"])) if params["dataset"] in DATASETS else None
        return {"model": int((ds.split_sizes if ds else {}).get(str(params["split"]), 0))}

    def run(self, ctx: AnalysisContext) -> dict[str, Any]:
        from ..config.references import checkpoint_file
        from ..data import load_split, read_manifest
        from ..train.setup import build_from_run_dir

        p = ctx.params
        ref = p["model"] if isinstance(p["model"], Mapping) else {"run": p["model"]}
        cfg, model, _ = build_from_run_dir(Path(ctx.inputs["model"]), ctx.data_root, ctx.device, checkpoint_file(ref))
        own, other = read_manifest(cfg["data"]["primary"], ctx.data_root), read_manifest(p["dataset"], ctx.data_root)
        if (own["image_size"], own.get("channels", 3)) != (other["image_size"], other.get("channels", 3)):
            raise ConfigError(f"analysis pseudo_labels: the model was trained on {own['image_size']}px "
                              f"{cfg['data']['primary']}, but {p['dataset']} is {other['image_size']}px")
        images, _ = load_split(p["dataset"], p["split"], ctx.data_root)
        labels, conf = label_images(model, images, int(p["batch_size"]), ctx.device)
        classes = int(model(torch.zeros(1, other.get("channels", 3), other["image_size"], other["image_size"],
                                        device=ctx.device)).shape[1])
        save_npz(ctx.out_dir / PSEUDO_FILE, labels=labels, confidence=conf)
        return {"dataset": p["dataset"], "split": p["split"], "n": int(len(labels)), "num_classes": classes,
                "checkpoint": ref.get("checkpoint", "best"), "labeller_dataset": cfg["data"]["primary"],
                "per_class": np.bincount(labels, minlength=classes).astype(int).tolist(),
                "mean_confidence": float(conf.mean()) if len(conf) else None, "file": PSEUDO_FILE}


def load_pseudo_labels(analysis_dir: str | Path) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """(values, labels, confidences) a ``pseudo_labels`` analysis wrote."""
    import json

    d = Path(analysis_dir)
    values = json.loads((d / "result.json").read_text())["values"]
    if values.get("file") != PSEUDO_FILE or not (d / PSEUDO_FILE).exists():
        raise ConfigError(f"{d}: not a pseudo_labels analysis (no {PSEUDO_FILE})")
    with np.load(d / PSEUDO_FILE) as z:
        return values, np.asarray(z["labels"], np.int64), np.asarray(z["confidence"], np.float32)
