"""Scales: named overrides of every spec (``paper`` is the papers' exact settings)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from ..errors import ConfigError
from ..io import read_yaml
from ..speclang.merge import deep_merge
from ..speclang.validate import validate_schema

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
    def own_data(self) -> bool:
        """Data that lives under work_dir/<scale> (generated, or imported from the scale's folders),
        never in the shared data_dir of real prepared datasets."""
        return self.raw["data"]["source"] in ("generated", "folders")

    @property
    def datasets(self) -> Mapping[str, Any]:
        """Generated datasets by name: listed, or (``shape_true``) every catalog dataset with its real shape."""
        d = self.raw["data"]
        return shape_true_datasets(d["shape_true"]) if d.get("shape_true") else d.get("datasets", {})

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
        if k == 1:  # one representative: the first value
            return index == 0
        return index in {round(j * (length - 1) / (k - 1)) for j in range(k)}

    @property
    def selected(self) -> Mapping[str, Any] | None:
        """``artifacts:`` (``paper/name`` -> ``{rows: REGEX}``): the only artifacts this scale builds."""
        return self.raw.get("artifacts")

    def builds(self, paper: str, name: str) -> bool:
        return self.selected is None or f"{paper}/{name}" in self.selected

    def row_filter(self, paper: str, name: str) -> Any:
        """A predicate on row ids (``rows:`` regex of the artifact's entry), or None to keep every row."""
        return self._matcher(paper, name, "rows")

    def column_filter(self, paper: str, name: str) -> Any:
        """A predicate on column names (``columns:`` regex of the artifact's entry), or None."""
        return self._matcher(paper, name, "columns")

    def _matcher(self, paper: str, name: str, key: str) -> Any:
        """From ``artifacts:`` (which also limits what is built), else from ``filters:`` (``paper/glob`` ->
        ``{rows, columns}``: fewer rows of artifacts a scale still builds, its smoke DAG's size)."""
        pattern = ((self.selected or {}).get(f"{paper}/{name}") or {}).get(key)
        if pattern is None:
            from fnmatch import fnmatchcase

            hits = [v for k, v in (self.raw.get("filters") or {}).items() if fnmatchcase(f"{paper}/{name}", k)]
            pattern = (hits[0] or {}).get(key) if hits else None
        if pattern is None:
            return None
        rx = re.compile(pattern)
        return lambda text: rx.search(text) is not None

    def protocol_to_run(self, protocol: str) -> str:
        return self.eval.get("substitute", {}).get(protocol, protocol)

    def apply(self, run: Mapping[str, Any], paper: str | None = None) -> dict[str, Any]:
        """The run config at this scale, before the engine fills defaults."""
        cfg = deep_merge(run, self.raw.get("run_overrides", {}))
        if paper in self.raw.get("paper_overrides", {}):  # one paper's runs need more data or epochs
            cfg = deep_merge(cfg, self.raw["paper_overrides"][paper])
        swap = self.raw.get("models", {}).get(cfg.get("model", {}).get("name"))
        if swap:  # a cheaper architecture in place of the paper's (a budget scale says so in its outputs)
            cfg["model"] = {**cfg["model"], "name": swap}
        method = cfg.get("method", {}).get("name")
        extra = self.raw.get("method_overrides", {}).get(method)
        if extra:
            cfg["method"] = deep_merge(cfg["method"], extra)
        if self.raw.get("rescale_epochs") and "epochs" in run and cfg.get("epochs") != run["epochs"]:
            fixed = "milestones" in self.raw.get("run_overrides", {}).get("schedule", {})
            _rescale(cfg, run, int(run["epochs"]), int(cfg["epochs"]), fixed)
        sel = cfg.get("selection") or {}
        if sel.get("protocol") and self.protocol_to_run(sel["protocol"]) != sel["protocol"]:
            # the best-checkpoint rule runs the scale's stand-in too (its name enters the run id)
            cfg["selection"] = {**sel, "protocol": self.protocol_to_run(sel["protocol"])}
        cap = self.raw.get("eval_logs_n")
        if cap and cfg.get("eval_logs"):  # per-epoch logs on the first n of each split at a small scale
            cfg["eval_logs"] = [{**e, "n": e.get("n") or int(cap)} for e in cfg["eval_logs"]]
        cfg["scale"] = self.name
        return cfg


def shape_true_datasets(sizes: Mapping[str, int]) -> dict[str, dict[str, Any]]:
    """Every catalog dataset as its real self in all but content: class count, image size,
    channels and split names (``prepare-data`` takes those from the catalog), ``n_train`` and
    ``n_test`` images per split. Each gets its own domain so no two look alike."""
    from ..data.catalog import DATASETS

    out = {}
    for i, name in enumerate(sorted(DATASETS)):
        info = DATASETS.get(name)
        if not info.generated:
            out[name] = {"classes": info.num_classes, "size": info.image_size, "channels": info.channels,
                         "n_train": int(sizes["n_train"]), "n_test": int(sizes["n_test"]), "domain": i,
                         "contrast": 2}
    return out


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
    at = (run.get("selection") or {}).get("at_epochs")
    if at and cfg.get("selection", {}).get("at_epochs") == at:  # the same points of the shorter schedule
        cfg["selection"]["at_epochs"] = sorted({rescaled_epoch(int(e), old, new) if int(e) > 0 else int(e) for e in at})
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
