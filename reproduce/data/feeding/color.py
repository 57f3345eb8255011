"""Batched ColorJitter(brightness, contrast, saturation) on uint8 device images.

torchvision's ``ColorJitter`` on PIL images (the Subset AT code's CIFAR/ImageNet pipelines) draws
one factor per op from U[max(0, 1 - v), 1 + v] and applies the ops in a random order per image
(``torch.randperm(4)``; hue is skipped when 0). Each op is PIL's ``ImageEnhance``: a blend
``degenerate + f (img - degenerate)`` with degenerate = black (brightness), the mean of the
greyscale image as a solid grey (contrast), the greyscale image (saturation); greyscale is PIL's
L = (299 R + 587 G + 114 B) / 1000. Each op returns uint8, so values are rounded and clipped in
between, as on PIL images. (PIL truncates in a few places where this rounds: a difference of at
most one grey level per op.)
"""

from __future__ import annotations

import torch

OPS = ("brightness", "contrast", "saturation")


def draw(n: int, strengths: tuple[float, float, float], generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(factors (n, 3), order (n, 3)) for ``n`` images: the op order is a random permutation per image."""
    lo = torch.tensor([max(0.0, 1.0 - float(v)) for v in strengths], dtype=torch.float64)
    hi = torch.tensor([1.0 + float(v) for v in strengths], dtype=torch.float64)
    factors = lo + (hi - lo) * torch.rand((n, 3), generator=generator, dtype=torch.float64)
    order = torch.argsort(torch.rand((n, 3), generator=generator), dim=1)
    return factors, order


def _grey(x: torch.Tensor) -> torch.Tensor:
    w = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True).round()


def jitter_batch(images: torch.Tensor, factors: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """Apply the three ops to uint8 B x 3 x H x W ``images`` in each image's ``order``."""
    x = images.float()
    f = factors.to(x.device, x.dtype)
    order = order.to(x.device)
    for pos in range(3):
        for op in range(3):
            sel = order[:, pos] == op
            if not bool(sel.any()):
                continue
            xs, fs = x[sel], f[sel, op].view(-1, 1, 1, 1)
            if op == 0:
                deg = torch.zeros_like(xs)
            elif op == 1:
                deg = _grey(xs).mean(dim=(1, 2, 3), keepdim=True).add(0.5).floor()
            else:
                deg = _grey(xs)
            x[sel] = (deg + fs * (xs - deg)).round().clamp(0, 255)
    return x.to(torch.uint8)
