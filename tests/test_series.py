"""Published curves: digitized from vector PDFs by their drawing commands, diffed point by point."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from reproduce.artifacts.series import diff_series, read_published_values, within
from reproduce.jobs.diff import diff_artifact
from reproduce.pipeline.papers import load_all

ROOT = Path(__file__).resolve().parents[1]
SPECS = load_all()
DIGITIZED = ["figure1a", "figure1b", "figure1c", "figure2a", "figure5", "figure10", "figure11"]


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch):
    monkeypatch.chdir(ROOT)


def _long_csv(path: Path, curves: dict[str, dict[str, list[float]]], scale: str) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["row", "column", "i", "value", "scale"])
        for row, cols in curves.items():
            for col, values in cols.items():
                w.writerows([row, col, i, f"{v:.4f}", scale] for i, v in enumerate(values))
    return path


@pytest.mark.parametrize("name", DIGITIZED)
def test_every_digitized_figure_is_a_published_artifact(name):
    art = SPECS["hard_instances"].artifacts[name]
    assert art.published is not None and art.published.name == f"{name}.csv"
    pub = read_published_values(art.published)
    assert pub and set(pub) <= set(art.rows)
    curves = [v for cols in pub.values() for v in cols.values() if isinstance(v, list)]
    if name != "figure11":  # learning curves: one value per epoch 0..199, accuracies in percent
        assert curves and all(len(c) == 200 and all(-0.5 <= x <= 100.5 for x in c) for c in curves)


def test_smoke_output_is_not_comparable_and_the_published_curves_match_themselves(tmp_path):
    art = SPECS["hard_instances"].artifacts["figure1a"]
    pub = read_published_values(art.published)
    smoke = _long_csv(tmp_path / "smoke.csv", {r: {c: v[:6] for c, v in cols.items()} for r, cols in pub.items()}, "smoke")
    res = diff_artifact(art, smoke, tmp_path / "f1a.diff.csv")
    assert len(res["series"]) == 6
    assert {s["verdict"] for s in res["series"]} == {"not comparable (smoke scale)"}
    assert (tmp_path / "f1a.series.csv").exists()
    assert "Published curves, point by point" in (tmp_path / "f1a.diff.md").read_text()
    own = diff_artifact(art, art.published, tmp_path / "own.diff.csv")
    assert {s["verdict"] for s in own["series"]} == {"matches"}


def test_a_paper_scale_curve_is_judged_point_by_point(tmp_path):
    art = SPECS["hard_instances"].artifacts["figure1a"]
    pub = read_published_values(art.published)
    rep = {r: {c: list(v) for c, v in cols.items()} for r, cols in pub.items()}
    rep["easy"]["test"] = [v + 1.5 for v in rep["easy"]["test"]]  # within 2 points everywhere
    rep["hard"]["test"][50:53] = [v + 5 for v in rep["hard"]["test"][50:53]]
    rep["random"]["train"] = rep["random"]["train"][:100]
    out = {(s["row"], s["column"]): s for s in diff_series(art, rep, pub, "paper", True)}
    assert out[("easy", "test")]["verdict"] == "matches" and out[("easy", "test")]["max_abs_delta"] == pytest.approx(1.5)
    assert out[("hard", "test")]["verdict"] == "differs (3 of 200 points beyond tolerance)"
    assert out[("random", "train")]["verdict"] == "shorter (100 of 200 points)"
    del rep["easy"]
    assert {(s["row"], s["verdict"]) for s in diff_series(art, rep, pub, "paper", True)} >= {("easy", "missing")}


def test_relative_tolerances_for_a_log_axis():
    art = SPECS["hard_instances"].artifacts["figure11"]
    assert art.series_tolerance == {"*": "25%"}
    assert within(art, "epoch10", 1000.0, 1240.0) and not within(art, "epoch10", 1000.0, 1260.0)
    plain = replace(art, series_tolerance={})
    assert within(plain, "epoch10", 1000.0, 1000.5) and not within(plain, "epoch10", 1000.0, 1240.0)


def test_pdf_curves_are_read_back_from_the_drawing_commands(tmp_path):
    """A matplotlib PDF with known data, linear and log axes, twin y: read back within 0.5% of the axis
    span (matplotlib's path simplification drops vertices it deems collinear: the only loss)."""
    pytest.importorskip("pypdf")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from reproduce.artifacts.pdf_series import axes, read_page, sample, strokes

    x = np.arange(0, 200)
    lin = 0.9 - 0.4 * (1 - np.exp(-x / 30)) + 0.05 * np.sin(x / 7)
    fig, ax = plt.subplots()
    ax.plot(x, lin, color="b", linestyle="--", linewidth=2)
    ax2 = ax.twinx()
    logv = 10 ** (1 + 4 * x / 199 + 0.3 * np.sin(x / 9))  # not a straight line: simplification keeps its vertices
    ax2.set_yscale("log")
    ax2.plot(x, logv, color="c", linewidth=3)
    fig.savefig(tmp_path / "f.pdf")
    plt.close(fig)
    items = read_page(tmp_path / "f.pdf")
    found, curves = axes(items), strokes(items)
    assert {"x", "y-left", "y-right"} <= set(found) and found["y-right"].log and not found["y-left"].log
    dashed = next(s for s in curves if s.dashed)
    solid = next(s for s in curves if not s.dashed)
    got = np.asarray(sample(dashed, found["x"], found["y-left"], x))
    assert np.max(np.abs(got - lin)) < 0.005 * np.ptp(lin)
    got_log = np.asarray(sample(solid, found["x"], found["y-right"], x))
    assert np.max(np.abs(np.log10(got_log) - np.log10(logv))) < 0.005 * np.ptp(np.log10(logv))


def test_digitize_writes_published_series_and_checks_them_on_a_raster(tmp_path):
    """The whole tool on a figure drawn like the authors' (b train --, b test -, y ...): the series
    written in the harness's units, and the redrawn points found on the PDF's own raster."""
    pytest.importorskip("pypdf")
    import shutil

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import yaml

    from reproduce.artifacts.digitize import main

    x = np.arange(200)
    curves = {("easy", "train"): 0.9 * np.exp(-x / 40), ("easy", "test"): 0.5 + 0.1 * np.cos(x / 15),
              ("hard", "train"): 0.95 - 0.002 * x, ("hard", "test"): 0.8 + 0.05 * np.sin(x / 10)}
    fig, ax = plt.subplots()
    for (row, col), err in curves.items():
        ax.plot(x, err, color="b" if row == "easy" else "y", linestyle="--" if col == "train" else "-", linewidth=2)
    (tmp_path / "src").mkdir()
    fig.savefig(tmp_path / "src" / "f.pdf")
    plt.close(fig)
    spec = {"repository": "someone/somewhere", "commit": "0" * 40,
            "colors": {"b": [0.0, 0.0, 1.0], "y": [0.75, 0.75, 0.0]},
            "figures": {"figure1a": {"file": "f.pdf", "x": {"from": 0, "to": 199, "step": 1}, "curves": [
                {"color": "b" if r == "easy" else "y", "dashed": c == "train", "row": r, "column": c,
                 "transform": "err_to_acc"} for r, c in curves]}}}
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "digitize.yaml").write_text(yaml.safe_dump(spec))
    check = ["--check", str(tmp_path / "overlay")] if shutil.which("pdftoppm") else []
    assert main([str(tmp_path / "out" / "digitize.yaml"), "--source", str(tmp_path / "src"), *check]) == 0
    got = read_published_values(tmp_path / "out" / "figure1a.csv")
    for (row, col), err in curves.items():
        assert np.max(np.abs(np.asarray(got[row][col]) - 100 * (1 - err))) < 0.5  # percent, within half a point
    assert (tmp_path / "out" / "digitized" / "figure1a.csv").read_text().startswith("# digitized from f.pdf")
    if check:
        assert (tmp_path / "overlay" / "figure1a.png").exists()
