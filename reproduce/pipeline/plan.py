"""Planning: distinct runs behind targets, runs shared between artifacts, GPU-hours."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from ..errors import ConfigError
from ..io import read_yaml

COSTS = Path("config/costs.yaml")


@lru_cache(maxsize=None)
def _costs(path: str = str(COSTS)) -> dict[str, Any]:
    return read_yaml(path)


def passes_per_step(cfg: Mapping[str, Any]) -> int:
    """Forward+backward passes per batch: each attack step is one, plus the update's."""
    m = cfg["method"]
    name = m["name"] if m["name"] != "biamat" else m.get("base", "at")
    steps = int(cfg["attack"]["steps"])
    return {"standard": 1, "at": steps + 1, "trades": steps + 2, "mart": steps + 2,
            "hat": steps + 3}.get(name, steps + 2)


def gpu_hours(cfg: Mapping[str, Any], costs: Mapping[str, Any] | None = None) -> float:
    c = costs or _costs()
    model = cfg["model"]["name"]
    per = c["model_hours_per_pass_epoch"].get(model)
    if per is None:
        raise ConfigError(f"config/costs.yaml: no cost for model {model!r}")
    n = cfg["data"]["n_train"] or c["train_images"].get(cfg["data"]["primary"], 50000)
    factor = c.get("method_factor", {}).get(cfg["method"]["name"], 1.0)
    factor *= c.get("dataset_factor", {}).get(cfg["data"]["primary"], 1.0)
    return float(cfg["epochs"]) * (n / 50000) * per * passes_per_step(cfg) * factor


def plan(dag, targets: list[str]) -> dict[str, Any]:
    """Which artifacts the targets name, the distinct runs they need, and what they cost."""
    arts = []
    for t in targets:
        hit = [a for a in dag.artifacts() if t in dag.artifact_outputs(a) or t in (f"{a.paper}/{a.name}", a.name)
               or t in a.aliases or t in (a.paper, f"results/{a.paper}") or f"results/{t}" in dag.artifact_outputs(a)]
        if not hit:
            raise ConfigError(f"target {t!r} is no artifact output; see `reproduce list`")
        arts += [a for a in hit if a not in arts]
    users: dict[str, list[str]] = {}
    for a in arts:
        for rid in dag.train_jobs([a]):
            users.setdefault(rid, []).append(f"{a.paper}/{a.name}")
    runs = []
    for rid, used_by in users.items():
        cfg = dag.configs[rid]
        runs.append({"run_id": rid, "model": cfg["model"]["name"], "method": cfg["method"]["name"],
                     "epochs": cfg["epochs"], "gpu_hours": round(gpu_hours(cfg), 2), "artifacts": used_by})
    return {"scale": dag.scale.name, "artifacts": [f"{a.paper}/{a.name}" for a in arts], "runs": runs,
            "shared": [r for r in runs if len(r["artifacts"]) > 1],
            "total_gpu_hours": round(sum(r["gpu_hours"] for r in runs), 1)}


def format_plan(p: Mapping[str, Any]) -> str:
    lines = [f"scale: {p['scale']}", f"artifacts: {', '.join(p['artifacts'])}",
             f"distinct training runs: {len(p['runs'])} ({len(p['shared'])} shared between artifacts)", ""]
    w = max((len(r["run_id"]) for r in p["runs"]), default=10)
    lines.append(f"{'run':<{w}}  {'model':<10} {'method':<8} {'epochs':>6} {'GPU-h':>8}  used by")
    for r in p["runs"]:
        lines.append(f"{r['run_id']:<{w}}  {r['model']:<10} {r['method']:<8} {r['epochs']:>6} "
                     f"{r['gpu_hours']:>8.1f}  {', '.join(r['artifacts'])}")
    lines.append(f"\ntotal: {p['total_gpu_hours']} GPU-hours (V100-equivalent, from config/costs.yaml)")
    return "\n".join(lines)
