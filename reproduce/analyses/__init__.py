"""Analyses: one module each, registered by name (difficulty, margins, entropy, ...)."""

from .base import ANALYSES, REQUIRED, Analysis, AnalysisContext
from . import corruptions  # noqa: F401  (registration)

__all__ = ["ANALYSES", "REQUIRED", "Analysis", "AnalysisContext"]

# One line per analysis module: importing it registers its analyses.
from . import margins  # noqa: E402,F401
from . import decision_grid  # noqa: E402,F401
from . import subset_rankings  # noqa: E402,F401
from . import difficulty  # noqa: E402,F401
from . import d_distance  # noqa: E402,F401
from . import lipschitz  # noqa: E402,F401
from . import group_curves  # noqa: E402,F401
from . import extremes  # noqa: E402,F401
from . import instance_correlation  # noqa: E402,F401
from . import robust_dataset  # noqa: E402,F401
from . import fid  # noqa: E402,F401
from . import aux_confidence  # noqa: E402,F401
from . import pseudo_labels  # noqa: E402,F401
from . import topk_per_class  # noqa: E402,F401
