"""A run's measured training time, as ``done.json`` records it (BiaMAT Table 11's hours).

``wall_hours`` = median epoch seconds x epochs / 3600, from the per-epoch ``seconds`` of
``metrics.jsonl``. The median, not the sum: a preempted epoch logs only its post-resume
part, so a sum undercounts a requeued run while the median survives a few short epochs.
An epoch's ``seconds`` covers its optimizer steps only: selection evaluations, eval logs and
checkpoint writes come after it is taken, so the hours exclude them (the paper's Table 11 does
not say whether its hours include the AT code's periodic PGD evaluation).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np

EXCLUDES = "selection evaluations, eval logs and checkpoint writes"


def wall_hours(history: Iterable[Mapping[str, Any]], epochs: int) -> float | None:
    """Median epoch seconds x ``epochs`` / 3600; None when no epoch logged its seconds."""
    secs = [float(r["seconds"]) for r in history if isinstance(r.get("seconds"), (int, float))]
    if not secs:
        return None
    return float(np.median(secs)) * int(epochs) / 3600.0


def timing_summary(history: list[Mapping[str, Any]], epochs: int, provenance: Mapping[str, Any]) -> dict[str, Any]:
    """``done.json``'s timing keys: the hours, the device they were measured on (the GPU model, else
    the torch device: runs timed on different devices are not comparable) and what they leave out."""
    secs = [float(r["seconds"]) for r in history if isinstance(r.get("seconds"), (int, float))]
    return {"wall_hours": wall_hours(history, epochs),
            "wall_device": provenance.get("gpu") or provenance.get("device"),
            "timing": {"epoch_seconds_median": float(np.median(secs)) if secs else None,
                       "epochs_timed": len(secs), "epochs": int(epochs), "excludes": EXCLUDES}}
