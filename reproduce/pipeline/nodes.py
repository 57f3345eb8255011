"""The node graph at one scale: every run and analysis of every paper, named by its hash.

References resolve to upstream ids before hashing, so a change upstream gives
new ids downstream. Identity is the hash, across papers: the same training
declared under two names (or in two papers) is one node, named after the first
declaration met (papers in name order, entries in file order).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..config import config_hash, resolve_run
from ..errors import ConfigError
from ..speclang.merge import deep_merge, set_dotted
from .references import analysis_reference_slots, map_refs, run_reference_slots
from .scales import Scale
from .spec import PaperSpec


@dataclass
class RunNode:
    id: str
    paper: str
    name: str
    cfg: dict[str, Any]  # resolved at this scale; references hold ids
    deps: list[tuple[str, str]] = field(default_factory=list)  # ("run"|"analysis", id)
    names: list[str] = field(default_factory=list)  # every "paper/name" declaring this training


@dataclass
class AnalysisNode:
    id: str
    paper: str
    name: str
    kind: str
    params: dict[str, Any]  # resolved; references hold ids
    deps: list[tuple[str, str]] = field(default_factory=list)
    names: list[str] = field(default_factory=list)


def _hash(obj: Any, length: int = 8) -> str:
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


def _check_registries(where: str, cfg: Mapping[str, Any]) -> None:
    from ..data import DATASETS
    from ..methods import METHODS
    from ..models import MODELS

    method = METHODS.get(cfg["method"]["name"], where=f"{where}.method.name")
    from ..bounds import check_attacks

    check_attacks(cfg, method.attacks, where)
    unknown = sorted(set(cfg["method"]) - {"name"} - set(method.params))
    if unknown:
        raise ConfigError(f"{where}.method: unknown parameter(s) {', '.join(unknown)} for method "
                          f"{cfg['method']['name']!r}; allowed: {', '.join(sorted(method.params)) or '(none)'}")
    MODELS.get(cfg["model"]["name"], where=f"{where}.model.name")
    from ..train.eval_logs import check_protocol

    for i, e in enumerate(cfg.get("eval_logs") or []):  # a typo fails at load, not after an epoch
        check_protocol(e["protocol"], f"{where}.eval_logs[{i}].protocol")
    extra = [cfg["data"]["composite"]["dataset"]] if cfg["data"].get("composite") else []
    for ds in [cfg["data"]["primary"], *cfg["data"]["aux"], *extra]:
        DATASETS.get(ds, where=f"{where}.data")


def _first_run_name(ref: Any) -> str | None:
    """The run a reference parameter names (a name, ``{run: NAME}``, or the first of a list)."""
    if isinstance(ref, list):
        ref = ref[0] if ref else None
    if isinstance(ref, Mapping):
        ref = ref.get("run")
    return ref if isinstance(ref, str) else None


class Graph:
    """Runs and analyses of all specs at one scale, resolved and deduplicated by hash."""

    def __init__(self, specs: Mapping[str, PaperSpec], scale: Scale, check_registries: bool = True) -> None:
        self.specs, self.scale, self.check = specs, scale, check_registries
        self.runs: dict[str, RunNode] = {}
        self.analyses: dict[str, AnalysisNode] = {}
        self._run_ids: dict[tuple[str, str], str] = {}
        self._an_ids: dict[tuple[str, str], str] = {}
        self._busy: set[tuple[str, str, str]] = set()
        self._by_hash: dict[tuple[str, str], str] = {}
        # analyses whose runs lack a log they read, at a scale that builds only some artifacts (a
        # cpu scale switching eval logs off): an error only if something this scale builds needs them
        self.unbuildable: dict[str, str] = {}
        for paper, spec in sorted(specs.items()):
            for name in spec.runs:
                self.run_id(paper, name)
            for name in spec.analyses:
                self.analysis_id(paper, name)

    # --- ids
    @property
    def seeds_kept(self) -> int | None:
        """A scale may thin seed groups to their first k members (recorded in every output)."""
        return self.scale.seeds_kept

    def run_ids(self, paper: str, name: str) -> list[str]:
        """A run's id, or the ids of a seed group's members (thinned at scales that say so)."""
        members = self.specs[paper].members(name)
        if name in self.specs[paper].groups and self.seeds_kept:
            members = members[: self.seeds_kept]
        return [self.run_id(paper, m) for m in members]

    def analysis_ids(self, paper: str, name: str) -> list[str]:
        """An analysis's id, or the ids of a seed group's members."""
        spec = self.specs[paper]
        names = spec.analysis_groups.get(name) or [name]
        if name in spec.analysis_groups and self.seeds_kept:
            names = names[: self.seeds_kept]
        return [self.analysis_id(paper, n) for n in names]

    def run_id(self, paper: str, name: str) -> str:
        key = (paper, name)
        if key not in self._run_ids:
            self._enter("run", paper, name)
            self._run_ids[key] = self._resolve_run(paper, name)
            self._busy.discard(("run", paper, name))
        return self._run_ids[key]

    def analysis_id(self, paper: str, name: str) -> str:
        key = (paper, name)
        if key not in self._an_ids:
            self.specs[paper].check_analysis(name, "reference")
            self._enter("analysis", paper, name)
            self._an_ids[key] = self._resolve_analysis(paper, name)
            self._busy.discard(("analysis", paper, name))
        return self._an_ids[key]

    def _enter(self, kind: str, paper: str, name: str) -> None:
        # cycles are rejected when specs load; this guards specs built in code
        if (kind, paper, name) in self._busy:
            raise ConfigError(f"{self.specs[paper].path}: reference cycle through {kind}s.{name}")
        self._busy.add((kind, paper, name))

    def epoch_at_scale(self, paper: str, name: str, checkpoint: Any) -> Any:
        """``epoch_N`` of a run's paper schedule, moved to the same point of its schedule at this scale."""
        if not (isinstance(checkpoint, str) and checkpoint.startswith("epoch_") and checkpoint[6:].isdigit()):
            return checkpoint
        old = self.specs[paper].runs[name].cfg.get("epochs")
        new = self.runs[self.run_id(paper, name)].cfg["epochs"]
        if not old or old == new:
            return checkpoint
        from .scales import rescaled_epoch

        return f"epoch_{rescaled_epoch(int(checkpoint[6:]), int(old), int(new))}"

    def _checkpoints_at_scale(self, paper: str, kind: str, params: dict[str, Any]) -> None:
        from ..analyses import ANALYSES

        for place, run_param in getattr(ANALYSES.get(kind), "checkpoint_lists", {}).items():
            run = params.get(run_param)
            run = run.get("run") if isinstance(run, Mapping) else run
            if not isinstance(run, str) or run not in self.specs[paper].runs or not isinstance(params.get(place), list):
                continue
            moved = {ck: self.epoch_at_scale(paper, run, ck) for ck in params[place]}
            moved = {k: v for k, v in moved.items() if k != v}
            if moved:
                params[f"{place}_at_scale"] = moved

    def _epochs_at_scale(self, paper: str, kind: str, params: dict[str, Any], pinned: set[str]) -> None:
        """Epoch-valued parameters (the analysis's ``epoch_params``) moved to the same point of the
        schedule of the run they count epochs of, as milestones are; a value the scale sets stays."""
        from ..analyses import ANALYSES

        cls = ANALYSES.get(kind)
        for param, run_param in getattr(cls, "epoch_params", {}).items():
            value = params.get(param, cls.params.get(param))
            run = _first_run_name(params.get(run_param))
            if param in pinned or isinstance(value, bool) or not isinstance(value, int) or run is None:
                continue
            spec = self.specs[paper]
            member = spec.members(run)[0] if run in spec.groups else run
            if member not in spec.runs:
                continue
            moved = self.epoch_at_scale(paper, member, f"epoch_{value}")
            if moved != f"epoch_{value}":
                params[param] = int(moved[6:])

    def _data_at_scale(self, kind: str, params: dict[str, Any], deps: list[tuple[str, str]], pinned: set[str]) -> None:
        """The analysis's ``data_sized`` switch, on where this scale's data is smaller than the catalog's:
        the split it names, or the training pool of any run upstream (through analyses)."""
        from ..analyses import ANALYSES

        cls = ANALYSES.get(kind)
        flag = getattr(cls, "data_sized", None)
        if not flag or flag in pinned:
            return
        small = any(self.scale.fewer_images(ds, str(params.get("split") or "test")) for ds in cls.datasets(params))
        for rid in self._upstream_runs(deps):
            data = self.runs[rid].cfg["data"]
            small = small or self.scale.fewer_images(data["primary"], "train", data.get("pool"))
        if small:
            params[flag] = True

    def _upstream_runs(self, deps: list[tuple[str, str]]) -> list[str]:
        out, todo, seen = [], list(deps), set()
        while todo:
            kind, nid = todo.pop()
            if (kind, nid) in seen:
                continue
            seen.add((kind, nid))
            if kind == "run":
                out.append(nid)
            elif nid in self.analyses:
                todo.extend(self.analyses[nid].deps)
        return sorted(out)

    def _ref_fn(self, paper: str, deps: list[tuple[str, str]]):
        def fn(kind: str, name: str) -> Any:
            if kind == "run":
                ids = self.run_ids(paper, name)
                deps.extend(("run", i) for i in ids)
                return ids if name in self.specs[paper].groups else ids[0]
            aids = self.analysis_ids(paper, name)
            deps.extend(("analysis", a) for a in aids)
            return aids if name in self.specs[paper].analysis_groups else aids[0]
        fn.epoch_at = lambda name, ck: self.epoch_at_scale(paper, name, ck)  # type: ignore[attr-defined]
        return fn

    def _resolve_run(self, paper: str, name: str) -> str:
        spec = self.specs[paper]
        decl = spec.runs[name]
        cfg = {**deep_merge(decl.cfg, {}), "scale": self.scale.name} if decl.every_scale else self.scale.apply(decl.cfg, paper, name)
        deps: list[tuple[str, str]] = []
        for place, value, typ in list(run_reference_slots(cfg, self.check)):
            inline = self._static_value(paper, value)
            set_dotted(cfg, place, inline if inline is not None else
                       map_refs(value, typ, self._ref_fn(paper, deps), f"{spec.path}: runs.{name}.{place}"))
        if self.check and cfg.get("method", {}).get("name"):
            from ..methods import METHODS

            if cfg["method"]["name"] in METHODS:
                cfg["method"] = METHODS.get(cfg["method"]["name"]).canonical(dict(cfg["method"]))
        where = f"{spec.path}: runs.{name} at scale {self.scale.name}"
        resolved = resolve_run(cfg, where=where)
        if self.check:
            _check_registries(f"{spec.path}: runs.{name}", resolved)
        init = resolved.get("init")
        if isinstance(init, Mapping) and init.get("run") in self.runs:  # same trunk as the source (transfer)
            from ..config.transfer import check_source

            check_source(resolved, self.runs[init["run"]].cfg, where)
        h = config_hash(resolved)
        if ("run", h) in self._by_hash:
            rid = self._by_hash[("run", h)]
            self.runs[rid].names.append(f"{paper}/{name}")
            return rid
        rid = self._by_hash[("run", h)] = f"{name}-{h}"
        self.runs[rid] = RunNode(rid, paper, name, resolved, list(dict.fromkeys(deps)), [f"{paper}/{name}"])
        return rid

    def _static_value(self, paper: str, value: Any) -> Any:
        """``{analysis: NAME, key: K}`` of an analysis whose values need no inputs (a seeded class
        draw): the value itself, so the run hashes what it trains on, not how it was named; else None."""
        if not (self.check and isinstance(value, Mapping) and isinstance(value.get("analysis"), str)):
            return None
        spec = self.specs[paper]
        if value["analysis"] not in spec.analyses:  # a group, or unknown (reported elsewhere)
            return None
        from ..analyses import ANALYSES

        node = self.analyses[self.analysis_id(paper, value["analysis"])]
        values = ANALYSES.get(node.kind).static_values(node.params)
        if values is None:
            return None
        key = value.get("key", "value")
        if key not in values:
            raise ConfigError(f"{spec.path}: analyses.{value['analysis']} has no value {key!r}; "
                              f"has {', '.join(sorted(values))}")
        return values[key]

    def _resolve_analysis(self, paper: str, name: str) -> str:
        spec = self.specs[paper]
        decl = spec.analyses[name]
        pinned = self.scale.analysis_params(decl.kind, paper)
        params = deep_merge(decl.params, pinned)
        if self.check:
            from ..analyses import ANALYSES

            params = ANALYSES.get(decl.kind).at_scale(params, self.scale)
            self._epochs_at_scale(paper, decl.kind, params, set(pinned))
        self._checkpoints_at_scale(paper, decl.kind, params)
        deps: list[tuple[str, str]] = []
        if self.check:
            for place, value, typ in list(analysis_reference_slots(decl.kind, params)):
                params[place] = map_refs(value, typ, self._ref_fn(paper, deps), f"{spec.path}: analyses.{name}.{place}")
        if self.check:
            self._data_at_scale(decl.kind, params, deps, set(pinned))
        problem = None
        if self.check:
            try:
                self._check_observers(spec.path, name, decl.kind, params, deps)
            except ConfigError as e:
                if self.scale.selected is None:
                    raise
                problem = str(e)
        h = _hash({"kind": decl.kind, "params": params, "scale": self.scale.name})
        if ("analysis", h) in self._by_hash:
            aid = self._by_hash[("analysis", h)]
            self.analyses[aid].names.append(f"{paper}/{name}")
            return aid
        aid = self._by_hash[("analysis", h)] = f"{name}-{h}"
        if problem:
            self.unbuildable[aid] = problem
        self.analyses[aid] = AnalysisNode(aid, paper, name, decl.kind, params, list(dict.fromkeys(deps)),
                                          [f"{paper}/{name}"])
        return aid

    def _check_observers(self, path: Any, name: str, kind: str, params: Mapping[str, Any],
                         deps: list[tuple[str, str]]) -> None:
        """An analysis reading a per-instance or eval log fails at load time, not after training."""
        from fnmatch import fnmatchcase

        from ..analyses import ANALYSES

        for need in ANALYSES.get(kind).required_observers(params):
            for k, rid in deps:
                cfg = self.runs[rid].cfg if k == "run" and rid in self.runs else None
                if cfg is None:
                    continue
                if need == "per_instance" and not cfg.get("log_per_instance"):
                    raise ConfigError(f"{path}: analyses.{name} needs run {rid} with log_per_instance: true")
                if need.startswith("eval_log:") and not any(fnmatchcase(e["name"], need[9:])
                                                            for e in cfg.get("eval_logs") or []):
                    raise ConfigError(f"{path}: analyses.{name} reads eval log {need[9:]!r}, which run {rid} "
                                      "does not declare in eval_logs")


def run_config(spec: PaperSpec, name: str, scale: Scale) -> dict[str, Any]:
    """One run's resolved config at a scale (references resolved within this paper)."""
    graphs = spec.__dict__.setdefault("_graphs", {})
    if scale.name not in graphs:
        graphs[scale.name] = Graph({spec.paper: spec}, scale)
    g = graphs[scale.name]
    return g.runs[g.run_id(spec.paper, name)].cfg
