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
from .overrides import parse_overrides, patch_analysis, patch_run

SCALES_DIR = Path("config/scales")


# the keys a scale had before the eight (issue 19): a file still using one is told where it went
_FORMER_KEYS = {"run_overrides": "overrides (an entry without `when`)", "paper_overrides": "overrides (when: {paper: P})",
                "method_overrides": "overrides (when: {method: M}, set: {method: {...}})",
                "models": "overrides (when: {model: M}, set: {model: {name: N}})",
                "analysis_overrides": "overrides (when: {analysis: KIND})", "artifacts": "select.artifacts",
                "filters": "select.filters", "thin": "select.seeds and select.sweeps", "eval_logs_n": "eval.n",
                "rescale_epochs": "nothing: a changed epoch count always rescales epoch-valued settings"}
EVAL_CAPS = ("protocols", "selection", "eval_logs")


@dataclass(frozen=True)
class Scale:
    name: str
    path: Path
    raw: Mapping[str, Any]

    def __post_init__(self) -> None:
        # parsed (and checked) once, however the scale was made: from its file or in code
        object.__setattr__(self, "overrides", parse_overrides(self.raw.get("overrides") or [], str(self.path)))

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

    @property
    def select(self) -> Mapping[str, Any]:
        return self.raw.get("select") or {}

    @property
    def seeds_kept(self) -> int | None:
        """``select: {seeds: k}``: the first k members of each seed group (recorded in every output)."""
        k = self.select.get("seeds")
        return int(k) if k else None

    def eval_cap(self, what: str) -> int | None:
        """``eval.n`` where it caps ``what`` (protocols, selection or eval_logs), else None."""
        n = self.eval.get("n")
        return int(n) if n and what in self.eval.get("caps", EVAL_CAPS) else None

    def keeps(self, index: int, length: int) -> bool:
        """Is position ``index`` of a ``length``-value sweep kept? ``select: {sweeps: k}`` keeps k
        evenly spaced values, both ends included (a curve's span survives); other scales keep all."""
        k = self.select.get("sweeps")
        if not k or length <= k:
            return True
        if k == 1:  # one representative: the first value
            return index == 0
        return index in {round(j * (length - 1) / (k - 1)) for j in range(k)}

    @property
    def selected(self) -> Mapping[str, Any] | None:
        """``select.artifacts`` (``paper/name`` -> ``{rows: REGEX}``): the only artifacts this scale builds."""
        return self.select.get("artifacts")

    def builds(self, paper: str, name: str) -> bool:
        return self.selected is None or f"{paper}/{name}" in self.selected

    def row_filter(self, paper: str, name: str) -> Any:
        """A predicate on row ids (``rows:`` regex of the artifact's entry), or None to keep every row."""
        return self._matcher(paper, name, "rows")

    def column_filter(self, paper: str, name: str) -> Any:
        """A predicate on column names (``columns:`` regex of the artifact's entry), or None."""
        return self._matcher(paper, name, "columns")

    def _matcher(self, paper: str, name: str, key: str) -> Any:
        """From ``select.artifacts`` (which also limits what is built), else from ``select.filters``
        (``paper/glob`` -> ``{rows, columns}``: fewer rows of artifacts a scale still builds)."""
        pattern = ((self.selected or {}).get(f"{paper}/{name}") or {}).get(key)
        if pattern is None:
            from fnmatch import fnmatchcase

            hits = [v for k, v in (self.select.get("filters") or {}).items() if fnmatchcase(f"{paper}/{name}", k)]
            pattern = (hits[0] or {}).get(key) if hits else None
        if pattern is None:
            return None
        rx = re.compile(pattern)
        return lambda text: rx.search(text) is not None

    def protocol_to_run(self, protocol: str) -> str:
        """The protocol this scale runs for ``protocol``: its stand-in, cut to ``eval.iterations``."""
        name = self.eval.get("substitute", {}).get(protocol, protocol)
        if self.iterations:
            from ..evaluate.catalog import capped

            name = capped(name, self.iterations)
        return name

    @property
    def iterations(self) -> int | None:
        """``eval.iterations``: the most iterations any attack runs at this scale."""
        n = self.eval.get("iterations")
        return int(n) if n else None

    def fewer_images(self, dataset: str, split: str, pool: int | None = None) -> bool:
        """Has ``split`` of ``dataset`` fewer images here (generated, or cut to a ``pool``) than the catalog's?"""
        from ..data.catalog import DATASETS
        from ..costs.memory import split_images

        full = DATASETS.get(dataset).split_sizes.get(split) if dataset in DATASETS else None
        here = split_images(dataset, split, self)
        if not full or here is None:
            return False
        return min(int(here), int(pool)) < int(full) if pool else int(here) < int(full)

    def analysis_params(self, kind: str, paper: str | None = None) -> dict[str, Any]:
        """The parameters this scale sets for an analysis of ``kind`` (``overrides`` with ``analysis``)."""
        return patch_analysis(kind, paper, self.overrides)

    def apply(self, run: Mapping[str, Any], paper: str | None = None, name: str | None = None) -> dict[str, Any]:
        """The run config at this scale, before the engine fills defaults."""
        cfg, fixed = patch_run(deep_merge(run, {}), self.overrides, paper, name)
        _follow_batch(cfg, run, fixed)
        if "epochs" in run and cfg.get("epochs") != run["epochs"]:
            # a shorter schedule keeps its milestones, warm-ups and snapshots at the same points
            _rescale(cfg, run, int(run["epochs"]), int(cfg["epochs"]), "schedule.milestones" in fixed)
        sel = cfg.get("selection") or {}
        if sel.get("protocol") and self.protocol_to_run(sel["protocol"]) != sel["protocol"]:
            # the best-checkpoint rule runs the scale's stand-in too (its name enters the run id)
            cfg["selection"] = sel = {**sel, "protocol": self.protocol_to_run(sel["protocol"])}
        cap = self.eval_cap("selection")
        if cap:  # the best-checkpoint rule on the first n of its split
            cfg["selection"] = {**sel, "n": min(cap, int(sel["n"])) if sel.get("n") else cap}
        cap = self.eval_cap("eval_logs")
        if cap and cfg.get("eval_logs"):  # per-epoch logs on the first n of each split
            cfg["eval_logs"] = [{**e, "n": min(cap, int(e["n"])) if e.get("n") else cap} for e in cfg["eval_logs"]]
        if self.iterations:
            _cut_attacks(cfg, self.iterations, self.protocol_to_run)
        if isinstance(cfg.get("import"), Mapping):
            _imports(cfg, self.raw["data"].get("imports", "file"))
        cfg["scale"] = self.name
        return cfg


def _follow_batch(cfg: dict[str, Any], run: Mapping[str, Any], fixed: set[str]) -> None:
    """A smaller batch takes a proportionally smaller step (the linear scaling rule), unless the scale
    sets the learning rate itself: the paper's lr on a batch of 2 is 64-128 times its step per image,
    and ResNet-50 at lr 0.1 on 2 images diverges in two steps (the shapes scale's transfer runs did)."""
    from ..config import RUN_DEFAULTS

    old, new = run.get("batch_size", RUN_DEFAULTS["batch_size"]), cfg.get("batch_size", RUN_DEFAULTS["batch_size"])
    if old == new or "optim.lr" in fixed:
        return
    lr = (run.get("optim") or {}).get("lr", RUN_DEFAULTS["optim"]["lr"])
    cfg["optim"] = {**(cfg.get("optim") or {}), "lr": float(lr) * int(new) / int(old)}


def _imports(cfg: dict[str, Any], mode: str) -> None:
    """``data.imports``: a stand-in trains the recipe (its references kept, so the DAG keeps its shape);
    a file import depends on no run of ours, so the recipe's ``init`` is dropped from it."""
    if mode == "stand_in":
        cfg["import"] = {**cfg["import"], "stand_in": True}
    else:
        cfg.pop("init", None)


def _cut_attacks(cfg: dict[str, Any], n: int, to_run: Any) -> None:
    """``eval.iterations``: the training attack and every per-epoch eval log at most ``n`` iterations."""
    from ..config import RUN_DEFAULTS

    # a spec that leaves attack.steps to the default (10) is cut too
    steps = (cfg.get("attack") or {}).get("steps", RUN_DEFAULTS["attack"]["steps"])
    if isinstance(steps, int) and steps > n:
        cfg["attack"] = {**(cfg.get("attack") or {}), "steps": n}
    if cfg.get("eval_logs"):
        from ..evaluate.catalog import PROTOCOLS

        # "selection" names the best-checkpoint rule's protocol, cut with it
        cfg["eval_logs"] = [{**e, "protocol": to_run(e["protocol"])} if e.get("protocol") in PROTOCOLS else e
                            for e in cfg["eval_logs"]]


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
    method = run.get("method", {})
    for key in _epoch_params(method.get("name")):
        w = method.get(key)
        if w and not isinstance(w, bool):
            cfg["method"][key] = max(1, math.floor(w * ratio + 0.5))


def _epoch_params(name: Any) -> tuple[str, ...]:
    """The method's epoch-valued params (warm-ups); an unregistered name keeps the old rule's key."""
    from ..methods import METHODS

    return METHODS.get(name).epoch_params if name in METHODS else ("warmup_epochs",)


@lru_cache(maxsize=None)
def load_scale(name: str, scales_dir: str = str(SCALES_DIR)) -> Scale:
    path = Path(scales_dir) / f"{name}.yaml"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in Path(scales_dir).glob("*.yaml")))
        raise ConfigError(f"unknown scale {name!r}: {path} does not exist; known scales: {known}")
    raw = read_yaml(path)
    return parse_scale(raw, name, path)


def parse_scale(raw: Any, name: str, path: Path) -> Scale:
    """A scale from its file's content, every key checked (one line naming the file and the key)."""
    if isinstance(raw, Mapping):
        former = [k for k in raw if k in _FORMER_KEYS]
        if former:
            raise ConfigError(f"{path}: key {former[0]!r} is no longer a scale key; it became {_FORMER_KEYS[former[0]]}")
    validate_schema(raw, "scale", str(path))
    if raw["scale"] != name:
        raise ConfigError(f"{path}: key 'scale' is {raw['scale']!r} but the file is named {name!r}")
    return Scale(name=name, path=path, raw=raw)
