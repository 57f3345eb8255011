"""Imported checkpoints as runs: a verified external file written as a run directory.

A run whose config has ``import:`` (reproduce/config/imports.py) is not trained: its job checks
the file's sha256, converts the state dict from its ``format`` (reproduce/models/formats.py),
loads it into the run's own model (so every key and shape must fit) and writes ``config.yaml``,
``best.pt`` and ``done.json`` (the sha256 and the external provenance), which ``init``,
evaluations and analyses read as they read any run. The file lives in
``<data root>/checkpoints/<import.file>``; ``reproduce models import`` puts it there.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Mapping

import torch

from .. import io
from ..config import config_hash, resolve_run
from ..config.imports import CHECKPOINT_DIR, imported
from ..errors import ConfigError
from ..provenance import git_commit

SIDECAR = ".sha256"  # a user-pinned checksum beside the stored file (none published)


def stored_file(imp: Mapping[str, Any], data_root: str | Path) -> Path:
    return Path(data_root) / CHECKPOINT_DIR / str(imp["file"])


def import_command(name: str, imp: Mapping[str, Any]) -> str:
    pin = "" if imp.get("sha256") else " --sha256 HEX"
    return f"python -m reproduce models import {name} --from-file {imp['file']}{pin}"


def check_sha256(path: Path, expected: str, source: str) -> str:
    """The file's sha256; a different one is a one-line error naming the file and both hashes."""
    found = io.sha256_file(path)
    if found != expected.lower():
        raise ConfigError(f"{path}: sha256 {found} differs from the expected {expected.lower()} ({source}); "
                          "the file is another version or damaged")
    return found


def expected_sha256(name: str, imp: Mapping[str, Any], path: Path, given: str | None = None) -> tuple[str, str]:
    """(checksum, where it comes from): the spec's pin, else ``--sha256``, else the stored sidecar."""
    pinned, side = imp.get("sha256"), path.with_name(path.name + SIDECAR)
    if pinned and given and pinned != given.lower():
        raise ConfigError(f"run {name}: --sha256 {given.lower()} differs from the spec's import.sha256 {pinned}")
    if pinned:
        return str(pinned), "import.sha256 of the spec"
    if given:
        return given.lower(), "--sha256"
    if side.exists():
        return side.read_text().strip(), f"pinned with --sha256 in {side.name}"
    raise ConfigError(f"run {name}: no checksum is published for {imp['file']}; pass --sha256 with the value "
                      f"of a copy you trust (`sha256sum FILE`): {import_command(name, imp)}")


def convert(cfg: Mapping[str, Any], path: Path) -> dict[str, torch.Tensor]:
    """The file's weights as the run's model holds them (``mean``/``std`` from ``model.normalize``)."""
    from ..models import build_model
    from ..models.formats import FORMATS, unwrap
    from .setup import model_normalization

    imp = cfg["import"]
    state = FORMATS.get(imp["format"]).convert(unwrap(torch.load(path, map_location="cpu", weights_only=True),
                                                      str(path)))
    head = state.get("heads.primary.weight")
    if head is None:
        raise ConfigError(f"{path}: no classifier weights (heads.primary.weight after the {imp['format']} mapping)")
    from ..data.catalog import DATASETS

    primary = cfg["data"]["primary"]
    if primary in DATASETS and DATASETS.get(primary).num_classes != head.shape[0]:
        raise ConfigError(f"{path}: a {head.shape[0]}-class classifier, but data.primary {primary} has "
                          f"{DATASETS.get(primary).num_classes} classes")
    channels = int(next(v for k, v in state.items() if k.endswith("conv1.weight")).shape[1])
    mean, std = model_normalization(cfg, {"channels": channels})
    model = build_model(cfg["model"]["name"], int(head.shape[0]), mean=mean, std=std, in_channels=channels)
    try:
        model.load_state_dict({**state, "mean": model.mean, "std": model.std}, strict=True)
    except RuntimeError as e:
        first = " ".join(str(e).split())[:300]
        raise ConfigError(f"{path}: does not fit a {cfg['model']['name']} after the {imp['format']} mapping "
                          f"({first})") from None
    return model.state_dict()


def import_run(raw_cfg: Mapping[str, Any], out_dir: str | Path, data_root: str | Path,
               source: str | Path | None = None, sha256: str | None = None) -> dict[str, Any]:
    """Write the imported run's directory from ``source`` (default: the stored file) and return done.json."""
    cfg = resolve_run(raw_cfg)
    imp, name, out = imported(cfg), cfg["name"], Path(out_dir)
    if imp is None:
        raise ConfigError(f"run {name}: not an imported run (no import:, or a stand-in that trains)")
    if (out / "done.json").exists() and source is None:
        return json.loads((out / "done.json").read_text())
    path = Path(source) if source is not None else stored_file(imp, data_root)
    if not path.exists():
        raise ConfigError(f"run {name}: imported checkpoint {path} is missing; download {imp['file']} from "
                          f"{imp['url']} and run `{import_command(name, imp)}` (add --data-dir as for the data)")
    want, why = expected_sha256(name, imp, path, sha256)
    found = check_sha256(path, want, why)
    state = convert(cfg, path)
    h = config_hash(cfg)
    out.mkdir(parents=True, exist_ok=True)
    io.write_yaml(out / "config.yaml", cfg)
    from . import checkpoint

    payload = {"model": state, "epoch": None, "score": None, "config_hash": h}
    checkpoint.save(out / "best.pt", payload)
    checkpoint.save(out / "last.pt", payload)
    summary = {"run": out.name, "config_hash": h, "scale": cfg["scale"], "epochs": cfg["epochs"],
               "best": {"epoch": None, "score": None}, "selection": cfg["selection"], "final": {},
               "external": True, "import": {**dict(imp), "sha256_found": found, "sha256_source": why,
                                            "from": str(path)},
               "git_commit": git_commit()}
    io.write_json(out / "done.json", summary)
    return summary


def store(name: str, imp: Mapping[str, Any], source: str | Path, data_root: str | Path,
          sha256: str | None) -> Path:
    """``reproduce models import``: verify ``source`` and copy it (and a user pin) into the data root."""
    src = Path(source)
    if not src.is_file():
        raise ConfigError(f"{src}: no such file (download {imp['file']} from {imp['url']})")
    want, why = expected_sha256(name, imp, src, sha256)
    check_sha256(src, want, why)
    dest = stored_file(imp, data_root)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if src.resolve() != dest.resolve():
        with io.atomic_path(dest) as tmp:
            shutil.copyfile(src, tmp)
    if not imp.get("sha256"):
        io.write_text(dest.with_name(dest.name + SIDECAR), want + "\n")
    return dest


__all__ = ["check_sha256", "convert", "import_run", "stored_file", "store"]
