"""``init``, ``freeze`` and ``model.head`` of a run config: their checks and readers (the schema's own).

Loading the weights ``init`` names is ``reproduce.train.transfer``.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..errors import ConfigError
from .references import checkpoint_file

INIT_KEYS = ("run", "checkpoint", "load")
LOADS = ("all", "trunk")
FREEZES = ("trunk",)
HEAD_KEYS = ("hidden",)


def check_transfer(cfg: Mapping[str, Any], where: str) -> None:
    """``init``, ``freeze`` and ``model.head`` of a resolved run config, one line per mistake."""
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
