"""Where an output came from: git commit and a header block for Markdown files."""

from __future__ import annotations

import subprocess
from functools import lru_cache


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


def scale_banner(scale_name: str, comparable: bool) -> str:
    if comparable:
        return f"Scale: **{scale_name}** (the papers' settings; comparable with the published numbers)."
    return (f"Scale: **{scale_name}**. NOT COMPARABLE with the paper: generated data, tiny models and "
            "short schedules prove the pipeline runs end to end; these numbers say nothing about the method.")
