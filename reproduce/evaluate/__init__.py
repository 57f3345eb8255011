"""Evaluation: frozen protocols (``PROTOCOLS``) and ``evaluate``."""

from __future__ import annotations

from .protocols import PROTOCOLS, Protocol, evaluate
from . import paper_protocols  # noqa: F401  (registration)

__all__ = ["PROTOCOLS", "Protocol", "evaluate"]
