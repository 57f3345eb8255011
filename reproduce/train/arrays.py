"""Arrays written atomically: a run killed mid-write leaves the old file or the new one, never half of one."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import io


def save_array(path: Path, array: np.ndarray) -> None:
    with io.atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)
