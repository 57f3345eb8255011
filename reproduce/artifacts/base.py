"""Artifacts: rows x columns of values from named sources, shown by a registered kind.

Every kind (table, matrix, curve, lines, scatter, bar, image_grid) reads the
same cells: a row usually names a run (or a seed group, aggregated), a column
names a value source, and a cell is the column's source filled with the row's
variables. Sources:

``{eval: PROTOCOL[, where: {class: K} | {subset: [...]} | {subset: A|B}]}``  accuracy from an evaluation
    (``subset: A``/``B``: test examples of the classes the run trained as A / of the others)
``{eval_set: COLUMN}``   the protocol the row's protocol set gives that column
``{analysis: NAME, key: dotted.key | array: NAME}``  an analysis value or array
``{log: KEY[, epoch: last|best|N | over: epoch]}``  per-epoch training log
``{train: wall_hours | wall_device | epochs | best_epoch}``  the training summary (``wall_hours``:
    median epoch seconds x epochs / 3600, selection evaluations excluded; reproduce/train/timing.py)
``{config: dotted.key}``  the run's resolved config (hyperparameter tables)
``{value: X}``  a constant

Modifier ``digits: N`` keeps N decimals of the cell in the rendered CSV (default 2): measured hours of
a smoke run are thousandths, and claims divide them.
Modifiers: ``scale: K`` multiplies a value by K, ``complement: C`` reads C - value (error % from
accuracy %: each seed's value is turned before the mean, so the spread is the accuracy's).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

from ..errors import ConfigError
from ..speclang.expand import expand_entries, substitute
from ..registry import Registry
from .series import parse_tolerances

SOURCE_KEYS = ("eval", "eval_set", "analysis", "log", "train", "config", "value")
MODIFIERS = ("where", "key", "array", "epoch", "over", "scale", "complement", "checkpoint", "aggregate", "run",
             "digits")
ARTIFACT_KEYS = ("kind", "title", "source", "published", "aliases", "protocols", "columns", "rows", "tolerance",
                 "noise", "claims", "options", "_vars", "choice", "flagged",
                 "series_tolerance", "informational")
# unpublished: true marks an extra row the paper has no values for (absent from the published CSV)
ROW_KEYS = ("run", "protocols", "cells", "series", "label", "x", "_vars", "_sweep", "choice", "unpublished")


@dataclass
class Row:
    id: str
    run: str | None  # a run name or a seed group; None for rows that only read analyses/constants
    cells: dict[str, dict[str, Any]]  # column -> concrete source
    attrs: dict[str, Any] = field(default_factory=dict)  # series, label, x, ...
    sweep: dict[str, tuple[int, int]] = field(default_factory=dict)  # sweep variable -> (index, length)


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
    rows: dict[str, Row]
    tolerance: float
    noise: float
    claims: list[Any]
    options: dict[str, Any]
    thinned: list[str] = field(default_factory=list)  # rows a scale left out (of its sweeps, or as repeated code paths)
    thinned_columns: list[str] = field(default_factory=list)  # columns a scale left out
    # published cells the paper contradicts elsewhere ("row.column" -> why): kept, diffed, and flagged
    flagged: dict[str, str] = field(default_factory=dict)
    # per-column tolerance of published curves and cells: a number, or "N%" relative (series.py)
    series_tolerance: dict[str, Any] = field(default_factory=dict)
    # columns whose published cells are shown beside the reproduced ones but never diffed (engine-specific
    # wall-clock hours): claims still read them
    informational: list[str] = field(default_factory=list)

    def thin(self, keep: Any, row_ok: Any = None, col_ok: Any = None) -> "Artifact":
        """A copy without the rows whose sweep position ``keep(index, length)`` rejects, nor those
        ``row_ok(row_id)`` rejects, nor the columns ``col_ok(name)`` rejects (a scale that builds
        only part of a table)."""
        drop = [rid for rid, r in self.rows.items() if not all(keep(i, n) for i, n in r.sweep.values())
                or (row_ok is not None and not row_ok(rid))]
        cols = [c for c in self.columns if col_ok is not None and not col_ok(c)]
        if not drop and not cols:
            return self
        rows = {rid: replace(r, cells={c: v for c, v in r.cells.items() if c not in cols})
                for rid, r in self.rows.items() if rid not in drop}
        return replace(self, rows=rows, thinned=[*self.thinned, *drop], thinned_columns=[*self.thinned_columns, *cols],
                       columns=[c for c in self.columns if c not in cols])

    @property
    def family(self) -> str:
        return KINDS.get(self.kind).family

    @property
    def runs(self) -> list[str]:
        """Run names (or seed groups) the cells read, in order."""
        names = [r.run for r in self.rows.values() if r.run]
        names += [s["run"] for r in self.rows.values() for s in r.cells.values() if s.get("run")]
        return list(dict.fromkeys(names))


class ArtifactKind:
    """A presentation of cells. ``family`` fixes the outputs: table (csv, md) or figure (png, pdf, csv)."""

    family = "table"
    options: dict[str, Any] = {}

    @classmethod
    def check(cls, art: Artifact, where: str) -> None:
        """Kind-specific validation of the parsed artifact."""

    def render(self, art: Artifact, table: Any, out: Path, banner: str) -> None:
        raise NotImplementedError


KINDS: Registry[type[ArtifactKind]] = Registry("artifact kind")


def check_source(src: Mapping[str, Any], where: str) -> None:
    if not isinstance(src, Mapping):
        raise ConfigError(f"{where}: a cell source must be a mapping like {{eval: clean}}, got {src!r}")
    named = [k for k in SOURCE_KEYS if k in src]
    if len(named) != 1:
        raise ConfigError(f"{where}: a cell source names exactly one of {', '.join(SOURCE_KEYS)}; got {dict(src)}")
    unknown = sorted(set(src) - set(SOURCE_KEYS) - set(MODIFIERS))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)} in cell source")
    dg = src.get("digits", 2)
    if isinstance(dg, bool) or not isinstance(dg, int) or not 0 <= dg <= 12:
        raise ConfigError(f"{where}.digits: expected an integer 0-12 (decimals kept), got {dg!r}")
    c = src.get("complement")
    if "complement" in src and (isinstance(c, bool) or not isinstance(c, (int, float))):
        raise ConfigError(f"{where}.complement: a number C (the cell reads C - value: error % from accuracy %), "
                          f"got {c!r}")
    w = src.get("where")
    if "where" in src and (not isinstance(w, Mapping) or set(w) - {"class", "class_not", "subset"}
                           or isinstance(w.get("subset"), str) and w["subset"] not in ("A", "B")):
        raise ConfigError(f"{where}.where: expected {{class: K}}, {{class_not: K}}, {{subset: [indices]}} or "
                          f"{{subset: A|B}} (the run's own class subset and the rest), got {w!r}")


def _columns(path: Path, name: str, a: Mapping[str, Any]) -> dict[str, Any]:
    cols = a.get("columns") or []
    if isinstance(cols, list):
        if a.get("protocols") is None and cols:
            raise ConfigError(f"{path}: artifacts.{name}.columns is a list, which needs a protocol set "
                              "(protocols:); otherwise give each column a source")
        return {c: {"eval_set": c} for c in cols}
    if not isinstance(cols, Mapping):
        raise ConfigError(f"{path}: artifacts.{name}.columns: expected a list or a mapping")
    out = {}
    for cname, entry in expand_entries(cols, f"{path}: artifacts.{name}.columns", seed_key=None, strict=False).items():
        out[cname] = {k: v for k, v in entry.items() if k != "_vars"}
    return out


def _row_cells(spec: Any, name: str, rid: str, sources: Mapping[str, Any], env: Mapping[str, Any], run: Any,
               pset: Any, check_registries: bool) -> dict[str, dict[str, Any]]:
    """One row's cell sources, substituted and checked against the spec (protocol sets, analyses, runs)."""
    path, where = spec.path, f"{spec.path}: artifacts.{name}"
    cells: dict[str, dict[str, Any]] = {}
    for col, src in sources.items():
        cw = f"{where}.rows.{rid}.{col}"
        src = substitute(src, env, cw)
        check_source(src, cw)
        if "eval_set" in src:
            if pset not in spec.protocol_sets:
                raise ConfigError(f"{cw}: protocol set {pset!r} not in protocol_sets "
                                  f"({', '.join(sorted(spec.protocol_sets))})")
            if src["eval_set"] not in spec.protocol_sets[pset]:
                raise ConfigError(f"{path}: protocol_sets.{pset} has no protocol for column {src['eval_set']!r}")
            src = {**{k: v for k, v in src.items() if k != "eval_set"},
                   "eval": spec.protocol_sets[pset][src["eval_set"]]}
        if "analysis" in src:
            spec.check_analysis(str(src["analysis"]), f"artifacts.{name}.rows.{rid}.{col}")
        if "run" in src:
            spec.members(str(src["run"]), f"artifacts.{name}.rows.{rid}.{col}.run")
        needs_run = any(k in src for k in ("eval", "log", "train", "config"))
        if needs_run and run is None and "run" not in src:
            raise ConfigError(f"{cw}: this source reads a run, but the row names none (run:)")
        if check_registries and "eval" in src:
            from ..evaluate import PROTOCOLS

            PROTOCOLS.get(str(src["eval"]), where=cw)
        cells[col] = src
    return cells


def parse_artifact(spec: Any, name: str, a: Mapping[str, Any], check_registries: bool = True) -> Artifact:
    path, where = spec.path, f"{spec.path}: artifacts.{name}"
    unknown = sorted(set(a) - set(ARTIFACT_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: "
                          f"{', '.join(k for k in ARTIFACT_KEYS if not k.startswith('_'))}")
    missing = [key for key in ("kind", "title", "source") if key not in a]
    if missing:
        raise ConfigError(f"{where}.{missing[0]} is required")
    kind_cls = KINDS.get(a["kind"], where=f"{where}.kind")
    columns = _columns(path, name, a)
    rows: dict[str, Row] = {}
    unpublished: set[str] = set()  # rows the published CSV may lack
    raw_rows = a.get("rows") or {}
    if isinstance(raw_rows, list):  # a list of run names (or {run: NAME, ...}): each row is named after its run
        raw_rows = {(r if isinstance(r, str) else str(r.get("run"))): r for r in raw_rows}
    for rid, entry in expand_entries(raw_rows, f"{where}.rows", seed_key=None, strict=False, positions=True).items():
        if "_value" in entry:
            entry = {"run": entry["_value"], "_vars": entry["_vars"]}
        bad = sorted(set(entry) - set(ROW_KEYS))
        if bad:
            raise ConfigError(f"{where}.rows.{rid}: unknown key(s) {', '.join(bad)}; allowed: run, protocols, "
                              "cells, series, label, x, unpublished")
        env = {**entry.get("_vars", {}), "row": rid}
        if entry.get("unpublished", False) is not False:
            if entry["unpublished"] is not True:
                raise ConfigError(f"{where}.rows.{rid}.unpublished must be true or false")
            unpublished.add(rid)
        run = entry.get("run")
        if run is not None:
            run = substitute(run, env, f"{where}.rows.{rid}.run")
            spec.members(str(run), f"artifacts.{name}.rows.{rid}.run")
        pset = entry.get("protocols") or a.get("protocols")
        cells = _row_cells(spec, name, rid, {**columns, **(entry.get("cells") or {})}, env, run, pset,
                           check_registries)
        attrs = {k: substitute(entry[k], env, f"{where}.rows.{rid}.{k}") for k in ("series", "label", "x")
                 if k in entry}
        rows[rid] = Row(rid, None if run is None else str(run), cells, attrs, dict(entry.get("_sweep", {})))
    options = {**kind_cls.options, **(a.get("options") or {})}
    bad = sorted(set(options) - set(kind_cls.options))
    if bad:
        raise ConfigError(f"{where}.options: unknown key(s) {', '.join(bad)} for kind {a['kind']!r}; "
                          f"allowed: {', '.join(sorted(kind_cls.options)) or '(none)'}")
    art = Artifact(
        paper=spec.paper, name=name, kind=a["kind"], title=a["title"], source=a["source"],
        published=(path.parent / a["published"]) if a.get("published") else None,
        aliases=list(a.get("aliases", [])), columns=list(columns), rows=rows,
        tolerance=float(a.get("tolerance", 1.0)), noise=float(a.get("noise", 0.0)), claims=[], options=options,
        flagged=_flagged(a.get("flagged") or {}, rows, list(columns), where),
        series_tolerance=parse_tolerances(a.get("series_tolerance"), list(columns), where),
        informational=_informational(a.get("informational"), list(columns), where))
    if not art.rows:
        raise ConfigError(f"{where}: an artifact needs rows")
    kind_cls.check(art, where)
    # claims are parsed once every artifact exists (load_spec), so they may read later ones
    if art.published is not None:
        check_published(art, unpublished)
    return art


def check_published(art: Artifact, unpublished: set[str] | frozenset[str] = frozenset()) -> None:
    from ..readback import read_published

    path = art.published
    header, rows = read_published(path, art.columns)
    if {"column", "i", "value"} <= set(header):  # curves in long form (series.py): one line per point
        bad = sorted({r["column"] for r in rows} - set(art.columns))
        if bad:
            raise ConfigError(f"{path}: columns {bad} are not columns of artifacts.{art.name} ({', '.join(art.columns)})")
        rows = list({r["row"]: r for r in rows}.values())
    ids = [r["row"] for r in rows]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    extra = sorted(set(ids) - set(art.rows))
    absent = sorted(set(art.rows) - set(ids) - set(unpublished)) if art.family == "table" else []
    if dup or extra or absent:
        raise ConfigError(f"{path}: rows do not match artifacts.{art.name}.rows of the spec: "
                          f"duplicated {dup}, not in the spec {extra}, missing from the CSV {absent}")
    for r in rows:
        for c in header[1:] if "i" not in header else ["value"]:
            v = (r.get(c) or "").strip()
            if v and (c in art.columns or c == "value"):
                try:
                    float(v)
                except ValueError:
                    raise ConfigError(f"{path}: row {r['row']!r}, column {c!r}: {v!r} is not a number") from None


def _informational(raw: Any, columns: list[str], where: str) -> list[str]:
    """``informational: [column, ...]``: columns of this artifact whose published cells are not diffed."""
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(c, str) for c in raw):
        raise ConfigError(f"{where}.informational: expected a list of column names, got {raw!r}")
    bad = [c for c in raw if c not in columns]
    if bad:
        raise ConfigError(f"{where}.informational: {', '.join(bad)} not a column ({', '.join(columns)})")
    return list(raw)


def _flagged(raw: Any, rows: Mapping[str, Row], columns: list[str], where: str) -> dict[str, str]:
    """``flagged: {row.column: why}``: each names a cell of the artifact and says why."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}.flagged: expected a mapping of row.column -> reason")
    for cell, why in raw.items():
        row, _, col = str(cell).rpartition(".")
        if row not in rows or col not in columns or not str(why).strip():
            raise ConfigError(f"{where}.flagged.{cell}: not a row.column of this artifact, or no reason given")
    return {str(k): str(v) for k, v in raw.items()}


def artifact_to_plan(art: Artifact) -> dict[str, Any]:
    """The artifact as its plan file records it (claims are recorded beside it)."""
    return {"paper": art.paper, "name": art.name, "kind": art.kind, "title": art.title, "source": art.source,
            "published": None if art.published is None else str(art.published), "aliases": list(art.aliases),
            "columns": list(art.columns), "tolerance": art.tolerance, "noise": art.noise,
            "options": dict(art.options), "thinned": list(art.thinned), "thinned_columns": list(art.thinned_columns),
            "flagged": dict(art.flagged), "series_tolerance": dict(art.series_tolerance),
            **({"informational": list(art.informational)} if art.informational else {}),  # older plans unchanged
            "rows": [{"id": r.id, "run": r.run, "cells": r.cells, "attrs": r.attrs,
                      "sweep": {k: list(v) for k, v in r.sweep.items()}} for r in art.rows.values()]}


def artifact_from_plan(d: Mapping[str, Any], where: str) -> Artifact:
    """Rebuild an artifact from its plan record (no spec is read)."""
    try:
        rows = {r["id"]: Row(r["id"], r["run"], dict(r["cells"]), dict(r["attrs"]),
                             {k: (int(v[0]), int(v[1])) for k, v in r["sweep"].items()}) for r in d["rows"]}
        return Artifact(paper=d["paper"], name=d["name"], kind=d["kind"], title=d["title"], source=d["source"],
                        published=None if d["published"] is None else Path(d["published"]),
                        aliases=list(d["aliases"]), columns=list(d["columns"]), rows=rows,
                        tolerance=float(d["tolerance"]), noise=float(d["noise"]), claims=[],
                        options=dict(d["options"]), thinned=list(d["thinned"]),
                        thinned_columns=list(d["thinned_columns"]), flagged=dict(d.get("flagged") or {}),
                        series_tolerance=dict(d.get("series_tolerance") or {}),
                        informational=list(d.get("informational") or []))
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise ConfigError(f"{where}: malformed artifact record ({type(e).__name__}: {e}); rerun the DAG") from None
