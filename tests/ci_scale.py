"""The `ci` scale: the smoke scale cut further so a whole run takes seconds (tests only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]


def ci_scale_dict(epochs: int = 2, n_train: int = 256, n_test: int = 40, eval_n: int = 40) -> dict[str, Any]:
    smoke = yaml.safe_load((ROOT / "config/scales/smoke.yaml").read_text())
    smoke["scale"] = "ci"
    smoke["overrides"].append({"set": {"epochs": epochs}})  # later entries win
    smoke["eval"]["n"] = eval_n
    for d in smoke["data"]["datasets"].values():
        d.update(n_train=n_train, n_test=n_test)
    return smoke
