"""Writes tests/snapshots/paper_ids.json (every run id and analysis id the paper-scale targets need)
and tests/snapshots/scale_ids.json (every other scale's node ids and a digest of its plan files).

A change to the plan machinery or to the scale language must leave these alone
(tests/test_snapshot_ids.py); an intended config change regenerates both with
`python tests/snapshot_ids.py` and the diff of the files shows exactly which nodes it renamed.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SNAPSHOT = REPO / "tests" / "snapshots" / "paper_ids.json"
SCALES_SNAPSHOT = REPO / "tests" / "snapshots" / "scale_ids.json"
SCALES = ("smoke", "cpu", "budget", "shapes")


def current_ids() -> dict[str, list[str]]:
    """Per artifact (paper/name): the sorted ids of every run and analysis its outputs depend on."""
    from reproduce.pipeline.dag import Dag

    dag = Dag({"scale": "paper", "work_dir": "work", "results_dir": "results", "data_dir": "/nonexistent"},
              pipelines_dir=str(REPO / "pipelines"))
    out: dict[str, list[str]] = {}
    for art in dag.artifacts():
        runs = dag.train_jobs([art])
        analyses = sorted({f.split("/")[-2] for f in dag.artifact_inputs(art) if f.endswith("result.json")})
        out[f"{art.paper}/{art.name}"] = sorted(runs) + analyses
    out["_all_runs"] = sorted(dag.graph.runs)
    out["_all_analyses"] = sorted(dag.graph.analyses)
    return out


def scale_ids(scale: str) -> dict[str, Any]:
    """One scale's run and analysis ids, and a sha256 per kind of every plan file it writes (their
    content: configs, parameters, evaluation sizes, protocols, upstream paths)."""
    from reproduce.pipeline.dag import Dag
    from reproduce.pipeline.planfiles import PlanWriter, dump

    dag = Dag({"scale": scale, "work_dir": "work", "results_dir": "results", "data_dir": "/nonexistent"},
              pipelines_dir=str(REPO / "pipelines"))
    digests: dict[str, Any] = {}
    for path, doc in sorted(PlanWriter(dag).documents()):
        text = dump(doc).replace(f"{REPO}/", "")  # the same wherever the repository is checked out
        digests.setdefault(doc["kind"], hashlib.sha256()).update(f"{path}\n{text}".encode())
    return {"runs": sorted(dag.graph.runs), "analyses": sorted(dag.graph.analyses),
            "plans_sha256": {k: h.hexdigest() for k, h in sorted(digests.items())}}


if __name__ == "__main__":
    import os

    os.chdir(REPO)
    SNAPSHOT.write_text(json.dumps(current_ids(), indent=1, sort_keys=True) + "\n")
    SCALES_SNAPSHOT.write_text(json.dumps({s: scale_ids(s) for s in SCALES}, indent=1, sort_keys=True) + "\n")
    print(f"wrote {SNAPSHOT} and {SCALES_SNAPSHOT}", file=sys.stderr)
