"""The code's power iteration: exact on linear maps with a known top singular value."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from reproduce.analyses.lipschitz import chain_estimate, power_estimate
from reproduce.models import build_model


def test_power_estimate_finds_the_top_singular_value():
    lin = nn.Linear(3, 3, bias=True)
    with torch.no_grad():
        lin.weight.copy_(torch.diag(torch.tensor([3.0, 1.0, 0.5])))
        lin.bias.fill_(7.0)  # f(u) - f(0) removes the bias
    g = torch.Generator().manual_seed(0)
    assert float(power_estimate(lin, torch.zeros(4, 3), 50, g)) == pytest.approx(3.0, rel=1e-5)


def test_chain_is_a_product_over_modules():
    model = build_model("small_cnn", 2, image_size=8).eval()
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    a, b = chain_estimate(model, x, 3, g1), chain_estimate(model, x, 3, g2)
    assert a == b and a > 0


def test_resnet18_chain_walks_stem_eight_blocks_and_head():
    from reproduce.analyses.lipschitz import module_chain

    model = build_model("resnet18", 10, image_size=32).eval()
    assert len(module_chain(model)) == 1 + 8 + 1
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert chain_estimate(model, x, 1, torch.Generator().manual_seed(0)) > 0


def test_checkpoint_lists_follow_a_shortened_schedule():
    """At a scale that cuts 200 epochs to 6, epoch_N of an analysis's list is read from the
    snapshot at the same point of the shorter run, keyed by the paper's name."""
    from reproduce.pipeline.nodes import Graph
    from reproduce.pipeline.scales import load_scale
    from reproduce.pipeline.papers import load_all

    specs = load_all("pipelines")
    smoke = Graph(specs, load_scale("smoke"))
    p = smoke.analyses[smoke.analysis_id("hard_instances", "lip-linf2-hard")].params
    run = smoke.runs[smoke.run_id("hard_instances", "c10-linf2-hard10k")].cfg
    assert run["epochs"] == 6 and run["snapshots"] == [1, 2, 3, 4, 5, 6]
    moved = p["checkpoints_at_scale"]
    assert moved["epoch_10"] == "epoch_1" and moved["epoch_100"] == "epoch_3" and moved["epoch_190"] == "epoch_6"
    assert "last" not in moved and set(moved.values()) <= {f"epoch_{e}" for e in run["snapshots"]}
    paper = Graph(specs, load_scale("paper"))
    assert "checkpoints_at_scale" not in paper.analyses[paper.analysis_id("hard_instances", "lip-linf2-hard")].params
