"""Sane ranges for every number a user sets in a run config, with the limit named in the error.

Checked when a config is resolved, i.e. when the DAG loads and before any job or directory
exists: ``attack.eps: .inf`` or ``1e9`` would otherwise train to completion, ``steps: -3`` train
"adversarially" without an attack step, and ``epochs: 1000000000`` plan millions of GPU-hours.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from .errors import ConfigError

# images are in [0, 1]: no L-inf radius or step above 1 means anything; the papers' largest L2
# radius is 3.0 on 224x224 ImageNet images, and 100 still leaves room for any image size in use
EPS_LIMIT = {"linf": 1.0, "l2": 100.0}
MAX_STEPS = 10_000
MAX_EPOCHS = 10_000
MAX_BATCH = 65_536
MAX_LR = 10.0


def _num(v: Any, where: str) -> float:
    from .speclang.numbers import parse_number

    x = parse_number(v, where)
    if not math.isfinite(x):
        raise ConfigError(f"{where}: must be a finite number, got {v!r}")
    return x


def _int(v: Any, where: str, low: int, high: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
        raise ConfigError(f"{where}: must be an integer in [{low}, {high:,}], got {v!r}")
    return v


def _within(x: float, where: str, low: float, high: float, value: Any, open_low: bool = False) -> None:
    if not (low < x if open_low else low <= x) or x > high:
        bracket = "(" if open_low else "["
        raise ConfigError(f"{where}: must be in {bracket}{low:g}, {high:g}], got {value!r}")


def check_bounds(cfg: Mapping[str, Any], where: str) -> None:
    """Every user-set number of a resolved run config within its range (ConfigError naming key, value
    and limit)."""
    a = cfg["attack"]
    if a["norm"] not in EPS_LIMIT:
        raise ConfigError(f"{where}: attack.norm must be one of {', '.join(EPS_LIMIT)}, got {a['norm']!r}")
    limit = EPS_LIMIT[a["norm"]]
    for key in ("eps", "step_size"):
        _within(_num(a[key], f"{where}: attack.{key}"), f"{where}: attack.{key} ({a['norm']})", 0.0, limit, a[key])
    _int(a["steps"], f"{where}: attack.steps", 0, MAX_STEPS)
    o = cfg["optim"]
    _within(_num(o["lr"], f"{where}: optim.lr"), f"{where}: optim.lr", 0.0, MAX_LR, o["lr"], open_low=True)
    _within(_num(o.get("momentum", 0), f"{where}: optim.momentum"), f"{where}: optim.momentum", 0.0, 1.0,
            o.get("momentum"))
    _within(_num(o.get("weight_decay", 0), f"{where}: optim.weight_decay"), f"{where}: optim.weight_decay",
            0.0, 1.0, o.get("weight_decay"))
    _int(cfg["epochs"], f"{where}: epochs", 1, MAX_EPOCHS)
    _int(cfg["batch_size"], f"{where}: batch_size", 1, MAX_BATCH)
    _int(cfg["seed"], f"{where}: seed", 0, 2**31 - 1)
    sel = cfg["selection"]
    if sel.get("n") is not None:
        _int(sel["n"], f"{where}: selection.n", 1, 10_000_000)
    if sel.get("every") is not None:
        _int(sel["every"], f"{where}: selection.every", 1, MAX_EPOCHS)
    for i, e in enumerate(cfg.get("eval_logs") or []):
        if isinstance(e, Mapping) and e.get("n") is not None:
            _int(e["n"], f"{where}: eval_logs[{i}].n", 1, 10_000_000)
    n = cfg["data"].get("n_train")
    if n is not None:
        _int(n, f"{where}: data.n_train", 1, 100_000_000)


def check_attacks(cfg: Mapping[str, Any], attacks: bool, where: str) -> None:
    """A method that trains on attacked inputs needs at least one attack step."""
    if attacks and int(cfg["attack"]["steps"]) < 1:
        raise ConfigError(f"{where}: method {cfg['method']['name']!r} trains on adversarial examples, so "
                          f"attack.steps must be >= 1, got {cfg['attack']['steps']!r}")
