"""Turning a resolved run config into a device, a data placement and a model (the run's data: ``run_data``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import torch

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..data.feeding.placement import Placement


def select_device(device: str = "auto", *, scale: str | None = None, allow_cpu: bool = True,
                  comparable: bool | None = None) -> torch.device:
    """The torch device for ``device`` (auto | cpu | cuda | cuda:N).

    With ``scale`` given and ``allow_cpu`` false, ``auto`` landing on the CPU at a
    scale comparable with the papers is an error: a paper-scale run on CPU takes
    months and usually means the GPU was not visible to the job. ``comparable`` is the
    plan's word on the scale; without a plan only ``paper`` counts as comparable.
    """
    if device == "auto":
        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        comparable = (scale == "paper") if comparable is None else comparable
        if dev.type == "cpu" and scale is not None and not allow_cpu and comparable:
            raise ConfigError(f"device 'auto' found no CUDA GPU for a run at scale {scale!r} (comparable with "
                              "the papers); set allow_cpu: true in config/config.yaml (or --config "
                              "allow_cpu=True, or reproduce ... --allow-cpu), or pass --device cpu")
        return dev
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available on this machine")
    return torch.device(device)


def place_data(cfg: Mapping[str, Any], splits: Mapping[str, tuple[Any, Any, Any]], device: torch.device, *,
               classes: int, aux_classes: Mapping[str, int], free_bytes: int | None = None) -> "Placement":
    """Where the run's training splits go (``perf.data_placement``; reproduce/data/feeding/placement.py).

    The reserve beside the data is the planner's model + optimizer + activation estimate, computed
    on CUDA only: on the CPU data and model share one memory and the answer is always ``device``.
    """
    from ..data.feeding.placement import decide_placement
    from ..costs.memory import LABEL_BYTES, training_reserve

    device = torch.device(device)
    nbytes = sum(int(sx.nbytes) + LABEL_BYTES * len(sy) for sx, sy, _ in splits.values())
    reserve = None
    if device.type == "cuda":
        x = next(iter(splits.values()))[0]
        try:
            reserve = training_reserve(cfg, classes=classes, aux_classes=aux_classes,
                                       shape=(int(x.shape[3]), int(x.shape[1]), int(x.shape[2])))
        except (RuntimeError, NotImplementedError):  # a model that cannot run on `meta`: the floor alone
            reserve = None
    return decide_placement(nbytes, device, requested=cfg["perf"]["data_placement"], reserve_bytes=reserve,
                            free_bytes=free_bytes)


def model_normalization(cfg: Mapping[str, Any], data: Mapping[str, Any]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-dataset mean/std when the paper's code normalizes inside the model, else identity.

    The statistics come from the prepared dataset's manifest, so generated stand-ins use their own.
    """
    channels = data["channels"]
    if cfg["model"]["normalize"] == "none":
        return (0.0,) * channels, (1.0,) * channels
    norm = cfg["model"]["normalize"]
    if isinstance(norm, Mapping):  # the paper code's own constants (Subset AT: CIFAR-10's for CIFAR-100 too)
        if set(norm) != {"mean", "std"}:
            raise ConfigError(f"run {cfg['name']}: model.normalize as a mapping needs exactly mean: and std:")
        return tuple(float(v) for v in norm["mean"]), tuple(float(v) for v in norm["std"])
    if cfg["model"]["normalize"] != "dataset":
        raise ConfigError(f"run {cfg['name']}: model.normalize must be 'none', 'dataset' or {{mean: [...], std: [...]}}")
    man = data["manifest"]
    if not man.get("mean") or not man.get("std"):
        raise ConfigError(f"dataset {cfg['data']['primary']!r}: manifest has no mean/std for model.normalize: dataset")
    return tuple(man["mean"]), tuple(man["std"])


def build_for_run(cfg: Mapping[str, Any], data: Mapping[str, Any], device: torch.device,
                  heads: dict[str, int] | None = None) -> torch.nn.Module:
    from ..models import build_model
    from ..config.transfer import head_hidden

    mean, std = model_normalization(cfg, data)
    model = build_model(cfg["model"]["name"], data["num_classes"], mean=mean, std=std,
                        heads=heads or cfg["model"]["heads"], image_size=data["image_size"],
                        in_channels=data["channels"], head_hidden=head_hidden(cfg))
    return model.to(device)


def build_from_run_dir(run_dir: str | Path, data_root: str | Path, device: torch.device,
                       checkpoint_name: str = "best.pt") -> tuple[dict[str, Any], torch.nn.Module, dict[str, Any]]:
    """Rebuild a trained model for evaluation: (resolved config, model in eval mode, checkpoint meta)."""
    from .. import io
    from ..config import resolve_run
    from ..data import read_manifest
    from . import checkpoint

    run = Path(run_dir)
    ck_path = run / checkpoint_name
    if not (run / "config.yaml").exists() or not ck_path.exists():
        raise ConfigError(f"{ck_path}: no trained checkpoint here; train the run first "
                          f"(reproduce train --config CONFIG --out {run})")
    cfg = resolve_run(io.read_yaml(run / "config.yaml"), where=str(run / "config.yaml"))
    ck = checkpoint.load(ck_path, device)
    state = ck["model"]
    # head names and sizes are read back from the weights, so any method's model reloads alike;
    # a hidden-layer head (model.head) lists its output layer last
    heads: dict[str, int] = {}
    for k, v in state.items():
        if k.startswith("heads.") and k.endswith(".weight"):
            heads[k.split(".")[1]] = int(v.shape[0])
    man = read_manifest(cfg["data"]["primary"], data_root)
    data = {"num_classes": int(man["num_classes"]), "image_size": int(man["image_size"]),
            "channels": int(man.get("channels", 3)), "manifest": man}
    model = build_for_run(cfg, data, device, heads=heads or None)
    model.load_state_dict(state)
    model.eval()
    meta = {k: v for k, v in ck.items() if k != "model"}
    return cfg, model, meta
