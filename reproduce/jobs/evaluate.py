"""One evaluation job: a trained run, loaded once, under one or several protocols (``evaluate_run``);
``evaluate_planned`` runs it as the DAG planned it (the plan names the run, its protocols and outputs).

Each protocol's JSON is exactly what a single-protocol job writes (same seed,
same batches), so grouping protocols into one job only saves the model load
and the test-split read.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import torch

from .. import io
from ..errors import ConfigError
from ..evaluate.catalog import register_planned
from ..readback import check_recorded, check_run_dir, read_plan


def split_list(value: str, flag: str) -> list[str]:
    """A comma list from the command line; empty items are an error naming the flag."""
    items = [v.strip() for v in value.split(",")]
    if not all(items):
        raise ConfigError(f"{flag}: empty name in {value!r}")
    return items


def _checked_labels(protocols: Sequence[str], labels: Sequence[str] | None) -> list[str]:
    """One label per protocol, every protocol registered: a typo fails before the model is loaded."""
    from ..evaluate.protocols import PROTOCOLS

    labels = list(labels) if labels else list(protocols)
    if len(labels) != len(protocols):
        raise ConfigError(f"--label: {len(labels)} label(s) for {len(protocols)} protocol(s)")
    for p in protocols:
        if p not in PROTOCOLS:
            raise ConfigError(f"--protocol: unknown protocol {p!r}; a paper's own protocols are evaluated "
                              "through the DAG's plan file (reproduce evaluate --plan FILE)")
    return labels


def evaluate_run(run_dir: str | Path, protocols: Sequence[str], labels: Sequence[str] | None, *,
                 data_root: str | Path, device: str = "auto", checkpoint: str = "best",
                 split: str | None = None, n: int | None = None, batch_size: int = 256,
                 seed: int = 0, allow_cpu: bool = False,
                 state_paths: Sequence[str | Path] | None = None, upstream: Any = None,
                 comparable: bool | None = None) -> list[dict[str, Any]]:
    """Results for each protocol in order; ``labels[i]`` is the protocol requested in its place.

    ``state_paths[i]`` (optional) keeps protocol i's per-batch progress, so a killed job resumes;
    the caller removes them once every result is written. ``upstream`` (the run's plan) says where
    the analyses its config references live; without it they are looked for beside the run.
    A paper's own protocols must be registered first (a plan file carries their definitions).
    """
    from .. import perf as fast
    from ..config import config_hash
    from ..data import load_split
    from ..provenance import git_commit
    from ..train.setup import build_from_run_dir, select_device
    from ..evaluate.protocols import PROTOCOLS, evaluate
    from ..evaluate.state import EvalState, checkpoint_identity

    labels = _checked_labels(protocols, labels)
    from .. import io as _io
    from ..provenance import runtime_provenance

    run_cfg = _io.read_yaml(Path(run_dir) / "config.yaml") if (Path(run_dir) / "config.yaml").exists() else {}
    dev = select_device(device, scale=run_cfg.get("scale"), allow_cpu=allow_cpu, comparable=comparable)
    cfg, model, meta = build_from_run_dir(run_dir, data_root, dev, f"{checkpoint}.pt")
    pf = cfg["perf"]
    if pf["channels_last"]:
        model.to(memory_format=torch.channels_last)
    # evaluation attacks always run in fp32 (TF32 where the backend allows it): the reported
    # numbers must not depend on the training precision
    prov = fast.provenance({"amp": "none", "channels_last": bool(pf["channels_last"])}, dev)
    split = split or cfg["data"]["eval_split"]
    images, labels_ = load_split(cfg["data"]["primary"], split, data_root)
    from ..train.refs import eval_lists

    where = upstream if upstream is not None else Path(run_dir).parent
    lists = eval_lists(cfg, where) if split == cfg["data"]["eval_split"] else None
    positions = None
    if lists is not None:  # the run's own final index list, in its order (a scale's n takes its prefix)
        positions = lists["final"]
        if positions and max(positions) >= len(labels_):
            raise ConfigError(f"data.eval_indices: index {max(positions)} outside {split} ({len(labels_)} images)")
        images, labels_ = images[positions], labels_[positions]
    if state_paths is not None and len(state_paths) != len(protocols):
        raise ConfigError(f"{len(state_paths)} state file(s) for {len(protocols)} protocol(s)")
    ck_id = checkpoint_identity(Path(run_dir) / f"{checkpoint}.pt")
    out = []
    for i, (proto, label) in enumerate(zip(protocols, labels)):
        t0 = time.time()
        state = None
        if state_paths is not None:
            p = PROTOCOLS.get(proto)
            state = EvalState(state_paths[i], {
                "protocol": p.name, "params": p.params(), "counting": p.counting, "seed": seed,
                "batch_size": batch_size, "n": n, "split": split, "dataset": cfg["data"]["primary"],
                "indices": (cfg["data"].get("eval_indices") or {}).get("analysis"),
                "config_hash": config_hash(cfg), "checkpoint": checkpoint, "checkpoint_file": ck_id})
        res = evaluate(model, images, labels_, proto, device=dev, batch_size=batch_size, seed=seed, n=n,
                       state=state)
        # a scale may run a cheaper protocol in place of the requested one: both are recorded
        res["protocol_run"] = proto
        res["protocol"] = label
        # per-class and per-subset values are reductions of the stored correctness by these labels
        res["labels"] = [int(v) for v in labels_[: len(res["correct_mask"])].tolist()]
        if positions is not None:  # which test images the mask covers, and from which list
            res["indices"] = {"analysis": cfg["data"]["eval_indices"]["analysis"], "key": "final",
                              "positions": positions[: len(res["correct_mask"])]}
        res.update({"run": Path(run_dir).name, "config_hash": config_hash(cfg), "scale": cfg["scale"],
                    "checkpoint": checkpoint, "checkpoint_epoch": meta.get("epoch"),
                    "selection": cfg["selection"], "split": split, "dataset": cfg["data"]["primary"],
                    "wall_seconds": round(time.time() - t0, 3), "git_commit": git_commit(), "perf": prov,
                    "provenance": runtime_provenance(dev, seed=seed, scale=cfg["scale"])})
        out.append(res)
    return out


def evaluate_planned(plan_path: str | Path, *, data_root: str | Path, device: str = "auto",
                     allow_cpu: bool = False, seed: int = 0) -> list[dict[str, Any]]:
    """Evaluate the run of an evaluation plan under each of its protocols; writes each result JSON
    (and the index of a per-run job, last: a present index means a complete job)."""
    from ..train.refs import Upstream
    from ..evaluate.state import state_path_for

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
