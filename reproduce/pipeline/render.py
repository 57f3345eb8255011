"""Artifacts from evaluations: tables as CSV + Markdown, figures as PNG + PDF (+ their data as CSV)."""

from __future__ import annotations

import csv
import io as _io
import json
from pathlib import Path
from typing import Any

from .. import io
from ..errors import ReproduceError
from .dag import Dag
from .provenance import git_commit, scale_banner
from .spec import Artifact, read_published


def _load_json(path: str) -> dict[str, Any]:
    p = Path(path)
    if not p.exists():
        raise ReproduceError(f"{p}: evaluation missing; run the DAG (snakemake) or `reproduce evaluate` first")
    return json.loads(p.read_text())


def table_rows(dag: Dag, art: Artifact) -> list[dict[str, Any]]:
    """One dict per row: descriptive columns from the published CSV, regenerated metrics, provenance."""
    desc: dict[str, dict[str, str]] = {}
    desc_cols: list[str] = []
    if art.published is not None:
        header, prow = read_published(art.published)
        desc_cols = [c for c in header[1:] if c not in art.columns]
        desc = {r["row"]: {c: r[c] for c in desc_cols} for r in prow}
    rows = []
    for rid, run in art.rows.items():
        run_id = dag.run_id(art.paper, run)
        row: dict[str, Any] = {"row": rid, **desc.get(rid, {c: "" for c in desc_cols})}
        protos = []
        for col, proto in art.row_protocols[rid].items():
            res = _load_json(dag.eval_path(run_id, proto))
            row[col] = round(float(res["accuracy"]), 2)
            protos.append(f"{col}={res.get('protocol_run', res.get('protocol', proto))}")
        row.update({"scale": dag.scale.name, "run_id": run_id, "protocols": " ".join(protos),
                    "n_eval": res.get("n")})
        rows.append(row)
    return rows


def _csv_text(rows: list[dict[str, Any]]) -> str:
    buf = _io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def markdown_table(rows: list[dict[str, Any]], cols: list[str]) -> str:
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        out.append("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |")
    return "\n".join(out)


def render_table(dag: Dag, art: Artifact, out_csv: str | Path) -> list[dict[str, Any]]:
    rows = table_rows(dag, art)
    commit = git_commit()
    for r in rows:
        r["git_commit"] = commit
    out_csv = Path(out_csv)
    io.write_text(out_csv, _csv_text(rows))
    shown = [c for c in rows[0] if c not in ("scale", "git_commit", "protocols", "n_eval")]
    md = [f"# {art.paper} {art.name}: {art.title}", "", f"Source: {art.source}.",
          scale_banner(dag.scale.name, dag.scale.comparable), f"Commit: `{commit}`.", "",
          markdown_table(rows, shown), "",
          f"Evaluated on {rows[0]['n_eval']} test examples per cell; protocols per row are in the CSV."]
    io.write_text(out_csv.with_suffix(".md"), "\n".join(md) + "\n")
    return rows


def render_figure(dag: Dag, art: Artifact, out_png: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig_spec = art.figure or {}
    if fig_spec.get("plot") != "step_ratio":
        raise ReproduceError(f"{art.paper}/{art.name}: unknown figure plot {fig_spec.get('plot')!r}")
    x, y = fig_spec.get("x", "step"), fig_spec.get("y", "ratio")
    fig, ax = plt.subplots(figsize=(6, 4))
    data_rows = []
    for label, run in fig_spec["series"].items():
        rid = dag.run_id(art.paper, run)
        path = dag.run_dir(rid) / "steps.jsonl"
        if not path.exists():
            raise ReproduceError(f"{path}: no per-step log; the run's method must log `{y}` per step")
        pts = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        xs, ys = [p[x] for p in pts if y in p], [p[y] for p in pts if y in p]
        ax.plot(xs, ys, label=label, linewidth=1)
        data_rows += [{"series": label, "run_id": rid, x: a, y: b} for a, b in zip(xs, ys)]
    ax.set_xlabel(fig_spec.get("xlabel", x))
    ax.set_ylabel(fig_spec.get("ylabel", y))
    title = art.title if dag.scale.comparable else f"{art.title}\n[{dag.scale.name} scale: not comparable]"
    ax.set_title(title, fontsize=8)
    ax.legend()
    fig.tight_layout()
    out_png = Path(out_png)
    for suffix in (".png", ".pdf"):
        with io.atomic_path(out_png.with_suffix(suffix)) as tmp:
            fig.savefig(tmp, format=suffix[1:], dpi=150, metadata={"Title": art.title} if suffix == ".pdf" else None)
    plt.close(fig)
    if not data_rows:
        raise ReproduceError(f"{art.paper}/{art.name}: no points to plot")
    for r in data_rows:
        r.update({"scale": dag.scale.name, "git_commit": git_commit()})
    io.write_text(out_png.with_suffix(".csv"), _csv_text(data_rows))
