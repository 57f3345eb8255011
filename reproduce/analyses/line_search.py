"""Directional margins by a vectorised line search (HAT, paper 003, Eq. (1)).

mu(x, r^) = the smallest alpha > 0 with F(x + alpha r^) != F(x), where r^ = r / ||r||_2
and F(x) is the model's own prediction at x (not the label). Two ways to find it:

``exact`` (our default): every integer alpha = 1, 2, ..., cap is tested; the first
flipping integer k brackets the margin in (k-1, k]; that bracket is scanned at
``precision`` for its first flipping point t; (t - precision, t] is then bisected
``bisect_steps`` times and the upper end returned (a point that does flip). No bias:
the answer is within precision / 2**bisect_steps above a flip point. Directions
that never flip up to ``cap`` get ``cap`` (and are counted as capped).

``code_exact``: ``line_search`` of the authors' ``core/utils/exp.py:26-60`` as it ran,
one sample at a time there, vectorised here. Its loops test the point set in the
*previous* iteration (a lag), which gives:
  * coarse pass ``for a in range(0, 36)``: tests x, x, x + r^, ..., x + 34 r^;
    alpha = the smallest integer k >= 1 whose point x + k r^ flips; if none of
    x + 1 r^ .. x + 34 r^ flips, alpha = 35 = the cap (x + 35 r^ is never tested) and
    the margin is 35;
  * fine pass ``for a in np.arange(k - 1, k + precision, precision)``: tests x, then
    grid[0], grid[1], ..., grid[-2]; the margin is the loop value at the break, i.e.
    grid[j + 1] for the first flipping grid[j] (one grid step *above* the flip point),
    or grid[-1] (~ k) when nothing before it flips. ``np.arange`` in float64 makes
    the grid 11 or 12 points long depending on k, which is kept.
Neither pass clamps x + alpha r^ to [0, 1] (``clamp=False`` reproduces that).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import Tensor

Predict = Callable[[Tensor], Tensor]  # (N, ...) float inputs -> (N,) long predictions

MODES = ("exact", "code_exact")


def unit_directions(r: Tensor) -> tuple[Tensor, Tensor]:
    """(r / ||r||_2 per example, mask of directions with zero norm, which never flip)."""
    norms = r.flatten(1).norm(dim=1)
    zero = norms <= 0
    safe = torch.where(zero, torch.ones_like(norms), norms)
    return r / safe.view(-1, *([1] * (r.dim() - 1))), zero


def _points(x: Tensor, d: Tensor, alphas: Tensor, clamp: bool) -> Tensor:
    """x_i + alphas[i, j] d_i for every (i, j), flattened to (N * G, ...)."""
    n, g = alphas.shape
    a = alphas.to(x.dtype).view(n, g, *([1] * (x.dim() - 1)))
    pts = (x.unsqueeze(1) + a * d.unsqueeze(1)).reshape(n * g, *x.shape[1:])
    return pts.clamp(0.0, 1.0) if clamp else pts


def flips(predict: Predict, x: Tensor, d: Tensor, orig: Tensor, alphas: Tensor, clamp: bool,
          chunk: int = 4096) -> Tensor:
    """(N, G) bool: does the prediction at x_i + alphas[i, j] d_i differ from orig_i."""
    n, g = alphas.shape
    pts = _points(x, d, alphas, clamp)
    preds = torch.cat([predict(p) for p in pts.split(chunk)]) if pts.shape[0] else pts.new_zeros(0).long()
    return preds.view(n, g) != orig.view(n, 1)


def _first_true(mask: Tensor) -> tuple[Tensor, Tensor]:
    """(index of the first True per row (0 where none), whether any is True)."""
    any_ = mask.any(dim=1)
    idx = mask.float().argmax(dim=1)  # argmax returns the first maximum
    return idx, any_


def margins_exact(predict: Predict, x: Tensor, r: Tensor, *, precision: float = 0.1, cap: int = 35,
                  clamp: bool = False, bisect_steps: int = 10) -> tuple[Tensor, Tensor]:
    """(margins float64 (N,), capped bool (N,)) by bracket + fine scan + bisection."""
    d, zero = unit_directions(r)
    orig = predict(x)
    n = x.shape[0]
    ks = torch.arange(1, cap + 1, dtype=torch.float64).expand(n, cap)
    f = flips(predict, x, d, orig, ks, clamp)
    k_idx, hit = _first_true(f)
    hit &= ~zero
    k = (k_idx + 1).double()
    # fine scan of (k-1, k] at precision: points k-1+p, ..., k (k itself flips)
    m = int(round(1.0 / precision))
    fine = (k - 1).view(-1, 1) + precision * torch.arange(1, m + 1, dtype=torch.float64).view(1, -1)
    fine[:, -1] = k  # the last fine point is k exactly, known to flip
    ff = flips(predict, x, d, orig, fine, clamp)
    j, _ = _first_true(ff)
    hi = fine.gather(1, j.view(-1, 1)).squeeze(1)
    lo = torch.where(j > 0, fine.gather(1, (j - 1).clamp(min=0).view(-1, 1)).squeeze(1), k - 1)
    for _ in range(bisect_steps):
        mid = (lo + hi) / 2
        fm = flips(predict, x, d, orig, mid.view(-1, 1), clamp).squeeze(1)
        hi = torch.where(fm, mid, hi)
        lo = torch.where(fm, lo, mid)
    out = torch.where(hit, hi, torch.full_like(hi, float(cap)))
    return out, ~hit


def code_grid(k: int, precision: float) -> np.ndarray:
    """The fine-pass grid of ``exp.py:50``: ``np.arange(k - 1, k + precision, precision)``."""
    return np.arange(k - 1, k + precision, precision)


def margins_code_exact(predict: Predict, x: Tensor, r: Tensor, *, precision: float = 0.1,
                       cap: int = 35, clamp: bool = False) -> tuple[Tensor, Tensor]:
    """(margins float64 (N,), capped bool (N,)) exactly as ``exp.py:line_search`` returns them."""
    d, zero = unit_directions(r)
    orig = predict(x)
    n = x.shape[0]
    # coarse: the tested integer points are 1..cap-1 (x itself never flips against itself)
    ks = torch.arange(1, cap, dtype=torch.float64).expand(n, cap - 1)
    f = flips(predict, x, d, orig, ks, clamp)
    k_idx, hit = _first_true(f)
    hit &= ~zero
    out = torch.full((n,), float(cap), dtype=torch.float64)
    k_all = (k_idx + 1).tolist()
    for k in sorted({k_all[i] for i in range(n) if bool(hit[i])}):
        rows = torch.tensor([i for i in range(n) if bool(hit[i]) and k_all[i] == k], dtype=torch.long)
        grid = torch.from_numpy(code_grid(k, precision))
        tested = grid[:-1].expand(len(rows), -1)  # grid[-1] is never tested (the lag)
        ff = flips(predict, x[rows], d[rows], orig[rows], tested, clamp)
        j, any_ = _first_true(ff)
        out[rows] = torch.where(any_, grid[(j + 1).clamp(max=len(grid) - 1)], grid[-1])
    return out, ~hit


def summarize(m: np.ndarray, capped: np.ndarray) -> dict[str, float | int]:
    """The statistics Tables 1 and 6 and Figures 3 and 7 use (median; exp.py:81-82 adds p10/p90/mean)."""
    p10, p25, p50, p75, p90 = np.percentile(m, [10, 25, 50, 75, 90])
    return {"median": float(p50), "mean": float(np.mean(m)), "p10": float(p10), "p25": float(p25),
            "p75": float(p75), "p90": float(p90), "n": int(m.size), "capped": int(capped.sum()),
            "capped_fraction": float(capped.mean()) if m.size else 0.0}
