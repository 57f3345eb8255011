"""Subset AT's evaluation values: per-class reductions and the seeded test index lists (data.eval_indices)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from reproduce.analyses.subset_rankings import eval_permutation
from reproduce.data import load_split
from reproduce.data.generated.synthetic import write_generated
from reproduce.errors import ConfigError
from reproduce.evaluate import evaluate
from reproduce.jobs.evaluate import evaluate_run
from reproduce.jobs.values import _eval_value
from reproduce.train import train
from reproduce.train.loop import epoch_seed
from reproduce.train.refs import eval_lists
from reproduce.train.setup import build_from_run_dir

from .test_preempt import _cfg as preempt_cfg


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    r = tmp_path_factory.mktemp("data")
    write_generated("toy", r, num_classes=4, image_size=8, n_train=192, n_test=40, domain=0)
    return r


class Teacher(torch.nn.Module):
    """A fixed linear classifier: clean accuracy and FGSM robustness differ by class."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.w


def test_per_class_matrix_equals_direct_per_class_evaluation():
    """A matrix row's cell (where: class c) and a B cell (class_not c) reduce one evaluation's correctness
    mask; evaluating only class c's images (or only the others) directly gives the same accuracies."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(90, 3, 4, 4, generator=g)
    teacher = torch.randn(48, 3, generator=g)
    scores = x.flatten(1) @ teacher
    y = (scores - scores.mean(0)).argmax(1)  # centred: every class is someone's argmax
    assert min(int((y == c).sum()) for c in range(3)) >= 15
    model = Teacher(teacher + 0.6 * torch.randn(48, 3, generator=g)).eval()
    model.w.data -= (x.flatten(1) @ model.w.data).mean(0) / x.flatten(1).sum(1).mean()  # roughly centred
    res = evaluate(model, x, y, "fgsm", device="cpu", batch_size=16, seed=0)
    res["labels"] = y.tolist()
    accs = []
    for c in range(3):
        direct = evaluate(model, x[y == c], y[y == c], "fgsm", device="cpu", batch_size=7, seed=0)
        assert _eval_value(res, {"class": c}, "t") == pytest.approx(direct["accuracy"])
        others = evaluate(model, x[y != c], y[y != c], "fgsm", device="cpu", batch_size=11, seed=0)
        assert _eval_value(res, {"class_not": c}, "t") == pytest.approx(others["accuracy"])
        accs.append(direct["accuracy"])
    assert len(set(accs)) > 1 and 0 < res["accuracy"] < 100  # the reduction has something to tell apart


def _with_lists(runs, name: str, selection: list[int], final: list[int]) -> None:
    out = runs.parent / "analyses" / name
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps({"values": {"selection": selection, "final": final}}))


def test_selection_and_evaluation_use_their_index_lists(root, tmp_path):
    """Selection scores the `selection` list of the test split, the evaluation the `final` list, in the
    list's order; the per-class labels and the stored positions follow the list."""
    runs = tmp_path / "runs"
    perm = eval_permutation(40, 90622).tolist()
    sel, fin = perm[:8], perm[8:32]
    _with_lists(runs, "idx", sel, fin)
    cfg = preempt_cfg(name="t-idx", data={"primary": "toy", "augment": True, "eval_indices": {"analysis": "idx"}},
                      selection={"protocol": "pgd20", "n": None})
    train(cfg, runs / "r", data_root=root, device="cpu", progress=False)
    rows = [json.loads(line) for line in (runs / "r" / "metrics.jsonl").read_text().splitlines()]
    x, y = load_split("toy", "test", root)
    _, model, _ = build_from_run_dir(runs / "r", root, torch.device("cpu"), "last.pt")
    want = evaluate(model, x[sel], y[sel], "pgd20", device="cpu", seed=epoch_seed(5, 1))["accuracy"]
    assert rows[-1]["selection_pgd20"] == pytest.approx(want)
    [res] = evaluate_run(runs / "r", ["pgd20"], None, data_root=root, device="cpu", checkpoint="last",
                         allow_cpu=True, n=20)
    direct = evaluate(model, x[fin[:20]], y[fin[:20]], "pgd20", device="cpu", seed=0)
    assert res["correct_mask"] == direct["correct_mask"] and res["n"] == 20
    assert res["labels"] == y[fin[:20]].tolist()
    assert res["indices"] == {"analysis": "idx", "key": "final", "positions": fin[:20]}


def test_index_lists_missing_or_out_of_range(root, tmp_path):
    runs = tmp_path / "runs"
    cfg = {"data": {"eval_indices": {"analysis": "nope"}}}
    with pytest.raises(ConfigError, match="nope.*has not run"):
        eval_lists(cfg, runs)
    _with_lists(runs, "far", [0, 1], [39, 40])
    cfg = preempt_cfg(name="t-far", data={"primary": "toy", "eval_indices": {"analysis": "far"}})
    train(cfg, runs / "r", data_root=root, device="cpu", progress=False)
    with pytest.raises(ConfigError, match="index 40 outside test"):
        evaluate_run(runs / "r", ["clean"], None, data_root=root, device="cpu", allow_cpu=True)


def test_eval_indices_scale_in_proportion(tmp_path, root):
    from reproduce.analyses.base import AnalysisContext
    from reproduce.analyses.subset_rankings import EvalIndices

    def ctx(**p):
        params = {**EvalIndices.params, "dataset": "toy", **p}
        return AnalysisContext(params=params, inputs={}, out_dir=tmp_path, data_root=root,
                               device=torch.device("cpu"), scale="t")

    with pytest.raises(ConfigError, match="toy test has 40 images, the paper 10000"):
        EvalIndices().run(ctx())
    got = EvalIndices().run(ctx(scale_n=True))
    perm = eval_permutation(40, 90622).tolist()
    assert got["selection"] == perm[:4] and got["final"] == perm[4:36]  # 1,000 + 8,000 of 10,000 -> 4 + 32
    assert np.array_equal(eval_permutation(10000)[:3], [4566, 7893, 6911])  # notes §2.4
    # Flowers: the code's final list is the whole split, selection images included (notes C2)
    got = EvalIndices().run(ctx(n=40, selection=10, final=40, final_start=0))
    assert got["final"] == perm and got["selection"] == perm[:10]
    with pytest.raises(ConfigError, match="exceed n"):
        EvalIndices.check({**EvalIndices.params, "n": 40, "selection": 10, "final": 40}, "a")
