"""Scales: named overrides of every spec (``paper`` is the papers' exact settings)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from ..errors import ConfigError
from ..io import read_yaml
from .merge import deep_merge
from .validate import validate_schema

SCALES_DIR = Path("config/scales")


@dataclass(frozen=True)
class Scale:
    name: str
    path: Path
    raw: Mapping[str, Any]

    @property
    def comparable(self) -> bool:
        return bool(self.raw["comparable"])

    @property
    def generated(self) -> bool:
        return self.raw["data"]["source"] == "generated"

    @property
    def datasets(self) -> Mapping[str, Any]:
        return self.raw["data"].get("datasets", {})

    @property
    def eval(self) -> Mapping[str, Any]:
        return self.raw.get("eval", {})

    @property
    def resources(self) -> Mapping[str, Any]:
        return self.raw.get("resources", {})

    def keeps(self, index: int, length: int) -> bool:
        """Is position ``index`` of a ``length``-value sweep kept? ``thin: {sweeps: k}`` keeps k
        evenly spaced values, both ends included (a curve's span survives); other scales keep all."""
        k = (self.raw.get("thin") or {}).get("sweeps")
        if not k or length <= k:
            return True
        return index in {round(j * (length - 1) / (k - 1)) for j in range(k)}

    def protocol_to_run(self, protocol: str) -> str:
        return self.eval.get("substitute", {}).get(protocol, protocol)

    def apply(self, run: Mapping[str, Any]) -> dict[str, Any]:
        """The run config at this scale, before the engine fills defaults."""
        cfg = deep_merge(run, self.raw.get("run_overrides", {}))
        method = cfg.get("method", {}).get("name")
        extra = self.raw.get("method_overrides", {}).get(method)
        if extra:
            cfg["method"] = deep_merge(cfg["method"], extra)
        if self.raw.get("rescale_epochs") and "epochs" in run and cfg.get("epochs") != run["epochs"]:
            fixed = "milestones" in self.raw.get("run_overrides", {}).get("schedule", {})
            _rescale(cfg, run, int(run["epochs"]), int(cfg["epochs"]), fixed)
        cfg["scale"] = self.name
        return cfg


def rescaled_epoch(epoch: int, old: int, new: int) -> int:
    """Where epoch ``epoch`` of an ``old``-epoch schedule falls in a ``new``-epoch one (0 stays 0)."""
    return 0 if epoch == 0 else min(new, max(1, math.floor(epoch * new / old + 0.5)))


def _rescale(cfg: dict[str, Any], run: Mapping[str, Any], old: int, new: int, fixed: bool) -> None:
    # Absolute epoch milestones (TRADES' 100/105 of 110) keep their place in the
    # schedule; fractions (0.6, 0.9) already do. A warm-up stays at least one epoch.
    ratio = new / old
    sched = run.get("schedule", {})
    ms = sched.get("milestones")
    if ms and not fixed and not all(0 < m < 1 for m in ms):
        cfg.setdefault("schedule", {})["milestones"] = [max(1, round(m * ratio)) for m in ms]
    snaps = run.get("snapshots")
    if snaps:  # snapshot k of the paper's schedule is the one at the same point of the shorter one
        cfg["snapshots"] = sorted({rescaled_epoch(int(e), old, new) for e in snaps})
    w = run.get("method", {}).get("warmup_epochs")
    if w:
        cfg["method"]["warmup_epochs"] = max(1, math.floor(w * ratio + 0.5))


@lru_cache(maxsize=None)
def load_scale(name: str, scales_dir: str = str(SCALES_DIR)) -> Scale:
    path = Path(scales_dir) / f"{name}.yaml"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in Path(scales_dir).glob("*.yaml")))
        raise ConfigError(f"unknown scale {name!r}: {path} does not exist; known scales: {known}")
    raw = read_yaml(path)
    validate_schema(raw, "scale", str(path))
    if raw["scale"] != name:
        raise ConfigError(f"{path}: key 'scale' is {raw['scale']!r} but the file is named {name!r}")
    return Scale(name=name, path=path, raw=raw)
