"""Render an artifact from its plan file: read its cells from the node outputs, hand them to its kind.

The scale printed on an artifact is the scale recorded in the data it was made
from, never the workflow's setting: data of two scales refuse to mix, and data of
another scale than the plan's are refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..artifacts import KINDS, Artifact
from ..artifacts.base import artifact_from_plan
from ..artifacts.frame import Frame
from ..errors import ReproduceError
from ..readback import read_plan
from ..provenance import git_commit, scale_banner
from .values import PlanView, Reader


def _round(v: Any, digits: int = 2) -> Any:
    return round(v, digits) if isinstance(v, float) else v


def load_artifact(plan_path: str | Path) -> tuple[Artifact, PlanView]:
    """The artifact (claims included) and the view of its plan file."""
    from ..claims import claim_from_plan

    plan = read_plan(plan_path, "artifact")
    art = artifact_from_plan(plan["artifact"], str(plan_path))
    art.claims = [claim_from_plan(c, art.paper, str(plan_path)) for c in plan["claims"]]
    return art, PlanView(plan, plan_path)


def build_frame(view: PlanView, art: Artifact) -> Frame:
    reader = Reader(view)
    rows, arrays = [], {}
    for rid, row in art.rows.items():
        out: dict[str, Any] = {"row": rid, **row.attrs}
        # in the artifact's column order: the plan file stores cells with sorted keys
        order = {c: i for i, c in enumerate(art.columns)}
        for col, src in sorted(row.cells.items(), key=lambda kv: order.get(kv[0], len(order))):
            cell = reader.cell(art, row, src)
            if isinstance(cell.value, list):
                arrays[(rid, col)] = cell.value
                continue
            digits = int(src.get("digits", 2))
            out[col] = _round(cell.value, digits)
            if cell.n > 1 and cell.sd is not None:
                out[f"{col}_sd"] = round(cell.sd, digits)
        if row.run:
            ids = view.run_ids(row.run)
            out["run_id"] = " ".join(ids)
            if len(ids) > 1:
                out["members"] = len(ids)
        protos = sorted({src["eval"] for src in row.cells.values() if "eval" in src})
        if protos:
            out["protocols"] = " ".join(protos)
        rows.append(out)
    planned = str(view.scale["name"])
    if len(reader.scales) > 1:
        raise ReproduceError(f"{art.paper}/{art.name}: its inputs were made at different scales "
                             f"({', '.join(sorted(reader.scales))}); rebuild them at one scale")
    scale = next(iter(reader.scales), planned)
    if scale != planned:
        raise ReproduceError(f"{art.paper}/{art.name}: the data read were made at scale {scale}, "
                             f"but the plan {view.path} is at scale {planned}")
    kept = view.plan["seeds_kept"]
    if kept and view.plan["groups"]:
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
    return Frame(rows, arrays, art.columns, scale, bool(view.scale["comparable"]), sorted(reader.notes))


def render(plan_path: str | Path, out: str | Path) -> Frame:
    """Render the artifact of ``plan_path`` into ``out`` (and its siblings: .md, or .png/.pdf)."""
    art, view = load_artifact(plan_path)
    frame = build_frame(view, art)
    banner = scale_banner(frame.scale, frame.comparable, view.scale.get("description")) + \
        f" Commit: `{frame.rows[0]['git_commit']}`."
    if KINDS.get(art.kind).family == "figure":  # tables print their notes below the table
        banner += "".join(f" Note: {n}." for n in frame.notes)
    KINDS.get(art.kind)().render(art, frame, Path(out), banner)
    return frame
