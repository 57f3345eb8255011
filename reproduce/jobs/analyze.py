"""Run one analysis node from its plan file: check its inputs, compute, write the envelope last."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .. import io
from ..errors import ConfigError
from ..evaluate.catalog import register_planned
from ..readback import check_recorded, read_json, read_plan
from ..train.refs import Upstream
from ..analyses.base import ANALYSES, AnalysisContext


def _place(ref: Any, upstream: Upstream) -> Any:
    """A resolved reference as the directory the plan lists for it, checked before anything is read."""
    if isinstance(ref, list):
        return [_place(r, upstream) for r in ref]
    if isinstance(ref, dict) and "run" in ref:
        return upstream.run(str(ref["run"]))
    if isinstance(ref, dict) and "analysis" in ref:
        return upstream.analysis(str(ref["analysis"]))
    raise ConfigError(f"{upstream.plan}: unresolved reference {ref!r}; rerun the DAG")


def run_analysis(plan_path: str | Path, data_root: str | Path, device: str = "auto") -> dict[str, Any]:
    """Compute the analysis of ``plan_path`` into the directory the plan names."""
    from ..provenance import environment, git_commit
    from ..train.setup import select_device

    plan = read_plan(plan_path, "analysis")
    aid, kind, params = plan["id"], plan["analysis"], plan["params"]
    out = Path(plan["dir"])
    result = out / "result.json"
    if result.exists():
        res = read_json(result, "analysis result")
        check_recorded(res, result, {"id": aid}, plan_path)
        return res
    cls = ANALYSES.get(kind, where=f"{plan_path}: analysis")
    # a paper's own protocols an analysis attacks under reach the job through the plan, not the spec
    register_planned(plan.get("protocols") or {}, str(plan_path))
    upstream = Upstream.from_plan(plan, plan_path)
    inputs = {p: _place(params[p], upstream) for p in cls.references if params.get(p) is not None}
    out.mkdir(parents=True, exist_ok=True)
    dev = select_device(device)
    scale = plan["scale"]["name"]
    ctx = AnalysisContext(dict(params), inputs, out, Path(data_root), dev, scale,
                          {"work": str(out.parent.parent), "id": aid})
    t0 = time.time()
    values = cls().run(ctx)
    envelope = {"kind": kind, "id": aid, "name": plan["name"], "paper": plan["paper"], "names": plan["names"],
                "params": params, "inputs": {k: [str(x) for x in v] if isinstance(v, list) else str(v)
                                             for k, v in inputs.items()},
                "values": values, "scale": scale, "seconds": round(time.time() - t0, 3),
                "git_commit": git_commit(), "provenance": environment(dev)}
    io.write_json(result, envelope)  # written last: its presence means the analysis is complete
    return envelope
