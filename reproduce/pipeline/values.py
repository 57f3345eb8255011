"""Cell values from the node outputs: evaluations, analyses, training logs and configs.

Per-class and per-subset accuracies are reductions of the per-example
correctness each evaluation stores, never extra attacks. A row naming a seed
group reads every member and reports the mean (and the spread).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import ReproduceError


@dataclass
class Cell:
    value: Any  # float, list of floats (arrays), str (config values) or None
    sd: float | None = None
    n: int = 1
    members: list[Any] = field(default_factory=list)


def _read_json(path: Path, what: str) -> dict[str, Any]:
    if not path.exists():
        raise ReproduceError(f"{path}: {what} missing; run the DAG (snakemake) first")
    return json.loads(path.read_text())


def _dotted(obj: Any, key: str, where: str) -> Any:
    for part in str(key).split("."):
        if isinstance(obj, Mapping) and part in obj:
            obj = obj[part]
        elif isinstance(obj, list) and part.lstrip("-").isdigit():
            obj = obj[int(part)]
        else:
            raise ReproduceError(f"{where}: no key {key!r}")
    return obj


def source_runs(dag: Any, art: Any, row: Any, src: Mapping[str, Any]) -> list[str]:
    name = src.get("run") or row.run
    return dag.graph.run_ids(art.paper, name) if name else []


def source_inputs(dag: Any, art: Any, row: Any, src: Mapping[str, Any]) -> list[str]:
    """The files a cell reads: the DAG derives every artifact's inputs from these."""
    if "value" in src:
        return []
    if "analysis" in src:
        return [dag.analysis_result(a) for a in dag.graph.analysis_ids(art.paper, src["analysis"])]
    rids = source_runs(dag, art, row, src)
    if "eval" in src:
        return [dag.eval_input(r, src["eval"]) for r in rids]
    return [dag.done(r) for r in rids]


class Reader:
    """Reads cells at one scale and remembers which scales the data it read were made at."""

    def __init__(self, dag: Any) -> None:
        self.dag = dag
        self.scales: set[str] = set()
        self.notes: set[str] = set()
        self._cache: dict[Path, dict[str, Any]] = {}

    def _json(self, path: str | Path, what: str) -> dict[str, Any]:
        p = Path(path)
        if p not in self._cache:
            self._cache[p] = _read_json(p, what)
            if self._cache[p].get("scale"):
                self.scales.add(str(self._cache[p]["scale"]))
        return self._cache[p]

    def cell(self, art: Any, row: Any, src: Mapping[str, Any]) -> Cell:
        if "value" in src:
            return Cell(src["value"])
        if "analysis" in src:
            ids = self.dag.graph.analysis_ids(art.paper, src["analysis"])
            return aggregate([_scaled(self._analysis(a, src), src) for a in ids], src.get("aggregate", "mean"))
        rids = source_runs(self.dag, art, row, src)
        vals = [_scaled(self._run_value(rid, src), src) for rid in rids]
        return aggregate(vals, src.get("aggregate", "mean"))

    def _analysis(self, aid: str, src: Mapping[str, Any]) -> Any:
        res = self._json(self.dag.analysis_result(aid), "analysis result")
        if "array" in src:
            folder = Path(self.dag.analysis_result(aid)).parent
            for path in sorted(folder.glob("*.npz")):
                with np.load(path) as z:
                    if src["array"] in z.files:
                        return z[src["array"]].tolist()
            raise ReproduceError(f"{folder}: analysis {aid} saved no array {src['array']!r}")
        return _dotted(res.get("values", {}), src.get("key", "value"), f"analysis {aid}")

    def run_classes(self, rid: str) -> list[int]:
        """The classes A a run trains specially (``where: {subset: A|B}``): its method's
        ``subset: {classes}`` or ``ranking: {analysis, key}`` of a ``by: class`` method, or its
        ``data.subset.classes``. A ranked A is read from the analysis the run trained with."""
        cfg = self.dag.graph.runs[rid].cfg
        m = cfg.get("method") or {}
        found = subset_classes(m, cfg.get("data") or {})
        if found is None and isinstance(m.get("ranking"), Mapping) and m.get("by", "class") == "class":
            ref = m["ranking"]
            res = self._json(self.dag.analysis_result(ref["analysis"]), "analysis result")
            found = [int(c) for c in _dotted(res.get("values", {}), ref.get("key", "value"), f"analysis {ref['analysis']}")]
        if found is None:
            raise ReproduceError(f"run {rid}: where: {{subset: A|B}} needs a run trained on a class subset "
                                 f"(method {m.get('name')!r} has none)")
        return found

    def _run_value(self, rid: str, src: Mapping[str, Any]) -> Any:
        if "eval" in src:
            res = self._json(self.dag.eval_path(rid, src["eval"]), "evaluation")
            if res.get("protocol_run") and res.get("protocol_run") != res.get("protocol"):
                self.notes.add(f"{res['protocol']} ran as {res['protocol_run']} at this scale")
            where = src.get("where")
            if where and isinstance(where.get("subset"), str):  # A or B of the run's own class subset
                where = {"classes" if where["subset"] == "A" else "classes_not": self.run_classes(rid)}
            return _eval_value(res, where, f"{rid}/{src['eval']}")
        done = self._json(self.dag.done(rid), "training summary")
        if "config" in src:
            return _dotted(self.dag.graph.runs[rid].cfg, src["config"], f"config of {rid}")
        if "train" in src:
            return _dotted(done, src["train"], f"done.json of {rid}")
        # log
        log = "steps.jsonl" if src.get("over") == "step" else "metrics.jsonl"
        path = Path(self.dag.run_dir(rid)) / log
        if not path.exists():
            raise ReproduceError(f"{path}: no {log}; the run's method or observers must log {src['log']!r}")
        hist = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        key = src["log"]
        if src.get("over"):
            return [h[key] for h in hist if key in h]
        epoch = src.get("epoch", "last")
        if epoch == "best":
            epoch = (done.get("best") or {}).get("epoch") or len(hist)
        h = hist[-1] if epoch == "last" else hist[int(epoch) - 1]
        return h.get(key)


def subset_classes(method: Mapping[str, Any], data: Mapping[str, Any]) -> list[int] | None:
    """Listed class subset A of a run (None: none listed; a ranked A needs the analysis)."""
    sub = method.get("subset")
    if method.get("by", "class") == "class" and isinstance(sub, Mapping) and "classes" in sub:
        return [int(c) for c in sub["classes"]]
    if method.get("by", "class") == "class" and isinstance(sub, list):
        return [int(c) for c in sub]
    dsub = data.get("subset")
    if isinstance(dsub, Mapping) and "classes" in dsub:
        return [int(c) for c in dsub["classes"]]
    return None


def _eval_value(res: Mapping[str, Any], where: Mapping[str, Any] | None, what: str) -> float:
    if not where:
        return float(res["accuracy"])
    mask = np.asarray(res["correct_mask"], dtype=float)
    if {"class", "class_not", "classes", "classes_not"} & set(where):  # class_not: B of a single-class subset
        labels = np.asarray(res.get("labels", []))
        if labels.shape != mask.shape:
            raise ReproduceError(f"{what}: the evaluation stored no labels; re-run it to reduce by class")
        if "class" in where:
            sel = labels == int(where["class"])
        elif "class_not" in where:
            sel = labels != int(where["class_not"])
        else:
            sel = np.isin(labels, [int(c) for c in where.get("classes", where.get("classes_not"))])
            sel = sel if "classes" in where else ~sel
    else:
        sel = np.zeros_like(mask, dtype=bool)
        idx = [i for i in where["subset"] if i < len(mask)]
        sel[idx] = True
    if not sel.any():
        return math.nan
    return float(100.0 * mask[sel].mean())


def _scaled(v: Any, src: Mapping[str, Any]) -> Any:
    k = src.get("scale")
    if k is None or v is None:
        return v
    if isinstance(v, list):
        return [x * float(k) for x in v]
    return float(v) * float(k)


def aggregate(vals: list[Any], how: str = "mean") -> Cell:
    if len(vals) == 1:
        return Cell(vals[0], None, 1, vals)
    if all(isinstance(v, (int, float)) for v in vals):
        arr = np.asarray(vals, dtype=float)
        sd = float(arr.std(ddof=1)) if len(arr) > 1 else 0.0
        value = {"mean": float(arr.mean()), "std": sd, "min": float(arr.min()), "max": float(arr.max())}[how]
        return Cell(value, sd, len(vals), vals)
    if all(isinstance(v, list) for v in vals):
        n = min(len(v) for v in vals)
        arr = np.asarray([v[:n] for v in vals], dtype=float)
        return Cell(arr.mean(0).tolist(), None, len(vals), vals)
    return Cell(vals[0], None, len(vals), vals)
