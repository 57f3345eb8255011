"""Every figure kind draws the paper's numbers beside the regenerated ones (matplotlib artists, not pixels)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reproduce.artifacts import KINDS, Artifact, Row, plots
from reproduce.artifacts.frame import Frame


@pytest.fixture
def figures(monkeypatch):
    """The figures a render saves, kept open for inspection."""
    kept = []
    monkeypatch.setattr(plots, "save", lambda fig, art, out: kept.append(fig))
    yield kept
    import matplotlib.pyplot as plt

    for f in kept:
        plt.close(f)


def _art(tmp_path: Path, kind: str, columns: list[str], rows: list[str], published: str | None,
         **options) -> Artifact:
    pub = None
    if published is not None:
        pub = tmp_path / "published.csv"
        pub.write_text(published)
    opts = {**KINDS.get(kind).options, **options}
    return Artifact("paper", "fig", kind, "A title", "000 Figure 1", pub, [], columns,
                    {r: Row(r, None, {}) for r in rows}, 1.0, 0.0, [], opts)


def _labels(fig) -> list[str]:
    return [lab for ax in fig.axes for lab in ax.get_legend_handles_labels()[1]]


def _render(art: Artifact, frame: Frame, tmp_path: Path, figures: list) -> object:
    KINDS.get(art.kind)().render(art, frame, tmp_path / "out.png", "")
    assert len(figures) == 1
    return figures[0]


def test_curve_marks_published_points_and_dashes_their_curve(tmp_path, figures):
    art = _art(tmp_path, "curve", ["aa", "clean"], ["a", "b"], "row,aa,clean\na,50,80\nb,55,75\n", x="aa", y="clean")
    frame = Frame([{"row": "a", "series": "hat", "aa": 48.0, "clean": 82.0},
                   {"row": "b", "series": "hat", "aa": 53.0, "clean": 77.0}], columns=art.columns, scale="ci")
    fig = _render(art, frame, tmp_path, figures)
    assert _labels(fig).count("published") == 1
    ax = fig.axes[0]
    assert any(ln.get_linestyle() == "--" for ln in ax.get_lines())
    offsets = np.concatenate([c.get_offsets() for c in ax.collections if c.get_gid() == "published"])
    assert sorted(map(tuple, offsets.tolist())) == [(50.0, 80.0), (55.0, 75.0)]
    assert ax.get_xlabel() == "aa"


def test_curve_without_published_values_draws_none(tmp_path, figures):
    art = _art(tmp_path, "curve", ["aa", "clean"], ["a"], None, x="aa", y="clean")
    frame = Frame([{"row": "a", "aa": 48.0, "clean": 82.0}], columns=art.columns, scale="ci")
    assert "published" not in _labels(_render(art, frame, tmp_path, figures))


def test_lines_draw_a_digitized_curve_dashed_and_note_coinciding_series(tmp_path, figures):
    long = "# digitized\nrow,column,i,value\neasy,test,0,10\neasy,test,1,20\neasy,test,2,30\n"
    art = _art(tmp_path, "lines", ["test"], ["easy", "hard"], long, y="test")
    frame = Frame([{"row": "easy"}, {"row": "hard"}], {("easy", "test"): [1.0, 2.0, 3.0],
                                                      ("hard", "test"): [1.0, 2.0, 3.0]}, art.columns, "ci")
    fig = _render(art, frame, tmp_path, figures)
    ax = fig.axes[0]
    pub = [ln for ln in ax.get_lines() if ln.get_gid() == "published"]
    assert len(pub) == 1 and pub[0].get_linestyle() == "--"
    assert list(pub[0].get_ydata()) == [10, 20, 30]
    assert pub[0].get_color() == next(ln for ln in ax.get_lines() if ln.get_label() == "easy").get_color()
    assert "published" in _labels(fig)
    assert ax.get_xlabel() == "epoch"
    texts = " ".join(t.get_text() for t in fig.texts)
    assert "easy, hard coincide" in texts


def test_scatter_marks_published_points_and_draws_the_diagonal(tmp_path, figures):
    art = _art(tmp_path, "scatter", ["initial", "final"], ["at"], "row,initial,final\nat,0.1,0.3\n",
               x="initial", y="final")
    frame = Frame([{"row": "at"}], {("at", "initial"): [0.1, 0.2], ("at", "final"): [0.2, 0.5]}, art.columns, "ci")
    fig = _render(art, frame, tmp_path, figures)
    labels = _labels(fig)
    assert "published" in labels and "y = x" in labels


def test_bar_draws_every_column_and_marks_published_cells(tmp_path, figures):
    art = _art(tmp_path, "bar", ["rob_A", "rob_B"], ["car", "cat"],
               "row,rob_A,rob_B\ncar,93.5,17.1\ncat,49.6,37.8\n", y="rob_B", ylabel="robust accuracy (%)")
    frame = Frame([{"row": "car", "rob_A": 90.0, "rob_B": 15.0}, {"row": "cat", "rob_A": 50.0, "rob_B": 30.0}],
                  columns=art.columns, scale="ci")
    fig = _render(art, frame, tmp_path, figures)
    ax = fig.axes[0]
    labels = _labels(fig)
    assert {"rob_A", "rob_B", "published"} <= set(labels)
    ys = sorted(np.concatenate([c.get_offsets()[:, 1] for c in ax.collections if c.get_gid() == "published"]))
    assert ys == [17.1, 37.8, 49.6, 93.5]
    assert ax.get_xlabel() == "" and ax.get_ylabel() == "robust accuracy (%)"  # no `@row` on the axis


def test_image_grid_prints_published_numbers_over_its_panel(tmp_path, figures):
    art = _art(tmp_path, "image_grid", ["regions", "robust"], ["at"], "row,regions,robust\nat,,74\n", y="regions")
    frame = Frame([{"row": "at"}], {("at", "regions"): np.zeros((4, 4, 3)).tolist()}, art.columns, "ci")
    fig = _render(art, frame, tmp_path, figures)
    assert any("published: robust 74" in ax.get_title() for ax in fig.axes)


def test_matrix_heatmap_prints_published_values_in_its_cells(tmp_path, figures):
    art = _art(tmp_path, "matrix", ["car", "cat"], ["car"], "row,car,cat\ncar,93,17\n")
    frame = Frame([{"row": "car", "car": 90.0, "cat": 20.0}], columns=art.columns, scale="ci")
    plots.heatmap(art, frame, tmp_path / "m.png", "")
    fig = figures[0]
    assert "published: (in parentheses)" in _labels(fig)
    assert any(t.get_text() == "20.0\n(17)" for t in fig.axes[0].texts)
