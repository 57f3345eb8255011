"""The paper's own numbers, drawn into a regenerated figure: one reader for every kind.

A published CSV is wide (``row`` and the artifact's columns, one value per cell) or long
(``row,column,i,value``: a digitized curve, one line per point). Either way each figure kind asks
``published_cells`` for what exists and draws it the same way: published cells as black-edged
markers, published curves as dashed lines, under one legend entry "published".
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from .base import Artifact

LABEL = "published"
MARKER = {"marker": "D", "s": 28, "facecolors": "none", "edgecolors": "black", "linewidths": 1.0, "zorder": 5}


def published_cells(art: Artifact) -> tuple[dict[tuple[str, str], float], dict[tuple[str, str], list[float]]]:
    """(row, column) -> published value, and (row, column) -> published curve (point i at index i)."""
    if art.published is None or not Path(art.published).exists():
        return {}, {}
    with open(art.published, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(line for line in f if not line.startswith("#") and line.strip()))
    scalars: dict[tuple[str, str], float] = {}
    curves: dict[tuple[str, str], dict[int, float]] = {}
    for r in rows:
        if {"column", "i", "value"} <= set(r):
            v = _float(r["value"])
            if v is None:
                continue
            if str(r["i"]).strip() == "":
                scalars[(r["row"], r["column"])] = v
            else:
                curves.setdefault((r["row"], r["column"]), {})[int(float(r["i"]))] = v
            continue
        for col, text in r.items():
            v = _float(text)
            if col != "row" and v is not None:
                scalars[(r["row"], col)] = v
    return scalars, {k: [pts[i] for i in sorted(pts)] for k, pts in curves.items()}


def _float(v: Any) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def mark(ax: Any, xs: list[float], ys: list[float]) -> None:
    """Published cells: hollow black diamonds, one legend entry per axes."""
    if xs:
        ax.scatter(xs, ys, label=_label(ax), gid=LABEL, **MARKER)


def dashed(ax: Any, xs: Any, ys: Any, color: Any = "black") -> None:
    """A published curve: dashed, in the colour of the regenerated series it belongs to; the legend's
    one "published" entry is a black dashed line, whatever the colours."""
    ax.plot(xs, ys, linestyle="--", linewidth=1, color=color, label="_nolegend_", gid=LABEL)
    if _label(ax) == LABEL:
        ax.plot([], [], linestyle="--", linewidth=1, color="black", label=LABEL)


def _label(ax: Any) -> str:
    """'published' once per axes (later artists stay out of the legend)."""
    return "_nolegend_" if LABEL in ax.get_legend_handles_labels()[1] else LABEL


def coinciding(series: dict[str, Any]) -> list[str]:
    """Notes for regenerated series drawn exactly on top of each other (only the last one shows)."""
    names, notes = list(series), []
    for i, a in enumerate(names):
        same = [b for b in names[i + 1:] if np.shape(series[a]) == np.shape(series[b])
                and np.allclose(np.asarray(series[a], float), np.asarray(series[b], float), equal_nan=True)]
        if same:
            notes.append(f"{', '.join([a, *same])} coincide (drawn on top of each other)")
    return notes


def diagonal(ax: Any) -> None:
    """y = x across the drawn range: a scatter of like against like reads off it."""
    lo = min(ax.get_xlim()[0], ax.get_ylim()[0])
    hi = max(ax.get_xlim()[1], ax.get_ylim()[1])
    ax.plot([lo, hi], [lo, hi], color="grey", linestyle=":", linewidth=1, label="y = x")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)


def footnote(fig: Any, notes: list[str]) -> None:
    """Notes printed under the axes: series that coincide, rows or columns the scale left out."""
    if notes:
        fig.text(0.01, 0.005, "\n".join(f"Note: {n}" for n in notes), fontsize=6, va="bottom", ha="left",
                 wrap=True, color="#444444")
