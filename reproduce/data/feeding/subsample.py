"""A seeded subsample of an auxiliary dataset (``data.aux_subsample``; BiaMAT 000 Figure 3).

``{imagenet32: {by: classes|samples, ratio: r, seed: S}}``, one entry per aux dataset it cuts:

* ``by: classes`` keeps round(r x classes) whole classes, drawn at random (seed S) among the
  classes that hold images, and renumbers
  their labels 0..k-1 in the order of the original labels, so a head for this aux has k outputs;
* ``by: samples`` keeps every class with round(r x n_c) of its n_c images, drawn at random.

At least one class, and one image per class, is kept: a generated stand-in of a few hundred images
would otherwise lose whole modes at r = 0.01 (at paper scale, r >= 0.01 of ImageNet32 keeps 10
classes or about 13 images per class, so the floor never applies).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ...errors import ConfigError

MODES = ("classes", "samples")


def check_aux_subsample(spec: Any, aux: list[Any], where: str) -> None:
    """One line naming the key for a malformed ``data.aux_subsample``."""
    if spec is None:
        return
    if not isinstance(spec, Mapping) or not spec:
        raise ConfigError(f"{where}: data.aux_subsample must map aux datasets to {{by: classes|samples, ratio: r, "
                          f"seed: S}}, got {spec!r}")
    for name, s in spec.items():
        if name not in aux:
            raise ConfigError(f"{where}: data.aux_subsample names {name!r}, which is not in data.aux {aux}")
        r = s.get("ratio") if isinstance(s, Mapping) else None
        if (not isinstance(s, Mapping) or set(s) - {"by", "ratio", "seed"} or s.get("by") not in MODES
                or isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 < r <= 1
                or isinstance(s.get("seed", 0), bool) or not isinstance(s.get("seed", 0), int)):
            raise ConfigError(f"{where}: data.aux_subsample.{name} must be {{by: classes|samples, ratio: r in (0, 1], "
                              f"seed: S}}, got {s!r}")


def kept_classes(num_classes: int, spec: Mapping[str, Any]) -> int:
    """Classes the subsample keeps (its aux head's size)."""
    if spec["by"] == "classes":
        return max(1, int(round(float(spec["ratio"]) * num_classes)))
    return int(num_classes)


def subsample(labels: np.ndarray, num_classes: int, spec: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(sorted positions kept, their labels: renumbered 0..k-1 by ``by: classes``, else unchanged)."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(int(spec.get("seed", 0)))
    r = float(spec["ratio"])
    if spec["by"] == "classes":
        # drawn among the classes that hold images (all of them in a real dataset; a shape-true
        # stand-in of 4 images must not draw 10 empty classes of 1,000)
        chosen = np.sort(rng.permutation(np.unique(labels))[:kept_classes(num_classes, spec)])
        pos = np.flatnonzero(np.isin(labels, chosen))
        return pos, np.searchsorted(chosen, labels[pos]).astype(labels.dtype)
    picks = []
    for c in range(num_classes):
        members = np.flatnonzero(labels == c)
        if len(members):
            picks.append(rng.permutation(members)[:max(1, int(round(r * len(members))))])
    pos = np.sort(np.concatenate(picks)) if picks else np.arange(0)
    return pos, labels[pos]


def subsampled_size(n: int, num_classes: int, spec: Mapping[str, Any] | None) -> tuple[int, int]:
    """(images, classes) the planner expects of a subsample of ``n`` images in ``num_classes`` classes."""
    if not spec:
        return int(n), int(num_classes)
    k = kept_classes(num_classes, spec)
    if spec["by"] == "classes":
        return int(round(n * k / max(1, num_classes))), k
    return max(num_classes, int(round(n * float(spec["ratio"])))), k
