"""Training methods: one module each, registered by name."""

from .base import METHODS, Method, StepOutput, TrainContext
from . import standard, trades  # noqa: F401  (registration)
from . import biamat  # noqa: F401  (registration)
from . import hat  # noqa: F401  (registration)
from . import subset_at  # noqa: F401  (registration)
from . import atta, finetune, iat, sat  # noqa: F401  (registration: the hard-instance paper's remedies)

__all__ = ["METHODS", "Method", "StepOutput", "TrainContext"]
