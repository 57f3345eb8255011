"""The plan, written once: one file per run, analysis, evaluation and artifact at a scale.

Building the DAG resolves every node and writes ``<work>/<scale>/plan/<kind>/<id>.json``.
A job reads its plan file and the outputs it names, never a spec, a scale file or a
graph. A file is rewritten only when its content changes, so a spec edit touches the
plan files of exactly the nodes it changes, and Snakemake reruns exactly their jobs
(by modification time, with or without its own metadata).

Plans are JSON rather than YAML: a paper-scale DAG writes a few thousand of them at
every start, and ``json`` reads and writes them about ten times faster.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from .. import io
from ..artifacts import Artifact
from ..artifacts.base import artifact_to_plan
from ..claims import claim_to_plan
from ..config import config_hash
from ..evaluate.catalog import planned

KINDS = ("run", "analysis", "eval", "artifact")


def dump(plan: dict[str, Any]) -> str:
    return json.dumps(plan, indent=1, sort_keys=True, default=str) + "\n"


def write_if_changed(path: Path, text: str) -> bool:
    """Write ``text`` atomically unless the file already holds it (its mtime then stays)."""
    try:
        if path.read_text(encoding="utf-8") == text:
            return False
    except (FileNotFoundError, UnicodeDecodeError):
        pass
    io.write_text(path, text)
    return True


def _run_protocols(cfg: dict[str, Any]) -> list[str]:
    names = [cfg["selection"]["protocol"]] if (cfg.get("selection") or {}).get("protocol") else []
    feats = [cfg["feature_stats"]["protocol"]] if cfg.get("feature_stats") else []
    return names + [e["protocol"] for e in cfg.get("eval_logs") or []] + feats


def _protocol_names(params: Any) -> set[str]:
    """Every parameter value that names a registered protocol (an analysis attacks under it)."""
    from ..evaluate import PROTOCOLS

    if isinstance(params, dict):
        return {n for v in params.values() for n in _protocol_names(v)}
    if isinstance(params, list):
        return {n for v in params for n in _protocol_names(v)}
    return {params} if isinstance(params, str) and params in PROTOCOLS else set()


class PlanWriter:
    """Renders every node of a ``Dag`` as a plan document (``documents``) and writes them (``write``)."""

    def __init__(self, dag: Any) -> None:
        self.dag = dag
        self._artifacts: dict[str, dict[str, Any]] = {}

    # --- references to other nodes' outputs, with the identity a reader checks
    def _upstream(self, deps: Iterable[tuple[str, str]]) -> dict[str, Any]:
        runs, analyses = {}, {}
        for kind, nid in deps:
            if kind == "run":
                runs[nid] = self._run_ref(nid)
            else:
                analyses[nid] = str(self.dag.analysis_dir(nid))
        return {"runs": runs, "analyses": analyses}

    def _run_ref(self, rid: str) -> dict[str, str]:
        return {"dir": str(self.dag.run_dir(rid)), "config_hash": config_hash(self.dag.configs[rid]),
                "plan": self.dag.plan_path("run", rid)}

    def _scale(self) -> dict[str, Any]:
        s = self.dag.scale
        return {"name": s.name, "comparable": s.comparable, "description": s.raw.get("description", "")}

    # --- one document per node kind
    def run(self, rid: str) -> dict[str, Any]:
        node = self.dag.graph.runs[rid]
        cfg = node.cfg
        up = self._upstream(node.deps)
        return {"kind": "run", "id": rid, "config_hash": config_hash(cfg), "scale": self._scale(),
                "allow_cpu": self.dag.every_scale(rid), "dir": str(self.dag.run_dir(rid)), "config": cfg,
                "protocols": planned(_run_protocols(cfg)), "upstream": up}

    def analysis(self, aid: str) -> dict[str, Any]:
        node = self.dag.graph.analyses[aid]
        return {"kind": "analysis", "id": aid, "paper": node.paper, "name": node.name, "names": node.names,
                "analysis": node.kind, "params": node.params, "scale": self._scale(),
                "protocols": planned(_protocol_names(node.params)),
                "dir": str(self.dag.analysis_dir(aid)), "upstream": self._upstream(node.deps)}

    def evaluation(self, rid: str, protocols: list[str]) -> dict[str, Any]:
        """One evaluation job: a run under one protocol, or (per-run jobs) under every protocol read from it."""
        to_run = {p: self.dag.scale.protocol_to_run(p) for p in protocols}
        eval_cfg = self.dag.scale.eval
        return {"kind": "evaluation", "run": self._run_ref(rid), "scale": self._scale(),
                "protocols": [{"label": p, "run_as": to_run[p]} for p in protocols],
                "definitions": planned(to_run.values()),
                "n": self.dag.scale.eval_cap("protocols"), "batch_size": int(eval_cfg.get("batch_size", 256)),
                "outputs": {p: self.dag.eval_path(rid, p) for p in protocols},
                "index": self.dag.eval_index(rid) if self.dag.evals_per_run else None}

    def artifact(self, art: Artifact) -> dict[str, Any]:
        key = f"{art.paper}/{art.name}"
        if key not in self._artifacts:
            self._artifacts[key] = self._artifact(art)
        return self._artifacts[key]

    def _artifact(self, art: Artifact) -> dict[str, Any]:
        dag, graph = self.dag, self.dag.graph
        spec = dag.specs[art.paper]
        names = [*art.runs]
        run_ids = {n: graph.run_ids(art.paper, n) for n in names}
        an_names = {str(s["analysis"]) for r in art.rows.values() for s in r.cells.values() if "analysis" in s}
        an_ids = {n: graph.analysis_ids(art.paper, n) for n in sorted(an_names)}
        rids = sorted({i for ids in run_ids.values() for i in ids})
        protos: dict[str, set[str]] = {}
        for row in art.rows.values():
            for src in row.cells.values():
                if "eval" in src:
                    for rid in graph.run_ids(art.paper, src.get("run") or row.run):
                        protos.setdefault(rid, set()).add(str(src["eval"]))
        # analyses a run was trained with (a class ranking) are read by `where: {subset: A|B}`
        deps = {a for r in rids for k, a in graph.runs[r].deps if k == "analysis"}
        deps |= {a for ids in an_ids.values() for a in ids}
        others = {n: {"csv": p, "plan": dag.plan_path("artifact", f"{art.paper}/{n}")}
                  for n, p in dag.claim_artifacts(art).items()}
        return {"kind": "artifact", "paper": art.paper, "name": art.name, "scale": self._scale(),
                "artifact": artifact_to_plan(art), "claims": [claim_to_plan(c) for c in art.claims],
                "runs": run_ids, "groups": sorted(n for n in names if n in spec.groups),
                "seeds_kept": graph.seeds_kept, "analyses": an_ids,
                "run_nodes": {r: self._run_ref(r) for r in rids},
                "evals": {r: {p: dag.eval_path(r, p) for p in sorted(ps)} for r, ps in sorted(protos.items())},
                "analysis_dirs": {a: str(dag.analysis_dir(a)) for a in sorted(deps)},
                "others": others, "outputs": dag.artifact_outputs(art)}

    # --- everything this scale builds
    def documents(self) -> Iterable[tuple[str, dict[str, Any]]]:
        dag = self.dag
        arts = dag.artifacts()
        for rid in dag.graph.runs:
            yield dag.plan_path("run", rid), self.run(rid)
        for aid in dag.graph.analyses:
            if aid not in dag.graph.unbuildable:
                yield dag.plan_path("analysis", aid), self.analysis(aid)
        by_run: dict[str, set[str]] = {}
        for art in arts:
            for rid, protos in self.artifact(art)["evals"].items():
                by_run.setdefault(rid, set()).update(protos)
        for rid, protos in sorted(by_run.items()):
            if dag.evals_per_run:
                yield dag.plan_path("eval", rid), self.evaluation(rid, sorted(protos))
            else:
                for p in sorted(protos):
                    yield dag.plan_path("eval", f"{rid}/{p}"), self.evaluation(rid, [p])
        for art in arts:
            yield dag.plan_path("artifact", f"{art.paper}/{art.name}"), self.artifact(art)

    def write(self) -> dict[str, int]:
        """Write every plan file; returns how many were written and how many were already current."""
        counts = {"written": 0, "current": 0}
        for path, doc in self.documents():
            counts["written" if write_if_changed(Path(path), dump(doc)) else "current"] += 1
        return counts
