"""Runs that start from another run's weights (``init``), optionally as a fixed feature extractor.

Run config keys (defaults leave run ids as they were):

- ``init: {run: RUN, checkpoint: best|last|epoch_N, load: all|trunk}``: the weights training
  starts from. ``run`` is a reference like HAT's ``helper`` (reproduce/pipeline/references.py):
  the spec layer puts the source run's id in its place before hashing, so a change to the source
  changes this run's id, and the DAG makes the source's ``done.json`` an input of this run.
  ``load: all`` (default) takes every weight the source has (heads it lacks keep their fresh
  init: a fine-tune on the same dataset). ``load: trunk`` takes the ``trunk.*`` entries only,
  BatchNorm statistics included, and drops the source's heads (its ``fc``), so this run's own
  heads, sized for its own dataset, keep their fresh init: a transfer run. The trunk must be
  the same architecture and normalize inputs exactly as the source did.
- ``freeze: trunk``: the trunk's parameters get no gradient and its BatchNorm layers stay in
  eval mode while the head trains (``Classifier.freeze_trunk``); only parameters that still need
  a gradient go to the optimizer, so weight decay touches the head alone.
- ``model.head: {hidden: H}``: every head is ``Linear(features, H) -> ReLU -> Linear(H, classes)``
  instead of one linear layer (Subset AT's transfer head ``fc1 -> ReLU -> fc``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch

from ..config.transfer import load_mode
from ..errors import ConfigError

def source_checkpoint(cfg: Mapping[str, Any], runs_dir: str | Path) -> Path:
    """The file ``init`` names; a missing one is a one-line error naming the run and the path."""
    from ..config.references import checkpoint_file
    from .refs import run_dir

    init = cfg["init"]
    path = run_dir(init, runs_dir) / checkpoint_file(init)
    if not path.exists():
        raise ConfigError(f"run {cfg['name']}: init run {init['run']} has no checkpoint {path}; "
                          "train that run first (the DAG does, before this one)")
    return path


def init_epoch(cfg: Mapping[str, Any], runs_dir: Any) -> int:
    """The epoch after which the init run saved its checkpoint (``schedule.continue_from_init``: the
    fine-tune continues the LR schedule from there; read again on every start, so a resume agrees)."""
    from . import checkpoint

    path = source_checkpoint(cfg, runs_dir)
    epoch = checkpoint.load(path, "cpu").get("epoch")
    if isinstance(epoch, bool) or not isinstance(epoch, int):
        raise ConfigError(f"run {cfg['name']}: schedule.continue_from_init: {path} records no epoch "
                          f"({epoch!r}: an imported checkpoint?); fix the fine-tune's schedule instead")
    return epoch


def load_init(model: torch.nn.Module, cfg: Mapping[str, Any], runs_dir: str | Path, device: torch.device) -> None:
    """Put the source run's weights into ``model`` as ``init.load`` says."""
    from ..models import HEADS_PREFIX, TRUNK_PREFIX
    from . import checkpoint

    path = source_checkpoint(cfg, runs_dir)
    state = checkpoint.load(path, device)["model"]
    if load_mode(cfg) == "all":
        missing, _ = model.load_state_dict(state, strict=False)
        if missing and not all(k.startswith(HEADS_PREFIX) for k in missing):
            raise ConfigError(f"run {cfg['name']}: init checkpoint {path} lacks weights {missing[:3]}")
        return
    trunk = {k: v for k, v in state.items() if k.startswith(TRUNK_PREFIX)}
    own = {k: v for k, v in model.state_dict().items() if k.startswith(TRUNK_PREFIX)}
    missing, extra = sorted(set(own) - set(trunk)), sorted(set(trunk) - set(own))
    shapes = [k for k in sorted(set(own) & set(trunk)) if own[k].shape != trunk[k].shape]
    if missing or extra or shapes:
        what = "; ".join(f"{label} {keys[:3]}" for label, keys in
                         (("missing", missing), ("unexpected", extra), ("other shape", shapes)) if keys)
        raise ConfigError(f"run {cfg['name']}: init.load trunk: the trunk in {path} does not fit this run's "
                          f"{cfg['model']['name']} ({what})")
    for buf in ("mean", "std"):
        theirs, ours = state.get(buf), getattr(model, buf, None)
        if theirs is not None and ours is not None and not torch.equal(theirs.to(ours.device), ours):
            raise ConfigError(f"run {cfg['name']}: init.load trunk: {path} normalizes inputs with {buf} "
                              f"{theirs.flatten().tolist()}, this run with {ours.flatten().tolist()}; set "
                              "model.normalize to the source's")
    model.load_state_dict(trunk, strict=False)


def apply_freeze(model: torch.nn.Module, cfg: Mapping[str, Any]) -> None:
    if cfg.get("freeze") == "trunk":
        model.freeze_trunk()


def trainable_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """What the optimizer updates: every parameter that needs a gradient, in module order."""
    return [p for p in model.parameters() if p.requires_grad]


__all__ = ["apply_freeze", "init_epoch", "load_init", "source_checkpoint", "trainable_parameters"]
