"""The Subset AT code's ``preactresnet18bn``: a wide PreAct ResNet-18 with 1x1 shortcuts everywhere.

mlosch/SAT builds it from the ``layers:`` of every CIFAR config
(config/cifar10/csat_pgd7_decreasing_entropy/template.yaml) and ``PreActBasicResNetBlock``
(model/layers.py:198-237): a 64-channel 3x3 stem, then blocks 64->128, 128->128, 128->256 (s2),
256->256, 256->512 (s2), 512->512, 512->512 (s2), 512->512, BN-ReLU, global pool, linear.
Every block projects its shortcut with a 1x1 convolution (no bias, BN is affine), also when the
shape does not change, and takes it from the pre-activated input ReLU(BN1(x)). The paper calls
this "ResNet-18"; it has 21.3 M parameters with 10 classes (the standard PreAct-18: 11.2 M).

Initialisation (lib/util.py): convolutions Kaiming-normal (fan_in, ReLU gain), BN weight N(1, 0.02),
biases 0. The linear head belongs to ``Classifier`` and keeps PyTorch's default here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import MODELS

# (in, out, stride) of the eight blocks, as the configs list them
BLOCKS = ((64, 128, 1), (128, 128, 1), (128, 256, 2), (256, 256, 1),
          (256, 512, 2), (512, 512, 1), (512, 512, 2), (512, 512, 1))


class SatPreActBlock(nn.Module):
    """out = conv2(ReLU(BN2(conv1(a)))) + conv1x1(a), a = ReLU(BN1(x))."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = F.relu(self.bn1(x))
        return self.conv2(F.relu(self.bn2(self.conv1(a)))) + self.shortcut(a)


class SatPreActResNet18(nn.Module):
    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        self.blocks = nn.Sequential(*(SatPreActBlock(i, o, s) for i, o, s in BLOCKS))
        self.bn = nn.BatchNorm2d(BLOCKS[-1][1])
        self.feature_dim = BLOCKS[-1][1]
        self._code_init()

    def _code_init(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn(self.blocks(self.conv1(x))))
        return torch.flatten(F.adaptive_avg_pool2d(out, 1), 1)


@MODELS.register("sat_preact_resnet18")
def sat_preact_resnet18(in_channels: int = 3, image_size: int = 32) -> SatPreActResNet18:
    return SatPreActResNet18(in_channels)
