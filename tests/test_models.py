"""Model zoo: exact architectures (parameter counts), the Classifier contract, small_cnn."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from reproduce.errors import ConfigError, UnknownNameError
from reproduce.models import MODELS, Classifier, build_model, count_parameters


def wrn_param_count(depth: int, widen: int, num_classes: int, in_channels: int = 3) -> int:
    """Closed-form parameter count of WRN-d-k (Zagoruyko & Komodakis), written out independently."""
    n = (depth - 4) // 6
    widths = [16, 16 * widen, 32 * widen, 64 * widen]
    total = in_channels * 16 * 9  # stem conv, no bias
    for cin, cout in zip(widths[:-1], widths[1:]):
        for j in range(n):
            c = cin if j == 0 else cout
            total += 2 * c + 9 * c * cout + 2 * cout + 9 * cout * cout  # bn1, conv1, bn2, conv2
            if c != cout:
                total += c * cout  # 1x1 projection
    total += 2 * widths[3]  # final BN
    return total + widths[3] * num_classes + num_classes


# name, num_classes, image_size, expected parameter count
ARCHITECTURES = [
    ("resnet18", 10, 32, 11_173_962),
    # Pre-activation ResNet-18 of Wong et al. (2020) / HAT, with its final
    # BN-ReLU (kuangliu's variant without that BN has 11,171,146).
    ("preact_resnet18", 10, 32, 11_172_170),
    ("wrn-28-10", 10, 32, 36_479_194),
    ("wrn-34-10", 10, 32, 46_160_474),
    ("wrn-16-10", 100, 64, 17_174_324),
    ("resnet50", 1000, 64, 25_557_032),
    ("mlp", 10, 32, 855_050),
    ("small_cnn", 10, 32, 94_762),
]


def test_registry_lists_the_zoo() -> None:
    assert {a[0] for a in ARCHITECTURES} <= set(MODELS.names())


@pytest.mark.parametrize("name,num_classes,image_size,expected", ARCHITECTURES)
def test_parameter_count_and_output_shape(name: str, num_classes: int, image_size: int, expected: int) -> None:
    torch.manual_seed(0)
    model = build_model(name, num_classes, image_size=image_size)
    assert count_parameters(model) == expected
    model.eval()
    n = 1 if expected > 5_000_000 else 2  # big trunks: one image keeps the CPU test fast
    x = torch.rand(n, 3, image_size, image_size)
    with torch.no_grad():
        logits = model(x)
        feats = model.features(x)
    assert logits.shape == (n, num_classes)
    assert feats.shape == (n, model.trunk.feature_dim)
    assert torch.isfinite(logits).all()


def test_wrn_counts_match_the_closed_form() -> None:
    assert wrn_param_count(28, 10, 10) == 36_479_194
    assert wrn_param_count(34, 10, 10) == 46_160_474
    assert wrn_param_count(16, 10, 100) == 17_174_324
    assert wrn_param_count(16, 10, 10) == 17_116_634
    assert count_parameters(build_model("wrn-16-10", 10, image_size=64)) == 17_116_634


def test_wrn_initialisation_follows_reference() -> None:
    torch.manual_seed(0)
    model = build_model("wrn-16-10", 10, heads={"primary": 10, "aux": 5})
    for m in model.trunk.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)
    conv = model.trunk.block3[1].conv2  # 640 -> 640, 3x3: plenty of samples
    expected_std = math.sqrt(2.0 / (9 * conv.out_channels))
    assert abs(conv.weight.std().item() / expected_std - 1) < 0.02
    for head in model.heads.values():
        assert torch.all(head.bias == 0)
        assert head.weight.abs().sum() > 0


def test_other_models_keep_default_head_init() -> None:
    torch.manual_seed(0)
    model = build_model("resnet18", 10)
    assert model.heads["primary"].bias.abs().sum() > 0


@pytest.fixture
def two_head_model() -> Classifier:
    torch.manual_seed(0)
    return build_model("small_cnn", 10, heads={"primary": 10, "aux": 7})


def test_multi_head_shares_one_trunk(two_head_model: Classifier) -> None:
    model = two_head_model.eval()
    assert model.head_names == ["primary", "aux"]
    assert model.num_classes == 10 and model.head_sizes == {"primary": 10, "aux": 7}
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        out = model.forward_heads(x, ["primary", "aux"])
        feats = model.features(x)
        assert out["primary"].shape == (4, 10) and out["aux"].shape == (4, 7)
        torch.testing.assert_close(out["primary"], model.heads["primary"](feats))
        torch.testing.assert_close(out["aux"], model.heads["aux"](feats))
        torch.testing.assert_close(model(x), out["primary"])
        torch.testing.assert_close(model(x, head="aux"), out["aux"])
    assert not torch.equal(out["primary"][:, :7], out["aux"])

    d = model.trunk.feature_dim
    assert count_parameters(model) == count_parameters(model.trunk) + (d * 10 + 10) + (d * 7 + 7)
    trunk_ids = {id(p) for p in model.trunk.parameters()}
    assert trunk_ids.isdisjoint(id(p) for p in model.heads.parameters())

    # The auxiliary head's loss trains the same trunk tensors the primary one uses.
    model.train()
    model.zero_grad()
    model(x, head="aux").sum().backward()
    assert model.trunk.net[0].weight.grad is not None and model.trunk.net[0].weight.grad.abs().sum() > 0
    assert model.heads["primary"].weight.grad is None


def test_forward_heads_runs_the_trunk_once(two_head_model: Classifier) -> None:
    calls = []
    two_head_model.trunk.register_forward_hook(lambda *_: calls.append(1))
    out = two_head_model.forward_heads(torch.rand(4, 3, 32, 32))
    assert list(out) == ["primary", "aux"]
    assert len(calls) == 1


def test_head_errors(two_head_model: Classifier) -> None:
    with pytest.raises(UnknownNameError, match="primary, aux"):
        two_head_model(torch.rand(2, 3, 32, 32), head="auxiliary")
    with pytest.raises(ConfigError, match="primary"):
        build_model("small_cnn", 10, heads={"primary": 100, "aux": 10})


@pytest.mark.parametrize("name", ["small_cnn", "mlp"])
def test_normalization_is_inside(name: str) -> None:
    mean, std = (0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616)
    torch.manual_seed(0)
    model = build_model(name, 10, mean=mean, std=std).eval()
    plain = build_model(name, 10).eval()
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if k not in ("mean", "std")}, strict=False)
    assert model.mean.shape == (1, 3, 1, 1) and model.std.shape == (1, 3, 1, 1)
    assert "mean" in model.state_dict() and "std" in model.state_dict()
    assert all(p is not model.mean and p is not model.std for p in model.parameters())

    x = torch.rand(3, 3, 32, 32)
    m = torch.tensor(mean).view(1, 3, 1, 1)
    s = torch.tensor(std).view(1, 3, 1, 1)
    with torch.no_grad():
        # The unnormalized trunk fed standardized images gives the same logits.
        torch.testing.assert_close(model(x), plain.heads["primary"](plain.trunk((x - m) / s)))
        torch.testing.assert_close(model(x), plain((x - m) / s))
        assert not torch.allclose(model(x), plain(x), atol=1e-3)


def test_input_gradients_flow_for_attacks() -> None:
    torch.manual_seed(0)
    model = build_model("small_cnn", 10, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)).eval()
    x = torch.rand(4, 3, 32, 32, requires_grad=True)
    (grad,) = torch.autograd.grad(F.cross_entropy(model(x), torch.arange(4)), x)
    assert grad.shape == x.shape and grad.abs().sum() > 0


def test_channel_statistics_validation() -> None:
    gray = build_model("small_cnn", 10, in_channels=1)  # identity defaults broadcast to 1 channel
    assert gray.mean.shape == (1, 1, 1, 1)
    assert gray(torch.rand(2, 1, 32, 32)).shape == (2, 10)
    with pytest.raises(ConfigError, match="3 values"):
        build_model("small_cnn", 10, in_channels=1, mean=(0.1, 0.2, 0.3))
    with pytest.raises(ConfigError, match="positive"):
        build_model("small_cnn", 10, std=(0.2, 0.0, 0.2))


def test_unknown_model_lists_known_names() -> None:
    with pytest.raises(UnknownNameError) as info:
        build_model("resnet-18", 10, where="spec.yaml:model")
    msg = str(info.value)
    assert "resnet-18" in msg and "spec.yaml:model" in msg
    for known in ("resnet18", "preact_resnet18", "wrn-28-10", "wrn-34-10", "small_cnn"):
        assert known in msg
    assert isinstance(info.value, ConfigError)


def _conv_linear_macs(model: nn.Module, x: torch.Tensor) -> int:
    macs = []

    def hook(m: nn.Module, _inp: tuple, out: torch.Tensor) -> None:
        if isinstance(m, nn.Conv2d):
            macs.append(out[0].numel() * m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1])
        elif isinstance(m, nn.Linear):
            macs.append(m.in_features * m.out_features)

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return sum(macs)


def test_small_cnn_stays_small_and_cheap() -> None:
    # A deterministic proxy for CPU speed (wall-clock asserts are flaky on
    # shared machines): ~2.6M multiply-adds per 32x32 image.
    model = build_model("small_cnn", 10).eval()
    assert 50_000 <= count_parameters(model) <= 100_000
    assert _conv_linear_macs(model, torch.rand(1, 3, 32, 32)) < 4_000_000
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def _stripes(n: int, generator: torch.Generator, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Four classes of noisy sinusoidal gratings: horizontal, vertical and the two diagonals."""
    y = torch.arange(n) % 4
    directions = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.7071, 0.7071], [0.7071, -0.7071]])[y]
    grid = torch.stack(torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij"), -1).float()
    proj = torch.einsum("hwk,nk->nhw", grid, directions)
    freq = 0.15 + 0.1 * torch.rand(n, 1, 1, generator=generator)
    phase = 2 * math.pi * torch.rand(n, 1, 1, generator=generator)
    pattern = torch.sin(2 * math.pi * freq * proj + phase)
    colour = 0.2 + 0.3 * torch.rand(n, 3, 1, 1, generator=generator)
    x = 0.5 + colour * pattern[:, None] + 0.1 * torch.randn(n, 3, size, size, generator=generator)
    return x.clamp(0, 1), y


def test_small_cnn_learns_a_separable_task() -> None:
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    # 16x16 keeps the test cheap on a shared CPU; the trunk is size-agnostic.
    x_train, y_train = _stripes(2048, g, size=16)
    x_test, y_test = _stripes(512, g, size=16)
    model = build_model("small_cnn", 4, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), image_size=16)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    for step in range(200):
        idx = torch.randint(0, len(x_train), (32,), generator=g)
        loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(x_test).argmax(1) == y_test).float().mean().item()
    assert acc > 0.8, f"small_cnn reached only {acc:.1%} on a 4-class grating task (chance 25%)"
