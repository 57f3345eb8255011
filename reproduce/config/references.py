"""A reference from one run to another's checkpoint, ``{run: ID, checkpoint: best|last|epoch_N}``: the file it names."""

from __future__ import annotations

from typing import Any, Mapping

from ..errors import ConfigError

CHECKPOINTS = ("best", "last")


def checkpoint_file(ref: Mapping[str, Any]) -> str:
    name = str(ref.get("checkpoint", "best"))
    if name in CHECKPOINTS:
        return f"{name}.pt"
    if name.startswith("epoch_") and name[6:].isdigit():
        return f"checkpoints/{name}.pt"
    raise ConfigError(f"reference {dict(ref)}: checkpoint must be best, last or epoch_N, got {name!r}")
