"""Frechet distance between datasets in a trained model's feature space (BiaMAT Table 10).

BiaMAT's "FID" uses "the hidden representation of an adversarially trained CIFAR-10 classifier"
[000:L1064-1066], not an Inception network. ``fid``: the ``model`` run's trunk features (the pooled
vector its heads read; eval mode, clean, unaugmented images) of ``n`` images drawn from the
``reference`` split and from the ``split`` of each of ``datasets``; per dataset the mean and the
covariance (float64, ddof 1 as numpy's ``cov``), and

    FID = ||mu_r - mu_d||^2 + Tr(S_r + S_d - 2 (S_r S_d)^{1/2})

with ``scipy.linalg.sqrtm`` (real part). FID is biased by n, so every dataset gets the same n:
``default_rng(seed).choice(N, n, replace=False)`` per dataset (seeded by the seed and the
dataset's position), or all N when N == n. ``scale_n`` (small scales): n is cut to the smallest
split present. mu and Sigma are saved per dataset (``fid.npz``: ``mu_<name>``, ``sigma_<name>``,
``indices_<name>``) so other n or combinations can be recomputed without the model.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping

import numpy as np
import torch

from ..errors import ConfigError
from .base import ANALYSES, REQUIRED, Analysis, AnalysisContext, non_negative_ints, positive_ints

FID_FILE = "fid.npz"


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, covariance) in float64 of features [n, d] (ddof 1)."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ConfigError(f"fid: need at least 2 feature vectors [n, d], got shape {f.shape}")
    return f.mean(axis=0), np.atleast_2d(np.cov(f, rowvar=False))


def frechet_distance(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray, eps: float = 1e-6) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2}); the square root's real part (sqrtm returns
    tiny imaginary parts for nearly singular products). A product whose root is not finite is
    retried with eps on both diagonals, as the reference FID code does."""
    from scipy import linalg

    diff = np.asarray(mu1, dtype=np.float64) - np.asarray(mu2, dtype=np.float64)
    covmean = linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        off = np.eye(s1.shape[0]) * eps
        covmean = linalg.sqrtm((s1 + off) @ (s2 + off))
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(np.real(covmean)))


def image_batches(images: np.ndarray, indices: np.ndarray, batch_size: int,
                  device: torch.device) -> Iterator[torch.Tensor]:
    """Float NCHW batches in [0, 1] of ``images[indices]`` (uint8 or float32 NHWC), a batch at a time:
    ImageNet32's 1.28M images as one float tensor would not fit a card."""
    for start in range(0, len(indices), batch_size):
        x = np.asarray(images[indices[start:start + batch_size]])
        t = torch.from_numpy(np.ascontiguousarray(x)).to(device)
        t = t.float() / 255.0 if t.dtype == torch.uint8 else t.float()
        yield t.permute(0, 3, 1, 2).contiguous()


@torch.no_grad()
def model_features(model: Any, images: np.ndarray, indices: np.ndarray, batch_size: int,
                   device: torch.device) -> np.ndarray:
    """Trunk features [n, d] (float64) of the chosen images, model in eval mode."""
    model.eval()
    out = [model.features(x).flatten(1).double().cpu().numpy() for x in image_batches(images, indices, batch_size, device)]
    return np.concatenate(out) if out else np.zeros((0, 0))


def draw(total: int, n: int, seed: int, position: int) -> np.ndarray:
    """n of ``total`` indices, sorted, seeded by (seed, position); all of them when n == total."""
    if n > total:
        raise ConfigError(f"fid: n={n} exceeds the {total} images of a split (scale_n: true cuts n to the smallest)")
    if n == total:
        return np.arange(total, dtype=np.int64)
    return np.sort(np.random.default_rng([seed, position]).choice(total, n, replace=False)).astype(np.int64)


@ANALYSES.register("fid")
class Fid(Analysis):
    """FID of each dataset to a reference split in a run's trunk feature space."""

    params = {"model": REQUIRED, "reference": REQUIRED, "datasets": REQUIRED, "split": "train", "n": 50000,
              "seed": 0, "batch_size": 500, "scale_n": False}
    references = {"model": "run"}
    data_sized = "scale_n"
    gpu = True

    @classmethod
    def datasets(cls, params: Mapping[str, Any]) -> list[str]:
        ref = params.get("reference") or {}
        return [str(ref.get("dataset")), *[str(d) for d in params.get("datasets") or []]]

    @classmethod
    def check(cls, params: Mapping[str, Any], where: str) -> None:
        positive_ints(params, ("n", "batch_size"), where)
        non_negative_ints(params, ("seed",), where)
        ref = params["reference"]
        if not isinstance(ref, Mapping) or set(ref) != {"dataset", "split"} or not all(isinstance(v, str) for v in ref.values()):
            raise ConfigError(f"{where}: reference must be {{dataset: NAME, split: SPLIT}}, got {ref!r}")
        ds = params["datasets"]
        if not isinstance(ds, list) or not ds or not all(isinstance(d, str) and d for d in ds) or len(set(ds)) != len(ds):
            raise ConfigError(f"{where}: datasets must be a non-empty list of distinct dataset names, got {ds!r}")
        if not isinstance(params["split"], str):
            raise ConfigError(f"{where}: split must be a split name, got {params['split']!r}")

    @classmethod
    def forward_images(cls, params: Mapping[str, Any]) -> dict[str, int]:
        return {"model": int(params["n"]) * (1 + len(params["datasets"]))}

    def run(self, ctx: AnalysisContext) -> dict[str, Any]:
        from ..data import load_split
        from .margins import load_run_model, save_npz

        p = ctx.params
        _, model = load_run_model(ctx, "model")
        sets = [("reference", p["reference"]["dataset"], p["reference"]["split"])]
        sets += [(d, d, p["split"]) for d in p["datasets"]]
        loaded = {name: load_split(ds, split, ctx.data_root, mmap=True)[0] for name, ds, split in sets}
        n = int(p["n"])
        if p["scale_n"]:  # equal n for all: the smallest split present at this scale
            n = min(n, *(len(x) for x in loaded.values()))
        size = tuple(loaded["reference"].shape[1:])
        arrays: dict[str, np.ndarray] = {}
        stats = {}
        for pos, (name, ds, split) in enumerate(sets):
            images = loaded[name]
            if tuple(images.shape[1:]) != size:
                raise ConfigError(f"analysis fid: {ds}/{split} images are {images.shape[1:]}, the reference's {size}")
            idx = draw(len(images), n, int(p["seed"]), pos)
            mu, sigma = gaussian_stats(model_features(model, images, idx, int(p["batch_size"]), ctx.device))
            stats[name] = (mu, sigma)
            arrays.update({f"mu_{name}": mu, f"sigma_{name}": sigma, f"indices_{name}": idx})
        save_npz(ctx.out_dir / FID_FILE, **arrays)
        mu_r, s_r = stats["reference"]
        fid = {name: frechet_distance(mu_r, s_r, *stats[name]) for name, _, _ in sets[1:]}
        return {"fid": fid, "n": n, "n_requested": int(p["n"]), "seed": int(p["seed"]),
                "feature_dim": int(len(mu_r)), "reference": dict(p["reference"]), "split": p["split"],
                "closest": min(fid, key=fid.get), "farthest": max(fid, key=fid.get), "file": FID_FILE}
