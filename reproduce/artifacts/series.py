"""Published series (curves digitized from the papers' figures) and their point-by-point diff.

A published CSV in long form (``row, column, i, value``) holds one curve per row and column, as
the harness renders curves. ``diff_series`` compares each published curve with the regenerated
one index by index (index i = the i-th epoch or checkpoint of both) and gives one verdict per
curve: ``matches`` (every published point within tolerance), ``differs (k of n points beyond
tolerance)``, ``missing``, ``shorter (m of n points)``, or ``not comparable (<scale> scale)``.

A tolerance is absolute (points of accuracy, loss units) unless written ``"N%"``: relative to the
published value (curves read off a log axis). ``series_tolerance: {column: tol, "*": tol}`` in an
artifact sets it per column; the artifact's ``tolerance`` is the default. ``informational`` shows the
published values beside the regenerated ones without a verdict (a column whose absolute values the
harness cannot reproduce by design, such as BiaMAT's FIDs in another network's features).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from .. import io
from ..errors import ConfigError
from .frame import csv_text

INFORMATIONAL = "informational"  # a column tolerance: shown beside the paper's values, never judged
SERIES_HEADER = ["row", "column", "points", "max_abs_delta", "beyond", "tolerance", "verdict", "scale"]


def cell_number(v: Any) -> Any:
    """A CSV cell as a float, None when empty, or the text itself (read by the diff too)."""
    if v is None or str(v).strip() == "":
        return None
    try:
        return float(v)
    except ValueError:
        return v


def read_published_values(path: Path, columns: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """row -> column -> value (a float, or a list for a curve in long form), read and checked by
    ``readback.read_published``."""
    from ..readback import read_published

    header, rows = read_published(path, columns)
    out: dict[str, dict[str, Any]] = {}
    if {"column", "i", "value"} <= set(header):
        for r in sorted(rows, key=lambda r: (r["row"], r["column"], int(r["i"]))):
            out.setdefault(r["row"], {}).setdefault(r["column"], []).append(float(r["value"]))
        return out
    return {r["row"]: {k: cell_number(v) for k, v in r.items() if k != "row"} for r in rows}


def parse_tolerances(raw: Any, columns: list[str], where: str) -> dict[str, str | float]:
    """``series_tolerance``: column (or "*") -> a number or "N%"."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}.series_tolerance: expected a mapping of column -> tolerance")
    out: dict[str, str | float] = {}
    for col, tol in raw.items():
        if col != "*" and col not in columns:
            raise ConfigError(f"{where}.series_tolerance.{col}: not a column ({', '.join(columns)})")
        text = str(tol).strip()
        if text == INFORMATIONAL:
            out[str(col)] = text
            continue
        try:
            out[str(col)] = text if text.endswith("%") and float(text[:-1]) >= 0 else float(text)
        except ValueError:
            raise ConfigError(f"{where}.series_tolerance.{col}: {tol!r} is neither a number, 'N%' nor "
                              f"{INFORMATIONAL!r}") from None
    return out


def tolerance(art: Any, column: str) -> str | float:
    tols = getattr(art, "series_tolerance", {}) or {}
    return tols.get(column, tols.get("*", art.tolerance))


def within(art: Any, column: str, published: float, reproduced: float) -> bool:
    """Is a reproduced value within the column's tolerance of the published one? (An informational
    column is never asked: callers give it its own verdict.)"""
    tol = tolerance(art, column)
    if tol == INFORMATIONAL:
        raise ConfigError(f"column {column!r} is informational: it has no tolerance to be within")
    if isinstance(tol, str):  # relative
        return abs(reproduced - published) <= float(tol[:-1]) / 100.0 * abs(published)
    return abs(reproduced - published) <= tol + 1e-9


def diff_series(art: Any, rep: Mapping[str, Mapping[str, Any]], pub: Mapping[str, Mapping[str, Any]],
                scale: str, comparable: bool) -> list[dict[str, Any]]:
    """One line per published curve: how many points, the largest deviation, and the verdict."""
    out = []
    for rid, cols in pub.items():
        for col, curve in cols.items():
            if not isinstance(curve, list):
                continue
            got = rep.get(rid, {}).get(col)
            line = {"row": rid, "column": col, "points": len(curve), "max_abs_delta": "", "beyond": "",
                    "tolerance": tolerance(art, col), "scale": scale}
            if not comparable:
                line["verdict"] = f"not comparable ({scale} scale)"
            elif line["tolerance"] == INFORMATIONAL:
                line["verdict"] = INFORMATIONAL
            elif not isinstance(got, list) or not got:
                line["verdict"] = "missing"
            else:
                n = min(len(got), len(curve))
                deltas = [abs(got[i] - curve[i]) for i in range(n)]
                beyond = sum(not within(art, col, curve[i], got[i]) for i in range(n))
                line.update(max_abs_delta=round(max(deltas), 4), beyond=beyond)
                if len(got) < len(curve):
                    line["verdict"] = f"shorter ({len(got)} of {len(curve)} points)"
                else:
                    line["verdict"] = "matches" if beyond == 0 else f"differs ({beyond} of {n} points beyond tolerance)"
            out.append(line)
    return out


def write_diff(art: Any, rep: Mapping[str, Mapping[str, Any]], pub: Mapping[str, Mapping[str, Any]],
               scale: str, comparable: bool, diff_csv: Path) -> list[dict[str, Any]]:
    """``diff_series``, written beside the diff as <artifact>.series.csv when there is any curve."""
    rows = diff_series(art, rep, pub, scale, comparable)
    path = diff_csv.with_name(diff_csv.name.replace(".diff.csv", ".series.csv"))
    if rows:
        io.write_text(path, csv_text(rows))
    else:  # a verdict file left by an earlier plan must not outlive its curves
        path.unlink(missing_ok=True)
    return rows


def markdown_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The per-series table of a diff's markdown report."""
    if not rows:
        return []
    lines = ["## Published curves, point by point", "", "| row | column | points | max abs delta | tolerance | verdict |",
             "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r['row']} | {r['column']} | {r['points']} | {r['max_abs_delta']} | {r['tolerance']} | {r['verdict']} |"
              for r in rows]
    return lines + [""]
