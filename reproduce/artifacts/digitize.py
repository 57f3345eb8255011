"""Digitize the authors' vector figures into published series, and check them against a raster.

    python -m reproduce.artifacts.digitize pipelines/hard_instances/published/digitize.yaml \\
        --source <checkout or extracted files of the authors' repository> [--check OUT_DIR]

Writes, beside the YAML: ``digitized/<figure>.csv`` (every curve as plotted: series, x, value) and,
for each figure that names a declared artifact, ``<figure>.csv`` in the harness's units (long form
row, column, i, value for curves; one column per x for ``wide`` tables). ``--check`` rasterizes
each PDF with pdftoppm, redraws the digitized points over it (``OUT_DIR/<figure>.png``) and
counts the points that land on a pixel of their curve's colour; it exits non-zero below 90%.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..errors import ReproduceError
from .pdf_series import Axis, Stroke, axes, read_page, sample, strokes

TRANSFORMS = {"none": lambda v: v, "err_to_acc": lambda v: 100.0 * (1.0 - v)}


def _pick(curves: list[Stroke], rgb: list[float], dashed: bool, where: str) -> Stroke:
    hits = [s for s in curves if s.dashed == dashed and np.allclose(s.rgb, rgb, atol=0.01)]
    span = lambda s: s.pts[-1][0] - s.pts[0][0]  # noqa: E731
    hits.sort(key=span, reverse=True)
    # a legend's sample line has the curve's colour and dash too, but spans a few points only
    if not hits or (len(hits) > 1 and span(hits[1]) > 0.2 * span(hits[0])):
        raise ReproduceError(f"{where}: {len(hits)} curves of colour {rgb} dashed={dashed}, expected one")
    return hits[0]


def digitize_figure(name: str, fig: dict[str, Any], colors: dict[str, list[float]],
                    source: Path) -> tuple[list[dict[str, Any]], dict[str, Axis], list[tuple[Stroke, list]]]:
    """(one record per curve and x, the page's axes, each curve's stroke with its page points)."""
    items = read_page(source / fig["file"])
    found, curves = axes(items), strokes(items)
    xs = list(np.arange(fig["x"]["from"], fig["x"]["to"] + fig["x"]["step"] / 2, fig["x"]["step"]))
    records, drawn = [], []
    for c in fig["curves"]:
        where = f"{name} {c['row']}.{c.get('column', '')}"
        stroke = _pick(curves, colors[c["color"]], bool(c["dashed"]), where)
        y_axis = found[c.get("axis", "y-left")]
        values = sample(stroke, found["x"], y_axis, xs)
        drawn.append((stroke, [(found["x"].position(x), y_axis.position(v)) for x, v in zip(xs, values)]))
        for i, (x, v) in enumerate(zip(xs, values)):
            records.append({"row": c["row"], "column": c.get("column", ""), "i": i, "x": float(x),
                            "plotted": v, "value": TRANSFORMS[c["transform"]](v),
                            "artifact": c.get("artifact", fig.get("artifact", True))})
    return records, found, drawn


def _write(path: Path, header: list[str], rows: list[list[Any]], note: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        f.write(f"# {note}\n")
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def write_outputs(name: str, fig: dict[str, Any], records: list[dict[str, Any]], out: Path, origin: str) -> None:
    note = f"digitized from {fig['file']} of {origin} by reproduce.artifacts.digitize (PUBLISHED.md)"
    _write(out / "digitized" / f"{name}.csv", ["series", "x", "value"],
           [[f"{r['row']}.{r['column']}".rstrip("."), f"{r['x']:g}", f"{r['plotted']:.6g}"] for r in records], note)
    kept = [r for r in records if r["artifact"]]
    if not kept or fig.get("artifact") is False:
        return
    if "wide" in fig:  # one column per x: a table artifact
        # the artifact's other columns stay, empty: a published CSV keeps every column (readback.py)
        cols = [fig["wide"].format(x=int(x)) for x in sorted({r["x"] for r in kept})] + list(fig.get("empty_columns", []))
        rows = {}
        for r in kept:
            rows.setdefault(r["row"], {})[fig["wide"].format(x=int(r["x"]))] = f"{r['value']:.6g}"
        _write(out / f"{name}.csv", ["row", *cols], [[row, *(v.get(c, "") for c in cols)] for row, v in rows.items()], note)
    else:
        _write(out / f"{name}.csv", ["row", "column", "i", "value"],
               [[r["row"], r["column"], r["i"], f"{r['value']:.4f}"] for r in kept], note)


def _distance(p: tuple[float, float], stroke: Stroke) -> float:
    """Page distance from a point to a stroke's polyline."""
    a = np.asarray(stroke.pts[:-1], dtype=float)
    b = np.asarray(stroke.pts[1:], dtype=float)
    d, q = b - a, np.asarray(p, dtype=float)
    t = np.clip(((q - a) * d).sum(1) / np.maximum((d * d).sum(1), 1e-12), 0.0, 1.0)
    return float(np.min(np.linalg.norm(a + t[:, None] * d - q, axis=1)))


def check_raster(pdf: Path, drawn: list[tuple[Stroke, list]], png: Path, dpi: int = 200) -> float:
    """Fraction of digitized points within 2 px (dashed: 6 px) of a pixel of their curve's colour or tint;
    points under a curve drawn later (whose colour hides theirs) are left out of the count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["pdftoppm", "-png", "-r", str(dpi), "-singlefile", str(pdf), f"{tmp}/page"], check=True)
        img = plt.imread(f"{tmp}/page.png")[..., :3]
    scale, height = dpi / 72.0, img.shape[0]
    fig, ax = plt.subplots(figsize=(img.shape[1] / 100, img.shape[0] / 100), dpi=100)
    ax.imshow(img)
    hit = total = 0
    for k, (stroke, pts) in enumerate(drawn):
        later = [s for s, _ in drawn[k + 1:]]
        rgb = np.asarray(stroke.rgb)
        tints = [rgb, 0.3 * rgb + 0.7]  # the notebook draws its grey curves with alpha 0.3
        cols, rows = [], []
        for px, py in pts:
            c, r = px * scale, height - py * scale
            cols.append(c)
            rows.append(r)
            rad = 6 if stroke.dashed else 2  # a dashed curve's gaps are 3.2 pt (9 px at 200 dpi) long
            patch = img[max(0, int(r) - rad):int(r) + rad + 1, max(0, int(c) - rad):int(c) + rad + 1].reshape(-1, 3)
            if any(_distance((px, py), s) < s.width / 2 + 1 for s in later):
                continue  # under a curve drawn later: its colour cannot show
            total += 1
            hit += int(any(np.min(np.abs(patch - t).max(axis=1)) < 0.12 for t in tints))
        ax.plot(cols, rows, ".", ms=1.5, color="red" if stroke.dashed else "black")
    ax.axis("off")
    fig.savefig(png, bbox_inches="tight")
    plt.close(fig)
    return hit / max(total, 1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("spec", type=Path, help="digitize.yaml")
    ap.add_argument("--source", type=Path, required=True, help="where the authors' files are (repository layout)")
    ap.add_argument("--check", type=Path, default=None, help="write overlays here and check them against a raster")
    ap.add_argument("--only", nargs="*", default=None, help="figures to do (default: all)")
    args = ap.parse_args(argv)
    spec = yaml.safe_load(args.spec.read_text())
    origin = f"{spec['repository']}@{spec['commit']}"
    worst = 1.0
    for name, fig in spec["figures"].items():
        if args.only and name not in args.only:
            continue
        records, found, drawn = digitize_figure(name, fig, spec["colors"], args.source)
        write_outputs(name, fig, records, args.spec.parent, origin)
        fits = ", ".join(f"{k} max residual {a.residual:.2g}" for k, a in found.items())
        line = f"{name}: {len(fig['curves'])} curves, {len(records)} points; axes: {fits}"
        if args.check is not None:
            if shutil.which("pdftoppm") is None:
                raise ReproduceError("--check needs pdftoppm (poppler-utils)")
            args.check.mkdir(parents=True, exist_ok=True)
            frac = check_raster(args.source / fig["file"], drawn, args.check / f"{name}.png")
            worst = min(worst, frac)
            line += f"; on the raster: {100 * frac:.1f}% of points"
        print(line)
    return 0 if worst >= 0.9 else 1


if __name__ == "__main__":
    sys.exit(main())
