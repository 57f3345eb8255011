"""Paper specs: strict loading of pipelines/<paper>/spec.yaml (+ includes) into named nodes.

A spec declares runs, analyses and artifacts by name. Names are checked here
(unknown references, cycles, collisions), independently of any scale; ids are
given per scale by :mod:`reproduce.pipeline.nodes`.
"""

from __future__ import annotations

import re

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..errors import ConfigError
from ..io import read_yaml
from ..speclang.expand import expand_entries
from ..speclang.merge import deep_merge, set_dotted
from ..speclang.validate import validate_schema

PIPELINES_DIR = Path("pipelines")
RUN_META_KEYS = ("presets", "choice", "from", "set", "every_scale", "_vars", "_group", "_value")
SPEC_KEYS = ("paper", "title", "sources", "notes", "include", "presets", "protocols", "protocol_sets", "runs",
             "analyses", "artifacts")
PROTOCOL_FIELDS = ("kind", "norm", "eps", "step_size", "steps", "restarts", "random_start", "version", "attacks",
                   "targets")


@dataclass
class RunDecl:
    name: str
    cfg: dict[str, Any]  # paper-scale config before the engine's defaults; references hold names
    choice: str = ""
    group: str | None = None  # the seed group this run belongs to (``name`` without ``-s<seed>``)
    every_scale: bool = False  # cheap enough (a CPU toy) to run at its paper settings at every scale


@dataclass
class AnalysisDecl:
    name: str
    kind: str
    params: dict[str, Any]  # references hold names
    choice: str = ""
    group: str | None = None


@dataclass
class PaperSpec:
    paper: str
    title: str
    path: Path
    runs: dict[str, RunDecl]
    analyses: dict[str, AnalysisDecl]
    groups: dict[str, list[str]]  # seed group -> member run names
    protocol_sets: dict[str, dict[str, str]]
    artifacts: dict[str, Any] = field(default_factory=dict)  # name -> reproduce.artifacts.Artifact
    analysis_groups: dict[str, list[str]] = field(default_factory=dict)
    raw: Mapping[str, Any] = field(repr=False, default_factory=dict)

    @property
    def choices(self) -> dict[str, str]:
        return {n: r.choice for n, r in self.runs.items() if r.choice}

    def members(self, name: str, where: str = "") -> list[str]:
        """A run name, or a seed group's members."""
        if name in self.runs:
            return [name]
        if name in self.groups:
            return list(self.groups[name])
        raise ConfigError(f"{self.path}: {where or 'reference'} names unknown run {name!r}")

    def check_analysis(self, name: str, where: str) -> str:
        if name not in self.analyses and name not in self.analysis_groups:
            raise ConfigError(f"{self.path}: {where} names unknown analysis {name!r}; "
                              f"known: {', '.join(sorted(self.analyses)) or '(none)'}")
        return name


def _load_with_includes(path: Path) -> dict[str, Any]:
    raw = read_yaml(path)
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: a spec must be a mapping")
    raw = dict(raw)
    for pattern in raw.pop("include", None) or []:
        files = sorted(path.parent.glob(pattern))
        if not files:
            raise ConfigError(f"{path}: include {pattern!r} matches no file")
        for f in files:
            part = read_yaml(f) or {}
            for section, entries in part.items():
                if section not in ("presets", "protocol_sets", "runs", "analyses", "artifacts"):
                    raise ConfigError(f"{f}: key {section!r} cannot be included (runs, analyses, artifacts, "
                                      "presets, protocol_sets can)")
                have = raw.setdefault(section, {}) or {}
                dup = sorted(set(have) & set(entries or {}))
                if dup:
                    raise ConfigError(f"{f}: {section}.{dup[0]} is already defined in {path}")
                raw[section] = {**have, **(entries or {})}
    return raw


def _run_cfg(path: Path, name: str, entry: Mapping[str, Any], presets: Mapping[str, Any],
             built: Mapping[str, RunDecl]) -> dict[str, Any]:
    if "from" in entry:
        base = entry["from"]
        if base not in built:
            raise ConfigError(f"{path}: runs.{name}.from names unknown (or later) run {base!r}")
        cfg = deep_merge(built[base].cfg, {})
    else:
        cfg = {}
    for p in entry.get("presets", []) or []:
        if p not in presets:
            raise ConfigError(f"{path}: runs.{name}.presets names unknown preset {p!r}; "
                              f"known: {', '.join(sorted(presets))}")
        cfg = deep_merge(cfg, presets[p])
    cfg = deep_merge(cfg, {k: v for k, v in entry.items() if k not in RUN_META_KEYS})
    for key, value in (entry.get("set") or {}).items():
        set_dotted(cfg, key, value)
    cfg["name"] = name
    return cfg


def _parse_runs(path: Path, raw: Mapping[str, Any]) -> tuple[dict[str, RunDecl], dict[str, list[str]]]:
    presets = raw.get("presets", {}) or {}
    runs: dict[str, RunDecl] = {}
    groups: dict[str, list[str]] = {}
    for name, entry in expand_entries(raw.get("runs") or {}, f"{path}: runs").items():
        if "_value" in entry:
            raise ConfigError(f"{path}: runs.{name}: expected a mapping")
        choice = entry.get("choice", "")
        if "from" in entry and entry.get("set") and not choice:
            choice = f"derived from {entry['from']}: " + ", ".join(f"{k}={v}" for k, v in entry["set"].items())
        runs[name] = RunDecl(name, _run_cfg(path, name, entry, presets, runs), choice, entry.get("_group"),
                             bool(entry.get("every_scale", False)))
        if entry.get("_group"):
            groups.setdefault(entry["_group"], []).append(name)
    clash = sorted(set(groups) & set(runs))
    if clash:
        raise ConfigError(f"{path}: runs.{clash[0]} is both a run and a seed group")
    return runs, groups


def _parse_analyses(path: Path, raw: Mapping[str, Any], check_registries: bool) -> dict[str, AnalysisDecl]:
    out: dict[str, AnalysisDecl] = {}
    for name, entry in expand_entries(raw.get("analyses") or {}, f"{path}: analyses", seed_key="seed").items():
        if "kind" not in entry:
            raise ConfigError(f"{path}: analyses.{name}.kind is required")
        kind = entry["kind"]
        params = {k: v for k, v in entry.items() if k not in ("kind", "choice", "_vars", "_group", "seed")}
        if check_registries:
            from ..analyses import ANALYSES

            cls = ANALYSES.get(kind, where=f"{path}: analyses.{name}.kind")
            if "_group" in entry and "seed" in cls.params:  # seeds: of an analysis that draws at random
                params["seed"] = entry["seed"]
            params = cls.resolve_params(params, f"{path}: analyses.{name}")
        out[name] = AnalysisDecl(name, kind, params, entry.get("choice", ""), entry.get("_group"))
    return out


def _register_protocols(path: Path, raw: Mapping[str, Any]) -> None:
    """A paper's own evaluation settings live in its spec; the registry holds them by name."""
    from ..speclang.numbers import parse_number
    from ..evaluate import PROTOCOLS
    from ..evaluate.catalog import Protocol

    for name, entry in expand_entries(raw.get("protocols") or {}, f"{path}: protocols", seed_key=None).items():
        where = f"{path}: protocols.{name}"
        check_name(name, where)
        bad = sorted(set(entry) - set(PROTOCOL_FIELDS) - {"_vars", "choice"})
        if bad:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(bad)}; allowed: {', '.join(PROTOCOL_FIELDS)}")
        kw = {k: v for k, v in entry.items() if k in PROTOCOL_FIELDS}
        for k in ("eps", "step_size"):
            if k in kw:
                kw[k] = parse_number(kw[k], f"{where}.{k}")
        if "attacks" in kw:
            kw["attacks"] = tuple(kw["attacks"])
        proto = Protocol(name, **kw)
        if name in PROTOCOLS:
            if PROTOCOLS.get(name) != proto:
                raise ConfigError(f"{where}: a different protocol named {name!r} is already registered")
            continue
        PROTOCOLS.add(name, proto)


NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
ALIAS = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*\.csv")


def check_name(name: Any, where: str, pattern: re.Pattern[str] = NAME) -> None:
    """Names become file names, Snakemake wildcards and shell words: letters, digits and ``._+-``
    only, never ``..`` (a name like ``x$(touch F)`` or ``../elsewhere`` is refused at load)."""
    if not isinstance(name, str) or not pattern.fullmatch(name) or ".." in name:
        what = "a file name ending in .csv (no directory)" if pattern is ALIAS else "letters, digits and ._+-"
        raise ConfigError(f"{where}: name {name!r} must be {what}, starting with a letter or digit, "
                          "without '..'")


def _check_names(spec: "PaperSpec") -> None:
    for name in spec.runs:
        check_name(name, f"{spec.path}: runs.{name}")
    for name in spec.analyses:
        check_name(name, f"{spec.path}: analyses.{name}")
    for name, art in spec.artifacts.items():
        check_name(name, f"{spec.path}: artifacts.{name}")
        for alias in art.aliases:
            check_name(alias, f"{spec.path}: artifacts.{name}.aliases", ALIAS)


def read_published(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    from ..readback import read_published as strict

    return strict(path)


def parse_spec(path: str | Path, check_registries: bool = True) -> PaperSpec:
    """A paper's spec, parsed and checked on its own (``papers.load_spec`` also resolves it at paper scale)."""
    from ..artifacts import parse_artifact
    from .references import check_references

    path = Path(path)
    raw = _load_with_includes(path)
    validate_schema(raw, "spec", str(path))
    if raw["paper"] != path.parent.name:
        raise ConfigError(f"{path}: paper is {raw['paper']!r} but the folder is {path.parent.name!r}")
    runs, groups = _parse_runs(path, raw)
    _register_protocols(path, raw)
    sets = raw.get("protocol_sets", {}) or {}
    if check_registries:
        from ..evaluate import PROTOCOLS

        for sname, mapping in sets.items():
            for col, proto in mapping.items():
                PROTOCOLS.get(proto, where=f"{path}: protocol_sets.{sname}.{col}")
    spec = PaperSpec(raw["paper"], raw["title"], path, runs, _parse_analyses(path, raw, check_registries),
                     groups, sets, {}, raw)
    for aname, decl in spec.analyses.items():
        if decl.group:
            spec.analysis_groups.setdefault(decl.group, []).append(aname)
    check_references(spec, check_registries)
    entries = expand_entries(raw.get("artifacts") or {}, f"{path}: artifacts", seed_key=None, strict=False)
    for name, entry in entries.items():
        spec.artifacts[name] = parse_artifact(spec, name, entry, check_registries)
    _check_names(spec)
    from ..claims import parse_claims

    for name, entry in entries.items():
        art = spec.artifacts[name]
        art.claims = parse_claims(spec, art, entry.get("claims") or [], f"{path}: artifacts.{name}")
    return spec
