"""Per-epoch mean training loss (or error) of difficulty groups (hard-instance F2a, F8).

``group_curves``: the groups G_k = {i: min(int(10 d_i), 9) = k} of a ``difficulty`` analysis
(G0 hardest, ``difficulty.group_of``), and the per-instance training logs of a ``run``
(``instance_losses.npy`` / ``instance_correct.npy`` [epochs x N], columns keyed by the
original index in ``instance_indices.npy``). The run may differ from the difficulty's source
(F8: the 600-epoch run with the 200-epoch run's groups): instances are matched by
**original index**; group members the run never trained on are ignored, and a run sharing
no instance with the difficulty is a ConfigError.

Per epoch e the curve is the mean over the group's matched instances of the logged value
(NaN entries, instances a ``drop_last`` epoch skipped, are left out of that epoch's mean).
``metric: loss`` averages the training-time CE; ``metric: acc`` averages the 0-1 **error**
(1 - correct, a fraction in [0, 1]), so that every summary below reads "falls as it is fitted".
``metric: adapted:<key>`` averages what the run's method adapted per instance, as logged
(``adapted_<key>.npy`` by ``adapted_indices.npy``: SAT's weight and accuracies, F14/F15).

Values per group G<k> (epochs 0-based, E = the run's epochs):
- ``t_half``: the first epoch whose mean is below half the epoch-0 mean; null if none
  (claims read it with ``or_inf``);
- ``early_drop``: (m[0] - m[e1]) / m[0] with e1 = min(early_epochs, E - 1): the relative drop
  over the first ``early_epochs`` epochs (the paper's "first 20"; scales shorten it);
- ``late_drop``: m[E // 2 - 1] - m[E - 1], the absolute drop over the second half
  (epochs 99 -> 199 of 200);
- ``first``, ``last``, ``size`` (matched instances).
Arrays (``group_curves.npz``): ``G<k>`` the curves, ``epoch`` 0..E-1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import ConfigError
from .base import ANALYSES, REQUIRED, Analysis, AnalysisContext, positive_ints
from .difficulty import group_of, load_difficulty
from .margins import save_npz

CURVES_FILE = "group_curves.npz"
LOGS = {"loss": "instance_losses.npy", "acc": "instance_correct.npy"}
ADAPTED = "adapted:"


def log_files(metric: str) -> tuple[str, str]:
    """(values file, original-index file) a metric reads."""
    if metric.startswith(ADAPTED):
        return f"adapted_{metric[len(ADAPTED):]}.npy", "adapted_indices.npy"
    return LOGS[metric], "instance_indices.npy"


def _as_values(raw: np.ndarray, metric: str) -> np.ndarray:
    """[epochs x N] float: the loss, or the 0-1 error with unseen entries (255) as NaN."""
    if metric == "loss" or metric.startswith(ADAPTED):  # adapted values: NaN already marks unseen
        return raw.astype(np.float64)
    err = 1.0 - raw.astype(np.float64)
    return np.where(raw == 255, np.nan, err)


def group_means(values: np.ndarray, run_ids: np.ndarray, diff_ids: np.ndarray, groups_of: np.ndarray,
                wanted: list[int], where: str) -> tuple[dict[int, np.ndarray], dict[int, int]]:
    """Per wanted group k, the per-epoch nanmean over the run's columns whose original id is in G_k."""
    shared = np.isin(run_ids, diff_ids)
    if not shared.any():
        raise ConfigError(f"{where}: the run shares no instance (original index) with the difficulty analysis")
    curves, sizes = {}, {}
    for k in wanted:
        cols = np.flatnonzero(np.isin(run_ids, diff_ids[groups_of == k]))
        sizes[k] = int(len(cols))
        if not len(cols):
            curves[k] = np.full(values.shape[0], np.nan)
            continue
        block = values[:, cols]
        seen = (~np.isnan(block)).sum(1)
        total = np.nansum(block, 1)
        curves[k] = np.where(seen > 0, total / np.maximum(seen, 1), np.nan)
    return curves, sizes


def first_below_half(curve: np.ndarray) -> int | None:
    """First 0-based epoch whose value is below half the epoch-0 value; None if never."""
    hits = np.flatnonzero(curve < 0.5 * curve[0])
    return int(hits[0]) if len(hits) else None


def _num(x: float) -> float | None:
    return None if not np.isfinite(x) else float(x)


def summarize(curve: np.ndarray, early_epochs: int) -> dict[str, Any]:
    n = len(curve)
    e1 = min(int(early_epochs), n - 1)
    mid = max(0, n // 2 - 1)
    early = (curve[0] - curve[e1]) / curve[0] if curve[0] else np.nan
    return {"t_half": first_below_half(curve), "early_drop": _num(early),
            "late_drop": _num(curve[mid] - curve[-1]), "first": _num(curve[0]), "last": _num(curve[-1])}


@ANALYSES.register("group_curves")
class GroupCurves(Analysis):
    """Per-epoch mean training loss / error of difficulty groups G_k of another (or the same) run."""

    params = {"run": REQUIRED, "difficulty": REQUIRED, "groups": [0, 3, 6, 9], "n_groups": 10,
              "metric": "loss", "early_epochs": 20}
    references = {"run": "run", "difficulty": "analysis"}
    epoch_params = {"early_epochs": "run"}
    observers = ("per_instance",)

    @classmethod
    def required_observers(cls, params: Mapping[str, Any]) -> tuple[str, ...]:
        return ("per_instance_adapted",) if str(params["metric"]).startswith(ADAPTED) else cls.observers

    @classmethod
    def check(cls, params: Mapping[str, Any], where: str) -> None:
        m = params["metric"]
        if not isinstance(m, str) or (m not in LOGS and not (m.startswith(ADAPTED) and len(m) > len(ADAPTED))):
            raise ConfigError(f"{where}: metric must be one of {', '.join(LOGS)} or adapted:<key>, got {m!r}")
        positive_ints(params, ("n_groups", "early_epochs"), where)
        n = params["n_groups"]
        g = params["groups"]
        if not isinstance(g, list) or not g or not all(isinstance(k, int) and not isinstance(k, bool)
                                                       and 0 <= k < n for k in g):
            raise ConfigError(f"{where}: groups must be a non-empty list of integers in [0, {n}), got {g!r}")

    def run(self, ctx: AnalysisContext) -> dict[str, Any]:
        p, run = ctx.params, Path(ctx.inputs["run"])
        values_file, ids_file = log_files(p["metric"])
        path, ids_path = run / values_file, run / ids_file
        if not path.exists() or not ids_path.exists():
            raise ConfigError(f"{path}: no per-instance log; train the run with log_per_instance: true "
                              "(adapted:<key>: a method that adapts <key>)")
        values = _as_values(np.load(path), p["metric"])
        z = load_difficulty(ctx.inputs["difficulty"])
        wanted = [int(k) for k in p["groups"]]
        curves, sizes = group_means(values, np.load(ids_path), z["indices"], group_of(z["d"], int(p["n_groups"])),
                                    wanted, f"analysis group_curves ({path})")
        save_npz(ctx.out_dir / CURVES_FILE, epoch=np.arange(values.shape[0]),
                 **{f"G{k}": curves[k] for k in wanted})
        out: dict[str, Any] = {"metric": p["metric"], "epochs": int(values.shape[0]),
                               "early_epoch": min(int(p["early_epochs"]), int(values.shape[0]) - 1),
                               "mid_epoch": max(0, int(values.shape[0]) // 2 - 1), "file": CURVES_FILE}
        per = {k: summarize(curves[k], int(p["early_epochs"])) for k in wanted}
        for key in ("t_half", "early_drop", "late_drop", "first", "last"):
            out[key] = {f"G{k}": per[k][key] for k in wanted}
        out["size"] = {f"G{k}": sizes[k] for k in wanted}
        out["n_matched"] = int(sum(sizes.values()))
        return out
