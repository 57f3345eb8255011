"""Figures: PNG + PDF for a person, and a CSV of every plotted number beside them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .. import io
from ..errors import ConfigError, ReproduceError
from .base import KINDS, Artifact, ArtifactKind
from .frame import Frame, csv_text, long_rows
from .published import coinciding, dashed, diagonal, footnote, mark, published_cells


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig: Any, art: Artifact, out_png: Path) -> None:
    for suffix in (".png", ".pdf"):
        with io.atomic_path(out_png.with_suffix(suffix)) as tmp:
            fig.savefig(tmp, format=suffix[1:], dpi=150, metadata={"Title": art.title} if suffix == ".pdf" else None)
    _plt().close(fig)


def _axis_name(x: Any) -> str:
    """An x option names a column (its name is the label) or a row attribute (``@row``: no label)."""
    return "" if x is None or str(x).startswith("@") else str(x)


def _finish(fig: Any, notes: list[str]) -> None:
    """Lay out, leaving the notes their own band under the axes."""
    fig.tight_layout(rect=(0, min(0.3, 0.045 * len(notes)), 1, 1))
    footnote(fig, notes)


def _title(art: Artifact, frame: Frame) -> str:
    return art.title if frame.comparable else f"{art.title}\n[{frame.scale} scale: not comparable with the paper]"


class Figure(ArtifactKind):
    family = "figure"
    options: dict[str, Any] = {"x": None, "y": None, "xlabel": "", "ylabel": "", "logx": False, "logy": False}

    xy_keys: tuple[str, ...] = ("x", "y")  # options that must name a column (or @attribute)

    @classmethod
    def check(cls, art: Artifact, where: str) -> None:
        for key in cls.xy_keys:
            col = art.options.get(key)
            if col is None:
                raise ConfigError(f"{where}.options.{key} is required for a {art.kind}")
            if isinstance(col, str) and not col.startswith("@") and col not in art.columns:
                raise ConfigError(f"{where}.options.{key}: {col!r} is not a column ({', '.join(art.columns)})")

    def render(self, art: Artifact, frame: Frame, out: Path, banner: str) -> None:
        plt = _plt()
        fig, ax = plt.subplots(figsize=(6, 4 + 0.25 * len(frame.notes)))
        self.notes: list[str] = []
        self.draw(ax, art, frame)
        ax.set_xlabel(art.options.get("xlabel") or _axis_name(art.options.get("x")))
        ax.set_ylabel(art.options.get("ylabel") or str(art.options.get("y") or ""))
        if art.options.get("logx"):
            ax.set_xscale("log")
        if art.options.get("logy"):
            ax.set_yscale("log")
        ax.set_title(_title(art, frame), fontsize=8)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
        _finish(fig, [*self.notes, *frame.notes])
        save(fig, art, out.with_suffix(".png"))
        data = long_rows(frame) if frame.arrays else frame.rows
        if not data:
            raise ReproduceError(f"{art.paper}/{art.name}: nothing to plot")
        io.write_text(out.with_suffix(".csv"), csv_text(data))

    def draw(self, ax: Any, art: Artifact, frame: Frame) -> None:
        raise NotImplementedError


def _xy(frame: Frame, r: dict[str, Any], key: str) -> Any:
    return r.get(key[1:]) if key.startswith("@") else r.get(key)


def _series(frame: Frame) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in frame.rows:
        out.setdefault(str(r.get("series", r["row"])), []).append(r)
    return out


@KINDS.register("curve")
class Curve(Figure):
    """x against y, one line per ``series`` (trade-off curves, a value against eps). A row that
    aggregates seeds draws its mean with a +-1 sd band (``<y>_sd``). ``panels``: further columns,
    each drawn the same way in its own panel beside y's (robust on all / on B / clean)."""

    options = {**Figure.options, "panels": []}

    @classmethod
    def check(cls, art: Artifact, where: str) -> None:
        super().check(art, where)
        bad = [c for c in art.options.get("panels") or [] if c not in art.columns]
        if bad:
            raise ConfigError(f"{where}.options.panels: {bad[0]!r} is not a column ({', '.join(art.columns)})")

    def render(self, art: Artifact, frame: Frame, out: Path, banner: str) -> None:
        panels = [art.options["y"], *[c for c in art.options.get("panels") or [] if c != art.options["y"]]]
        if len(panels) == 1:
            return super().render(art, frame, out, banner)
        plt = _plt()
        fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.6 + 0.25 * len(frame.notes)),
                                 squeeze=False)
        self.notes = []
        for ax, y in zip(axes[0], panels):
            self.draw_y(ax, art, frame, y)
            ax.set_xlabel(art.options.get("xlabel") or _axis_name(art.options.get("x")))
            ax.set_title(y, fontsize=8)
        axes[0][0].set_ylabel(art.options.get("ylabel") or "")
        axes[0][0].legend(fontsize=6)
        fig.suptitle(_title(art, frame), fontsize=8)
        _finish(fig, [*self.notes, *frame.notes])
        save(fig, art, out.with_suffix(".png"))
        io.write_text(out.with_suffix(".csv"), csv_text(frame.rows))

    def draw(self, ax: Any, art: Artifact, frame: Frame) -> None:
        self.draw_y(ax, art, frame, art.options["y"])

    def draw_y(self, ax: Any, art: Artifact, frame: Frame, y: str) -> None:
        x = art.options["x"]
        scalars, _ = published_cells(art)
        drawn: dict[str, Any] = {}
        for name, rows in _series(frame).items():
            # a published point's x: the paper's own value where x is a column it printed, else the row's x
            pub = [(scalars.get((r["row"], x), _xy(frame, r, x)), scalars[(r["row"], y)]) for r in rows
                   if (r["row"], y) in scalars]
            pub = [(float(a), b) for a, b in pub if a not in (None, "")]
            pts = [(_xy(frame, r, x), _xy(frame, r, y), r.get(f"{y}_sd")) for r in rows]
            pts = [(float(a), float(b), float(sd or 0.0)) for a, b, sd in pts
                   if a not in (None, "") and b not in (None, "")]
            if not pts:
                continue
            xs, ys, sds = map(np.asarray, zip(*pts))  # row order: a trade-off curve follows its sweep
            line = ax.plot(xs, ys, marker="o", markersize=3, linewidth=1, label=name)[0]
            drawn[name] = np.stack([xs, ys])
            if sds.any():
                ax.fill_between(xs, ys - sds, ys + sds, color=line.get_color(), alpha=0.2, linewidth=0)
            if len(pub) > 1:  # the paper's curve of this series, through its published points
                dashed(ax, [p[0] for p in pub], [p[1] for p in pub], color=line.get_color())
            mark(ax, [p[0] for p in pub], [p[1] for p in pub])
        self.notes = [*getattr(self, "notes", []), *coinciding(drawn)]


@KINDS.register("scatter")
class Scatter(Figure):
    """Per-example points (margins before vs after): array cells in columns x and y."""

    options = {**Figure.options, "diagonal": True}

    def draw(self, ax: Any, art: Artifact, frame: Frame) -> None:
        x, y = art.options["x"], art.options["y"]
        scalars, curves = published_cells(art)
        drawn = {}
        for r in frame.rows:
            xs, ys = frame.arrays.get((r["row"], x)), frame.arrays.get((r["row"], y))
            if xs is None or ys is None:
                xs, ys = [r.get(x)], [r.get(y)]
            ax.scatter(xs, ys, s=4, alpha=0.6, label=str(r.get("label", r["row"])))
            drawn[str(r.get("label", r["row"]))] = [xs, ys]
        self.notes = [*getattr(self, "notes", []), *coinciding(drawn)]
        pub = [(scalars[(rid, x)], scalars[(rid, y)]) for rid in {k[0] for k in scalars}
               if (rid, x) in scalars and (rid, y) in scalars]
        pub += [(a, b) for rid in {k[0] for k in curves} for a, b in
                zip(curves.get((rid, x), []), curves.get((rid, y), []))]
        mark(ax, [p[0] for p in pub], [p[1] for p in pub])
        if art.options.get("diagonal", True):  # x and y are the same quantity at two moments
            diagonal(ax)


@KINDS.register("lines")
class Lines(Figure):
    """Per-epoch curves: column y holds an array per row (one point per epoch). A row with an array in
    column ``y2`` instead is drawn in grey on a right-hand axis (learning curves beside group losses)."""

    xy_keys = ("y",)

    options = {**Figure.options, "x": "epoch", "y2": None, "y2label": ""}

    @classmethod
    def check(cls, art: Artifact, where: str) -> None:
        super().check(art, where)
        y2 = art.options.get("y2")
        if y2 is not None and y2 not in art.columns:
            raise ConfigError(f"{where}.options.y2: {y2!r} is not a column ({', '.join(art.columns)})")

    def draw(self, ax: Any, art: Artifact, frame: Frame) -> None:
        y, y2 = art.options["y"], art.options.get("y2")
        _, curves = published_cells(art)
        drawn = {}
        for r in frame.rows:
            ys = frame.arrays.get((r["row"], y))
            if ys:
                line = ax.plot(range(1, len(ys) + 1), ys, linewidth=1, label=str(r.get("label", r["row"])))[0]
                drawn[str(r.get("label", r["row"]))] = ys
                pub = curves.get((r["row"], y))
                if pub:  # the paper's curve of this row, point i at epoch i + 1 like the regenerated one
                    dashed(ax, range(1, len(pub) + 1), pub, color=line.get_color())
        self.notes = [*getattr(self, "notes", []), *coinciding(drawn)]
        right = [r for r in frame.rows if y2 and frame.arrays.get((r["row"], y2))]
        if right:
            ax2 = ax.twinx()
            for r, style in zip(right, ["-", "--", ":", "-."] * len(right)):
                ys = frame.arrays[(r["row"], y2)]
                ax2.plot(range(1, len(ys) + 1), ys, color="grey", linestyle=style, linewidth=1,
                         label=str(r.get("label", r["row"])))
                if curves.get((r["row"], y2)):
                    dashed(ax2, range(1, len(curves[(r["row"], y2)]) + 1), curves[(r["row"], y2)], color="black")
            ax2.set_ylabel(art.options.get("y2label") or str(y2))
            ax2.legend(fontsize=7, loc="center right")


@KINDS.register("bar")
class Bar(Figure):
    """One bar per row (single-class CSAT): column y."""

    xy_keys = ("y",)

    options = {**Figure.options, "x": "@row"}

    def draw(self, ax: Any, art: Artifact, frame: Frame) -> None:
        # every column with a value is a bar of each row's group (robust on A beside robust on B)
        cols = [c for c in dict.fromkeys([*art.columns, art.options["y"]])
                if any(isinstance(r.get(c), (int, float)) for r in frame.rows)]
        scalars, _ = published_cells(art)
        labels = [str(r.get("label", r["row"])) for r in frame.rows]
        width = 0.8 / max(len(cols), 1)
        pub_x, pub_y = [], []
        for j, c in enumerate(cols):
            xs = [i + (j - (len(cols) - 1) / 2) * width for i in range(len(frame.rows))]
            vals = [float(r[c]) if isinstance(r.get(c), (int, float)) else np.nan for r in frame.rows]
            ax.bar(xs, vals, width=width, label=c)
            for x, r in zip(xs, frame.rows):
                if (r["row"], c) in scalars:
                    pub_x.append(x)
                    pub_y.append(scalars[(r["row"], c)])
        mark(ax, pub_x, pub_y)
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=7)


@KINDS.register("image_grid")
class ImageGrid(Figure):
    """Images an analysis saved (easiest/hardest per class, decision regions): column y, one panel per
    row, and one more panel beside it per column of ``more_y`` (a second slice of the same grid).
    n images [n, H, W, C] are tiled ``ncols`` to a line; ``captions`` names array columns of the
    same row whose i-th values are printed under image i (label, d, prediction)."""

    xy_keys = ("y",)

    options = {**Figure.options, "x": "@row", "ncols": 10, "captions": [], "more_y": [], "titles": []}

    @classmethod
    def check(cls, art: Artifact, where: str) -> None:
        super().check(art, where)
        for col in art.options.get("more_y") or []:
            if col not in art.columns:
                raise ConfigError(f"{where}.options.more_y: {col!r} is not a column ({', '.join(art.columns)})")

    def render(self, art: Artifact, frame: Frame, out: Path, banner: str) -> None:
        plt = _plt()
        ys = [art.options["y"], *(art.options.get("more_y") or [])]
        titles = list(art.options.get("titles") or [])
        panels = [(r, [np.asarray(frame.arrays[(r["row"], y)], dtype=float) for y in ys]) for r in frame.rows
                  if all(frame.arrays.get((r["row"], y)) is not None for y in ys)]
        panels = [(r, arrs) for r, arrs in panels if all(a.ndim >= 2 for a in arrs)]
        if not panels:
            raise ReproduceError(f"{art.paper}/{art.name}: no images to show")
        ncols, caps = int(art.options["ncols"]), list(art.options.get("captions") or [])
        lines = [max(1, -(-len(arrs[0]) // ncols)) if arrs[0].ndim == 4 else 1 for _, arrs in panels]
        height = sum(0.95 * n for n in lines) + 0.6 * len(panels)
        width = max(8.0, 0.75 * ncols) if len(ys) == 1 else 4.0 * len(ys)
        fig, axes = plt.subplots(len(panels), len(ys), squeeze=False, height_ratios=lines, figsize=(width, height))
        pub_cells = published_cells(art)[0]
        for line, (r, arrs) in zip(axes, panels):
            pub = {c: v for (rid, c), v in pub_cells.items() if rid == r["row"]}
            shown = ", ".join(f"{c} {v:g}" for c, v in pub.items())  # the paper prints numbers, not images
            for j, (ax, a) in enumerate(zip(line, arrs)):
                _image(ax, a, ncols, caps, [frame.arrays.get((r["row"], c)) or [] for c in caps])
                label = str(r.get("label", r["row"]))
                label = f"{label}: {titles[j]}" if j < len(titles) else label
                ax.set_title(label + (f"  [published: {shown}]" if shown and j == 0 else ""), fontsize=7)
        fig.suptitle(_title(art, frame), fontsize=8)
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / height))  # leave the suptitle its own band
        save(fig, art, out.with_suffix(".png"))
        io.write_text(out.with_suffix(".csv"), csv_text(frame.rows))


def _image(ax: Any, a: np.ndarray, ncols: int, caps: list[str], texts: list[Any]) -> None:
    """One panel: a 2-d map (coolwarm), an RGB image, or n images tiled with their captions."""
    cmap = None if a.ndim == 3 else "coolwarm"
    if a.ndim == 4:
        cmap = "gray" if a.shape[3] == 1 else None
        a, spots = _tile(a, ncols, band=bool(caps))
        for i, (cx, cy) in enumerate(spots if caps else []):
            ax.text(cx, cy, " | ".join(_short(t[i]) for t in texts if i < len(t)), fontsize=4.5,
                    ha="center", va="top")
    ax.imshow(np.clip(a, 0, 1) if a.ndim == 3 or cmap == "gray" else a, cmap=cmap)
    ax.axis("off")


def _short(v: Any) -> str:
    if isinstance(v, float) and not v.is_integer():
        return f"{v:.3f}"
    return str(int(v)) if isinstance(v, (int, float)) else str(v)


def _tile(a: np.ndarray, ncols: int, band: bool) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """[n, H, W, C] -> (one white-margined image of ceil(n / ncols) lines, with a blank band under
    each line when ``band``; where each image's caption goes, in that image's pixels)."""
    n, h, w = a.shape[:3]
    gap, extra = max(1, w // 8), (max(4, h // 3) if band else 0)
    out = np.ones((max(1, -(-n // ncols)) * (h + gap + extra), ncols * (w + gap), a.shape[3]))
    spots = []
    for i in range(n):
        y0, x0 = (i // ncols) * (h + gap + extra), (i % ncols) * (w + gap)
        out[y0:y0 + h, x0:x0 + w] = a[i]
        spots.append((x0 + w / 2, y0 + h + 0.5))
    return (out[..., 0] if out.shape[2] == 1 else out), spots


def heatmap(art: Artifact, frame: Frame, out_png: Path, banner: str) -> None:
    plt = _plt()
    m = np.array([[float(r.get(c)) if r.get(c) not in (None, "") else np.nan for c in art.columns]
                  for r in frame.rows])
    fig, ax = plt.subplots(figsize=(1 + 0.5 * len(art.columns), 1 + 0.45 * len(frame.rows)))
    im = ax.imshow(m, cmap=art.options.get("cmap", "viridis"))
    ax.set_xticks(range(len(art.columns)), art.columns, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(len(frame.rows)), [str(r.get("label", r["row"])) for r in frame.rows], fontsize=7)
    pub, _ = published_cells(art)
    for i, r in enumerate(frame.rows):
        for j, c in enumerate(art.columns):
            p = pub.get((r["row"], c))
            text = "" if np.isnan(m[i, j]) else f"{m[i, j]:.1f}"
            text += "" if p is None else f"\n({p:g})"  # the published value under the regenerated one
            if text:
                ax.text(j, i, text, ha="center", va="center", fontsize=5.5, color="w")
    if pub:
        ax.plot([], [], linestyle="none", label="published: (in parentheses)")
        ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(0, -0.25))
    fig.colorbar(im, ax=ax)
    ax.set_xlabel(art.options.get("xlabel", ""))
    ax.set_ylabel(art.options.get("ylabel", ""))
    ax.set_title(_title(art, frame), fontsize=8)
    fig.tight_layout()
    save(fig, art, out_png)
