"""torchvision's ImageNet ResNet-50 as a trunk (Subset AT's ImageNet-200 model).

Built with ``weights=None``: the harness trains from scratch and never
downloads weights. The classification layer is dropped; the Classifier's
heads replace it, so with 1000 classes the parameter count equals
torchvision's own model.
"""

from __future__ import annotations

from torch import nn

from . import MODELS


@MODELS.register("resnet50")
def resnet50(in_channels: int = 3, image_size: int = 224) -> nn.Module:
    from torchvision.models import resnet50 as tv_resnet50

    net = tv_resnet50(weights=None)
    if in_channels != 3:
        old = net.conv1
        net.conv1 = nn.Conv2d(
            in_channels, old.out_channels, kernel_size=old.kernel_size, stride=old.stride,
            padding=old.padding, bias=False,
        )
        # Same init torchvision applies to its convolutions.
        nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
    feature_dim = net.fc.in_features
    # torchvision's forward flattens after global pooling, so an identity
    # fc leaves the (N, 2048) features.
    net.fc = nn.Identity()
    net.feature_dim = feature_dim
    return net
