"""Model zoo: trunk factories by name plus the multi-head ``Classifier`` around them.

A trunk maps normalized images to features; the ``Classifier`` owns the
normalization and the heads, so every attack and method works on
images in [0, 1] and the epsilon ball stays in pixel space whatever the
dataset statistics are.

Every registered model splits the same way, which transfer runs rely on: the
trunk's weights are the ``trunk.*`` entries of a checkpoint, the heads' the
``heads.*`` ones (``TRUNK_PREFIX``/``HEADS_PREFIX``), the normalization the
``mean``/``std`` buffers. A head is ``Linear(features, classes)``, or with
``head_hidden`` (run config ``model.head: {hidden: H}``)
``Linear(features, H) -> ReLU -> Linear(H, classes)``.
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
TRUNK_PREFIX = "trunk."
HEADS_PREFIX = "heads."


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


def _linear_layers(head: nn.Module) -> list[nn.Linear]:
    return [m for m in head.modules() if isinstance(m, nn.Linear)]


def head_outputs(head: nn.Module) -> int:
    """Classes a head predicts: the output size of its last linear layer."""
    return _linear_layers(head)[-1].out_features


class Classifier(nn.Module):
    """Shared trunk + named heads; takes images in [0, 1].

    Several heads share one trunk pass (``forward_heads``): BiaMAT trains a
    primary head and an auxiliary-dataset head on the same features.
    ``freeze_trunk()`` makes the trunk a fixed feature extractor (transfer runs).
    """

    def __init__(
        self,
        trunk: nn.Module,
        heads: Mapping[str, int],
        *,
        mean: Sequence[float] | float = (0.0, 0.0, 0.0),
        std: Sequence[float] | float = (1.0, 1.0, 1.0),
        in_channels: int = 3,
        head_hidden: int | None = None,
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
        if head_hidden is not None and (isinstance(head_hidden, bool) or not isinstance(head_hidden, int)
                                        or head_hidden < 1):
            raise ConfigError(f"model head hidden size must be a positive integer, got {head_hidden!r}")
        self.trunk = trunk
        self.feature_dim = feature_dim
        self.head_hidden = head_hidden
        self.trunk_frozen = False
        self.head_names: list[str] = []
        self.heads = nn.ModuleDict()
        for name, n in heads.items():
            if not isinstance(name, str) or not name or "." in name:
                raise ConfigError(f"bad head name {name!r}: use a non-empty name without dots")
            if int(n) < 1:
                raise ConfigError(f"head {name!r} needs at least one output, got {n}")
            if head_hidden is None:
                head: nn.Module = nn.Linear(feature_dim, int(n))
            else:
                head = nn.Sequential(nn.Linear(feature_dim, head_hidden), nn.ReLU(), nn.Linear(head_hidden, int(n)))
            # Reference codebases differ in head init (e.g. WRN zeroes the
            # bias); the trunk knows which reference it follows, and it
            # applies to every linear layer of a hidden-layer head alike.
            init_head = getattr(trunk, "init_head", None)
            if callable(init_head):
                for layer in _linear_layers(head):
                    init_head(layer)
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
        return head_outputs(self.heads[self.primary])

    @property
    def head_sizes(self) -> dict[str, int]:
        return {name: head_outputs(self.heads[name]) for name in self.head_names}

    def freeze_trunk(self) -> None:
        """Fixed features: no gradient for any trunk parameter, and the trunk stays in eval mode
        (BatchNorm uses and keeps its running statistics) whatever ``train()`` is called with."""
        for p in self.trunk.parameters():
            p.requires_grad_(False)
        self.trunk_frozen = True
        self.trunk.eval()

    def train(self, mode: bool = True) -> "Classifier":
        super().train(mode)
        if self.trunk_frozen:
            self.trunk.eval()
        return self

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
        return f"heads={self.head_sizes}" + (", trunk frozen" if self.trunk_frozen else "")


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
    head_hidden: int | None = None,
) -> Classifier:
    """Build trunk ``name`` with heads and normalization inside.

    ``heads`` maps head name -> classes, primary first; its first entry must
    have ``num_classes`` outputs. Default: ``{"primary": num_classes}``.
    ``head_hidden``: every head gets a hidden ReLU layer of that width.
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
    return Classifier(trunk, heads, mean=mean, std=std, in_channels=in_channels, head_hidden=head_hidden)


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

__all__ = ["HEADS_PREFIX", "MODELS", "PRIMARY", "TRUNK_PREFIX", "Classifier", "build_model", "count_parameters",
           "head_outputs"]
