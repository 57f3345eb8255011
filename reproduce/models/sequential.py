"""The trunk shape of the small networks: one ``nn.Sequential`` from images to ``feature_dim`` features.

Its attribute is ``net``, so checkpoints keep their ``net.*`` parameter names.
"""

from __future__ import annotations

import torch
from torch import nn


class SequentialTrunk(nn.Module):
    def __init__(self, net: nn.Sequential, feature_dim: int) -> None:
        super().__init__()
        self.net = net
        self.feature_dim = feature_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
