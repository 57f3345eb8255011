"""A RobustBench zoo model evaluated in place of a trained run: the same protocols and result JSON as
``evaluate_run``, plus the leaderboard's numbers where they are comparable."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

from ..errors import ConfigError
from ..evaluate.robustbench import (DEFAULT_MODEL_DIR, DEFAULT_MODEL_INFO, LEADERBOARD_N, LEADERBOARD_PROTOCOL,
                                    PREPARED, leaderboard, load_zoo_model, require_weights)


def evaluate_zoo(name: str, protocols: Sequence[str], data_root: str | Path, *,
                 labels: Sequence[str] | None = None, dataset: str = "cifar10", threat_model: str = "Linf",
                 model_dir: str | Path = DEFAULT_MODEL_DIR, model_info: str | Path = DEFAULT_MODEL_INFO,
                 device: str = "auto", split: str | None = None, n: int | None = None, batch_size: int = 256,
                 seed: int = 0, state_paths: Sequence[str | Path] | None = None) -> list[dict[str, Any]]:
    """Evaluate zoo model ``name`` on the prepared test split; one result per protocol, shaped as
    ``evaluate_run``'s, plus a ``robustbench`` block with the leaderboard's numbers where known.
    ``state_paths[i]`` keeps protocol i's per-batch progress (``reproduce.evaluate.state``)."""
    from .. import perf as fast
    from ..data import load_split, read_manifest
    from ..io import sha256_file
    from ..provenance import git_commit, runtime_provenance
    from ..train.setup import select_device
    from ..evaluate.protocols import PROTOCOLS, evaluate
    from ..evaluate.state import EvalState

    labels = list(labels) if labels else list(protocols)
    if len(labels) != len(protocols):
        raise ConfigError(f"--label: {len(labels)} label(s) for {len(protocols)} protocol(s)")
    for p in protocols:  # a typo fails before anything is loaded
        PROTOCOLS.get(p, where="--protocol")
    # unknown names and absent weights fail here, before the data and the model are read
    entry_paths = require_weights(name, dataset, threat_model, model_dir)
    data_name, split = PREPARED[dataset], split or "test"
    meta = read_manifest(data_name, data_root)
    classes = 100 if dataset == "cifar100" else 10
    if (meta["num_classes"], meta["image_size"], meta["channels"]) != (classes, 32, 3):
        raise ConfigError(f"prepared {data_name} has {meta['num_classes']} classes of "
                          f"{meta['image_size']}x{meta['image_size']}x{meta['channels']} images; robustbench's "
                          f"{dataset} models take {classes} classes of 32x32x3")
    images, y = load_split(data_name, split, data_root)
    dev = select_device(device)
    model = load_zoo_model(name, dataset, threat_model, model_dir).to(dev)
    board = leaderboard(name, dataset, threat_model, model_info)
    rb_block = {"name": name, "dataset": dataset, "threat_model": threat_model,
                "robustbench_version": _rb_version(), "architecture": type(model.net).__name__,
                "outputs": model.outputs,
                "weights": [{"path": str(p), "sha256": sha256_file(p)} for p in entry_paths],
                "leaderboard": board, "leaderboard_protocol": LEADERBOARD_PROTOCOL[threat_model]}
    prov = fast.provenance({"amp": "none", "channels_last": False}, dev)
    out = []
    for proto, label in zip(protocols, labels):
        t0 = time.time()
        state = None
        if state_paths is not None:
            p = PROTOCOLS.get(proto)
            state = EvalState(state_paths[len(out)], {
                "protocol": p.name, "params": p.params(), "counting": p.counting, "seed": seed,
                "batch_size": batch_size, "n": n, "split": split, "dataset": data_name,
                "weights": [w["sha256"] for w in rb_block["weights"]]})
        res = evaluate(model, images, y, proto, device=dev, batch_size=batch_size, seed=seed, n=n, state=state)
        res["protocol_run"] = proto
        res["protocol"] = label
        res["labels"] = [int(v) for v in y[: len(res["correct_mask"])].tolist()]
        # the leaderboard's number is AutoAttack standard on all 10,000 real test images
        comparable = (proto == LEADERBOARD_PROTOCOL[threat_model] and split == "test"
                      and res["n"] == LEADERBOARD_N and not meta.get("synthetic"))
        res.update({"run": f"robustbench:{name}", "config_hash": None, "scale": None,
                    "checkpoint": str(entry_paths[0]), "checkpoint_epoch": None, "selection": None,
                    "split": split, "dataset": data_name, "wall_seconds": round(time.time() - t0, 3),
                    "git_commit": git_commit(), "perf": prov,
                    "provenance": runtime_provenance(dev, seed=seed, scale=None),  # type: ignore[arg-type]
                    "robustbench": {**rb_block, "comparable_with_leaderboard": comparable}})
        out.append(res)
    return out


def _rb_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("robustbench")
    except PackageNotFoundError:
        return None


def zoo_summary(res: dict[str, Any]) -> str:
    """One line per result for the terminal: ours, and the leaderboard's where it is comparable."""
    rb = res["robustbench"]
    line = f"{res['run']} {res['protocol_run']}: {res['accuracy']:.2f}% of {res['n']}"
    board = rb.get("leaderboard")
    if board and res["protocol_run"] == "clean" and board.get("clean_accuracy") is not None:
        line += f" (leaderboard clean {board['clean_accuracy']:.2f}%)"
    elif board and res["protocol_run"] == rb["leaderboard_protocol"] and board.get("robust_accuracy") is not None:
        line += f" (leaderboard robust {board['robust_accuracy']:.2f}%" + (
            ")" if rb["comparable_with_leaderboard"] else "; not comparable: not the full real test set)")
    return line
