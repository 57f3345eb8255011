"""Training: the loop, its observers (reproduce/train/observers/), LR schedules, checkpoints."""

from .loop import train

__all__ = ["train"]
