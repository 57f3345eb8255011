"""Where an output came from: git commit, machine and library versions, and a Markdown banner.

``runtime_provenance`` is the one place that collects them; both writers of
results (``done.json`` after training, the evaluation JSONs) call it, so the
two can never disagree on which fields exist.
"""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
from functools import lru_cache
from typing import Any



@lru_cache(maxsize=None)
def git_commit(repo: str | None = None) -> str:
    """Short HEAD sha, ``+dirty`` when tracked files differ from it (untracked files do not count:
    a results folder or a scratch notebook beside the code changes nothing that ran)."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True,
                             timeout=10, cwd=repo).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, timeout=10, cwd=repo).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (sha + ("+dirty" if dirty else "")) if sha else "unknown"


def _dist_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def autoattack_provenance() -> dict[str, str | None]:
    """Which AutoAttack implementation ``reproduce.attacks.autoattack`` would use, and its version."""
    from .attacks.autoattack import backend
    from .errors import ReproduceError

    try:
        which = backend()
    except ReproduceError:
        return {"backend": None, "version": None}
    return {"backend": which, "version": _dist_version(which)}


def runtime_provenance(device: Any, *, seed: Any, scale: str) -> dict[str, Any]:
    """Device, GPU model, torch / CUDA / cuDNN, AutoAttack backend and version, git commit, seed, scale."""
    import torch

    dev = torch.device(device)
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {
        "device": str(dev),
        "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": cudnn,
        "python": platform.python_version(),
        "autoattack": autoattack_provenance(),
        "git_commit": git_commit(),
        "seed": seed,
        "scale": scale,
    }


PROVENANCE_KEYS = ("device", "gpu", "torch", "cuda", "cudnn", "python", "autoattack", "git_commit", "seed", "scale")


def scale_banner(scale_name: str, comparable: bool, description: str | None = None) -> str:
    """The line every output opens with; ``description`` is the scale's own (from the plan file)."""
    if comparable:
        return f"Scale: **{scale_name}** (the papers' settings; comparable with the published numbers)."
    # the scale says what it is (generated data, real data on a CPU, a GPU budget)
    what = f" ({description})" if description else ""
    return (f"Scale: **{scale_name}**{what}. NOT COMPARABLE with the paper: smaller data, models or schedules "
            "than the published runs; these numbers test the pipeline and the claims' direction, not the "
            "published values.")


def environment(device: Any) -> dict[str, Any]:
    """Provenance of work that has no seed of its own (analyses record theirs in params)."""
    return runtime_provenance(device, seed=None, scale="")
