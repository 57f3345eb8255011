"""Render an artifact: read its cells from the node outputs, then hand them to its kind.

The scale printed on an artifact is the scale recorded in the data it was made
from, never the workflow's setting: data of two scales refuse to mix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..artifacts import KINDS, Artifact
from ..artifacts.frame import Frame
from ..errors import ReproduceError
from .provenance import git_commit, scale_banner
from .scales import load_scale
from .values import Reader


def _round(v: Any) -> Any:
    return round(v, 2) if isinstance(v, float) else v


def build_frame(dag: Any, art: Artifact) -> Frame:
    reader = Reader(dag)
    rows, arrays = [], {}
    for rid, row in art.rows.items():
        out: dict[str, Any] = {"row": rid, **row.attrs}
        for col, src in row.cells.items():
            cell = reader.cell(art, row, src)
            if isinstance(cell.value, list):
                arrays[(rid, col)] = cell.value
                continue
            out[col] = _round(cell.value)
            if cell.n > 1 and cell.sd is not None:
                out[f"{col}_sd"] = round(cell.sd, 2)
        if row.run:
            ids = dag.graph.run_ids(art.paper, row.run)
            out["run_id"] = " ".join(ids)
            if len(ids) > 1:
                out["members"] = len(ids)
        protos = sorted({src["eval"] for src in row.cells.values() if "eval" in src})
        if protos:
            out["protocols"] = " ".join(protos)
        rows.append(out)
    if len(reader.scales) > 1:
        raise ReproduceError(f"{art.paper}/{art.name}: its inputs were made at different scales "
                             f"({', '.join(sorted(reader.scales))}); rebuild them at one scale")
    scale = next(iter(reader.scales), dag.scale.name)
    if scale != dag.scale.name:
        raise ReproduceError(f"{art.paper}/{art.name}: the data read were made at scale {scale}, "
                             f"but the workflow is at scale {dag.scale.name}")
    kept = dag.graph.seeds_kept
    groups = {r.run for r in art.rows.values() if r.run in dag.specs[art.paper].groups}
    if kept and groups:
        reader.notes.add(f"seed groups thinned to their first {kept} seed(s) at this scale")
    if art.thinned:
        reader.notes.add(f"sweeps thinned at this scale; rows left out: {', '.join(art.thinned)}")
    if art.thinned_columns:
        reader.notes.add(f"columns left out at this scale: {', '.join(art.thinned_columns)}")
    commit = git_commit()
    for r in rows:
        r.update({"scale": scale, "git_commit": commit})
        if reader.notes:  # every output says what this scale left out
            r["notes"] = "; ".join(sorted(reader.notes))
    return Frame(rows, arrays, art.columns, scale, load_scale(scale).comparable, sorted(reader.notes))


def render(dag: Any, art: Artifact, out: str | Path) -> Frame:
    frame = build_frame(dag, art)
    banner = scale_banner(frame.scale, frame.comparable) + f" Commit: `{frame.rows[0]['git_commit']}`."
    if KINDS.get(art.kind).family == "figure":  # tables print their notes below the table
        banner += "".join(f" Note: {n}." for n in frame.notes)
    KINDS.get(art.kind)().render(art, frame, Path(out), banner)
    return frame
