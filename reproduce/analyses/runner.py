"""Run one analysis node: resolve its inputs to directories, compute, write the envelope last."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from .. import io
from ..errors import ConfigError
from .base import ANALYSES, AnalysisContext


def _place(ref: Any, work: Path) -> Any:
    if isinstance(ref, list):
        return [_place(r, work) for r in ref]
    if isinstance(ref, dict) and "run" in ref:
        return work / "runs" / str(ref["run"])
    if isinstance(ref, dict) and "analysis" in ref:
        return work / "analyses" / str(ref["analysis"])
    raise ConfigError(f"unresolved reference {ref!r}")


def run_analysis(paper: str, name: str, scale_name: str, work_dir: str | Path, data_root: str | Path,
                 device: str = "auto") -> dict[str, Any]:
    """Compute analysis ``paper/name`` at a scale into ``<work_dir>/<scale>/analyses/<id>/``."""
    from ..pipeline.nodes import Graph
    from ..pipeline.provenance import environment, git_commit
    from ..pipeline.scales import load_scale
    from ..pipeline.spec import load_all
    from ..train.setup import select_device

    scale = load_scale(scale_name)
    graph = Graph(load_all(), scale)
    aid = graph.analysis_id(paper, name)
    node = graph.analyses[aid]
    work = Path(work_dir) / scale.name
    out = work / "analyses" / aid
    result = out / "result.json"
    if result.exists():
        return json.loads(result.read_text())
    cls = ANALYSES.get(node.kind)
    inputs = {p: _place(node.params[p], work) for p in cls.references if node.params.get(p) is not None}
    for p, places in inputs.items():
        for place in places if isinstance(places, list) else [places]:
            marker = place / ("done.json" if place.parent.name == "runs" else "result.json")
            if not marker.exists():
                raise ConfigError(f"analysis {paper}/{name}: input {p} is not ready ({marker} missing)")
    out.mkdir(parents=True, exist_ok=True)
    dev = select_device(device)
    ctx = AnalysisContext(dict(node.params), inputs, out, Path(data_root), dev, scale.name,
                          {"work": str(work), "id": aid})
    t0 = time.time()
    values = cls().run(ctx)
    envelope = {"kind": node.kind, "id": aid, "name": name, "paper": paper, "names": node.names,
                "params": node.params, "inputs": {k: [str(x) for x in v] if isinstance(v, list) else str(v)
                                                  for k, v in inputs.items()},
                "values": values, "scale": scale.name, "seconds": round(time.time() - t0, 3),
                "git_commit": git_commit(), "provenance": environment(dev)}
    io.write_json(result, envelope)  # written last: its presence means the analysis is complete
    return envelope
