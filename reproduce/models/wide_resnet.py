"""WideResNet trunks as in the TRADES/MART code (used by BiaMAT and the hard-instance study).

WRN-d-k: a 3x3 stem with 16 filters, three groups of (d - 4) / 6 pre-activation
blocks of widths 16k, 32k, 64k (strides 1, 2, 2), a final BN-ReLU and global
average pooling. Dropout is 0 in all the reproduced papers.

The TRADES file also builds an unused ``sub_block1`` that never runs in
``forward``; it is left out here, so the parameter counts are those of the
network that is actually evaluated.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from . import MODELS


class WideBlock(nn.Module):
    """BN-ReLU-conv3x3-BN-ReLU-(dropout)-conv3x3 with an identity or 1x1 shortcut.

    When the shape changes the shortcut taps the activated input, as in the
    reference; otherwise it is the raw input.
    """

    def __init__(self, cin: int, cout: int, stride: int, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, kernel_size=3, stride=1, padding=1, bias=False)
        self.drop_rate = drop_rate
        self.shortcut: nn.Conv2d | None = None
        if cin != cout or stride != 1:
            self.shortcut = nn.Conv2d(cin, cout, kernel_size=1, stride=stride, padding=0, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = F.relu(self.bn1(x))
        skip = x if self.shortcut is None else self.shortcut(act)
        out = F.relu(self.bn2(self.conv1(act)))
        if self.drop_rate > 0:
            out = F.dropout(out, p=self.drop_rate, training=self.training)
        return skip + self.conv2(out)


class WideResNet(nn.Module):
    """WRN trunk; ``forward`` returns the pooled 64k-dim features."""

    def __init__(self, depth: int, widen: int, in_channels: int = 3, drop_rate: float = 0.0) -> None:
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"WideResNet depth must be 6n + 4, got {depth}")
        n = (depth - 4) // 6
        widths = (16, 16 * widen, 32 * widen, 64 * widen)
        self.conv1 = nn.Conv2d(in_channels, widths[0], kernel_size=3, stride=1, padding=1, bias=False)
        groups = []
        for i, stride in enumerate((1, 2, 2)):
            cin, cout = widths[i], widths[i + 1]
            blocks = [WideBlock(cin if j == 0 else cout, cout, stride if j == 0 else 1, drop_rate) for j in range(n)]
            groups.append(nn.Sequential(*blocks))
        self.block1, self.block2, self.block3 = groups
        self.bn = nn.BatchNorm2d(widths[3])
        self.feature_dim = widths[3]
        self._init_weights()

    def _init_weights(self) -> None:
        # He-normal over fan_out (k*k*out_channels), BN to identity: the
        # reference's explicit init, not PyTorch's default.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @staticmethod
    def init_head(head: nn.Linear) -> None:
        """The reference zeroes linear biases and keeps the default weight init."""
        nn.init.zeros_(head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        out = F.relu(self.bn(out))
        # Global pooling equals the reference's 8x8 average pool on 32x32
        # inputs and also serves 64x64 ImgNet100 (WRN-16-10 in BiaMAT).
        return torch.flatten(F.adaptive_avg_pool2d(out, 1), 1)


def _register(depth: int, widen: int) -> None:
    def factory(in_channels: int = 3, image_size: int = 32) -> WideResNet:
        return WideResNet(depth, widen, in_channels)

    factory.__name__ = f"wrn_{depth}_{widen}"
    MODELS.add(f"wrn-{depth}-{widen}", factory)


for _depth, _widen in ((16, 10), (28, 10), (34, 10)):
    _register(_depth, _widen)
