"""Regenerated vs published: every published cell, and the paper's claims re-checked."""

from __future__ import annotations

import csv
import operator
from pathlib import Path
from typing import Any, Mapping

from .. import io
from ..errors import ReproduceError
from .provenance import git_commit, scale_banner
from .render import _csv_text, markdown_table
from .spec import Artifact, Claim, read_published

OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}


def _num(v: Any) -> float | None:
    if v is None or str(v).strip() == "":
        return None
    try:
        return float(v)
    except ValueError:
        return None


def read_table(path: str | Path) -> dict[str, dict[str, str]]:
    p = Path(path)
    if not p.exists():
        raise ReproduceError(f"{p}: regenerated table missing; render it first")
    with open(p, newline="", encoding="utf-8") as f:
        return {r["row"]: r for r in csv.DictReader(f)}


def evaluate_claim(claim: Claim, values: Mapping[str, Mapping[str, Any]]) -> tuple[str, list[str]]:
    """'holds', 'fails' or 'unknown' (a value is missing), with each check's numbers."""
    details, verdicts = [], []
    for r1, c1, op, r2, c2 in claim.checks:
        a, b = _num(values.get(r1, {}).get(c1)), _num(values.get(r2, {}).get(c2))
        if a is None or b is None:
            verdicts.append(None)
            details.append(f"{r1}.{c1} {op} {r2}.{c2}: missing value")
            continue
        ok = OPS[op](a, b)
        verdicts.append(ok)
        details.append(f"{r1}.{c1}={a:g} {op} {r2}.{c2}={b:g}: {'yes' if ok else 'NO'}")
    if None in verdicts:
        return "unknown", details
    return ("holds" if all(verdicts) else "fails"), details


def diff_artifact(art: Artifact, regenerated_csv: str | Path, out_csv: str | Path, *, scale: str,
                  comparable: bool) -> dict[str, Any]:
    if art.published is None:
        raise ReproduceError(f"{art.paper}/{art.name}: no published values to diff against")
    _, pub_rows = read_published(art.published)
    pub = {r["row"]: r for r in pub_rows}
    rep = read_table(regenerated_csv)
    cells = []
    for rid in art.rows:
        for col in art.columns:
            p, r = _num(pub[rid].get(col)), _num(rep.get(rid, {}).get(col))
            delta = None if p is None or r is None else round(r - p, 2)
            if p is None:
                verdict = "unpublished"
            elif r is None:
                verdict = "missing"
            elif not comparable:
                verdict = f"not comparable ({scale} scale)"
            else:
                verdict = "match" if abs(delta) <= art.tolerance else "differs"
            cells.append({"row": rid, "column": col, "published": "" if p is None else p,
                          "reproduced": "" if r is None else r, "delta": "" if delta is None else delta,
                          "tolerance": art.tolerance, "verdict": verdict, "scale": scale})
    claims = []
    for c in art.claims:
        on_pub, _ = evaluate_claim(c, pub)
        on_rep, details = evaluate_claim(c, rep)
        claims.append({"claim": c.id, "text": c.text, "source": c.source, "published": on_pub,
                       "reproduced": on_rep, "details": "; ".join(details), "scale": scale})
    out_csv = Path(out_csv)
    io.write_text(out_csv, _csv_text(cells))
    claims_csv = out_csv.with_name(out_csv.name.replace(".diff.csv", ".claims.csv"))
    io.write_text(claims_csv, _csv_text(claims) if claims else "claim,text,source,published,reproduced,details,scale\n")
    counts: dict[str, int] = {}
    for c in cells:
        counts[c["verdict"]] = counts.get(c["verdict"], 0) + 1
    md = [f"# Diff: {art.paper} {art.name} ({art.title})", "", scale_banner(scale, comparable),
          f"Commit: `{git_commit()}`. Tolerance: {art.tolerance} points.", "",
          "Cells: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())), "",
          markdown_table(cells, ["row", "column", "published", "reproduced", "delta", "verdict"]), ""]
    if claims:
        md += ["## The paper's claims, re-checked", "",
               markdown_table(claims, ["claim", "text", "published", "reproduced"]), ""]
        if not comparable:
            md.append(f"At {scale} scale a claim that fails or holds says nothing about the paper.")
    io.write_text(out_csv.with_suffix(".md"), "\n".join(md) + "\n")
    return {"cells": cells, "claims": claims, "counts": counts}
