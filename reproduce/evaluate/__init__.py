"""Evaluation: frozen protocols (``PROTOCOLS``) and ``evaluate``."""

from __future__ import annotations

from .protocols import PROTOCOLS, Protocol, evaluate

__all__ = ["PROTOCOLS", "Protocol", "evaluate"]
