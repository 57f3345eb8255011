"""CIFAR-style ResNet-18 and PreAct ResNet-18 trunks.

``resnet18`` follows the widely used CIFAR variant (3x3 stem, no max-pool,
BasicBlocks [2, 2, 2, 2]) that HAT and Subset AT train; ``preact_resnet18``
follows the pre-activation variant of Wong et al. (2020) and HAT's code
(SVHN, TI-200), including its final BN-ReLU before pooling. Both keep
PyTorch's default initialisation, as their reference code does.

Pooling is global (adaptive): on 32x32 inputs it equals the references'
fixed 4x4 average pool, and 64x64 inputs (TI-200) still give one vector.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import MODELS

_WIDTHS = (64, 128, 256, 512)
_STRIDES = (1, 2, 2, 2)


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """conv-BN-ReLU-conv-BN plus (projected) identity, ReLU after the sum."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = _conv3x3(cin, cout, stride)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = _conv3x3(cout, cout)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class PreActBlock(nn.Module):
    """BN-ReLU-conv twice; a projection (when needed) taps the activated input."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = _conv3x3(cin, cout, stride)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = _conv3x3(cout, cout)
        self.shortcut: nn.Module | None = None
        if stride != 1 or cin != cout:
            # No BN on the projection in the pre-activation design.
            self.shortcut = nn.Conv2d(cin, cout, kernel_size=1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = F.relu(self.bn1(x))
        skip = x if self.shortcut is None else self.shortcut(act)
        out = self.conv1(act)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + skip


def _stage(block: type[nn.Module], cin: int, cout: int, n: int, stride: int) -> nn.Sequential:
    layers = [block(cin, cout, stride)] + [block(cout, cout, 1) for _ in range(n - 1)]
    return nn.Sequential(*layers)


class ResNet(nn.Module):
    """Post-activation CIFAR ResNet trunk: stem conv-BN-ReLU, four stages, global pool."""

    def __init__(self, num_blocks: tuple[int, ...], in_channels: int = 3) -> None:
        super().__init__()
        self.conv1 = _conv3x3(in_channels, _WIDTHS[0])
        self.bn1 = nn.BatchNorm2d(_WIDTHS[0])
        stages, cin = [], _WIDTHS[0]
        for cout, n, s in zip(_WIDTHS, num_blocks, _STRIDES):
            stages.append(_stage(BasicBlock, cin, cout, n, s))
            cin = cout
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.feature_dim = cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return torch.flatten(F.adaptive_avg_pool2d(out, 1), 1)


class PreActResNet(nn.Module):
    """Pre-activation trunk: bare stem conv, four stages, final BN-ReLU, global pool."""

    def __init__(self, num_blocks: tuple[int, ...], in_channels: int = 3) -> None:
        super().__init__()
        self.conv1 = _conv3x3(in_channels, _WIDTHS[0])
        stages, cin = [], _WIDTHS[0]
        for cout, n, s in zip(_WIDTHS, num_blocks, _STRIDES):
            stages.append(_stage(PreActBlock, cin, cout, n, s))
            cin = cout
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        # Pre-activation blocks end on a bare sum, so the trunk normalises
        # and activates once more before pooling.
        self.bn = nn.BatchNorm2d(cin)
        self.feature_dim = cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.relu(self.bn(out))
        return torch.flatten(F.adaptive_avg_pool2d(out, 1), 1)


@MODELS.register("resnet18")
def resnet18(in_channels: int = 3, image_size: int = 32) -> ResNet:
    return ResNet((2, 2, 2, 2), in_channels)


@MODELS.register("preact_resnet18")
def preact_resnet18(in_channels: int = 3, image_size: int = 32) -> PreActResNet:
    return PreActResNet((2, 2, 2, 2), in_channels)
