"""``reproduce data verify``: recompute a prepared dataset's checksums."""

from __future__ import annotations

import os

from .prepared import load_split, read_manifest


def verify(name: str, root: str | os.PathLike[str] | None = None) -> dict[str, int]:
    """Recompute every split's checksums; return ``{split: n}`` or raise ``ChecksumError``."""
    meta = read_manifest(name, root)
    out = {}
    for split, entry in meta["splits"].items():
        if "images_sha256" in entry:
            images, _ = load_split(name, split, root, verify=True, mmap=True)
            out[split] = int(images.shape[0])
    if meta.get("storage") == "jpeg":  # and every JPEG against its listed sha256
        from .jpeg import verify_files

        out = {**verify_files(name, root), **out}
    return out
