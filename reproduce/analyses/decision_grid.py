"""``decision_grid``: a low-dimensional model's decision regions on 2-d slices, plus its
clean and PGD accuracy (HAT Fig. 2 on the 3-d toy, App. A).

Works in *feature* coordinates: the model's own normalisation (``model.normalize:
dataset``) maps stored inputs u to features x = (u - mean) / std, so an Linf radius
eps in x is eps * std in u (the toy stores u = 0.5 + 0.1 x; reproduce/data/generated/toy.py).
Fig. 2 shows x1-x2 at x3 = 0.85 and x1-x3 at x2 = 0.4 [27]; the axis ranges are read
off no text and are parameters. The evaluation attack is UNSTATED in the paper: the
default is PGD-50, step eps/4, 5 uniform restarts at the training eps 0.1 ([157];
notes/hat.md §10). x3-invariance (the "reasonably invariant along x3" of [50]) is
measured by sweeping x3 over ``x3_sweep`` for each test point.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

from ..errors import ConfigError
from .base import ANALYSES, REQUIRED, Analysis, AnalysisContext
from .margins import load_examples, load_run_model, save_npz

GRID_FILE = "grid.npz"
AXES = ("x1", "x2", "x3")
DEFAULT_PLANES = [{"axes": ["x1", "x2"], "fixed": {"x3": 0.85}},
                  {"axes": ["x1", "x3"], "fixed": {"x2": 0.4}}]


def _feature_map(model: torch.nn.Module) -> tuple[torch.Tensor, float]:
    """(per-feature offset, scale) with u = offset + scale * x; one scale for every feature."""
    mean, std = model.mean.flatten(), model.std.flatten()
    if not torch.allclose(std, std[0].expand_as(std)):
        raise ConfigError(f"decision_grid: the model's std {std.tolist()} differs per feature; "
                          "an Linf ball in features would not be one in inputs")
    return mean, float(std[0])


def _predict(model: torch.nn.Module, x_feat: torch.Tensor, mean: torch.Tensor, scale: float) -> torch.Tensor:
    u = mean + scale * x_feat
    with torch.no_grad():
        return model(u.view(-1, x_feat.shape[1], 1, 1)).argmax(1)


@ANALYSES.register("decision_grid")
class DecisionGrid(Analysis):
    """Decision regions on 2-d slices, clean/PGD accuracy and x3-invariance of a toy model."""

    params = {"model": REQUIRED, "planes": DEFAULT_PLANES,
              "limits": {"x1": [-1.6, 1.6], "x2": [-1.6, 1.6], "x3": [0.3, 1.2]},
              "resolution": 201, "eps": 0.1, "step_size": 0.025, "steps": 50, "restarts": 5,
              "seed": 0, "x3_sweep": [-2.0, 3.0, 501]}
    references = {"model": "run"}

    @classmethod
    def check(cls, params: Mapping[str, Any], where: str) -> None:
        for i, pl in enumerate(params["planes"]):
            axes, fixed = list(pl.get("axes", [])), dict(pl.get("fixed", {}))
            if len(axes) != 2 or set(axes) | set(fixed) != set(AXES) or set(axes) & set(fixed):
                raise ConfigError(f"{where}: planes[{i}] needs two axes and the third fixed, "
                                  f"out of {AXES}; got {dict(pl)}")
        for ax in AXES:
            lim = params["limits"].get(ax)
            if not isinstance(lim, (list, tuple)) or len(lim) != 2 or not lim[0] < lim[1]:
                raise ConfigError(f"{where}: limits.{ax} must be [low, high], got {lim!r}")
        if not isinstance(params["resolution"], int) or params["resolution"] < 2:
            raise ConfigError(f"{where}: resolution must be an integer >= 2, got {params['resolution']!r}")

    def run(self, ctx: AnalysisContext) -> dict[str, Any]:
        from ..data import read_manifest
        from ..evaluate.protocols import Protocol, evaluate

        p = ctx.params
        cfg, model = load_run_model(ctx, "model")
        dataset, split = cfg["data"]["primary"], cfg["data"]["eval_split"]
        n = int(read_manifest(dataset, ctx.data_root)["splits"][split]["n"])
        u, y = load_examples(dataset, split, np.arange(n), ctx.data_root, ctx.device)
        if u[0].numel() != len(AXES):
            raise ConfigError(f"decision_grid: {dataset} has {u[0].numel()} features, not {len(AXES)}")
        mean, scale = _feature_map(model)
        proto = Protocol("decision-grid-pgd", "pgd", "linf", float(p["eps"]) * scale,
                         float(p["step_size"]) * scale, int(p["steps"]), int(p["restarts"]), True)
        clean = evaluate(model, u, y, "clean", device=ctx.device)
        robust = evaluate(model, u, y, proto, device=ctx.device, seed=int(p["seed"]))
        x = ((u.flatten(1) - mean) / scale).cpu()
        arrays: dict[str, np.ndarray] = {"test_x": x.numpy(), "test_y": y.cpu().numpy(),
                                         "robust_correct": np.array(robust["correct_mask"], dtype=np.int8)}
        res = int(p["resolution"])
        for i, pl in enumerate(p["planes"]):
            a, b = pl["axes"]
            ga = torch.linspace(*map(float, p["limits"][a]), res, dtype=torch.float64)
            gb = torch.linspace(*map(float, p["limits"][b]), res, dtype=torch.float64)
            pts = torch.zeros(res, res, len(AXES), dtype=torch.float64)
            pts[..., AXES.index(a)] = ga.view(1, -1)  # columns run along the first axis
            pts[..., AXES.index(b)] = gb.view(-1, 1)
            for ax, v in pl["fixed"].items():
                pts[..., AXES.index(ax)] = float(v)
            pred = _predict(model, pts.view(-1, 3).float().to(ctx.device), mean, scale).view(res, res)
            arrays.update({f"plane{i}_{a}": ga.numpy(), f"plane{i}_{b}": gb.numpy(),
                           f"plane{i}_pred": pred.cpu().numpy().astype(np.int8)})
        inv = self._x3_invariance(model, x.to(ctx.device), mean, scale, p["x3_sweep"])
        save_npz(ctx.out_dir / GRID_FILE, **arrays)
        return {"clean_accuracy": clean["accuracy"], "robust_accuracy": robust["accuracy"],
                "n": n, "attack": {**proto.params(), "eps_features": float(p["eps"]),
                                   "step_features": float(p["step_size"]), "seed": int(p["seed"])},
                "planes": p["planes"], **inv, "file": GRID_FILE}

    @staticmethod
    def _x3_invariance(model: torch.nn.Module, x: torch.Tensor, mean: torch.Tensor, scale: float,
                       sweep: list) -> dict[str, float]:
        """Share of test points whose prediction never changes along x3, and the median distance
        from each point's own x3 to the nearest x3 where it does."""
        lo, hi, k = float(sweep[0]), float(sweep[1]), int(sweep[2])
        vals = torch.linspace(lo, hi, k, device=x.device)
        pts = x.unsqueeze(1).repeat(1, k, 1)
        pts[..., 2] = vals.view(1, -1)
        pred = _predict(model, pts.view(-1, 3), mean, scale).view(-1, k)
        own = _predict(model, x, mean, scale).view(-1, 1)
        changed = pred != own
        dist = (vals.view(1, -1) - x[:, 2:3]).abs()
        nearest = torch.where(changed, dist, torch.full_like(dist, float("inf"))).min(dim=1).values
        finite = nearest[torch.isfinite(nearest)]
        return {"x3_invariant_fraction": float((~changed.any(dim=1)).float().mean()),
                "x3_flip_distance_median": float(nearest.median()) if finite.numel() else float("inf")}
