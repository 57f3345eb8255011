"""A training job as the DAG planned it: the run's plan file is all it reads, besides its inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..evaluate.catalog import register_planned
from ..readback import check_recorded, check_run_dir, read_json, read_plan
from ..train.refs import Upstream


def train_planned(plan_path: str | Path, *, allow_cpu: bool = False, **kw: Any) -> dict[str, Any]:
    """Train (or resume, or confirm) the run of ``plan_path``; ``kw`` as for ``train``."""
    from ..config import config_hash
    from ..train.loop import train

    plan = read_plan(plan_path, "run")
    cfg, out = plan["config"], Path(plan["dir"])
    if config_hash(cfg) != plan["config_hash"] or out.name != plan["id"]:
        raise ConfigError(f"{plan_path}: its config hashes to {config_hash(cfg)}, not {plan['config_hash']}, or "
                          f"its directory {out} is not named {plan['id']}; rerun the DAG to rewrite it")
    # protocols a paper declares in its spec reach the job through the plan, not the spec
    register_planned(plan["protocols"], str(plan_path))
    if (out / "config.yaml").exists():  # a directory of another config is refused, never continued
        check_run_dir(out, plan["id"], plan["config_hash"], plan_path)
    elif (out / "done.json").exists():
        check_recorded(read_json(out / "done.json", "training summary"), out / "done.json",
                       {"config_hash": plan["config_hash"]}, plan_path)
    return train(cfg, out, allow_cpu=allow_cpu or bool(plan["allow_cpu"]),
                 upstream=Upstream.from_plan(plan, plan_path), comparable=bool(plan["scale"]["comparable"]), **kw)
