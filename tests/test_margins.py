"""Directional margins (HAT Eq. (1)) against hand computations on linear models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from reproduce.analyses import ANALYSES
from reproduce.analyses.line_search import code_grid, margins_code_exact, margins_exact, summarize
from reproduce.analyses.margins import adversarial_directions
from reproduce.errors import ConfigError


class Linear2(nn.Module):
    """logits = [0, w.x + b]: class 1 iff w.x + b > 0 (strictly)."""

    def __init__(self, w: list[float], b: float) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w, dtype=torch.float32))
        self.b = nn.Parameter(torch.tensor(float(b)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.flatten(1) @ self.w + self.b
        return torch.stack([torch.zeros_like(s), s], dim=1)


def predictor(model: nn.Module):
    return lambda x: model(x).argmax(1)


def test_linear_margin_hand_computed() -> None:
    # x = 0, w = (1, 0), b = -1, r = (3, 4): r^ = (0.6, 0.8), flip for 0.6 t > 1, t* = 5/3
    model = Linear2([1.0, 0.0], -1.0)
    x, r = torch.zeros(1, 2), torch.tensor([[3.0, 4.0]])
    m, capped = margins_exact(predictor(model), x, r)
    assert not capped.item()
    assert 5 / 3 <= m.item() <= 5 / 3 + 0.1 / 1024 + 1e-6
    # code: coarse k = 2; grid 1.0, 1.1, ..., first flipping tested point 1.7, returned one step later
    mc, cc = margins_code_exact(predictor(model), x, r)
    assert not cc.item()
    assert mc.item() == pytest.approx(1.8)


def test_code_exact_flip_in_last_interval_returns_k() -> None:
    # t* = 0.95: no grid point 0.0 .. 0.9 flips, so the code returns the grid's last value, 1.0
    model = Linear2([1.0, 0.0], -0.95)
    x, r = torch.zeros(1, 2), torch.tensor([[1.0, 0.0]])
    mc, _ = margins_code_exact(predictor(model), x, r)
    assert mc.item() == pytest.approx(1.0)
    m, _ = margins_exact(predictor(model), x, r)
    assert m.item() == pytest.approx(0.95, abs=1e-3)


def test_cap_and_the_untested_last_integer() -> None:
    x = torch.zeros(3, 2)
    r = torch.tensor([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
    # row 0: orthogonal to w, never flips; rows 1-2 flip at 34.5 (only row 1's model) -- use one model:
    model = Linear2([1.0, 0.0], -34.5)
    m, capped = margins_exact(predictor(model), x, r)
    assert capped.tolist() == [True, False, False]
    assert m[0].item() == 35 and m[1].item() == pytest.approx(34.5, abs=1e-3)
    # the code tests x + 34 r^ last, never x + 35 r^: a flip in (34, 35] reads as the cap
    mc, cc = margins_code_exact(predictor(model), x, r)
    assert cc.tolist() == [True, True, True]
    assert mc.tolist() == [35.0, 35.0, 35.0]


def test_clamp_option_keeps_points_in_the_unit_box() -> None:
    # from x = (0.5, 0.5) along +x1, class 1 needs x1 > 1.2: impossible inside [0, 1]
    model = Linear2([1.0, 0.0], -1.2)
    x, r = torch.full((1, 2), 0.5), torch.tensor([[1.0, 0.0]])
    m, capped = margins_exact(predictor(model), x, r, clamp=True)
    assert capped.item() and m.item() == 35
    m, capped = margins_exact(predictor(model), x, r, clamp=False)
    assert not capped.item() and m.item() == pytest.approx(0.7, abs=1e-3)


def _reference_line_search(model, x, r, precision=0.1, max_alpha=35):
    """The authors' exp.py:26-60 loop, re-typed for one sample (no clamp, l2-normalised r)."""
    x, r = x.unsqueeze(0), r.unsqueeze(0)
    r = r / r.view(-1).norm(p=2)
    orig = model(x).argmax(1)
    pert = x.clone()
    alpha = 0
    for a in range(0, max_alpha + 1):
        if model(pert).argmax(1) != orig:
            break
        pert = x + a * r
        alpha = a
    pert = x.clone()
    if alpha != max_alpha:
        for a in np.arange(alpha - 1, alpha + precision, precision):
            if model(pert).argmax(1) != orig:
                break
            pert = x + a * r
        return float(a)
    return float(max_alpha)


def test_code_exact_matches_the_reference_loop_on_a_small_mlp() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3)).eval()
    x = torch.randn(24, 4)
    r = torch.randn(24, 4) * 0.3
    with torch.no_grad():
        ref = [_reference_line_search(model, x[i], r[i]) for i in range(24)]
        got, _ = margins_code_exact(predictor(model), x, r)
    assert got.tolist() == pytest.approx(ref, abs=1e-9)
    assert len(set(ref)) > 5  # the case is not degenerate: many different margins
    # and the code's answer is never below the exact one, at most one grid step (+ bracket) above
    with torch.no_grad():
        ex, capped = margins_exact(predictor(model), x, r)
    ok = ~capped
    assert bool((got[ok] >= ex[ok] - 1e-6).all())


def test_code_grid_length_varies_with_k() -> None:
    # float64 arange: the grid is 11 or 12 points depending on k, as the authors' loop saw it
    lengths = {len(code_grid(k, 0.1)) for k in range(1, 35)}
    assert lengths <= {11, 12} and 11 in lengths


def test_predicted_vs_true_label_directions_differ_on_a_misclassified_point() -> None:
    # w = (1, -1, 1, -1), b = 0.1: at x = 0.5 the model predicts class 1 (score 0.1)
    model = Linear2([1.0, -1.0, 1.0, -1.0], 0.1)
    x = torch.full((2, 4), 0.5)
    y = torch.tensor([1, 0])  # sample 0 correct, sample 1 misclassified
    eps = 0.1
    kw = dict(eps=eps, step_size=0.05, steps=3, random_start=False)
    r_pred, pred = adversarial_directions(model, x, y, target="predicted", **kw)
    r_true, _ = adversarial_directions(model, x, y, target="true", **kw)
    assert pred.tolist() == [1, 1]
    sign_w = torch.tensor([1.0, -1.0, 1.0, -1.0])
    # attacking class 1 lowers w.x: r = -eps sign(w) for both (the model predicts 1 on both)
    assert torch.allclose(r_pred, -eps * sign_w.expand(2, 4), atol=1e-6)
    # attacking y = 0 on sample 1 raises w.x instead: r = +eps sign(w)
    assert torch.allclose(r_true[0], -eps * sign_w, atol=1e-6)
    assert torch.allclose(r_true[1], eps * sign_w, atol=1e-6)


def test_summary_and_param_checks() -> None:
    m = np.array([1.0, 2.0, 3.0, 4.0, 35.0])
    s = summarize(m, m == 35)
    assert s["median"] == 3.0 and s["capped"] == 1 and s["mean"] == pytest.approx(9.0)
    margins = ANALYSES.get("margins")
    with pytest.raises(ConfigError, match="mode"):
        margins.resolve_params({"model": {"run": "a"}, "directions": {"analysis": "b"}, "mode": "fast"}, "spec.yaml")
    with pytest.raises(ConfigError, match="precision"):
        margins.resolve_params({"model": {"run": "a"}, "directions": {"analysis": "b"}, "precision": 0.3}, "x")
    with pytest.raises(ConfigError, match="target"):
        ANALYSES.get("directions").resolve_params({"model": {"run": "a"}, "target": "label"}, "x")
