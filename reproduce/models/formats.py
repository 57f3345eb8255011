"""External checkpoint formats: another codebase's state dict turned into this harness's keys.

A format is a function from the file's state dict to a ``Classifier`` state dict (``trunk.*``,
``heads.primary.*``; the ``mean``/``std`` buffers come from the importing run's
``model.normalize``), plus the architectures it can describe. ``reproduce/train/imported.py``
loads the converted dict into the run's own model, so a key or shape that does not fit is
caught there, before anything is written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Mapping

import torch

from ..errors import ConfigError
from ..registry import Registry
from . import HEADS_PREFIX, PRIMARY, TRUNK_PREFIX

StateDict = Mapping[str, torch.Tensor]


@dataclass(frozen=True)
class CheckpointFormat:
    convert: Callable[[StateDict], dict[str, torch.Tensor]]
    architectures: str  # a regex over model names this format can hold
    description: str


FORMATS: Registry[CheckpointFormat] = Registry("checkpoint format")

# Hendrycks' WRN (pre-training:robustness/adversarial/models/wrn.py, the outlier-exposure WRN):
# BasicBlocks inside NetworkBlock.layer, a 1x1 ``convShortcut`` where widths change, the final
# BatchNorm ``bn1`` and the classifier ``fc``; saved from DataParallel, hence ``module.``.
_HENDRYCKS = [
    (re.compile(r"^(block\d+)\.layer\.(\d+)\."), r"\1.\2."),
    (re.compile(r"\.convShortcut\."), ".shortcut."),
    (re.compile(r"^bn1\."), "bn."),
]


def hendrycks_wrn(state: StateDict) -> dict[str, torch.Tensor]:
    """``module.block1.layer.0.convShortcut.weight`` -> ``trunk.block1.0.shortcut.weight``,
    ``module.bn1.*`` -> ``trunk.bn.*``, ``module.fc.*`` -> ``heads.primary.*``."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        k = key[len("module."):] if key.startswith("module.") else key
        if k.startswith("fc."):
            out[f"{HEADS_PREFIX}{PRIMARY}.{k[3:]}"] = value
            continue
        for pattern, repl in _HENDRYCKS:
            k = pattern.sub(repl, k)
        out[TRUNK_PREFIX + k] = value
    # checkpoints saved before PyTorch 0.4.1 have no BatchNorm counters; the count is never read
    for key in [k for k in out if k.endswith(".running_mean")]:
        out.setdefault(key[: -len("running_mean")] + "num_batches_tracked", torch.tensor(0))
    return out


def harness(state: StateDict) -> dict[str, torch.Tensor]:
    """A checkpoint of this harness (``best.pt``'s ``model``), copied elsewhere: keys as they are."""
    return {k: v for k, v in state.items() if k not in ("mean", "std")}


FORMATS.add("hendrycks-wrn", CheckpointFormat(hendrycks_wrn, r"wrn-\d+-\d+",
                                              "Hendrycks et al.'s WideResNet (pre-training, outlier-exposure)"))
FORMATS.add("harness", CheckpointFormat(harness, r".+", "this harness's own best.pt"))


def unwrap(obj: object, path: str) -> StateDict:
    """The state dict inside a loaded file: the dict itself, or its ``state_dict`` / ``model`` entry."""
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model"):
            inner = obj.get(key)
            if isinstance(inner, Mapping):
                return inner
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return obj
    raise ConfigError(f"{path}: holds no state dict (a mapping of tensors, or one under 'state_dict' or 'model')")


def check_architecture(fmt: str, model: str, where: str) -> None:
    spec = FORMATS.get(fmt, where=f"{where}.format")
    if not re.fullmatch(spec.architectures, model):
        raise ConfigError(f"{where}: format {fmt!r} holds {spec.architectures} models, not {model!r}")


__all__ = ["FORMATS", "CheckpointFormat", "check_architecture", "harness", "hendrycks_wrn", "unwrap"]
