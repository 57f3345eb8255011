"""What a method adapted per instance against the instance's difficulty d (hard-instance F13, F18, F19).

``instance_correlation``: the run's per-epoch table ``adapted_<key>.npy`` [epochs x N] (columns by
original index, ``adapted_indices.npy``; the ``per_instance_adapted`` observer) reduced over epochs
to one value per instance, matched by **original index** with a ``difficulty`` analysis's d (the
source run may hold out instances the adapting run trained on, or the reverse: only instances in
both count), and the Pearson correlation of the two (notes hard_instances.md §3.2; the paper's
"correlation" names no other kind).

``reduce``: ``last`` (the final epoch's value: F13's budget eps_i) or ``mean`` (the mean over the
epochs from 0-based ``from_epoch`` on, NaN entries, epochs an instance was not seen, left out: F18's
"average weight across epochs", F19's average target[y]).

Values: ``pearson``, ``n`` (matched instances), ``value_mean``, ``d_mean``; arrays
(``instance_correlation.npz``): ``indices``, ``d``, ``value`` (one entry per matched instance).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import ConfigError
from .base import ANALYSES, REQUIRED, Analysis, AnalysisContext, non_negative_ints
from .difficulty import load_difficulty
from .margins import save_npz

FILE = "instance_correlation.npz"
REDUCES = ("last", "mean")


def reduced(table: np.ndarray, how: str, from_epoch: int) -> np.ndarray:
    """One value per column: the last epoch's, or the nanmean over epochs ``from_epoch``.. (NaN if never seen)."""
    if how == "last":
        return table[-1].astype(np.float64)
    block = table[min(from_epoch, table.shape[0] - 1):].astype(np.float64)
    seen = (~np.isnan(block)).sum(0)
    return np.where(seen > 0, np.nansum(block, 0) / np.maximum(seen, 1), np.nan)


def matched(run_ids: np.ndarray, values: np.ndarray, diff_ids: np.ndarray, d: np.ndarray,
            where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, d, value) over the instances both hold with a finite value, in original-index order."""
    ids, in_run, in_diff = np.intersect1d(run_ids, diff_ids, return_indices=True)
    v, dd = values[in_run], d[in_diff]
    ok = np.isfinite(v)
    if ok.sum() < 2:
        raise ConfigError(f"{where}: fewer than 2 instances shared with the difficulty analysis carry a value")
    return ids[ok], dd[ok], v[ok]


@ANALYSES.register("instance_correlation")
class InstanceCorrelation(Analysis):
    """Pearson r between d and a per-instance adapted value (reduced over epochs), matched by original index."""

    params = {"run": REQUIRED, "difficulty": REQUIRED, "key": REQUIRED, "reduce": "mean", "from_epoch": 0}
    references = {"run": "run", "difficulty": "analysis"}
    epoch_params = {"from_epoch": "run"}
    observers = ("per_instance_adapted",)

    @classmethod
    def check(cls, params: Mapping[str, Any], where: str) -> None:
        non_negative_ints(params, ("from_epoch",), where)
        if params["reduce"] not in REDUCES:
            raise ConfigError(f"{where}: reduce must be one of {', '.join(REDUCES)}, got {params['reduce']!r}")
        if not isinstance(params["key"], str) or not params["key"]:
            raise ConfigError(f"{where}: key must name an adapted value (weight, target_y, eps, ...), "
                              f"got {params['key']!r}")

    def run(self, ctx: AnalysisContext) -> dict[str, Any]:
        p, run = ctx.params, Path(ctx.inputs["run"])
        path, ids_path = run / f"adapted_{p['key']}.npy", run / "adapted_indices.npy"
        if not path.exists() or not ids_path.exists():
            raise ConfigError(f"{path}: no adapted log {p['key']!r}; the run's method must adapt it")
        table = np.load(path)
        z = load_difficulty(ctx.inputs["difficulty"])
        ids, d, v = matched(np.load(ids_path), reduced(table, p["reduce"], int(p["from_epoch"])),
                            z["indices"], z["d"], f"analysis instance_correlation ({path})")
        save_npz(ctx.out_dir / FILE, indices=ids, d=d, value=v)
        r = float(np.corrcoef(d, v)[0, 1]) if np.std(v) > 0 and np.std(d) > 0 else None
        return {"pearson": r, "n": int(len(ids)), "key": p["key"], "reduce": p["reduce"],
                "epochs": int(table.shape[0]), "value_mean": float(v.mean()), "d_mean": float(d.mean()),
                "file": FILE}
