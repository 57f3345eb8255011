"""Cell values from the node outputs: evaluations, analyses, training logs and configs.

Per-class and per-subset accuracies are reductions of the per-example
correctness each evaluation stores, never extra attacks. A row naming a seed
group reads every member and reports the mean (and the spread).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import ReproduceError
from ..readback import check_recorded, epoch_log, number, numbers, read_json, read_jsonl, read_plan


@dataclass
class Cell:
    value: Any  # float, list of floats (arrays), str (config values) or None
    sd: float | None = None
    n: int = 1
    members: list[Any] = field(default_factory=list)


def _dotted(obj: Any, key: str, where: str) -> Any:
    for part in str(key).split("."):
        if isinstance(obj, Mapping) and part in obj:
            obj = obj[part]
        elif isinstance(obj, list) and part.lstrip("-").isdigit() and -len(obj) <= int(part) < len(obj):
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


class PlanView:
    """An artifact's plan file as the reader sees it: which ids each name means, where each output
    lives, and the identity every output must record. Nothing else is consulted."""

    def __init__(self, plan: Mapping[str, Any], path: str | Path) -> None:
        self.plan, self.path = plan, str(path)
        self._configs: dict[str, dict[str, Any]] = {}

    @property
    def scale(self) -> Mapping[str, Any]:
        return self.plan["scale"]

    def run_ids(self, name: str) -> list[str]:
        return self._lookup("runs", name)

    def analysis_ids(self, name: str) -> list[str]:
        return self._lookup("analyses", name)

    def _lookup(self, section: str, name: str) -> list[str]:
        if name not in self.plan[section]:
            raise ReproduceError(f"{self.path}: no {section[:-1]} named {name!r}; rerun the DAG to rewrite the plan")
        return list(self.plan[section][name])

    def config_hash(self, rid: str) -> str:
        return str(self.plan["run_nodes"][rid]["config_hash"])

    def run_dir(self, rid: str) -> Path:
        return Path(self.plan["run_nodes"][rid]["dir"])

    def done(self, rid: str) -> Path:
        return self.run_dir(rid) / "done.json"

    def eval_path(self, rid: str, protocol: str) -> Path:
        try:
            return Path(self.plan["evals"][rid][protocol])
        except KeyError:
            raise ReproduceError(f"{self.path}: no evaluation of run {rid} under {protocol!r} planned") from None

    def analysis_result(self, aid: str) -> Path:
        if aid not in self.plan["analysis_dirs"]:
            raise ReproduceError(f"{self.path}: analysis {aid} is not among the plan's inputs")
        return Path(self.plan["analysis_dirs"][aid]) / "result.json"

    def run_config(self, rid: str) -> dict[str, Any]:
        """The run's resolved config, from the run's own plan file (checked against this plan's hash)."""
        if rid not in self._configs:
            node = self.plan["run_nodes"][rid]
            run_plan = read_plan(node["plan"], "run")
            check_recorded(run_plan, node["plan"], {"id": rid, "config_hash": node["config_hash"]}, self.path)
            self._configs[rid] = run_plan["config"]
        return self._configs[rid]


class Reader:
    """Reads cells as an artifact's plan names them; remembers the scales the data were made at.

    Every file is checked before a number is taken from it: an evaluation must record the run id,
    config hash, protocol and split the plan expects, a training summary its config hash, an
    analysis result its id, and a per-epoch log every epoch once.
    """

    def __init__(self, view: PlanView) -> None:
        self.view = view
        self.scales: set[str] = set()
        self.notes: set[str] = set()
        self._cache: dict[Path, dict[str, Any]] = {}

    def _json(self, path: Path, what: str, expect: Mapping[str, Any]) -> dict[str, Any]:
        if path not in self._cache:
            res = read_json(path, what)
            check_recorded(res, path, expect, self.view.path)
            self._cache[path] = res
            if res.get("scale"):
                self.scales.add(str(res["scale"]))
        return self._cache[path]

    def cell(self, art: Any, row: Any, src: Mapping[str, Any]) -> Cell:
        if "value" in src:
            return Cell(src["value"])
        if "analysis" in src:
            ids = self.view.analysis_ids(str(src["analysis"]))
            return aggregate([_scaled(self._analysis(a, src), src) for a in ids], src.get("aggregate", "mean"))
        name = src.get("run") or row.run
        vals = [_scaled(self._run_value(rid, src), src) for rid in self.view.run_ids(name)]
        return aggregate(vals, src.get("aggregate", "mean"))

    def _analysis(self, aid: str, src: Mapping[str, Any]) -> Any:
        path = self.view.analysis_result(aid)
        res = self._json(path, "analysis result", {"id": aid})
        if "array" in src:
            for npz in sorted(path.parent.glob("*.npz")):
                with np.load(npz) as z:
                    if src["array"] in z.files:
                        return z[src["array"]].tolist()
            raise ReproduceError(f"{path.parent}: analysis {aid} saved no array {src['array']!r}")
        key = src.get("key", "value")
        return _checked_value(_dotted(res.get("values", {}), key, f"{path}"), f"{path}: values.{key}")

    def run_classes(self, rid: str) -> list[int]:
        """The classes A a run trains specially (``where: {subset: A|B}``): its method's
        ``subset: {classes}`` or ``ranking: {analysis, key}`` of a ``by: class`` method, or its
        ``data.subset.classes``. A ranked A is read from the analysis the run trained with."""
        cfg = self.view.run_config(rid)
        m = cfg.get("method") or {}
        found = subset_classes(m, cfg.get("data") or {})
        if found is None and isinstance(m.get("ranking"), Mapping) and m.get("by", "class") == "class":
            ref = m["ranking"]
            path = self.view.analysis_result(str(ref["analysis"]))
            res = self._json(path, "analysis result", {"id": str(ref["analysis"])})
            key = ref.get("key", "value")
            found = [int(c) for c in numbers(_dotted(res.get("values", {}), key, str(path)), f"{path}: values.{key}")]
        if found is None:
            raise ReproduceError(f"run {rid}: where: {{subset: A|B}} needs a run trained on a class subset "
                                 f"(method {m.get('name')!r} has none)")
        return found

    def _run_value(self, rid: str, src: Mapping[str, Any]) -> Any:
        h = self.view.config_hash(rid)
        if "eval" in src:
            split = (self.view.run_config(rid).get("data") or {}).get("eval_split")
            path = self.view.eval_path(rid, str(src["eval"]))
            res = self._json(path, "evaluation", {"run": rid, "config_hash": h, "protocol": src["eval"],
                                                  "split": split})
            if res.get("protocol_run") and res.get("protocol_run") != res.get("protocol"):
                self.notes.add(f"{res['protocol']} ran as {res['protocol_run']} at this scale")
            where = src.get("where")
            if where and isinstance(where.get("subset"), str):  # A or B of the run's own class subset
                where = {"classes" if where["subset"] == "A" else "classes_not": self.run_classes(rid)}
            return _eval_value(res, where, path)
        done = self._json(self.view.done(rid), "training summary", {"run": rid, "config_hash": h})
        if "config" in src:
            return _dotted(self.view.run_config(rid), src["config"], f"config of {rid}")
        if "train" in src:
            return _dotted(done, src["train"], f"{self.view.done(rid)}")
        return self._log_value(rid, done, src)

    def _log_value(self, rid: str, done: Mapping[str, Any], src: Mapping[str, Any]) -> Any:
        key = src["log"]
        if src.get("over") == "step":
            path = self.view.run_dir(rid) / "steps.jsonl"
            hist = read_jsonl(path, "per-step log")
        else:
            path = self.view.run_dir(rid) / "metrics.jsonl"
            # a log with gaps or repeats is refused: it would read as a run that ended early
            hist = epoch_log(path, done.get("epochs"))
        if src.get("over"):
            return [_checked_value(h[key], f"{path}: epoch {h.get('epoch')} {key}") for h in hist if key in h]
        epoch = src.get("epoch", "last")
        if epoch == "best":
            epoch = (done.get("best") or {}).get("epoch") or len(hist)
        h = hist[-1] if epoch == "last" else hist[int(epoch) - 1]
        if key not in h:
            raise ReproduceError(f"{path}: epoch {h.get('epoch')} has no {key!r}; the run's method or "
                                 "observers must log it")
        return _checked_value(h[key], f"{path}: epoch {h.get('epoch')} {key}")


def _checked_value(v: Any, where: str) -> Any:
    """A cell value read from disk: a number, null (the analysis says "undefined", e.g. a loss that never
    halves has no half-time: an empty cell) or a (nested) list of those; anything else is an error (a
    string in place of a number once dropped a figure row without a word)."""
    if isinstance(v, list):
        return [_checked_value(x, f"{where}[{i}]") for i, x in enumerate(v)]
    return None if v is None else number(v, where)


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


def _eval_value(res: Mapping[str, Any], where: Mapping[str, Any] | None, what: Any) -> float:
    if not where:
        return number(res.get("accuracy"), f"{what}: accuracy")
    mask = np.asarray(numbers(res.get("correct_mask"), f"{what}: correct_mask"), dtype=float)
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
    """The ``scale: K`` and then ``complement: C`` modifiers (C - K x value) on one run's value."""
    k, c = src.get("scale"), src.get("complement")
    if v is None or (k is None and c is None):
        return v
    if isinstance(v, list):
        return [_scaled(x, src) for x in v]
    v = float(v) * float(k if k is not None else 1.0)
    return v if c is None else float(c) - v


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
