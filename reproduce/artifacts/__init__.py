"""Artifact kinds: one module each, registered by name (table, matrix, curve, lines, scatter, bar, image_grid)."""

from .base import KINDS, Artifact, ArtifactKind, Row, parse_artifact
from . import table, plots  # noqa: F401  (registration)

__all__ = ["KINDS", "Artifact", "ArtifactKind", "Row", "parse_artifact"]
