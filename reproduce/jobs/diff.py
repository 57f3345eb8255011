"""Regenerated vs published: every published cell, and the paper's claims re-checked.

The scale comes from the regenerated file itself: a smoke table is never
labelled comparable, whatever the workflow is set to.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping

from .. import io
from ..artifacts import Artifact
from ..artifacts.frame import csv_text, markdown_table
from ..artifacts import series
from ..artifacts.series import cell_number
from ..claims import check
from ..errors import ReproduceError
from ..readback import read_csv_rows
from ..artifacts.citations import cite
from ..provenance import git_commit, scale_banner


def read_values(path: str | Path) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """row -> column -> value from a rendered CSV (wide, or long with row/column/i/value), and its scales.
    Ragged lines, repeated rows (or repeated points of a long CSV) and non-numbers are one-line errors."""
    p = Path(path)
    if not p.exists():
        raise ReproduceError(f"{p}: regenerated values missing; render the artifact first")
    header, rows = read_csv_rows(p, "regenerated values", key=None)
    scales = {r["scale"] for r in rows if r.get("scale")}
    out: dict[str, dict[str, Any]] = {}
    if "row" not in header:
        raise ReproduceError(f"{p}: no 'row' column in regenerated values")
    if {"column", "i", "value"} <= set(header):
        seen: set[tuple[str, str, str]] = set()
        for r in rows:
            key = (r["row"], r["column"], r["i"])
            if key in seen:
                raise ReproduceError(f"{p}: row {r['row']!r}, column {r['column']!r}, point {r['i']!r} appears twice")
            seen.add(key)
            v = _float(r["value"], f"{p}: row {r['row']!r}, column {r['column']!r}")
            if r.get("run_id"):  # every line of a row names the same runs
                if out.setdefault(r["row"], {}).setdefault("run_id", r["run_id"]) != r["run_id"]:
                    raise ReproduceError(f"{p}: row {r['row']!r} names different run ids on different lines")
            if r["i"] == "":
                out.setdefault(r["row"], {})[r["column"]] = v
            else:
                out.setdefault(r["row"], {}).setdefault(r["column"], []).append(v)
        return out, scales
    for r in rows:
        if r["row"] in out:
            raise ReproduceError(f"{p}: row {r['row']!r} appears more than once in regenerated values")
        out[r["row"]] = {k: cell_number(v) for k, v in r.items() if k != "row"}
    return out, scales


def _float(v: str, where: str) -> float:
    try:
        return float(v)
    except ValueError:
        raise ReproduceError(f"{where}: {v!r} is not a number") from None


def published_values(art: Artifact) -> dict[str, dict[str, Any]]:
    if art.published is None:
        return {}
    return series.read_published_values(art.published, art.columns)  # cells, or curves in long form


def _reader(art: Artifact, regenerated_csv: str | Path, others: Mapping[str, tuple[Artifact, str | Path]] | None
            ) -> tuple[Any, Mapping[str, tuple[Artifact, str | Path]] | None]:
    """How to read the inputs, and which: the paper's own published CSV given as the regenerated input
    is read as published values of scale `paper`, with the other artifacts' published values beside it."""
    if art.published is None or Path(regenerated_csv).resolve() != Path(art.published).resolve():
        return read_values, others
    others = {n: (o, o.published) for n, (o, _) in (others or {}).items() if o.published}
    return (lambda path: (series.read_published_values(Path(path)), {"paper"})), others


def check_run_ids(art: Artifact, values: Mapping[str, Mapping[str, Any]], path: str | Path,
                  run_ids: Mapping[str, str], plan: str | Path) -> None:
    """A regenerated table lists, per row, the run ids it was made from; rows made from other runs
    than the plan's (a stale table after a spec edit) are refused, never diffed."""
    for rid, want in run_ids.items():
        if rid not in values:  # a figure's long CSV has no line for a row without numbers: read as missing
            continue
        got = values[rid].get("run_id")
        if str(got) != want:
            raise ReproduceError(f"{path}: row {rid!r} was made from run(s) {got}, but the plan {plan} expects "
                                 f"{want}; the table is stale: rerun the DAG to re-render it")


def _gone(ref: Any, thinned: Mapping[Any, tuple[set[str], set[str]]]) -> bool:
    rows, cols = thinned.get(ref.artifact, (set(), set()))
    return ref.row in rows or ref.column in cols


def diff_planned(plan_path: str | Path, regenerated_csv: str | Path, out_csv: str | Path) -> dict[str, Any]:
    """Diff the artifact of ``plan_path``: its regenerated CSV (and those of the artifacts its claims
    read) must come from the plan's runs and scale; then as ``diff_artifact``."""
    from .render import load_artifact

    art, view = load_artifact(plan_path)
    others = {}
    for name, o in view.plan["others"].items():
        other, other_view = load_artifact(o["plan"])
        others[name] = (other, o["csv"], other_view)
    own = art.published is not None and Path(regenerated_csv).resolve() == Path(art.published).resolve()
    for a, path, v in [] if own else [(art, regenerated_csv, view), *others.values()]:  # the paper's own values: no runs
        vals, scales = read_values(path)
        if scales and scales != {view.scale["name"]}:
            raise ReproduceError(f"{path}: made at scale {', '.join(sorted(scales))}, but the plan {view.path} "
                                 f"is at scale {view.scale['name']}")
        ids = {rid: " ".join(v.run_ids(r.run)) for rid, r in a.rows.items() if r.run}
        check_run_ids(a, vals, path, ids, v.path)
    return diff_artifact(art, regenerated_csv, out_csv, {n: (o[0], o[1]) for n, o in others.items()},
                         comparable=bool(view.scale["comparable"]), description=view.scale.get("description"))


def _cell_rows(art: Artifact, pub: Mapping[str, Mapping[str, Any]], rep: Mapping[str, Mapping[str, Any]],
               scale: str, comparable: bool) -> list[dict[str, Any]]:
    """One line per published cell: published, reproduced, delta, tolerance and verdict."""
    cells = []
    for rid in art.rows:
        for col in [*art.columns, *art.thinned_columns]:
            if rid not in pub:
                continue
            p, r = pub[rid].get(col), rep.get(rid, {}).get(col)
            if isinstance(p, list):  # a published curve: compared point by point below (series.py)
                continue
            p = p if isinstance(p, float) else None
            r = r if isinstance(r, float) else None
            delta = None if p is None or r is None else round(r - p, 2)
            if p is None:
                verdict = "unpublished"
            elif rid in art.thinned or col in art.thinned_columns:
                verdict = f"thinned ({scale} scale)"
            elif r is None:
                verdict = "missing"
            elif not comparable:
                verdict = f"not comparable ({scale} scale)"
            elif series.tolerance(art, col) == series.INFORMATIONAL:  # shown beside the paper's, not judged
                verdict = series.INFORMATIONAL
            else:
                verdict = "match" if series.within(art, col, p, r) else "differs"
            if f"{rid}.{col}" in art.flagged:  # the paper contradicts this cell elsewhere: say so beside the verdict
                verdict = f"{verdict} (flagged: {art.flagged[f'{rid}.{col}']})"
            cells.append({"row": rid, "column": col, "published": "" if p is None else p,
                          "reproduced": "" if r is None else r, "delta": "" if delta is None else delta,
                          "tolerance": series.tolerance(art, col), "verdict": verdict, "scale": scale})
    return cells


def _claim_rows(art: Artifact, others: Mapping[str, tuple[Artifact, str | Path]] | None, read: Any,
                pub: Mapping[str, Any], rep: Mapping[str, Any], scale: str, comparable: bool) -> list[dict[str, Any]]:
    """Each claim checked on the published and on the regenerated values (of this and other artifacts)."""
    on_pub = {None: pub, art.name: pub}
    on_rep = {None: rep, art.name: rep}
    for name, (other, path) in (others or {}).items():
        on_pub[name] = published_values(other)
        on_rep[name] = read(path)[0]
    # a reference is gone when its row or its column was left out at this scale
    thinned = {None: (set(art.thinned), set(art.thinned_columns))}
    thinned[art.name] = thinned[None]
    thinned.update({name: (set(other.thinned), set(other.thinned_columns)) for name, (other, _) in (others or {}).items()})
    claims = []
    for c in art.claims:
        v_pub, _ = check(c, on_pub)
        v_rep, details = check(c, on_rep)
        def gone(e: Any) -> bool:
            return any(_gone(r, thinned) for r in e.refs)

        left_out = sorted({str(r) for e in [*c.checks, *c.requires] for r in e.refs if _gone(r, thinned)})
        built = [e for e in c.checks if not gone(e)]
        partial = ""
        if left_out and c.quantifier == "all" and c.python is None and built and not any(gone(e) for e in c.requires):
            # "for every row" restricted to the rows this scale built is still a test of the claim
            v_rep, details = check(replace(c, checks=built), on_rep)
            partial = f", {len(built)} of {len(c.checks)} checks"
            details = [*details, f"cells left out: {', '.join(left_out)}"]
        elif left_out:  # a scale that thins sweeps cannot judge a claim on the rows it left out
            v_rep, details = f"not checked (thinned at {scale} scale)", [f"cells left out: {', '.join(left_out)}"]
        if v_rep in ("holds", "fails", "within noise") and (partial or not comparable):
            v_rep = f"{v_rep} ({scale} scale{partial})" if not comparable else f"{v_rep} ({partial[2:]})"
        claims.append({"claim": c.id, "text": c.text, "source": cite(art.paper, c.source), "published": v_pub,
                       "reproduced": v_rep, "noise": c.noise, "details": "; ".join(details), "scale": scale})
    return claims


def diff_artifact(art: Artifact, regenerated_csv: str | Path, out_csv: str | Path,
                  others: Mapping[str, tuple[Artifact, str | Path]] | None = None, *,
                  comparable: bool | None = None, description: str | None = None) -> dict[str, Any]:
    """Write <artifact>.diff.csv/.diff.md and <artifact>.claims.csv; ``others`` are artifacts claims read.
    ``comparable``: is the regenerated data's scale comparable (None: only ``paper`` is)."""
    read, others = _reader(art, regenerated_csv, others)
    rep, scales = read(regenerated_csv)
    for other, path in (others or {}).values():
        _, s = read(path)
        scales |= s
    if len(scales) != 1:
        raise ReproduceError(f"{regenerated_csv}: " + ("no scale recorded" if not scales else
                             f"values of several scales ({', '.join(sorted(scales))}) cannot be diffed together"))
    scale = scales.pop()
    comparable = (scale == "paper") if comparable is None else comparable
    pub = published_values(art)
    cells = _cell_rows(art, pub, rep, scale, comparable)
    claims = _claim_rows(art, others, read, pub, rep, scale, comparable)
    out_csv = Path(out_csv)
    io.write_text(out_csv, csv_text(cells) if cells else "row,column,published,reproduced,delta,tolerance,verdict,scale\n")
    claims_csv = out_csv.with_name(out_csv.name.replace(".diff.csv", ".claims.csv"))
    io.write_text(claims_csv, csv_text(claims) if claims else
                  "claim,text,source,published,reproduced,noise,details,scale\n")
    curves = series.write_diff(art, rep, pub, scale, comparable, out_csv)
    counts: dict[str, int] = {}
    for c in cells:
        counts[c["verdict"]] = counts.get(c["verdict"], 0) + 1
    md = [f"# Diff: {art.paper} {art.name} ({art.title})", "", scale_banner(scale, comparable, description),
          f"Commit: `{git_commit()}`. Tolerance: {art.tolerance} points.", "",
          "Cells: " + (", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "none published"), ""]
    if cells:
        md += [markdown_table(cells, ["row", "column", "published", "reproduced", "delta", "verdict"]), ""]
    md += series.markdown_lines(curves)
    if claims:
        md += ["## The paper's claims, re-checked", "",
               markdown_table(claims, ["claim", "text", "published", "reproduced"]), ""]
        if not comparable:
            md.append(f"At {scale} scale a claim that fails or holds says nothing about the paper.")
    io.write_text(out_csv.with_suffix(".md"), "\n".join(md) + "\n")
    return {"cells": cells, "claims": claims, "counts": counts, "scale": scale, "series": curves}
