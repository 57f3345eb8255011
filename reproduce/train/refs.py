"""References from one run to another, as the trainer and analyses receive them.

A spec writes ``{run: NAME, checkpoint: best|last|epoch_N}``; the spec layer
replaces NAME by the upstream run id before hashing, so by the time a config
reaches the trainer a reference is ``{run: RUN_ID, checkpoint: ...}`` and the
run lives beside this one under ``<work>/<scale>/runs/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch

from ..errors import ConfigError

CHECKPOINTS = ("best", "last")


def is_reference(value: Any) -> bool:
    return isinstance(value, Mapping) and ("run" in value or "analysis" in value)


def checkpoint_file(ref: Mapping[str, Any]) -> str:
    name = str(ref.get("checkpoint", "best"))
    if name in CHECKPOINTS:
        return f"{name}.pt"
    if name.startswith("epoch_") and name[6:].isdigit():
        return f"checkpoints/{name}.pt"
    raise ConfigError(f"reference {dict(ref)}: checkpoint must be best, last or epoch_N, got {name!r}")


def run_dir(ref: Mapping[str, Any], runs_dir: str | Path) -> Path:
    if not isinstance(ref, Mapping) or "run" not in ref:
        raise ConfigError(f"expected a run reference {{run: ID, checkpoint: best}}, got {ref!r}")
    return Path(runs_dir) / str(ref["run"])


def load_model(ref: Mapping[str, Any], runs_dir: str | Path, data_root: str | Path,
               device: torch.device) -> torch.nn.Module:
    """The referenced run's model in eval mode (it must have finished: its done.json is a DAG input)."""
    from .setup import build_from_run_dir

    _, model, _ = build_from_run_dir(run_dir(ref, runs_dir), data_root, device, checkpoint_file(ref))
    return model


def subset_indices(subset: Mapping[str, Any], labels: Any, runs_dir: str | Path | None) -> Any:
    """Training indices a ``data.subset`` keeps: listed classes, listed indices, or an analysis's list."""
    import numpy as np

    if "classes" in subset:
        return np.flatnonzero(np.isin(labels, [int(c) for c in subset["classes"]]))
    if "indices" in subset:
        return np.asarray(sorted(int(i) for i in subset["indices"]), dtype=np.int64)
    if "analysis" in subset:
        values = analysis_values(subset, runs_dir, "data.subset")
        key = subset.get("key", "indices")
        if key not in values:
            raise ConfigError(f"data.subset: analysis {subset['analysis']} has no value {key!r}; "
                              f"has {', '.join(sorted(values))}")
        return np.asarray(sorted(int(i) for i in values[key]), dtype=np.int64)
    raise ConfigError(f"data.subset: expected classes:, indices: or analysis:, got {dict(subset)}")


def analysis_values(ref: Mapping[str, Any], runs_dir: str | Path | None, where: str) -> dict[str, Any]:
    """The ``values`` of the analysis ``ref`` names (it lives beside the runs: a DAG input, run first)."""
    import json

    if runs_dir is None:
        raise ConfigError(f"{where} names an analysis, but the run directory is unknown")
    path = Path(runs_dir).parent / "analyses" / str(ref["analysis"]) / "result.json"
    if not path.exists():
        raise ConfigError(f"{path}: the analysis this run's {where} names has not run")
    return json.loads(path.read_text())["values"]


def eval_lists(cfg: Mapping[str, Any], runs_dir: str | Path | None) -> dict[str, list[int]] | None:
    """``data.eval_indices``: the test-split positions the selection rule and the evaluation use, in the
    analysis's order (a permutation's prefix is the selection set, the rest the final set)."""
    ref = (cfg.get("data") or {}).get("eval_indices")
    if not ref:
        return None
    values = analysis_values(ref, runs_dir, "data.eval_indices")
    missing = [k for k in ("selection", "final") if k not in values]
    if missing:
        raise ConfigError(f"data.eval_indices: analysis {ref['analysis']} has no {', '.join(missing)} list")
    return {k: [int(i) for i in values[k]] for k in ("selection", "final")}
