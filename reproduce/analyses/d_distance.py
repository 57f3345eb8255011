"""D-distance between two difficulty functions (T4, T5): D(d1, d2) = mean_x |d1(x) - d2(x)|.

Each side is a list of ``difficulty`` analyses (one per seed). The paper averages "over 4 runs"
without a pairing rule, so the rule is a recorded parameter:

- ``index``: pairs (a_i, b_i) (off-diagonal cells: seed i of setting A against seed i of B);
- ``cyclic``: pairs (a_i, a_{(i+1) mod k}) within ``a`` (diagonal cells: the run-to-run floor);
- ``all``: every (a_i, b_j), i != j when ``b`` is omitted.

``b`` omitted means the diagonal (``cyclic`` unless ``all``). The instances are those present in
both difficulty vectors of a pair. ``random_baseline`` is the same mean for d2 permuted at random
(seeded) over the instances, averaged over pairs: about 1/3 for uniform ranks (the text says 0.375).

T5 compares one d1 with many d2 (18 corruptions x 5 severities of four clean runs): instead of a
difficulty node per (run, log), ``b_runs`` (runs) with ``b_logs`` (eval-log names or patterns, ``c10c-*``) computes each
d2 here from the runs' eval logs, as ``difficulty`` would (``metric``, ``min_epoch``, ``agg``), and
``by_log.<log>`` holds each log's D, std, pairs and baseline; ``D`` is then their mean.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import ConfigError
from .base import ANALYSES, REQUIRED, Analysis, AnalysisContext
from .difficulty import load_difficulty

PAIRINGS = ("index", "cyclic", "all")


def pairs(k_a: int, k_b: int | None, rule: str, where: str) -> list[tuple[int, int]]:
    """Index pairs (i into a, j into b, or into a again when b is None) for a pairing rule."""
    if k_b is None:
        if rule == "index":
            raise ConfigError(f"{where}: pairing index needs b (use cyclic or all for a diagonal cell)")
        if k_a < 2:
            raise ConfigError(f"{where}: a diagonal cell needs at least two runs in a")
        if rule == "cyclic":
            return [(i, (i + 1) % k_a) for i in range(k_a)] if k_a > 2 else [(0, 1)]
        return [(i, j) for i in range(k_a) for j in range(k_a) if i < j]
    if rule == "index":
        if k_a != k_b:
            raise ConfigError(f"{where}: pairing index needs as many runs in a ({k_a}) as in b ({k_b})")
        return [(i, i) for i in range(k_a)]
    if rule == "cyclic":
        return [(i, (i + 1) % k_b) for i in range(k_a)]
    return [(i, j) for i in range(k_a) for j in range(k_b)]


def d_distance(ids1: np.ndarray, d1: np.ndarray, ids2: np.ndarray, d2: np.ndarray,
               rng: np.random.Generator | None = None) -> tuple[float, float | None, int]:
    """(D over the common instances, D against a random permutation of d2 or None, common count)."""
    common, i1, i2 = np.intersect1d(ids1, ids2, assume_unique=True, return_indices=True)
    if len(common) == 0:
        raise ConfigError("d_distance: the two difficulty vectors share no instance")
    a, b = d1[i1], d2[i2]
    base = float(np.abs(a - rng.permutation(b)).mean()) if rng is not None else None
    return float(np.abs(a - b).mean()), base, int(len(common))


@ANALYSES.register("d_distance")
class DDistance(Analysis):
    """Mean |d1 - d2| over paired difficulty analyses, with the pairing rule and a random baseline."""

    params = {"a": REQUIRED, "b": None, "pairing": "index", "seed": 0, "b_runs": None, "b_logs": None,
              "metric": "loss", "min_epoch": 10, "agg": "sum"}
    references = {"a": "analyses", "b": "analyses", "b_runs": "runs"}
    epoch_params = {"min_epoch": "b_runs"}
    _LOG_PARAMS = ("b_runs", "b_logs", "metric", "min_epoch", "agg")

    @classmethod
    def resolve_params(cls, given: Mapping[str, Any], where: str) -> dict[str, Any]:
        out = super().resolve_params(given, where)
        if out["b_logs"] is None:  # added after ids were in use: without logs they stay out of the hash
            for k in cls._LOG_PARAMS:
                out.pop(k)
        return out

    @classmethod
    def required_observers(cls, params: Mapping[str, Any]) -> tuple[str, ...]:
        return tuple(f"eval_log:{x}" for x in params.get("b_logs") or [])

    @classmethod
    def check(cls, params: Mapping[str, Any], where: str) -> None:
        if params["pairing"] not in PAIRINGS:
            raise ConfigError(f"{where}: pairing must be one of {', '.join(PAIRINGS)}, got {params['pairing']!r}")
        # a name may be a seed group of difficulty analyses (thinned at scales that keep fewer seeds)
        if not isinstance(params["a"], (list, str)) or (params["b"] is not None and not isinstance(params["b"], (list, str))):
            raise ConfigError(f"{where}: a and b must be difficulty analyses (a list, or a seed group's name)")
        logs, runs = params.get("b_logs"), params.get("b_runs")
        if (logs is None) != (runs is None) or (logs and params["b"]):
            raise ConfigError(f"{where}: b_runs and b_logs go together, in place of b")
        if logs is not None:
            if not isinstance(logs, list) or not logs or not all(isinstance(x, str) and x for x in logs):
                raise ConfigError(f"{where}: b_logs must be a non-empty list of eval-log names")
            from .difficulty import Difficulty

            Difficulty.check({"metric": params["metric"], "agg": params["agg"], "min_epoch": params["min_epoch"],
                              "log": "b_logs"}, where)
            return
        if params["b"] is None and params["pairing"] == "index":
            raise ConfigError(f"{where}: pairing index needs b; a diagonal cell takes pairing cyclic or all")

    def run(self, ctx: AnalysisContext) -> dict[str, Any]:
        p = ctx.params
        a = [load_difficulty(x) for x in ctx.inputs["a"]]
        if p.get("b_logs"):
            from .difficulty import log_difficulty

            by_log = {}
            runs = ctx.inputs["b_runs"] if isinstance(ctx.inputs["b_runs"], list) else [ctx.inputs["b_runs"]]
            for log in log_names(Path(runs[0]), p["b_logs"]):
                b = [dict(zip(("indices", "d"), log_difficulty(Path(r), log, p["metric"], int(p["min_epoch"]),
                                                                p["agg"]))) for r in runs]
                by_log[log] = _distances(a, b, p["pairing"], int(p["seed"]))
            return {"D": float(np.mean([v["D"] for v in by_log.values()])), "by_log": by_log,
                    "pairing": p["pairing"], "diagonal": False}
        b = [load_difficulty(x) for x in ctx.inputs["b"]] if p["b"] is not None else None
        return _distances(a, b, p["pairing"], int(p["seed"]))


def log_names(run: Path, patterns: list[str]) -> list[str]:
    """The run's eval-log names matching ``patterns`` (``c10c-*``), in declaration order."""
    from fnmatch import fnmatchcase

    from .. import io

    names = [e["name"] for e in io.read_yaml(run / "config.yaml").get("eval_logs") or []]
    out = [n for n in names if any(fnmatchcase(n, pat) for pat in patterns)]
    if not out:
        raise ConfigError(f"{run}: no eval log matches {patterns}")
    return out


def _distances(a: list[Mapping[str, Any]], b: list[Mapping[str, Any]] | None, rule: str, seed: int) -> dict[str, Any]:
    """D over the pairs of ``rule`` (b None: the diagonal within a), with its spread and random baseline."""
    if b is None and len(a) < 2:
        # a scale that keeps one seed per group (smoke) has no run-to-run floor to measure
        return {"D": None, "std": None, "var": None, "pairs": [], "pairing": rule, "diagonal": True,
                "random_baseline": None, "note": f"a diagonal cell needs two runs; this scale kept {len(a)}"}
    rng = np.random.default_rng(seed)
    rows = []
    for i, j in pairs(len(a), None if b is None else len(b), rule, "analysis d_distance"):
        other = (a if b is None else b)[j]
        dd, base, n = d_distance(a[i]["indices"], a[i]["d"], other["indices"], other["d"], rng)
        rows.append({"a": i, "b": j, "D": dd, "random": base, "n": n})
    ds = np.array([r["D"] for r in rows])
    return {"D": float(ds.mean()), "std": float(ds.std()), "var": float(ds.var()), "pairs": rows,
            "pairing": rule, "diagonal": b is None,
            "random_baseline": float(np.mean([r["random"] for r in rows]))}
