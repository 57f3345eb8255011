"""Tables: CSV (every value and its provenance) and Markdown (what a reader looks at)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import io
from .base import KINDS, Artifact, ArtifactKind
from .frame import Frame, csv_text, markdown_table

PROVENANCE = ("scale", "git_commit", "protocols", "n_eval", "run_id", "members", "notes")


@KINDS.register("table")
class Table(ArtifactKind):
    family = "table"

    def render(self, art: Artifact, frame: Frame, out: Path, banner: str) -> None:
        io.write_text(out.with_suffix(".csv"), csv_text(frame.rows))
        shown = [c for c in frame.rows[0] if c not in PROVENANCE]
        from .citations import cite  # the paper, venue and table, not the text file it was typed from

        md = [f"# {art.paper} {art.name}: {art.title}", "", f"Source: {cite(art.paper, art.source)}.", banner, "",
              markdown_table(frame.rows, shown), ""]
        md += [f"Note: {n}." for n in frame.notes]
        io.write_text(out.with_suffix(".md"), "\n".join(md) + "\n")


@KINDS.register("matrix")
class Matrix(Table):
    """A rows x columns grid (per-class transfer): the table, plus a heatmap beside it."""

    options: dict[str, Any] = {"cmap": "viridis", "xlabel": "", "ylabel": ""}

    def render(self, art: Artifact, frame: Frame, out: Path, banner: str) -> None:
        super().render(art, frame, out, banner)
        from .plots import heatmap

        heatmap(art, frame, out.with_suffix(".png"), banner)
