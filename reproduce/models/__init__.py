"""Model zoo: trunk factories by name plus the multi-head ``Classifier`` around them.

A trunk maps normalized images to features; the ``Classifier`` owns the
normalization and the linear heads, so every attack and method works on
images in [0, 1] and the epsilon ball stays in pixel space whatever the
dataset statistics are.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import nn

from ..errors import ConfigError, UnknownNameError
from ..registry import Registry

# Trunk factories: (in_channels, image_size) -> nn.Module with .feature_dim.
MODELS: Registry = Registry("model")

PRIMARY = "primary"


def _channel_stats(values: Sequence[float] | float, in_channels: int, what: str) -> torch.Tensor:
    vals = [float(values)] if isinstance(values, (int, float)) else [float(v) for v in values]
    if len(vals) != in_channels:
        # A constant vector (the identity default, or a single scalar) is
        # unambiguous for any channel count; anything else is a config slip.
        if vals and all(v == vals[0] for v in vals):
            vals = [vals[0]] * in_channels
        else:
            raise ConfigError(f"model {what} has {len(vals)} values but the input has {in_channels} channels")
    return torch.tensor(vals, dtype=torch.float32).view(1, in_channels, 1, 1)


class Classifier(nn.Module):
    """Shared trunk + named linear heads; takes images in [0, 1].

    Several heads share one trunk pass (``forward_heads``): BiaMAT trains a
    primary head and an auxiliary-dataset head on the same features.
    """

    def __init__(
        self,
        trunk: nn.Module,
        heads: Mapping[str, int],
        *,
        mean: Sequence[float] | float = (0.0, 0.0, 0.0),
        std: Sequence[float] | float = (1.0, 1.0, 1.0),
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        if not heads:
            raise ConfigError("a model needs at least one head")
        feature_dim = int(getattr(trunk, "feature_dim", 0))
        if feature_dim <= 0:
            raise TypeError(f"trunk {type(trunk).__name__} does not expose a positive .feature_dim")
        std_t = _channel_stats(std, in_channels, "std")
        if bool((std_t <= 0).any()):
            raise ConfigError(f"model std must be positive, got {std}")
        self.trunk = trunk
        self.feature_dim = feature_dim
        self.head_names: list[str] = []
        self.heads = nn.ModuleDict()
        for name, n in heads.items():
            if not isinstance(name, str) or not name or "." in name:
                raise ConfigError(f"bad head name {name!r}: use a non-empty name without dots")
            if int(n) < 1:
                raise ConfigError(f"head {name!r} needs at least one output, got {n}")
            head = nn.Linear(feature_dim, int(n))
            # Reference codebases differ in head init (e.g. WRN zeroes the
            # bias); the trunk knows which reference it follows.
            init_head = getattr(trunk, "init_head", None)
            if callable(init_head):
                init_head(head)
            self.heads[name] = head
            self.head_names.append(name)
        # Buffers, so they follow .to(device) and are saved in checkpoints.
        self.register_buffer("mean", _channel_stats(mean, in_channels, "mean"))
        self.register_buffer("std", std_t)

    @property
    def primary(self) -> str:
        return self.head_names[0]

    @property
    def num_classes(self) -> int:
        """Output size of the primary head."""
        return self.heads[self.primary].out_features

    @property
    def head_sizes(self) -> dict[str, int]:
        return {name: self.heads[name].out_features for name in self.head_names}

    def _head(self, name: str | None) -> nn.Module:
        key = self.primary if name is None else name
        if key not in self.heads:
            raise UnknownNameError(f"unknown head {key!r}; known: {', '.join(self.head_names)}")
        return self.heads[key]

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Trunk features ``(N, feature_dim)`` of images in [0, 1]."""
        return self.trunk(self.normalize(x))

    def forward(self, x: torch.Tensor, head: str | None = None) -> torch.Tensor:
        """Logits of one head (the primary one when ``head`` is None)."""
        return self._head(head)(self.features(x))

    def forward_heads(self, x: torch.Tensor, heads: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """Logits of several heads from a single trunk pass (all heads when None).

        One pass matters beyond speed: BatchNorm in train mode sees the batch
        once, exactly as in the reference multi-domain training code.
        """
        names = list(self.head_names if heads is None else heads)
        modules = [self._head(n) for n in names]
        f = self.features(x)
        return {n: m(f) for n, m in zip(names, modules)}

    def extra_repr(self) -> str:
        return f"heads={self.head_sizes}"


def build_model(
    name: str,
    num_classes: int,
    *,
    mean: Sequence[float] | float = (0.0, 0.0, 0.0),
    std: Sequence[float] | float = (1.0, 1.0, 1.0),
    heads: Mapping[str, int] | None = None,
    image_size: int = 32,
    in_channels: int = 3,
    where: str = "",
) -> Classifier:
    """Build trunk ``name`` with linear heads and normalization inside.

    ``heads`` maps head name -> classes, primary first; its first entry must
    have ``num_classes`` outputs. Default: ``{"primary": num_classes}``.
    """
    factory = MODELS.get(name, where=where)
    if heads is None:
        heads = {PRIMARY: int(num_classes)}
    else:
        heads = dict(heads)
        first = next(iter(heads), None)
        if first is None or int(heads[first]) != int(num_classes):
            raise ConfigError(
                f"model {name!r}: the first (primary) head must have num_classes={num_classes} outputs, "
                f"got heads={heads}"
            )
    trunk = factory(in_channels, image_size)
    return Classifier(trunk, heads, mean=mean, std=std, in_channels=in_channels)


def count_parameters(module: nn.Module) -> int:
    """Number of parameters, shared ones once (nn.Module.parameters() dedups)."""
    return sum(p.numel() for p in module.parameters())


# One line per model module: importing it registers its trunks.
from . import mlp  # noqa: E402,F401
from . import resnet  # noqa: E402,F401
from . import sat_resnet  # noqa: E402,F401
from . import small  # noqa: E402,F401
from . import torchvision_models  # noqa: E402,F401
from . import wide_resnet  # noqa: E402,F401

__all__ = ["MODELS", "PRIMARY", "Classifier", "build_model", "count_parameters"]
