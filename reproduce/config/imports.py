"""``import:`` of a run config: an external checkpoint that stands where training would.

``import: {file, sha256, format, url, provenance}``. The rest of the run config is the recipe
that made the file (the architecture and normalization the weights expect, the data it was
trained on, and the training settings a retraining would use), so the run id hashes the
checksum, the format and the architecture with everything else. ``sha256: null`` means no
checksum is published: the user pins one with ``reproduce models import NAME --from-file F
--sha256 HEX`` (recorded beside the stored file, as the data catalog records ``--sha256``).

A scale without the real files (``data.imports: stand_in``) sets ``stand_in: true``: the run
trains its recipe on the scale's data instead, and its ``done.json`` says so.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from ..errors import ConfigError

IMPORT_KEYS = ("file", "sha256", "format", "url", "provenance", "stand_in")
SHA256 = re.compile(r"[0-9a-f]{64}")
CHECKPOINT_DIR = "checkpoints"  # under the data root: imported files live beside the datasets


def imported(cfg: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The run's ``import`` section when the run is a file import (not a trained stand-in)."""
    imp = cfg.get("import")
    return imp if isinstance(imp, Mapping) and not imp.get("stand_in") else None


def check_import(cfg: Mapping[str, Any], where: str) -> None:
    imp = cfg.get("import")
    if imp is None:
        return
    if not isinstance(imp, Mapping):
        raise ConfigError(f"{where}: import must be {{file, sha256, format, url, provenance}}, got {imp!r}")
    unknown = sorted(set(imp) - set(IMPORT_KEYS))
    if unknown:
        raise ConfigError(f"{where}: import: unknown key(s) {', '.join(map(repr, unknown))}; "
                          f"allowed: {', '.join(IMPORT_KEYS)}")
    f = imp.get("file")
    if not isinstance(f, str) or not f or "/" in f or f.startswith("."):
        raise ConfigError(f"{where}: import.file must be a file name (no directory), got {f!r}")
    sha = imp.get("sha256")
    if sha is not None and not (isinstance(sha, str) and SHA256.fullmatch(sha)):
        raise ConfigError(f"{where}: import.sha256 must be 64 lowercase hex digits or null (none published), "
                          f"got {sha!r}")
    if not isinstance(imp.get("url"), str) or not imp["url"]:
        raise ConfigError(f"{where}: import.url must say where the file is published, got {imp.get('url')!r}")
    if not isinstance(imp.get("provenance", {}), Mapping):
        raise ConfigError(f"{where}: import.provenance must be a mapping (paper, code, ...)")
    if not isinstance(imp.get("stand_in", False), bool):
        raise ConfigError(f"{where}: import.stand_in must be true or false, got {imp['stand_in']!r}")
    from ..models.formats import FORMATS, check_architecture

    FORMATS.get(str(imp.get("format")), where=f"{where}: import.format")
    if imp.get("stand_in"):  # a scale's own model trains in its place
        return
    check_architecture(str(imp["format"]), cfg["model"]["name"], f"{where}: import")
    if (cfg["model"]["normalize"] == "dataset" or cfg.get("freeze")):
        raise ConfigError(f"{where}: an imported run needs model.normalize 'none' or {{mean, std}} (the "
                          "constants its weights expect) and no freeze")
