"""HAT's 3-d toy (paper 003, Sec. 3 and App. A, Figs 2 and 6), generated at every scale.

Class i (label i - 1) draws z ~ U(0, 2 pi), e1, e2 ~ N(0, sigma^2) and
    x1 = rho_i cos z + e1,  x2 = rho_i sin z + e2,  x3 ~ U(alpha_i, beta_i)
with sigma = 0.2, rho = (0.35, 1), [alpha, beta] = [0.65, 0.70] and [0.80, 0.85]
(App. A, [155]). The per-class count is not published; ours (``n_per_class``) is
recorded in the catalog entry (``catalog/toy.py``); ``importers/generated.py`` writes it.
No code for the toy exists in the authors' repository.

Storage: the harness's attacks and loaders work on inputs in [0, 1], so a point is
stored as float32 u = OFFSET + SCALE * x (a 1 x 1 "image" with 3 channels). The
catalog's mean/std (OFFSET, SCALE) make ``model.normalize: dataset`` hand the model
x itself, and every Linf distance in x is a distance in u times SCALE: the paper's
eps 0.1 and step 0.05 are 0.01 and 0.005 in a run config. With SCALE = 0.1 the
box [0, 1] is x in [-5, 5], which the data (|x| < 2.3 at 6 sigma) and any eps-ball
around it never reach, so the [0, 1] clamp of the attacks never binds.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

OFFSET = 0.5
SCALE = 0.1
_TAG = 0x7013D
_SPLIT_CODE = {"train": 1, "test": 2}


def encode(x: np.ndarray) -> np.ndarray:
    """Feature coordinates -> stored values in [0, 1]."""
    return OFFSET + SCALE * np.asarray(x, dtype=np.float64)


def decode(u: np.ndarray) -> np.ndarray:
    return (np.asarray(u, dtype=np.float64) - OFFSET) / SCALE


def sample(params: Mapping[str, Any], split: str) -> tuple[np.ndarray, np.ndarray]:
    """(x float64 (N, 3) in feature coordinates, labels int64 (N,)), shuffled, balanced."""
    n = int(params["n_per_class"])
    rng = np.random.default_rng(np.random.SeedSequence([_TAG, int(params["seed"]), _SPLIT_CODE[split]]))
    xs, ys = [], []
    for label, (rho, (lo, hi)) in enumerate(zip(params["rho"], params["x3_range"])):
        z = rng.uniform(0.0, 2.0 * math.pi, n)
        e = rng.normal(0.0, float(params["sigma"]), (n, 2))
        x3 = rng.uniform(float(lo), float(hi), n)
        xs.append(np.stack([rho * np.cos(z) + e[:, 0], rho * np.sin(z) + e[:, 1], x3], axis=1))
        ys.append(np.full(n, label, dtype=np.int64))
    x, y = np.concatenate(xs), np.concatenate(ys)
    order = rng.permutation(len(y))
    return x[order], y[order]
