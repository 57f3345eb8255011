"""HAT's 3-d toy (paper 003, App. A [155]), generated from its parameters at every scale.

reproduce/data/generated/toy.py draws it and explains the [0, 1] encoding.
"""

from __future__ import annotations

from .base import DatasetInfo, add

add(DatasetInfo(
    name="toy3d",
    title="HAT toy: two noisy concentric circles in x1-x2, separable along x3 (3-d, 2 classes)",
    num_classes=2, image_size=1, channels=3,
    splits=("train", "test"), split_sizes={"train": 2_000, "test": 2_000},
    mean=(0.5, 0.5, 0.5),  # toy.OFFSET: the model sees x = (u - 0.5) / 0.1
    std=(0.1, 0.1, 0.1),  # toy.SCALE
    classes=("class1", "class2"),
    licence="generated (no licence needed)", homepage="paper 003 (Rade & Moosavi-Dezfooli 2021), Appendix A",
    importer="toy3d", generated=True, import_hint="(no files: generated; `reproduce data import toy3d`)",
    params={
        "sigma": 0.2, "rho": [0.35, 1.0], "x3_range": [[0.65, 0.70], [0.80, 0.85]],  # [155]
        "n_per_class": 1000,  # UNSTATED in the paper: our choice (notes/hat.md §10)
        "seed": 0,
        "encoding": "u = 0.5 + 0.1 * x (float32); Linf eps in x = 10 * eps in u",
    },
))
