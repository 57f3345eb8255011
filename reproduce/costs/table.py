"""``config/costs.yaml``: measured pass times, GPU speeds and dataset sizes the cost and memory models read."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from ..io import read_yaml

COSTS = Path("config/costs.yaml")


@lru_cache(maxsize=None)
def read_costs(path: str = str(COSTS)) -> dict[str, Any]:
    return read_yaml(path)
