"""What a results page shows of one artifact, read from the files the DAG wrote.

Every number comes from the artifact's own outputs (its CSV, ``.diff.csv`` and
``.claims.csv``): the page is a view of those files, never a second computation.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from ..artifacts import Artifact
from ..artifacts.citations import cite

# a diff verdict's first word(s) -> the CSS class that colours it
VERDICT_CLASSES = (("match", "ok"), ("holds", "ok"), ("differs", "bad"), ("fails", "bad"), ("missing", "warn"),
                   ("within noise", "warn"), ("thinned", "muted"), ("not comparable", "muted"),
                   ("not checked", "muted"), ("unpublished", "muted"))
LONG_COLUMNS = {"column", "i", "value"}  # a figure's CSV: one line per plotted point


def verdict_class(verdict: str) -> str:
    return next((cls for word, cls in VERDICT_CLASSES if verdict.startswith(word)), "muted")


def coarse(verdict: str) -> str:
    """``not comparable (smoke scale)`` -> ``not comparable``."""
    return next((word for word, _ in VERDICT_CLASSES if verdict.startswith(word)), verdict)


def _read(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@dataclass
class ArtifactView:
    """One artifact as its page shows it (``built``: its regenerated CSV exists)."""

    paper: str
    name: str
    kind: str
    family: str
    title: str
    source: str
    columns: list[str]
    outputs: list[str]
    built: bool = False
    scale: str = ""
    notes: list[str] = field(default_factory=list)
    values: list[dict[str, str]] = field(default_factory=list)  # regenerated rows (wide CSVs only)
    cells: list[dict[str, str]] = field(default_factory=list)  # the diff: published beside regenerated
    claims: list[dict[str, str]] = field(default_factory=list)
    figure: Path | None = None

    @property
    def key(self) -> str:
        return f"{self.paper}/{self.name}"

    @property
    def anchor(self) -> str:
        return f"{self.paper}-{self.name}"

    def output(self, suffix: str) -> Path | None:
        """The output ending in ``suffix`` (``.csv`` is the regenerated values, not the diff or claims)."""
        for o in self.outputs:
            if o.endswith(suffix) and not (suffix == ".csv" and o.endswith((".diff.csv", ".claims.csv"))):
                return Path(o)
        return None

    def counts(self) -> dict[str, dict[str, int]]:
        """Cell and claim verdicts, coarsened to their first words (``match``, ``not comparable``)."""
        out: dict[str, dict[str, int]] = {"cells": {}, "claims": {}}
        for part, key, items in (("cells", "verdict", self.cells), ("claims", "reproduced", self.claims)):
            for c in items:
                word = coarse(c[key])
                out[part][word] = out[part].get(word, 0) + 1
        return out

    def diff_cell(self, row: str, column: str) -> dict[str, str] | None:
        return next((c for c in self.cells if c["row"] == row and c["column"] == column), None)


def collect(art: Artifact, outputs: list[str], family: str) -> ArtifactView:
    """Read what exists of ``art``'s outputs (``outputs``: the paths the DAG gives it)."""
    view = ArtifactView(art.paper, art.name, art.kind, family, art.title, cite(art.paper, art.source),
                        list(art.columns), list(outputs))
    values_csv = view.output(".csv")
    view.built = values_csv is not None and values_csv.exists()
    if not view.built:
        return view
    rows = _read(values_csv)
    if rows and not LONG_COLUMNS <= set(rows[0]):
        view.values = rows
    view.scale = next((r["scale"] for r in rows if r.get("scale")), "")
    view.notes = sorted({n.strip() for r in rows for n in (r.get("notes") or "").split(";") if n.strip()})
    diff, claims = view.output(".diff.csv"), view.output(".claims.csv")
    view.cells = _read(diff) if diff else []
    view.claims = [{**c, "source": cite(art.paper, c.get("source", ""))} for c in (_read(claims) if claims else [])]
    # a matrix is a table with a heatmap beside it, which is not among the table family's outputs
    png = view.output(".png") or values_csv.with_suffix(".png")
    view.figure = png if png.exists() else None
    return view
