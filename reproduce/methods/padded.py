"""Crop-and-flip windows of padded frames, and their inverse (ATTA's per-instance perturbation cache).

A training image is a window of its padded frame at offsets ``crop`` (B x 2: top, left),
mirrored left-right where ``flip``: the loader's augmentation (``reproduce.data.feeding.loader``) and the
hard-instance code's ``apply_aug``/``load_delta`` (``util/augmentation.py``: crop first, then
``flip(2)``, the W axis). A perturbation kept at padded size is cut out with the same window, so
it follows the image through the augmentation, and pasted back by the inverse map
(``update_delta``: un-flip, then write at the offsets); the frame outside the window keeps its
values. Both are one gather / scatter over the flattened frame, exact copies of values.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _flat_index(crop: Tensor, flip: Tensor, c: int, h: int, w: int, wp: int) -> Tensor:
    """(B, C, H*W) positions in the flattened (Hp*Wp) frame of each window pixel."""
    dev = crop.device
    rows = crop[:, 0:1].long() + torch.arange(h, device=dev)  # (B, H)
    cols = crop[:, 1:2].long() + torch.arange(w, device=dev)  # (B, W)
    cols = torch.where(flip.to(dev).bool()[:, None], cols.flip(1), cols)
    b = crop.shape[0]
    return (rows[:, :, None] * wp + cols[:, None, :]).view(b, 1, h * w).expand(b, c, h * w)


def window(frame: Tensor, crop: Tensor, flip: Tensor, h: int, w: int) -> Tensor:
    """The (B, C, h, w) windows of ``frame`` (B, C, Hp, Wp) at ``crop``, mirrored where ``flip``."""
    b, c, hp, wp = frame.shape
    idx = _flat_index(crop.to(frame.device), flip, c, h, w, wp)
    return frame.reshape(b, c, hp * wp).gather(2, idx).view(b, c, h, w)


def paste(frame: Tensor, crop: Tensor, flip: Tensor, patch: Tensor) -> Tensor:
    """``frame`` with the windows at ``crop``/``flip`` replaced by ``patch``: the inverse of :func:`window`."""
    b, c, hp, wp = frame.shape
    h, w = patch.shape[-2:]
    idx = _flat_index(crop.to(frame.device), flip, c, h, w, wp)
    out = frame.reshape(b, c, hp * wp).clone()
    return out.scatter_(2, idx, patch.reshape(b, c, h * w).to(out.dtype)).view(b, c, hp, wp)


def pad_frame(x: Tensor, pad: int, value: float) -> Tensor:
    """``x`` (B, C, H, W) padded by ``pad`` on every side with the constant ``value``."""
    return F.pad(x, (pad, pad, pad, pad), mode="constant", value=value)
