"""Curves read from a matplotlib vector PDF's drawing commands, not its pixels.

A matplotlib PDF draws every curve as one stroked path (``m``, then ``l`` per vertex) in its
colour and dash pattern, and every major tick as a 3.5-point segment followed by its label's
text. The tick segments give the axes' positions, their labels the values there; a least-squares
line through (position, value) pairs, or (position, log10 value) for labels written 10^k, maps
page coordinates to data. A curve's vertices are the plotted points, except those matplotlib's
path simplification dropped as collinear, so sampling the polyline at the plotted x values gives
the data back up to that simplification (a fraction of a point on the page).

Needs ``pypdf`` (the ``digitize`` extra); only the digitizing and checking of published series use it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ..errors import ReproduceError

MAJOR_TICK = 3.5  # matplotlib's default major tick length in points (minor ticks are 2)


@dataclass
class Stroke:
    pts: list[tuple[float, float]]
    rgb: tuple[float, ...]
    dashed: bool
    width: float


@dataclass
class Axis:
    """One axis: which direction, where its ticks sit, and the map from page position to value."""
    direction: str  # "x", "y-left" or "y-right"
    positions: list[float]
    values: list[float]  # log10 of the labels on a log axis
    log: bool
    slope: float = 0.0
    offset: float = 0.0
    residual: float = field(default=0.0)

    def fit(self) -> "Axis":
        if len(self.positions) < 2:
            raise ReproduceError(f"{self.direction} axis: fewer than two labelled ticks")
        a, b = np.polyfit(self.positions, self.values, 1)
        self.slope, self.offset = float(a), float(b)
        pred = a * np.asarray(self.positions) + b
        self.residual = float(np.max(np.abs(pred - np.asarray(self.values))))
        return self

    def value(self, pos: float) -> float:
        v = self.slope * pos + self.offset
        return 10.0 ** v if self.log else v

    def position(self, value: float) -> float:
        v = math.log10(value) if self.log else value
        return (v - self.offset) / self.slope


def _mul(a: list[float], b: list[float]) -> list[float]:
    return [a[0] * b[0] + a[1] * b[2], a[0] * b[1] + a[1] * b[3], a[2] * b[0] + a[3] * b[2],
            a[2] * b[1] + a[3] * b[3], a[4] * b[0] + a[5] * b[2] + b[4], a[4] * b[1] + a[5] * b[3] + b[5]]


def read_page(path: str | Path) -> list[dict[str, Any]]:
    """Strokes and texts of a one-page PDF in drawing order, in page coordinates."""
    from pypdf import PdfReader
    from pypdf.generic import ContentStream

    reader = PdfReader(str(path))
    ops = ContentStream(reader.pages[0].get_contents(), reader).operations
    ctm, stack, items, path = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0], [], [], []
    st: dict[str, Any] = {"rgb": (0.0, 0.0, 0.0), "dash": (), "w": 1.0}
    for args, raw in ops:
        op = raw.decode("latin-1")
        if op == "q":
            stack.append((ctm[:], dict(st)))
        elif op == "Q":
            ctm, st = stack.pop()
        elif op == "cm":
            ctm = _mul([float(a) for a in args], ctm)
        elif op in ("RG", "G"):
            st["rgb"] = tuple(round(float(a), 3) for a in args) * (3 if op == "G" else 1)
        elif op == "d":
            st["dash"] = tuple(float(a) for a in args[0])
        elif op == "w":
            st["w"] = float(args[0])
        elif op == "m":
            path.append([(float(args[0]), float(args[1]))])
        elif op == "l":
            path[-1].append((float(args[0]), float(args[1])))
        elif op in ("S", "B", "f", "n", "b", "B*", "f*", "re"):
            for sub in path if op in ("S", "B", "b") else []:
                pts = [(ctm[0] * x + ctm[2] * y + ctm[4], ctm[1] * x + ctm[3] * y + ctm[5]) for x, y in sub]
                items.append({"kind": "stroke", "stroke": Stroke(pts, st["rgb"], bool(st["dash"]), st["w"])})
            path = []
        elif op in ("TJ", "Tj"):  # mathtext (10^k labels) draws its glyphs with Tj
            text = "".join(a for a in args[0] if isinstance(a, str)) if op == "TJ" else str(args[0])
            items.append({"kind": "text", "text": text, "at": (ctm[4], ctm[5])})
    return items


def _label(pieces: list[str]) -> tuple[float, bool] | None:
    """A tick label's value, and whether it is 10^k: mathtext draws '1', '0' and the exponent as
    separate glyphs, where a plain label is one string."""
    parts = [p.replace("\u2212", "-").strip() for p in pieces if p.strip()]
    if len(parts) >= 3 and parts[0] + parts[1] == "10" and "".join(parts[2:]).lstrip("-").isdigit():
        return float(int("".join(parts[2:]))), True
    try:
        return float("".join(parts)), False
    except ValueError:
        return None


def axes(items: list[dict[str, Any]]) -> dict[str, Axis]:
    """Every labelled axis of the page: major tick segments and the label text drawn after each."""
    found: dict[str, Axis] = {}
    pending: tuple[str, float] | None = None
    text: list[str] = []

    def close() -> None:
        if pending is not None and text:
            parsed = _label(text)
            if parsed is not None:
                ax = found.setdefault(pending[0], Axis(pending[0], [], [], parsed[1]))
                ax.positions.append(pending[1])
                ax.values.append(parsed[0])

    for it in items:
        if it["kind"] == "text":
            text.append(it["text"])
            continue
        pts = it["stroke"].pts
        if len(pts) != 2:
            continue
        (x0, y0), (x1, y1) = pts
        if abs(abs(y1 - y0) - MAJOR_TICK) < 1e-3 and abs(x1 - x0) < 1e-6:
            close()
            pending, text = ("x", x0), []
        elif abs(abs(x1 - x0) - MAJOR_TICK) < 1e-3 and abs(y1 - y0) < 1e-6:
            close()
            pending, text = ("y-left" if x1 < x0 else "y-right", y0), []
    close()
    return {k: ax.fit() for k, ax in found.items()}


def strokes(items: list[dict[str, Any]], min_points: int = 3) -> list[Stroke]:
    """The plotted curves: strokes of at least ``min_points`` vertices (legend samples and ticks have two;
    a straight plotted line keeps three, its last vertex repeated)."""
    return [it["stroke"] for it in items if it["kind"] == "stroke" and len(it["stroke"].pts) >= min_points]


def sample(stroke: Stroke, x_axis: Axis, y_axis: Axis, xs: Iterable[float]) -> list[float]:
    """The curve's value at each x (data units), by linear interpolation along its polyline."""
    # matplotlib's simplification repeats the last vertex: drop exact repeats, keep the rest
    pts = [p for i, p in enumerate(stroke.pts) if i == 0 or p != stroke.pts[i - 1]]
    px = np.asarray([p[0] for p in pts])
    py = np.asarray([p[1] for p in pts])
    want = np.asarray([x_axis.position(x) for x in xs])
    if np.any(np.diff(px) <= 0):
        raise ReproduceError("a curve's x positions do not increase: not a function of x")
    if want.min() < px[0] - 0.5 or want.max() > px[-1] + 0.5:
        raise ReproduceError(f"x range {list(xs)[:1]}..{list(xs)[-1:]} outside the curve's")
    return [y_axis.value(float(p)) for p in np.interp(want, px, py)]


def x_range(stroke: Stroke, x_axis: Axis) -> tuple[float, float]:
    return x_axis.value(stroke.pts[0][0]), x_axis.value(stroke.pts[-1][0])
