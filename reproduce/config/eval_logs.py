"""The ``eval_logs`` section of a run config: its entries checked and normalised (the schema's own check).

What a log records and how it is computed is ``reproduce.train.eval_logs``.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from ..errors import ConfigError

SPLITS = ("test", "holdout")
SELECTION = "selection"
_NAME = re.compile(r"^[A-Za-z0-9_\-]+$")  # no dots: artifact keys read by_log.<name>.D
_KEYS = ("name", "split", "protocol", "n", "dataset", "corruption", "severity")


def check_eval_logs(cfg: dict[str, Any], where: str) -> list[dict[str, Any]]:
    """Validated, normalised entries (``protocol: selection`` resolved); raises a one-line ConfigError."""
    logs = cfg.get("eval_logs")
    if not isinstance(logs, list):
        raise ConfigError(f"{where}: eval_logs must be a list of {{name, split, protocol}} entries, got {logs!r}")
    out, seen = [], set()
    for i, e in _expanded(logs, where):
        at = f"{where}: eval_logs[{i}]"
        unknown = sorted(set(e) - set(_KEYS))
        if unknown:
            raise ConfigError(f"{at}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(_KEYS)}")
        name = e.get("name")
        if not isinstance(name, str) or not _NAME.match(name) or name in seen:
            raise ConfigError(f"{at}.name: a unique name of letters, digits, '_', '-' is required, got {name!r}")
        seen.add(name)
        if e.get("split") not in SPLITS:
            raise ConfigError(f"{at}.split must be one of {', '.join(SPLITS)}, got {e.get('split')!r}")
        if e["split"] == "holdout" and not cfg["data"].get("holdout"):
            raise ConfigError(f"{at}.split: holdout needs data.holdout in the run config")
        proto = e.get("protocol")
        if proto == SELECTION:
            proto = cfg["selection"].get("protocol")
            if not proto:
                raise ConfigError(f"{at}.protocol: 'selection' but the run has no selection.protocol")
        if not isinstance(proto, str) or not proto:
            raise ConfigError(f"{at}.protocol: a protocol id is required, got {proto!r}")
        n = e.get("n")
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise ConfigError(f"{at}.n must be a positive integer, got {n!r}")
        entry = {"name": name, "split": e["split"], "protocol": proto, "n": n}
        if any(k in e for k in ("dataset", "corruption", "severity")):
            entry.update(_corrupted(e, at))
        elif e["split"] == "test":
            _check_test_split(cfg["data"]["primary"], at)
        out.append(entry)
    return out


def _expanded(logs: list[Any], where: str) -> list[tuple[int, Mapping[str, Any]]]:
    """Entries whose corruption and/or severity are lists stand for one log per pair, ``<name>-<c>-<s>``."""
    out = []
    for i, e in enumerate(logs):
        if not isinstance(e, Mapping):
            raise ConfigError(f"{where}: eval_logs[{i}]: expected a mapping, got {e!r}")
        cs, ss = e.get("corruption"), e.get("severity")
        if not isinstance(cs, list) and not isinstance(ss, list):
            out.append((i, e))
            continue
        for c in cs if isinstance(cs, list) else [cs]:
            for sv in ss if isinstance(ss, list) else [ss]:
                out.append((i, {**e, "name": f"{e.get('name')}-{c}-{sv}", "corruption": c, "severity": sv}))
    return out


def _check_test_split(primary: str, at: str) -> None:
    from ..data.catalog import DATASETS

    if primary in DATASETS and "test" not in DATASETS.get(primary).splits:  # ImgNet100: train/val only
        raise ConfigError(f"{at}.split: dataset {primary!r} has no test split (reproduce/data/catalog/)")


def _corrupted(e: Mapping[str, Any], at: str) -> dict[str, Any]:
    ds, c, s = e.get("dataset"), e.get("corruption"), e.get("severity")
    if not isinstance(ds, str) or not isinstance(c, str) or e.get("split") != "test":
        raise ConfigError(f"{at}: a corrupted log needs dataset, corruption and severity, and split: test")
    if isinstance(s, bool) or not isinstance(s, int) or not 1 <= s <= 5:
        raise ConfigError(f"{at}.severity must be an integer 1-5, got {s!r}")
    from ..data.catalog import DATASETS

    if ds in DATASETS and f"{c}-{s}" not in DATASETS.get(ds).splits:
        raise ConfigError(f"{at}.corruption: {ds!r} has no split {c}-{s} (reproduce/data/catalog/)")
    return {"dataset": ds, "corruption": c, "severity": s}
