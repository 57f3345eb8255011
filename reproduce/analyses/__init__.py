"""Analyses: one module each, registered by name (difficulty, margins, entropy, ...)."""

from .base import ANALYSES, REQUIRED, Analysis, AnalysisContext
from . import corruptions  # noqa: F401  (registration)

__all__ = ["ANALYSES", "REQUIRED", "Analysis", "AnalysisContext"]
