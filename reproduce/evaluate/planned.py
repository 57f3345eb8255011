"""An evaluation job as the DAG planned it: the plan names the run, its protocols and outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import io
from ..readback import check_recorded, check_run_dir, read_plan
from .catalog import register_planned


def evaluate_planned(plan_path: str | Path, *, data_root: str | Path, device: str = "auto",
                     allow_cpu: bool = False, seed: int = 0) -> list[dict[str, Any]]:
    """Evaluate the run of an evaluation plan under each of its protocols; writes each result JSON
    (and the index of a per-run job, last: a present index means a complete job)."""
    from ..train.refs import Upstream
    from .job import evaluate_run
    from .state import state_path_for

    plan = read_plan(plan_path, "evaluation")
    run = plan["run"]
    run_plan = read_plan(run["plan"], "run")
    check_recorded(run_plan, run["plan"], {"config_hash": run["config_hash"], "dir": run["dir"]}, plan_path)
    # the weights evaluated are those of the planned config: an edited run directory is refused
    check_run_dir(run["dir"], run_plan["id"], run["config_hash"], plan_path)
    register_planned(plan["definitions"], str(plan_path))
    labels = [p["label"] for p in plan["protocols"]]
    outs = [Path(plan["outputs"][lab]) for lab in labels]
    states = [state_path_for(o) for o in outs]
    results = evaluate_run(run["dir"], [p["run_as"] for p in plan["protocols"]], labels, data_root=data_root,
                           device=device, n=plan["n"], batch_size=int(plan["batch_size"]), seed=seed,
                           allow_cpu=allow_cpu or bool(run_plan["allow_cpu"]), state_paths=states,
                           upstream=Upstream.from_plan(run_plan, run["plan"]),
                           comparable=bool(plan["scale"]["comparable"]))
    for res, path in zip(results, outs):
        io.write_json(path, res)
        print(f"{res['run']} {res['protocol_run']}: {res['accuracy']:.2f}% of {res['n']}")
    if plan["index"]:
        io.write_json(plan["index"], {"run": results[0]["run"], "scale": results[0]["scale"],
                                      "config_hash": run["config_hash"],
                                      "protocols": {r["protocol"]: str(p) for r, p in zip(results, outs)}})
    for st in states:  # progress is kept until the job's last output exists
        st.unlink(missing_ok=True)
    return results
