"""Toy data shared by the attack tests."""

from __future__ import annotations

import torch


def template_data(n: int, seed: int, classes: int, amplitude: float, noise: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy copies of fixed random 3x8x8 templates: learnable in a second, not linearly trivial."""
    templates = torch.rand(classes, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (n,), generator=g)
    x = 0.5 + amplitude * (templates[y] - 0.5) + noise * torch.randn(n, 3, 8, 8, generator=g)
    return x.clamp(0, 1), y
