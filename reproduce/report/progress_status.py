"""Where each artifact stands while the DAG runs: built, running (with epoch and ETA) or missing.

A training is running when its run directory has a checkpoint but no ``done.json``; its epoch
and ETA are the last ``[train]`` line of its log (`reproduce/progress.py` writes them), else its
``metrics.jsonl``. Nothing here asks Snakemake: the files say it all, on a cluster or a laptop.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ..progress import EPOCH_LINE


def natural_key(text: str) -> list[Any]:
    """``figure1b`` < ``figure4`` < ``figure10``: digits compare as numbers."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def training_progress(dag: Any, run_id: str) -> dict[str, Any] | None:
    """Epoch, epochs and ETA of a started, unfinished training (None if not started or done)."""
    run_dir = dag.run_dir(run_id)
    if (run_dir / "done.json").exists() or not (run_dir / "last.pt").exists() and not (run_dir / "metrics.jsonl").exists():
        return None
    log = dag.work / "logs" / "train" / f"{run_id}.log"
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    for line in reversed(lines):
        m = EPOCH_LINE.match(line)
        if m:
            return {"run": run_id, "epoch": int(m["epoch"]), "epochs": int(m["epochs"]), "eta": m["eta"]}
    metrics = run_dir / "metrics.jsonl"
    rows = [json.loads(x) for x in metrics.read_text().splitlines() if x.strip()] if metrics.exists() else []
    epochs = dag.configs.get(run_id, {}).get("epochs")
    return {"run": run_id, "epoch": rows[-1]["epoch"] if rows else 0, "epochs": epochs, "eta": "?"}


def artifact_progress(dag: Any) -> list[dict[str, Any]]:
    """One row per artifact, naturally sorted: built / running / missing, and its running trainings."""
    out = []
    for art in sorted(dag.artifacts(), key=lambda a: (a.paper, natural_key(a.name))):
        row: dict[str, Any] = {"artifact": f"{art.paper}/{art.name}", "state": "built", "runs": []}
        if not all(Path(o).exists() for o in dag.artifact_outputs(art)):
            runs = dag.train_jobs([art])
            row["runs"] = [p for rid in runs if (p := training_progress(dag, rid))]
            row.update(state="running" if row["runs"] else "missing", trainings=len(runs),
                       trained=sum(Path(dag.done(rid)).exists() for rid in runs))
        out.append(row)
    return out


def format_progress(rows: list[dict[str, Any]]) -> str:
    lines = []
    for r in rows:
        extra = "" if r["state"] == "built" else f"  {r['trained']} of {r['trainings']} trainings done"
        lines.append(f"{r['artifact']:<32} {r['state']:<8}{extra}")
        for p in r["runs"]:
            lines.append(f"    {p['run']}: epoch {p['epoch']}/{p['epochs']}, ETA {p['eta']}")
    return "\n".join(lines)
