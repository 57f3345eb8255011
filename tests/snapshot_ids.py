"""Writes tests/snapshots/paper_ids.json: every run id and analysis id the paper-scale targets need.

A change to the plan machinery must leave these ids alone (tests/test_snapshot_ids.py);
an intended config change regenerates the file with `python tests/snapshot_ids.py` and
the diff of that file shows exactly which nodes it renamed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SNAPSHOT = REPO / "tests" / "snapshots" / "paper_ids.json"


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


if __name__ == "__main__":
    import os

    os.chdir(REPO)
    SNAPSHOT.write_text(json.dumps(current_ids(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {SNAPSHOT}", file=sys.stderr)
