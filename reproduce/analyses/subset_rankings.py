"""Subset AT's subsets: entropy rankings from a standard run, random rankings, evaluation index lists.

- ``entropy_ranking``: the code's vanilla runs dump the logits of every *training* forward (train-mode
  BN, augmented images) with the image ids (OutputDumper, model/metrics.py:422-446). Per example: the
  entropy of each epoch's softmax, averaged over the epochs it was drawn in (drop_last skips some);
  per class: the mean over its examples. Here the per-instance observer of the run (``log_per_instance:
  true`` with method ``standard``) stores one entropy and 0-1 error per example and epoch.
  Binning (model/adversarial_model.py:612-623): width = N // bins; A_k = the first k bins; the
  ``N mod bins`` leftovers are never in A. Keys ``top_k`` (example ids) and ``classes_top_k``.
- ``random_ranking``: a seeded permutation of classes or examples, binned the same way (not in the
  code; the text's random baseline). The seed is the ranking's, not the training seed.
- ``eval_indices``: ``torch.manual_seed(90622); randperm(N)`` (model/evaluations.py:1207-1217):
  selection = perm[:1000]; final = perm[1000:9000] (the code's 8,000) or perm[1000:] (the text's 90%).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import io
from ..errors import ConfigError
from .base import ANALYSES, REQUIRED, Analysis, AnalysisContext

ORDERS = ("decreasing", "increasing")


def bin_keys(ranking: np.ndarray, bins: int, prefix: str = "top") -> dict[str, list[int]]:
    """``{prefix}_k``: the first k bins of ``ranking`` (bin width len // bins), k = 1..bins-1."""
    width = len(ranking) // bins
    return {f"{prefix}_{k}": sorted(int(i) for i in ranking[: k * width]) for k in range(1, bins)}


def top_fraction(key: str | None, bins: int, classes: int | None = None, class_bins: int | None = None) -> float | None:
    """Share selected by ``top_k`` (k of ``bins`` bins) or ``classes_top_k`` (k of ``class_bins``
    groups of classes; one class a group when ``class_bins`` is None) keys; None for other keys."""
    import re

    m = re.fullmatch(r"(classes_)?top_(\d+)", str(key or ""))
    if not m:
        return None
    k = int(m.group(2))
    if not m.group(1):
        return k / bins
    if not classes:
        return None
    per = int(class_bins or classes) if classes >= 10 else classes
    return k * (classes // per) / classes


def rank(scores: np.ndarray, order: str) -> np.ndarray:
    """Indices by decreasing score; increasing is exactly its reverse (as the published files)."""
    dec = np.argsort(-scores, kind="stable")
    return dec if order == "decreasing" else dec[::-1].copy()


def epoch_means(per_epoch: np.ndarray, last: int | None) -> np.ndarray:
    """Mean over the epochs (rows) an example was drawn in; NaN marks an epoch it was not."""
    rows = per_epoch[-last:] if last else per_epoch
    with np.errstate(invalid="ignore"):
        return np.nanmean(rows.astype(np.float64), axis=0)


@ANALYSES.register("entropy_ranking")
class EntropyRanking(Analysis):
    params = {"run": REQUIRED, "order": "decreasing", "last_epochs": None, "bins": 10, "class_bins": None}
    references = {"run": "run"}
    epoch_params = {"last_epochs": "run"}
    observers = ("per_instance",)

    @classmethod
    def key_fraction(cls, params, key, num_classes):
        return top_fraction(key, int(params["bins"]), num_classes, params["class_bins"])

    @classmethod
    def check(cls, params, where):
        if params["order"] not in ORDERS:
            raise ConfigError(f"{where}: order must be one of {ORDERS}, got {params['order']!r}")

    def run(self, ctx: AnalysisContext) -> dict[str, Any]:
        from ..data import load_labels

        run_dir, p = Path(ctx.inputs["run"]), ctx.params
        path = run_dir / "instance_entropy.npy"
        if not path.exists():
            raise ConfigError(f"{path}: missing; the ranking run needs log_per_instance: true and method standard")
        ent = epoch_means(np.load(path), p["last_epochs"])
        err = epoch_means(np.load(run_dir / "instance_error.npy"), p["last_epochs"])
        cfg = io.read_yaml(run_dir / "config.yaml")
        # labels only: ImageNet-200's training split is JPEG files without an image array
        labels = load_labels(cfg["data"]["primary"], cfg["data"]["train_split"], ctx.data_root)
        labels = np.asarray(labels)[: len(ent)]
        classes = np.unique(labels)
        h_c = np.array([np.nanmean(ent[labels == c]) for c in classes])
        e_c = np.array([np.nanmean(err[labels == c]) for c in classes])
        ranking = rank(np.nan_to_num(ent, nan=-np.inf), p["order"])
        class_order = classes[rank(h_c, p["order"])]
        np.save(ctx.out_dir / "ranking.npy", ranking)
        per = int(p["class_bins"] or len(classes)) if len(classes) >= 10 else len(classes)
        class_keys = {f"classes_top_{k}": [int(c) for c in class_order[: k * (len(classes) // per)]]
                      for k in range(1, per)}
        return {"class_order": [int(c) for c in class_order],
                "class_entropy": {str(int(c)): float(v) for c, v in zip(classes, h_c)},
                "class_error": {str(int(c)): float(v) for c, v in zip(classes, e_c)},
                **bin_keys(ranking, int(p["bins"])), **class_keys}


def random_class_ranking(n: int, seed: int, bins: int) -> dict[str, Any]:
    """A seeded permutation of n classes; nested A_k = its first k (n / bins) classes."""
    perm = np.random.default_rng(int(seed)).permutation(int(n))
    width = n // bins if n > bins else 1
    top = {f"classes_top_{k}": [int(c) for c in perm[: k * width]] for k in range(1, n // width)}
    return {"seed": int(seed), "order": [int(c) for c in perm], **top}


@ANALYSES.register("random_ranking")
class RandomRanking(Analysis):
    # of: a dataset whose size at the scale gives n (classes for level class, training images for
    # level example): a generated scale has fewer of both than the paper
    params = {"level": "class", "n": None, "of": None, "seed": REQUIRED, "bins": 10}

    @classmethod
    def check(cls, params, where):
        if params["level"] not in ("class", "example"):
            raise ConfigError(f"{where}: level must be class or example, got {params['level']!r}")
        if (params["n"] is None) == (params["of"] is None):
            raise ConfigError(f"{where}: give exactly one of n: and of: (a dataset)")

    @classmethod
    def at_scale(cls, params, scale):
        if params.get("of") is None:
            return params
        from ..costs.memory import num_classes, split_images

        ds = str(params["of"])
        n = num_classes(ds, scale) if params["level"] == "class" else split_images(ds, "train", scale)
        if not n:
            raise ConfigError(f"analysis random_ranking: the size of {ds!r} at scale {scale.name} is unknown")
        return {**params, "n": int(n)}

    @classmethod
    def static_values(cls, params):
        if params["level"] != "class" or params["n"] is None:
            return None  # a permutation of 50,000 examples is an array file, not a run parameter
        return random_class_ranking(int(params["n"]), int(params["seed"]), int(params["bins"]))

    @classmethod
    def key_fraction(cls, params, key, num_classes):
        n = params["n"]
        return top_fraction(key, int(params["bins"]), int(n) if n else num_classes,
                            int(params["bins"]) if params["level"] == "class" else None)

    def run(self, ctx: AnalysisContext) -> dict[str, Any]:
        p = ctx.params
        if p["level"] == "class":
            return random_class_ranking(int(p["n"]), int(p["seed"]), int(p["bins"]))
        perm = np.random.default_rng(int(p["seed"])).permutation(int(p["n"]))
        np.save(ctx.out_dir / "ranking.npy", perm)
        return {"seed": int(p["seed"]), **bin_keys(perm, int(p["bins"]))}


def eval_permutation(n: int, seed: int = 90622) -> np.ndarray:
    g = torch.Generator().manual_seed(int(seed))  # the code seeds the global RNG; same stream
    return torch.randperm(int(n), generator=g).numpy()


@ANALYSES.register("eval_indices")
class EvalIndices(Analysis):
    """``n`` is the paper's split size. With ``dataset`` the split's real size is read from its manifest:
    it must equal ``n``, unless ``scale_n`` (small scales) shrinks the lists in proportion. The final list
    starts after the selection list, or at ``final_start`` (the code's Flowers/Caltech evaluation,
    perm[0:n], includes the selection images: notes §2.4, C2)."""

    params = {"n": 10000, "seed": 90622, "selection": 1000, "final": 8000, "final_start": None, "dataset": None,
              "split": "test", "scale_n": False}
    data_sized = "scale_n"

    @classmethod
    def check(cls, params, where):
        start = int(params["selection"] if params["final_start"] is None else params["final_start"])
        if start + int(params["final"]) > int(params["n"]) or int(params["selection"]) > int(params["n"]):
            raise ConfigError(f"{where}: the lists exceed n ({params['n']})")

    def run(self, ctx: AnalysisContext) -> dict[str, Any]:
        p = ctx.params
        n, sel, fin = int(p["n"]), int(p["selection"]), int(p["final"])
        start = sel if p["final_start"] is None else int(p["final_start"])
        if p["dataset"]:
            from ..data import read_manifest

            real = int(read_manifest(p["dataset"], ctx.data_root)["splits"][p["split"]]["n"])
            if real != n and not p["scale_n"]:
                raise ConfigError(f"eval_indices: {p['dataset']} {p['split']} has {real} images, the paper {n} "
                                  "(scale_n: true shrinks the lists in proportion)")
            # at least one image in each list, however small the split (shapes: a handful)
            sel, fin, start, n = (max(1, sel * real // n), max(1, fin * real // n),
                                  min(start * real // n, real - 1), real)
            if p["final_start"] is None:
                start = min(sel, real - 1)
        perm = eval_permutation(n, int(p["seed"]))
        return {"n": n, "selection": [int(i) for i in perm[:sel]], "final": [int(i) for i in perm[start: start + fin]]}
