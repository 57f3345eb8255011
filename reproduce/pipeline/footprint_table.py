"""Writes ``config/footprints.yaml``: the footprint of every (model, input shape) a spec trains at
one of the tabled scales (``reproduce.costs.footprints`` reads it)."""

from __future__ import annotations

from pathlib import Path

from ..costs.footprints import FOOTPRINTS, key, meta_footprint

SCALES = ("paper", "shapes", "smoke")


def used_pairs(scales: tuple[str, ...] = SCALES) -> set[tuple[str, int, int, int]]:
    """Every (model, C, H, W) a run of some spec trains at one of ``scales``."""
    from .cli import workflow_config
    from .dag import Dag
    from ..costs.memory import dataset_shape

    pairs = set()
    for name in scales:
        cfg = workflow_config(_Args(name))
        dag = Dag(cfg)
        for run in dag.configs.values():
            c, h, w, _ = dataset_shape(run["data"]["primary"], dag.scale)
            pairs.add((run["model"]["name"], c, h, w))
    return pairs


class _Args:
    def __init__(self, scale: str) -> None:
        self.scale = scale


def write_table(path: Path = FOOTPRINTS) -> int:
    from ..io import write_text

    rows = sorted(used_pairs())
    lines = ["# model CxHxW: [trunk parameters, feature size, leaf-output values for one image]",
             "# written by `python -m reproduce.pipeline.footprint_table`"]
    lines += [f"{key(*p)}: [{', '.join(str(v) for v in meta_footprint(*p))}]" for p in rows]
    write_text(path, "\n".join(lines) + "\n")
    return len(rows)


if __name__ == "__main__":
    print(f"wrote {FOOTPRINTS}: {write_table()} model shapes")
