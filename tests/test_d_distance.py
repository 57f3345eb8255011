"""D-distance: hand-computed means, pairing rules, the random baseline near 1/3."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reproduce.analyses import ANALYSES, AnalysisContext
from reproduce.analyses.d_distance import d_distance, pairs
from reproduce.analyses.difficulty import midpoint_rank
from reproduce.analyses.margins import save_npz
from reproduce.errors import ConfigError


def test_d_distance_by_hand_on_common_ids():
    # ids 2 and 5 are common: |0.1 - 0.4| and |0.9 - 0.9| -> 0.15
    dd, base, n = d_distance(np.array([1, 2, 5]), np.array([0.5, 0.1, 0.9]), np.array([2, 5, 7]),
                             np.array([0.4, 0.9, 0.0]))
    assert dd == pytest.approx(0.15) and n == 2 and base is None


def test_random_baseline_near_one_third():
    rng = np.random.default_rng(0)
    d1 = midpoint_rank(rng.random(20000))
    ids = np.arange(20000)
    dd, base, _ = d_distance(ids, d1, ids, d1, np.random.default_rng(1))
    assert dd == 0.0 and base == pytest.approx(1 / 3, abs=0.01)


def test_pairing_rules():
    assert pairs(4, None, "cyclic", "x") == [(0, 1), (1, 2), (2, 3), (3, 0)]
    assert pairs(2, None, "cyclic", "x") == [(0, 1)]
    assert pairs(3, 3, "index", "x") == [(0, 0), (1, 1), (2, 2)]
    assert pairs(3, None, "all", "x") == [(0, 1), (0, 2), (1, 2)]
    with pytest.raises(ConfigError, match="as many"):
        pairs(3, 2, "index", "x")
    with pytest.raises(ConfigError, match="two runs"):
        pairs(1, None, "cyclic", "x")


def test_analysis_diagonal_and_off_diagonal(tmp_path):
    dirs = []
    for k, d in enumerate([[0.1, 0.5, 0.9], [0.3, 0.5, 0.7], [0.1, 0.9, 0.5]]):
        dirs.append(tmp_path / f"d{k}")
        dirs[-1].mkdir()
        save_npz(dirs[-1] / "difficulty.npz", indices=np.array([0, 1, 2]), d=np.array(d))
    cls = ANALYSES.get("d_distance", where="t")
    ctx = lambda p, inp: AnalysisContext(cls.resolve_params(p, "t"), inp, tmp_path, tmp_path,  # noqa: E731
                                         torch.device("cpu"), "test")
    diag = cls().run(ctx({"a": ["x", "y", "z"], "pairing": "cyclic"}, {"a": dirs}))
    # (0,1): (.2+0+.2)/3; (1,2): (.2+.4+.2)/3; (2,0): (0+.4+.4)/3 -> mean 2/9 * ... = (0.4+0.8+0.8)/9
    assert diag["D"] == pytest.approx((0.4 + 0.8 + 0.8) / 9) and diag["diagonal"] and diag["pairing"] == "cyclic"
    off = cls().run(ctx({"a": ["x"], "b": ["y"]}, {"a": dirs[:1], "b": dirs[1:2]}))
    assert off["D"] == pytest.approx(0.4 / 3) and off["std"] == 0.0 and len(off["pairs"]) == 1


def test_a_diagonal_of_one_kept_seed_is_empty_and_says_why():
    from reproduce.analyses.d_distance import _distances

    one = [{"indices": np.arange(4), "d": np.array([0.125, 0.375, 0.625, 0.875])}]
    res = _distances(one, None, "cyclic", 0)
    assert res["D"] is None and res["random_baseline"] is None and "two runs" in res["note"]
    two = one + [{"indices": np.arange(4), "d": np.array([0.375, 0.125, 0.625, 0.875])}]
    assert _distances(two, None, "cyclic", 0)["D"] == pytest.approx(0.125)  # (0.25 + 0.25 + 0 + 0) / 4
