"""Training observers, one module each, registered by name (reproduce/train/observers/base.py).

A new per-step or per-epoch record (a method's per-instance weights, budgets, targets, feature
statistics) is one module here and one import line below.
"""

from .base import OBSERVERS, Observer, Observers, observers_for, register
from . import adapted, eval_logs, features, holdout, instances, selection, snapshots, transfer  # noqa: F401  (registration)
from .holdout import write_holdout
from .instances import InstanceLog

__all__ = ["OBSERVERS", "InstanceLog", "Observer", "Observers", "observers_for", "register", "write_holdout"]
