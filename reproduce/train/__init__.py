"""Training: the loop, LR schedules, checkpoints."""

from .loop import train

__all__ = ["train"]
