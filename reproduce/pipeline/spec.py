"""Paper specs: strict loading of pipelines/<paper>/spec.yaml and its published CSVs."""

from __future__ import annotations

import csv
import itertools
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from ..config import config_hash, resolve_run, run_id as config_run_id
from ..errors import ConfigError
from ..io import read_yaml
from .merge import deep_merge, set_dotted
from .scales import Scale, load_scale
from .validate import validate_schema

PIPELINES_DIR = Path("pipelines")
RUN_META_KEYS = ("presets", "grid", "choice")
CHECK_RE = re.compile(r"^\s*(\S+)\.(\S+)\s*(>=|<=|>|<)\s*(\S+)\.(\S+)\s*$")


@dataclass(frozen=True)
class Claim:
    id: str
    text: str
    checks: tuple[tuple[str, str, str, str, str], ...]  # (row, col, op, row, col)
    source: str = ""


@dataclass
class Artifact:
    paper: str
    name: str
    kind: str
    title: str
    source: str
    published: Path | None
    aliases: list[str]
    columns: list[str]
    rows: dict[str, str]  # row id -> canonical run name
    row_protocols: dict[str, dict[str, str]]  # row id -> column -> protocol
    tolerance: float
    claims: list[Claim]
    figure: Mapping[str, Any] | None

    @property
    def runs(self) -> list[str]:
        names = list(self.rows.values())
        if self.figure:
            names += list(self.figure["series"].values())
        return list(dict.fromkeys(names))


@dataclass
class PaperSpec:
    paper: str
    title: str
    path: Path
    runs: dict[str, dict[str, Any]]  # canonical run name -> paper-scale run config
    choices: dict[str, str]
    aliases: dict[str, str]  # duplicate run name -> canonical run name
    artifacts: dict[str, Artifact]
    raw: Mapping[str, Any] = field(repr=False, default_factory=dict)

    def canonical(self, name: str, where: str = "") -> str:
        name = self.aliases.get(name, name)
        if name not in self.runs:
            raise ConfigError(f"{self.path}: {where or 'run'} names unknown run {name!r}")
        return name

    def run_config(self, name: str, scale: Scale) -> dict[str, Any]:
        """The resolved config of a run at a scale (the engine's defaults filled in)."""
        cfg = scale.apply(self.runs[self.canonical(name)])
        return resolve_run(cfg, where=f"{self.path}: runs.{name} at scale {scale.name}")

    def run_id(self, name: str, scale: Scale) -> str:
        return config_run_id(self.run_config(name, scale))


def _expand_runs(path: Path, raw: Mapping[str, Any]) -> dict[str, tuple[dict[str, Any], str]]:
    presets = raw.get("presets", {}) or {}
    out: dict[str, tuple[dict[str, Any], str]] = {}
    for name, entry in raw["runs"].items():
        cfg: dict[str, Any] = {}
        for p in entry.get("presets", []):
            if p not in presets:
                raise ConfigError(f"{path}: runs.{name}.presets names unknown preset {p!r}; "
                                  f"known: {', '.join(sorted(presets))}")
            cfg = deep_merge(cfg, presets[p])
        cfg = deep_merge(cfg, {k: v for k, v in entry.items() if k not in RUN_META_KEYS})
        grid = entry.get("grid") or {}
        keys = list(grid)
        for values in itertools.product(*(grid[k] for k in keys)) if keys else [()]:
            one = deep_merge(cfg, {})
            fmt = {}
            for k, v in zip(keys, values):
                set_dotted(one, k, v)
                fmt[k.split(".")[-1]] = v
            try:
                rname = name.format(**fmt)
            except (KeyError, ValueError) as e:
                raise ConfigError(f"{path}: runs.{name}: grid placeholder {e} not in grid keys") from None
            if rname in out:
                raise ConfigError(f"{path}: runs.{name}: run name {rname!r} defined twice")
            one["name"] = rname
            out[rname] = (one, entry.get("choice", ""))
    return out


def _add_derived_runs(path: Path, raw: Mapping[str, Any], runs: dict[str, tuple[dict[str, Any], str]]) -> None:
    """Rows written as {from: RUN, set: {dotted.key: value}} define a run named after the row."""
    for aname, a in raw["artifacts"].items():
        for rid, r in (a.get("rows") or {}).items():
            if not isinstance(r, dict) or "from" not in r:
                continue
            if r["from"] not in runs:
                raise ConfigError(f"{path}: artifacts.{aname}.rows.{rid}.from names unknown run {r['from']!r}")
            cfg = deep_merge(runs[r["from"]][0], {})
            for key, value in r["set"].items():
                set_dotted(cfg, key, value)
            cfg["name"] = rid
            if rid in runs and runs[rid][0] != cfg:
                raise ConfigError(f"{path}: artifacts.{aname}.rows.{rid}: a different run named {rid!r} exists")
            runs[rid] = (cfg, f"derived from {r['from']}: " + ", ".join(f"{k}={v}" for k, v in r["set"].items()))


def _check_registries(path: Path, name: str, cfg: Mapping[str, Any]) -> None:
    from ..data import DATASETS
    from ..methods import METHODS
    from ..models import MODELS

    where = f"{path}: runs.{name}"
    method = METHODS.get(cfg["method"]["name"], where=f"{where}.method.name")
    unknown = sorted(set(cfg["method"]) - {"name"} - set(method.params))
    if unknown:
        raise ConfigError(f"{where}.method: unknown parameter(s) {', '.join(unknown)} for method "
                          f"{cfg['method']['name']!r}; allowed: {', '.join(sorted(method.params)) or '(none)'}")
    MODELS.get(cfg["model"]["name"], where=f"{where}.model.name")
    for ds in [cfg["data"]["primary"], *cfg["data"]["aux"]]:
        DATASETS.get(ds, where=f"{where}.data")


def _parse_claims(path: Path, art: str, raw: list[Mapping[str, Any]]) -> list[Claim]:
    claims = []
    for c in raw or []:
        checks = []
        for s in c["checks"]:
            m = CHECK_RE.match(s)
            if not m:
                raise ConfigError(f"{path}: artifacts.{art}.claims.{c['id']}: bad check {s!r}")
            checks.append(tuple(m.groups()))
        claims.append(Claim(c["id"], c["text"], tuple(checks), c.get("source", "")))
    return claims


def read_published(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    if not path.exists():
        raise ConfigError(f"{path}: published-values CSV not found")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        header = list(reader.fieldnames or [])
    if not header or header[0] != "row":
        raise ConfigError(f"{path}: first column must be 'row', got {header[:1]}")
    return header, rows


def _check_published(path: Path, art: Artifact) -> None:
    header, rows = read_published(path)
    missing_cols = [c for c in art.columns if c not in header]
    if missing_cols:
        raise ConfigError(f"{path}: columns {missing_cols} of artifact {art.name} are not in the CSV header {header}")
    ids = [r["row"] for r in rows]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    extra = sorted(set(ids) - set(art.rows))
    absent = sorted(set(art.rows) - set(ids))
    if dup or extra or absent:
        raise ConfigError(f"{path}: rows do not match artifacts.{art.name}.rows of the spec: "
                          f"duplicated {dup}, not in the spec {extra}, missing from the CSV {absent}")
    for r in rows:
        for c in art.columns:
            v = (r.get(c) or "").strip()
            if v:
                try:
                    float(v)
                except ValueError:
                    raise ConfigError(f"{path}: row {r['row']!r}, column {c!r}: {v!r} is not a number") from None


def load_spec(path: str | Path, check_registries: bool = True) -> PaperSpec:
    path = Path(path)
    raw = read_yaml(path)
    validate_schema(raw, "spec", str(path))
    if raw["paper"] != path.parent.name:
        raise ConfigError(f"{path}: paper is {raw['paper']!r} but the folder is {path.parent.name!r}")
    expanded = _expand_runs(path, raw)
    _add_derived_runs(path, raw, expanded)
    paper_scale = load_scale("paper")
    runs: dict[str, dict[str, Any]] = {}
    aliases: dict[str, str] = {}
    choices: dict[str, str] = {}
    by_hash: dict[str, str] = {}
    for name, (cfg, choice) in expanded.items():
        resolved = resolve_run(paper_scale.apply(cfg), where=f"{path}: runs.{name}")
        if check_registries:
            _check_registries(path, name, resolved)
        h = config_hash(resolved)
        if h in by_hash:  # the same training under two names is one job
            aliases[name] = by_hash[h]
            continue
        by_hash[h] = name
        runs[name] = cfg
        choices[name] = choice
    spec = PaperSpec(raw["paper"], raw["title"], path, runs, choices, aliases, {}, raw)
    sets = raw.get("protocol_sets", {}) or {}
    if check_registries:
        from ..evaluate import PROTOCOLS

        for sname, mapping in sets.items():
            for col, proto in mapping.items():
                PROTOCOLS.get(proto, where=f"{path}: protocol_sets.{sname}.{col}")
    for aname, a in raw["artifacts"].items():
        rows: dict[str, str] = {}
        row_protocols: dict[str, dict[str, str]] = {}
        for rid, r in (a.get("rows") or {}).items():
            run = r if isinstance(r, str) else r.get("run", rid)
            rows[rid] = spec.canonical(run, where=f"artifacts.{aname}.rows.{rid}")
            set_name = (r.get("protocols") if isinstance(r, dict) else None) or a.get("protocols")
            if a["kind"] == "table":
                if not set_name or set_name not in sets:
                    raise ConfigError(f"{path}: artifacts.{aname}.rows.{rid}: protocol set {set_name!r} "
                                      f"not in protocol_sets ({', '.join(sorted(sets))})")
                cols = a.get("columns") or []
                miss = [c for c in cols if c not in sets[set_name]]
                if miss:
                    raise ConfigError(f"{path}: protocol_sets.{set_name} has no protocol for columns {miss}")
                row_protocols[rid] = {c: sets[set_name][c] for c in cols}
        fig = a.get("figure")
        if fig:
            fig = dict(fig)
            fig["series"] = {k: spec.canonical(v, where=f"artifacts.{aname}.figure.series.{k}")
                             for k, v in fig["series"].items()}
        art = Artifact(
            paper=spec.paper, name=aname, kind=a["kind"], title=a["title"], source=a["source"],
            published=(path.parent / a["published"]) if a.get("published") else None,
            aliases=list(a.get("aliases", [])), columns=list(a.get("columns") or []), rows=rows,
            row_protocols=row_protocols, tolerance=float(a.get("tolerance", 1.0)),
            claims=_parse_claims(path, aname, a.get("claims")), figure=fig)
        if art.kind == "table" and not art.rows:
            raise ConfigError(f"{path}: artifacts.{aname}: a table needs rows")
        for c in art.claims:
            for (r1, c1, _, r2, c2) in c.checks:
                for rr, cc in ((r1, c1), (r2, c2)):
                    if rr not in art.rows or cc not in art.columns:
                        raise ConfigError(f"{path}: artifacts.{aname}.claims.{c.id}: {rr}.{cc} is not a row.column "
                                          "of this artifact")
        if art.published is not None:
            _check_published(art.published, art)
        spec.artifacts[aname] = art
    return spec


@lru_cache(maxsize=None)
def load_all(pipelines_dir: str = str(PIPELINES_DIR), check_registries: bool = True) -> dict[str, PaperSpec]:
    specs = {}
    for p in sorted(Path(pipelines_dir).glob("*/spec.yaml")):
        spec = load_spec(p, check_registries=check_registries)
        specs[spec.paper] = spec
    if not specs:
        raise ConfigError(f"no paper specs found under {pipelines_dir}/*/spec.yaml")
    return specs
