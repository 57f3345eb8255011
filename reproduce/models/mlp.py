"""HAT's toy network (paper 003, App. A [157]): one hidden layer of 25 ReLU units.

With the ``Classifier``'s linear head this is the 3-25-2 MLP of Fig. 2. The input
is flattened, so it takes the toy's 3-channel 1 x 1 "images" (reproduce/data/generated/toy.py).
"""

from __future__ import annotations

from torch import nn

from . import MODELS
from .sequential import SequentialTrunk

TOY_HIDDEN = 25  # [157] "a single hidden layer MLP with 25 hidden units and ReLU activation"


class OneHiddenMLP(SequentialTrunk):
    """Flatten -> Linear(in, hidden) -> ReLU; the Classifier adds Linear(hidden, classes)."""

    def __init__(self, in_features: int, hidden: int = TOY_HIDDEN) -> None:
        super().__init__(nn.Sequential(nn.Flatten(), nn.Linear(in_features, hidden), nn.ReLU()), hidden)


@MODELS.register("mlp_toy")
def mlp_toy(in_channels: int = 3, image_size: int = 1) -> OneHiddenMLP:
    return OneHiddenMLP(in_channels * image_size * image_size)
