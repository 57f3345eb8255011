"""The smoke demo means something: at the `ci` scale (smoke, cut) representative runs learn.

Clean accuracy at least 20 points above chance, and adversarial training more robust
under PGD than its standard counterpart (same data, model and schedule). With the
generator's default contrast the same runs sat near chance; see config/scales/smoke.yaml.
"""

from __future__ import annotations

import pytest
import torch
import yaml

from reproduce.data import load_split
from reproduce.data.generated.synthetic import write_generated
from reproduce.evaluate import evaluate
from reproduce.pipeline.scales import load_scale
from reproduce.pipeline.nodes import run_config
from reproduce.pipeline.papers import load_spec
from reproduce.train import train
from reproduce.train.setup import build_from_run_dir

from .ci_scale import ROOT, ci_scale_dict

N_EVAL = 200  # 40 would put +-7 points of noise on every number


@pytest.fixture(scope="module")
def ci(tmp_path_factory):
    box = tmp_path_factory.mktemp("ci")
    sc = ci_scale_dict(epochs=4, n_train=480, n_test=N_EVAL, eval_n=100)  # selection on 100, as smoke's
    (box / "ci.yaml").write_text(yaml.safe_dump(sc))
    spec = sc["data"]["datasets"]["cifar10"]
    write_generated("cifar10", box / "data", num_classes=spec["classes"], image_size=spec["size"],
                    n_train=spec["n_train"], n_test=spec["n_test"], domain=spec["domain"],
                    contrast=spec["contrast"])
    return box, load_scale("ci", str(box)), load_spec(ROOT / "pipelines/biamat/spec.yaml")


def _train_eval(ci, run: str, standard: bool = False) -> dict[str, float]:
    box, scale, spec = ci
    cfg = run_config(spec, run, scale)
    if standard:  # the counterpart: same everything, no attack in training, last epoch kept
        cfg.update(name=f"{run}-standard", method={"name": "standard"}, selection={"protocol": None})
    out = box / "runs" / cfg["name"]
    train(cfg, out, data_root=box / "data", device="cpu", progress=False)
    _, model, _ = build_from_run_dir(out, box / "data", torch.device("cpu"))
    x, y = load_split("cifar10", "test", box / "data")
    return {p: evaluate(model, x, y, p, device=torch.device("cpu"), n=N_EVAL, batch_size=N_EVAL)["accuracy"]
            for p in ("clean", "pgd20")}


def test_ci_runs_learn_and_at_is_more_robust_than_standard(ci):
    chance = 100 / 10
    at = _train_eval(ci, "cifar10-at")
    trades = _train_eval(ci, "cifar10-trades")
    std = _train_eval(ci, "cifar10-at", standard=True)
    for name, r in (("at", at), ("trades", trades), ("standard", std)):
        assert r["clean"] >= chance + 20, (name, r)
    assert at["pgd20"] >= std["pgd20"] + 8, (at, std)
    assert trades["pgd20"] >= std["pgd20"] + 8, (trades, std)
