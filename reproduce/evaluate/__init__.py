"""Evaluation: frozen protocols (``PROTOCOLS``) and ``evaluate``."""

from __future__ import annotations

from .catalog import PROTOCOLS, Protocol
from . import paper_protocols  # noqa: F401  (registration)


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    # running a protocol needs torch; reading the catalog (specs, renders) does not
    if name == "evaluate":
        from .protocols import evaluate

        return evaluate
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["PROTOCOLS", "Protocol", "evaluate"]
