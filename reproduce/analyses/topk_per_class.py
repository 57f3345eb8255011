"""The k most confident images of each pseudo-label class (BiaMAT's ImageNet-(N x 100)k, T3/T7).

``topk_per_class``: from a ``pseudo_labels`` analysis (``labels``), for every class c of the
labeller's head, the ``k`` images labelled c of highest confidence, ties to the lower index; a
class with fewer than k candidates gives all of them (``per_class_achieved`` records how many
each gave, ``short_classes`` which fell short). "We sort the ImageNet data based on the confidence
in the CIFAR-10 classes and select the top 50k (or top 5k) samples for each class" [000:L500-502].

Values: ``indices`` (sorted positions in the labelled split; ``data.composite.subset`` reads
them), ``n``, ``k`` (as applied), ``k_requested``, ``per_class_achieved``, ``short_classes``,
``min_confidence`` (per class, the lowest kept), ``dataset``, ``split``. CPU only.

``scale_n`` (turned on by the engine where the scale's data are smaller than the catalog's):
``k`` counts images of the real split, so it becomes the same fraction of the split here
(at least one per class): ImageNet's "top 50k of 1.28M per class" stays "the top 3.9%".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import ConfigError
from .base import ANALYSES, REQUIRED, Analysis, AnalysisContext, positive_ints
from .pseudo_labels import load_pseudo_labels


def top_k_per_class(labels: np.ndarray, confidence: np.ndarray, k: int,
                    num_classes: int) -> tuple[np.ndarray, list[int]]:
    """(sorted positions kept, how many each class gave): per class the k highest confidences,
    ties to the lower position; all of a class's images where it has fewer than k."""
    kept, achieved = [], []
    for c in range(num_classes):
        members = np.flatnonzero(labels == c)
        # lexsort: last key first; -confidence descending, then position ascending
        order = members[np.lexsort((members, -confidence[members].astype(np.float64)))][:k]
        kept.append(order)
        achieved.append(int(len(order)))
    idx = np.sort(np.concatenate(kept)) if kept else np.zeros(0, np.int64)
    return idx.astype(np.int64), achieved


def scaled_k(k: int, here: int, dataset: str, split: str) -> int:
    """``k`` of the catalog's split as the same fraction of the ``here`` images this scale has."""
    from ..data.catalog import DATASETS

    full = DATASETS.get(dataset).split_sizes.get(split) if dataset in DATASETS else None
    if not full:
        raise ConfigError(f"analysis topk_per_class: scale_n needs the catalog's size of {dataset}:{split}")
    return max(1, round(k * here / int(full))) if here < int(full) else k


@ANALYSES.register("topk_per_class")
class TopKPerClass(Analysis):
    """Per pseudo-label class, the k most confident images of a ``pseudo_labels`` analysis."""

    params = {"labels": REQUIRED, "k": REQUIRED, "scale_n": False}
    references = {"labels": "analysis"}
    data_sized = "scale_n"

    @classmethod
    def check(cls, params: Mapping[str, Any], where: str) -> None:
        positive_ints(params, ("k",), where)
        if not isinstance(params["scale_n"], bool):
            raise ConfigError(f"{where}: scale_n must be true or false, got {params['scale_n']!r}")

    def run(self, ctx: AnalysisContext) -> dict[str, Any]:
        p = ctx.params
        values, labels, conf = load_pseudo_labels(Path(ctx.inputs["labels"]))
        k = int(p["k"])
        if p["scale_n"]:
            k = scaled_k(k, len(labels), values["dataset"], values["split"])
        classes = int(values["num_classes"])
        idx, achieved = top_k_per_class(labels, conf, k, classes)
        lows = [float(conf[idx][labels[idx] == c].min()) if n else None for c, n in enumerate(achieved)]
        return {"indices": idx.tolist(), "n": int(len(idx)), "k": k, "k_requested": int(p["k"]),
                "per_class_achieved": achieved, "short_classes": [c for c, n in enumerate(achieved) if n < k],
                "min_confidence": lows, "dataset": values["dataset"], "split": values["split"],
                "num_classes": classes}
