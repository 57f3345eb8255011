"""group_curves against hand-computed group means; the claim helpers it needs (or_inf, decreasing_from)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reproduce.analyses import ANALYSES, AnalysisContext
from reproduce.analyses.group_curves import first_below_half, group_means, summarize
from reproduce.claims.grammar import Missing, evaluate, parse
from reproduce.errors import ConfigError


def _difficulty(path, ids, d):
    path.mkdir()
    np.savez(path / "difficulty.npz", indices=np.asarray(ids), d=np.asarray(d, float),
             labels=np.zeros(len(ids), dtype=np.int64))


def _run(path, ids, losses, correct=None):
    path.mkdir()
    np.save(path / "instance_indices.npy", np.asarray(ids, dtype=np.int64))
    np.save(path / "instance_losses.npy", np.asarray(losses, dtype=np.float32))
    if correct is not None:
        np.save(path / "instance_correct.npy", np.asarray(correct, dtype=np.uint8))


def _analyze(tmp_path, params, run, diff):
    out = tmp_path / "out"
    out.mkdir()
    cls = ANALYSES.get("group_curves")
    p = cls.resolve_params({"run": "r", "difficulty": "d", **params}, "t")
    vals = cls().run(AnalysisContext(p, {"run": run, "difficulty": diff}, out, tmp_path, torch.device("cpu"), "test"))
    return vals, np.load(out / "group_curves.npz")


def test_curves_of_a_run_that_is_a_subset_of_the_difficulty_run(tmp_path):
    # the difficulty ranks ids 10..15: G0 = {10, 11} (d < .1), G3 = {12, 13}, G9 = {14, 15}
    _difficulty(tmp_path / "d", [10, 11, 12, 13, 14, 15], [0.05, 0.02, 0.35, 0.31, 0.95, 1.0])
    # the curve run trained on 11, 13, 14, 15 and 99 (unknown to the difficulty: ignored), in another order
    ids = [15, 99, 11, 13, 14]
    losses = [[4.0, 7.0, 2.0, 6.0, 2.0],    # epoch 0
              [3.0, 7.0, 2.0, 2.0, 1.0],    # epoch 1
              [0.0, 7.0, 1.8, 1.0, 0.5]]    # epoch 2
    _run(tmp_path / "r", ids, losses)
    vals, z = _analyze(tmp_path, {"groups": [0, 3, 9], "early_epochs": 1}, tmp_path / "r", tmp_path / "d")
    # G0 = {11} alone (10 was not trained): 2, 2, 1.8; G3 = {13}: 6, 2, 1; G9 = {14, 15}: 3, 2, 0.25
    assert z["G0"].tolist() == pytest.approx([2.0, 2.0, 1.8])
    assert z["G3"].tolist() == pytest.approx([6.0, 2.0, 1.0])
    assert z["G9"].tolist() == pytest.approx([3.0, 2.0, 0.25])
    assert z["epoch"].tolist() == [0, 1, 2]
    # G0 never falls below 1.0: null; G3 < 3 at epoch 1; G9 < 1.5 at epoch 2
    assert vals["t_half"] == {"G0": None, "G3": 1, "G9": 2}
    assert vals["early_drop"] == pytest.approx({"G0": 0.0, "G3": 4 / 6, "G9": 1 / 3})
    # mid epoch = 3 // 2 - 1 = 0: drop from epoch 0 to the last
    assert vals["late_drop"] == pytest.approx({"G0": 0.2, "G3": 5.0, "G9": 2.75})
    assert vals["size"] == {"G0": 1, "G3": 1, "G9": 2} and vals["mid_epoch"] == 0


def test_acc_metric_averages_the_error_and_skips_unseen(tmp_path):
    _difficulty(tmp_path / "d", [0, 1, 2], [0.05, 0.01, 0.99])
    correct = [[0, 0, 1], [1, 255, 1], [1, 1, 1]]  # 255: not seen in epoch 1
    _run(tmp_path / "r", [0, 1, 2], np.zeros((3, 3)), correct)
    vals, z = _analyze(tmp_path, {"groups": [0, 9], "metric": "acc"}, tmp_path / "r", tmp_path / "d")
    assert z["G0"].tolist() == pytest.approx([1.0, 0.0, 0.0])  # epoch 1: id 0 alone
    assert z["G9"].tolist() == pytest.approx([0.0, 0.0, 0.0])
    assert vals["t_half"]["G0"] == 1 and vals["t_half"]["G9"] is None


def test_nothing_shared_is_a_config_error(tmp_path):
    _difficulty(tmp_path / "d", [0, 1], [0.1, 0.9])
    _run(tmp_path / "r", [5, 6], np.ones((2, 2)))
    with pytest.raises(ConfigError, match="shares no instance"):
        _analyze(tmp_path, {}, tmp_path / "r", tmp_path / "d")
    with pytest.raises(ConfigError, match="groups"):
        ANALYSES.get("group_curves").resolve_params({"run": "r", "difficulty": "d", "groups": [10]}, "t")
    with pytest.raises(ConfigError, match="metric"):
        ANALYSES.get("group_curves").resolve_params({"run": "r", "difficulty": "d", "metric": "l2"}, "t")


def test_helpers_by_hand():
    assert first_below_half(np.array([2.0, 1.5, 1.0, 0.9])) == 3  # 1.0 is not below 1.0
    assert first_below_half(np.array([2.0, 1.5])) is None
    s = summarize(np.array([4.0, 3.0, 2.0, 1.0, 0.5, 0.0]), early_epochs=20)  # clipped to the last epoch
    assert s["early_drop"] == 1.0 and s["late_drop"] == 2.0 and s["t_half"] == 3  # mid = epoch 2
    curves, sizes = group_means(np.array([[1.0, np.nan, 3.0]]), np.array([7, 8, 9]), np.array([7, 8, 9]),
                                np.array([0, 0, 0]), [0, 5], "x")
    assert curves[0].tolist() == [2.0] and np.isnan(curves[5]).all() and sizes == {0: 3, 5: 0}


def _check(text, values):
    return evaluate(parse(text, "t"), lambda ref: values.get(ref.row, {}).get(ref.column))


def test_or_inf_reads_a_never_crossing_group_as_infinity():
    claim = "increasing(or_inf(G9.t), or_inf(G6.t), or_inf(G3.t), or_inf(G0.t))"
    assert _check(claim, {"G9": {"t": 1}, "G6": {"t": 4}, "G3": {"t": 30}})[0] is True  # G0 never crosses
    assert _check(claim, {"G9": {"t": 1}, "G6": {"t": 4}})[0] is False  # G3 and G0 both never: not strict
    assert _check(claim, {"G9": {"t": 5}, "G6": {"t": 4}, "G3": {"t": 30}, "G0": {"t": 40}})[0] is False
    with pytest.raises(Missing):  # nothing at all (a paper publishing none of them) stays unknown
        _check(claim, {})
    with pytest.raises(Missing):  # outside or_inf a missing cell is still missing
        _check("G0.t < or_inf(G3.t)", {"G3": {"t": 3}})


def test_decreasing_from_orders_curves_from_a_fraction_of_the_run():
    a, b, c = [1.0, 5.0, 4.0, 3.0], [2.0, 4.0, 3.0, 2.0], [3.0, 3.0, 2.0, 1.0]
    v = {"a": {"l": a}, "b": {"l": b}, "c": {"l": c}}
    assert _check("decreasing_from(0.25, a.l, b.l, c.l)", v)[0] is True   # from index 1 on
    assert _check("decreasing_from(0, a.l, b.l, c.l)", v)[0] is False     # index 0 is reversed
    v["c"]["l"] = [3.0, 3.0, 2.0, 2.0]                                     # a tie at the end
    assert _check("decreasing_from(0.25, a.l, b.l, c.l)", v)[0] is False
    assert _check("argmax(a.l) >= 0.25 * len(a.l)", v)[0] is True


def test_lines_draws_y2_rows_on_a_right_axis_and_checks_the_column(tmp_path):
    from reproduce.artifacts import KINDS
    from reproduce.artifacts.base import Artifact, Row
    from reproduce.artifacts.frame import Frame

    cls = KINDS.get("lines")
    rows = {"G0": Row("G0", None, {}), "test": Row("test", "r", {})}
    art = Artifact("p", "f", "lines", "t", "s", None, [], ["loss", "acc"], rows, 1.0, 0.0, [],
                   {**cls.options, "y": "loss", "y2": "acc"})
    cls.check(art, "w")
    frame = Frame([{"row": "G0", "scale": "smoke"}, {"row": "test", "scale": "smoke"}],
                  {("G0", "loss"): [2.0, 1.0], ("test", "acc"): [40.0, 45.0]}, ["loss", "acc"], "smoke", False)
    cls().render(art, frame, tmp_path / "f.csv", "b")
    assert (tmp_path / "f.png").exists()
    lines = (tmp_path / "f.csv").read_text().splitlines()
    assert "test,acc,1,45.0,smoke" in lines and "G0,loss,0,2.0,smoke" in lines
    art.options["y2"] = "err"
    with pytest.raises(ConfigError, match="y2"):
        cls.check(art, "w")
