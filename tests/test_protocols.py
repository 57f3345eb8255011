"""Frozen evaluation protocols and ``evaluate``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from reproduce.errors import UnknownNameError
from reproduce.evaluate import PROTOCOLS, Protocol, evaluate

C = 10


EXPECTED = {
    # name: (kind, norm, eps, step_size, steps, restarts, random_start, version, attacks, counting)
    "clean": ("clean", "linf", 0.0, 0.0, 0, 1, False, None, None, "clean_and_adv"),
    "fgsm": ("pgd", "linf", 8 / 255, 8 / 255, 1, 1, False, None, None, "clean_and_adv"),
    "pgd20": ("pgd", "linf", 8 / 255, 2 / 255, 20, 1, True, None, None, "clean_and_adv"),
    "pgd100": ("pgd", "linf", 8 / 255, 2 / 255, 100, 1, True, None, None, "clean_and_adv"),
    "cw100": ("cw", "linf", 8 / 255, 2 / 255, 100, 1, True, None, None, "clean_and_adv"),
    "aa-standard": ("autoattack", "linf", 8 / 255, 0.0, 0, 1, False, "standard", None, "clean_and_adv"),
    "aa-custom-fast": ("autoattack", "linf", 8 / 255, 0.0, 0, 1, False, "custom", ("apgd-ce",), "clean_and_adv"),
    "l2-pgd20": ("pgd", "l2", 0.5, 0.125, 20, 1, True, None, None, "clean_and_adv"),
    "l2-pgd100": ("pgd", "l2", 0.5, 0.125, 100, 1, True, None, None, "clean_and_adv"),
    "aa-l2-standard": ("autoattack", "l2", 0.5, 0.0, 0, 1, False, "standard", None, "clean_and_adv"),
}
FIELDS = ("kind", "norm", "eps", "step_size", "steps", "restarts", "random_start", "version", "attacks",
          "counting")


def make_uint8(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """NHWC uint8 images of C noisy templates, as ``load_split`` returns them."""
    templates = torch.rand(C, 8, 8, 3, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, C, (n,), generator=g)
    x = (0.5 + 0.4 * (templates[y] - 0.5) + 0.12 * torch.randn(n, 8, 8, 3, generator=g)).clamp(0, 1)
    return (x * 255).round().to(torch.uint8).numpy(), y.numpy().astype(np.int64)


def to_float(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(192, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, C))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@pytest.fixture(scope="module")
def trained() -> Net:
    torch.manual_seed(0)
    model = Net()
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    images, labels = make_uint8(512, 1)
    x, y = to_float(images), torch.from_numpy(labels)
    for _ in range(6):
        for i in range(0, 512, 128):
            loss = F.cross_entropy(model(x[i : i + 128]), y[i : i + 128])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def test_set() -> tuple[np.ndarray, np.ndarray]:
    return make_uint8(40, 2)


def test_core_protocols_and_their_frozen_parameters():
    assert set(EXPECTED) <= set(PROTOCOLS.names())
    for name, expected in EXPECTED.items():
        p = PROTOCOLS.get(name)
        assert p.name == name
        got = tuple(getattr(p, f) for f in FIELDS)
        for field, g, e in zip(FIELDS, got, expected):
            if isinstance(e, float):
                assert g == pytest.approx(e, abs=1e-12), (name, field)
            else:
                assert g == e, (name, field)


def _engine_protocols() -> list[str]:
    """The protocols the engine itself registers, whatever other test modules loaded before this one
    (a paper's spec registers its own, with ranges of its own: an eps sweep up to 20/255)."""
    import subprocess
    import sys

    code = "from reproduce.evaluate import PROTOCOLS; print('\\n'.join(PROTOCOLS.names()))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return out.split()


@pytest.mark.parametrize("name", _engine_protocols())
def test_every_registered_protocol_is_well_formed(name):
    p = PROTOCOLS.get(name)
    assert p.name == name
    params = p.params()
    # targets (AutoAttack's pinned APGD-T target count) is recorded only where a protocol sets it
    assert set(params) == set(FIELDS) | ({"targets"} if p.targets is not None else set())
    json.dumps(params)  # JSON-ready
    if p.kind == "clean":
        return
    assert 0 < p.eps <= (3.0 if p.norm == "l2" else 16 / 255), name  # L2 3.0: Subset AT's ImageNet-200
    if p.kind in ("pgd", "cw"):
        assert p.steps >= 1 and 0 < p.step_size <= p.eps + 1e-12 and p.restarts >= 1, name
        assert p.version is None and p.attacks is None, name
    else:
        assert p.version in ("standard", "custom"), name
        assert (p.attacks is not None) == (p.version == "custom"), name


def test_protocols_are_frozen():
    p = PROTOCOLS.get("pgd20")
    with pytest.raises(Exception):
        p.steps = 7  # type: ignore[misc]


def test_unknown_protocol_names_the_known_ones():
    with pytest.raises(UnknownNameError, match="pgd20"):
        PROTOCOLS.get("pgd21")


def test_evaluate_output_keys_and_clean_hand_count(trained, test_set):
    images, labels = test_set
    out = evaluate(trained, images, labels, "clean", batch_size=16)
    assert {"protocol", "params", "n", "correct", "accuracy", "correct_mask", "seconds"} <= set(out)
    json.dumps(out)
    with torch.no_grad():
        preds = trained(to_float(images)).argmax(1).numpy()
    hand = [int(p == t) for p, t in zip(preds, labels)]
    assert out["protocol"] == "clean" and out["n"] == len(labels)
    assert out["correct_mask"] == hand
    assert out["correct"] == sum(hand)
    assert out["accuracy"] == pytest.approx(100.0 * sum(hand) / len(hand))
    assert out["correct"] > len(hand) // 2
    assert out["params"] == PROTOCOLS.get("clean").params()


def test_uint8_nhwc_and_float_nchw_agree(trained, test_set):
    images, labels = test_set
    a = evaluate(trained, images, labels, "fgsm", batch_size=16)
    b = evaluate(trained, to_float(images), torch.from_numpy(labels), "fgsm", batch_size=16)
    assert a["correct_mask"] == b["correct_mask"]


def test_n_takes_the_first_examples(trained, test_set):
    images, labels = test_set
    full = evaluate(trained, images, labels, "clean")
    part = evaluate(trained, images, labels, "clean", n=7)
    assert part["n"] == 7 and part["correct_mask"] == full["correct_mask"][:7]


def test_attacks_lower_accuracy_in_order(trained, test_set):
    images, labels = test_set
    # A larger budget than the frozen 8/255 so this toy model actually breaks.
    kw = dict(kind="pgd", norm="linf", eps=0.1, step_size=0.025, steps=10, random_start=True)
    clean = evaluate(trained, images, labels, "clean")
    fg = evaluate(trained, images, labels, Protocol("toy-fgsm", kind="pgd", eps=0.1, step_size=0.1, steps=1))
    pg = evaluate(trained, images, labels, Protocol("toy-pgd", **kw))
    cw = evaluate(trained, images, labels, Protocol("toy-cw", **{**kw, "kind": "cw"}))
    assert clean["accuracy"] > 70
    assert pg["correct"] < fg["correct"] < clean["correct"]
    assert cw["correct"] < clean["correct"]
    # robust implies clean-correct, example by example
    for m in (fg, pg, cw):
        assert all(r <= c for r, c in zip(m["correct_mask"], clean["correct_mask"]))


@pytest.mark.parametrize("name", ["pgd20", "l2-pgd20", "aa-custom-fast"])
def test_deterministic_given_seed(trained, test_set, name):
    images, labels = test_set
    a = evaluate(trained, images, labels, name, seed=3, batch_size=16)
    b = evaluate(trained, images, labels, name, seed=3, batch_size=16)
    assert a["correct_mask"] == b["correct_mask"] and a["params"] == b["params"]


def test_seed_changes_the_random_start(trained, test_set):
    from reproduce.attacks import pgd

    images, labels = test_set
    x = to_float(images)
    y = torch.from_numpy(labels)
    p = PROTOCOLS.get("pgd20")
    kw = dict(eps=p.eps, step_size=p.step_size, steps=1, random_start=True)
    a = pgd(trained, x, y, generator=torch.Generator().manual_seed(0), **kw)
    b = pgd(trained, x, y, generator=torch.Generator().manual_seed(1), **kw)
    assert not torch.equal(a, b)


def test_evaluate_restores_model_mode(trained, test_set):
    images, labels = test_set
    trained.train()
    running = trained.net[2].running_mean.clone()
    try:
        evaluate(trained, images, labels, "fgsm")
        assert trained.training
        assert torch.equal(trained.net[2].running_mean, running)
    finally:
        trained.eval()
