"""``holdout`` (run key ``data.holdout``): the original ids of the validation part cut off the training split."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..state import TrainRun
from .base import Observer, register, save_array

HOLDOUT = "holdout_indices.npy"


def write_holdout(out: Path, ids: np.ndarray) -> None:
    save_array(out / HOLDOUT, np.asarray(ids, dtype=np.int64))


@register("holdout")
class Holdout(Observer):
    keys = ("data.holdout",)

    def on_start(self, run: TrainRun) -> None:
        # a split too small to cut anything off (shape-checking scales) has no hold-out to record
        if run.data.get("holdout") is not None:
            write_holdout(run.out, run.data["holdout"][2])
