"""Where every artifact stands: its diff's cell verdicts and claim verdicts, counted.

An artifact without a diff yet (never run, or no published values and no claims)
is listed too, so the overview shows what is missing as well as what differs.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from .. import io
from ..artifacts.frame import csv_text

# cell verdicts, coarsened: "not comparable (smoke scale)" -> "not comparable"
CELL_STATES = ("match", "differs", "missing", "thinned", "not comparable", "unpublished")
CLAIM_STATES = ("holds", "fails", "within noise", "not checked", "unknown", "not applicable")


def _state(verdict: str, states: tuple[str, ...]) -> str:
    return next((s for s in states if verdict.startswith(s)), verdict)


def _read(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def artifact_status(dag: Any) -> list[dict[str, Any]]:
    """One row per artifact of every paper, in spec order."""
    rows = []
    for art in dag.artifacts():
        base = dag.results / art.paper / art.name
        row: dict[str, Any] = {"paper": art.paper, "artifact": art.name, "kind": art.kind}
        diff, claims = Path(f"{base}.diff.csv"), Path(f"{base}.claims.csv")
        if not diff.exists():
            done = Path(f"{base}.csv").exists()
            row.update(status="rendered, nothing to diff" if done and art.published is None and not art.claims
                       else "not yet run", scale="")
            rows.append(row)
            continue
        cells, verdicts = _read(diff), _read(claims) if claims.exists() else []
        counts = {s: 0 for s in (*CELL_STATES, *CLAIM_STATES)}
        for c in cells:
            counts[_state(c["verdict"], CELL_STATES)] += 1
        for c in verdicts:
            counts[_state(c["reproduced"], CLAIM_STATES)] += 1
        scales = sorted({c["scale"] for c in [*cells, *verdicts] if c.get("scale")})
        from .scales import load_scale

        # numbers of a scale that is not comparable say nothing about the paper, whatever they show
        worst = ("not comparable" if counts["not comparable"] or not all(load_scale(s).comparable for s in scales)
                 else "differs" if counts["differs"] or counts["fails"]
                 else "within noise" if counts["within noise"] else "match")
        row.update(status=worst, scale=" ".join(scales),
                   cells=len(cells), **{f"cells_{k.replace(' ', '_')}": counts[k] for k in CELL_STATES},
                   claims=len(verdicts), **{f"claims_{k.replace(' ', '_')}": counts[k] for k in CLAIM_STATES})
        rows.append(row)
    return rows


def write_status(dag: Any, out: str | Path) -> list[dict[str, Any]]:
    rows = artifact_status(dag)
    keys = list(dict.fromkeys(k for r in rows for k in r))
    io.write_text(out, csv_text([{k: r.get(k, "") for k in keys} for r in rows]))
    return rows
