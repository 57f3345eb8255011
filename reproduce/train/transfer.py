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

from ..errors import ConfigError

INIT_KEYS = ("run", "checkpoint", "load")
LOADS = ("all", "trunk")
FREEZES = ("trunk",)
HEAD_KEYS = ("hidden",)


def check_transfer(cfg: Mapping[str, Any], where: str) -> None:
    """``init``, ``freeze`` and ``model.head`` of a resolved run config, one line per mistake."""
    from .refs import checkpoint_file

    init = cfg.get("init")
    if init is not None:
        if isinstance(init, list):
            raise ConfigError(f"{where}: init names one run, not a seed group ({len(init)} runs); name one member")
        if not isinstance(init, Mapping):
            raise ConfigError(f"{where}: init must be {{run: NAME, checkpoint: best|last|epoch_N, load: all|trunk}}, "
                              f"got {init!r}")
        unknown = sorted(set(init) - set(INIT_KEYS))
        if unknown:
            raise ConfigError(f"{where}: init: unknown key(s) {', '.join(map(repr, unknown))}; "
                              f"allowed: {', '.join(INIT_KEYS)}")
        if not isinstance(init.get("run"), str) or not init["run"]:
            raise ConfigError(f"{where}: init.run must name a run, got {init.get('run')!r}")
        try:
            checkpoint_file(init)
        except ConfigError as e:
            raise ConfigError(f"{where}: init: {e}") from None
        if init.get("load", "all") not in LOADS:
            raise ConfigError(f"{where}: init.load must be one of {', '.join(LOADS)}, got {init.get('load')!r}")
    freeze = cfg.get("freeze")
    if freeze is not None:
        if freeze not in FREEZES:
            raise ConfigError(f"{where}: freeze must be one of {', '.join(FREEZES)} (or null), got {freeze!r}")
        if init is None:
            raise ConfigError(f"{where}: freeze: {freeze} needs init: (a frozen untrained trunk gives random "
                              "features); name the run whose trunk to keep")
    head = (cfg.get("model") or {}).get("head")
    if head is not None:
        if not isinstance(head, Mapping) or sorted(head) != sorted(HEAD_KEYS):
            raise ConfigError(f"{where}: model.head must be {{hidden: H}} (a ReLU hidden layer of H units), "
                              f"got {head!r}")
        h = head["hidden"]
        if isinstance(h, bool) or not isinstance(h, int) or h < 1:
            raise ConfigError(f"{where}: model.head.hidden must be a positive integer, got {h!r}")


def head_hidden(cfg: Mapping[str, Any]) -> int | None:
    head = (cfg.get("model") or {}).get("head")
    return int(head["hidden"]) if head else None


def load_mode(cfg: Mapping[str, Any]) -> str | None:
    init = cfg.get("init")
    return str(init.get("load", "all")) if isinstance(init, Mapping) else None


def check_source(cfg: Mapping[str, Any], source: Mapping[str, Any], where: str) -> None:
    """Planning-time check of an ``init`` against the source run's resolved config: the same
    architecture, and for ``load: trunk`` the same input normalization (when both are constants;
    ``normalize: dataset`` is compared on the weights when the run starts)."""
    if cfg["model"]["name"] != source["model"]["name"]:
        raise ConfigError(f"{where}: init.run {cfg['init']['run']} is a {source['model']['name']} but this run "
                          f"builds a {cfg['model']['name']}; its weights cannot be loaded")
    ours, theirs = cfg["model"]["normalize"], source["model"]["normalize"]
    if load_mode(cfg) == "trunk" and "dataset" not in (ours, theirs) and ours != theirs:
        raise ConfigError(f"{where}: init.load trunk: the source normalizes inputs with {theirs!r}, this run with "
                          f"{ours!r}; a trunk kept from another run must see inputs normalized as it was trained")


def source_checkpoint(cfg: Mapping[str, Any], runs_dir: str | Path) -> Path:
    """The file ``init`` names; a missing one is a one-line error naming the run and the path."""
    from .refs import checkpoint_file, run_dir

    init = cfg["init"]
    path = run_dir(init, runs_dir) / checkpoint_file(init)
    if not path.exists():
        raise ConfigError(f"run {cfg['name']}: init run {init['run']} has no checkpoint {path}; "
                          "train that run first (the DAG does, before this one)")
    return path


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


__all__ = ["apply_freeze", "check_source", "check_transfer", "head_hidden", "load_init", "source_checkpoint",
           "trainable_parameters"]
