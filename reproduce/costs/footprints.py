"""Each model's shape numbers at an input size: parameters, feature size, activation values.

``reproduce plan`` needs them for every run's memory estimate, but computing them means
importing torch and the model zoo (about 4 s a process, where a plan otherwise reads YAML
only). So the numbers of every (model, input shape) the specs use are kept in
``config/footprints.yaml``; a pair not listed there is computed on the ``meta`` device, and
``tests/test_plan_memory.py`` recomputes every listed pair, so the table cannot go stale.
Regenerate it with ``python -m reproduce.pipeline.footprint_table`` (the pipeline knows which pairs
the specs use; this module, below it, only computes them).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

FOOTPRINTS = Path("config/footprints.yaml")


def key(model: str, channels: int, height: int, width: int) -> str:
    return f"{model} {channels}x{height}x{width}"


@lru_cache(maxsize=None)
def _table(path: str = str(FOOTPRINTS)) -> dict[str, list[int]]:
    from ..io import read_yaml

    if not Path(path).exists():  # outside the repository root: everything is computed
        return {}
    return dict(read_yaml(path) or {})


@lru_cache(maxsize=None)
def trunk_footprint(model: str, channels: int, height: int, width: int) -> tuple[int, int, int]:
    """(trunk parameters, feature size, leaf-output values for one image): the table, else ``meta_footprint``."""
    hit = _table().get(key(model, channels, height, width))
    if hit is not None:
        return int(hit[0]), int(hit[1]), int(hit[2])
    return meta_footprint(model, channels, height, width)


def meta_footprint(model: str, channels: int, height: int, width: int) -> tuple[int, int, int]:
    """The numbers, computed: the trunk built and run on the ``meta`` device (shapes without memory or
    arithmetic; WRN-34-10 in about 0.1 s once torch is loaded). Eval mode, because train-mode
    BatchNorm refuses a one-image batch; the output sizes are the same."""
    import torch

    from ..models import MODELS

    with torch.device("meta"):
        trunk = MODELS.get(model, where="model.name")(channels, height)
    values = [0]

    def count(_mod: Any, _inp: Any, out: Any) -> None:
        if isinstance(out, torch.Tensor):
            values[0] += out.numel()

    hooks = [m.register_forward_hook(count) for m in trunk.modules() if not list(m.children())]
    trunk.eval()
    with torch.no_grad():
        trunk(torch.empty((1, channels, height, width), device="meta"))
    for h in hooks:
        h.remove()
    return sum(p.numel() for p in trunk.parameters()), int(trunk.feature_dim), values[0]
