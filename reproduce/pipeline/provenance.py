"""Where an output came from: git commit and a header block for Markdown files."""

from __future__ import annotations

import subprocess
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=None)
def git_commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (sha + ("+dirty" if dirty else "")) if sha else "unknown"


def environment(device: Any = None) -> dict[str, Any]:
    """Where numbers were computed: device, GPU model and library versions."""
    import platform

    import torch

    dev = str(device) if device is not None else "unknown"
    gpu = torch.cuda.get_device_name(torch.device(dev)) if dev.startswith("cuda") else None
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {"device": dev, "gpu": gpu, "torch": torch.__version__, "cuda": torch.version.cuda,
            "cudnn": cudnn, "python": platform.python_version()}


def scale_banner(scale_name: str, comparable: bool) -> str:
    if comparable:
        return f"Scale: **{scale_name}** (the papers' settings; comparable with the published numbers)."
    return (f"Scale: **{scale_name}**. NOT COMPARABLE with the paper: generated data, tiny models and "
            "short schedules prove the pipeline runs end to end; these numbers say nothing about the method.")
