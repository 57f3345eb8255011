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
