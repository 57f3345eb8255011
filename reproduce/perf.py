"""Speed switches of a run (the ``perf:`` config section) and what they turn on.

Defaults keep the plain fp32 eager path, bit-exact with runs made before these
switches existed. A scale turns them on through an ``overrides`` entry ``{set: {perf: ...}}``.

Only the switches that change what training computes go into the run's hash
(``HASHED``): ``amp`` (bf16 forwards) and ``compile`` (fused kernels round
differently). The others are pure speed: ``channels_last`` and
``cudnn_benchmark`` pick other kernels for the same convolutions (on a GPU the
chosen algorithm already varies run to run, so they do not make a different
run), ``fused_optimizer`` does SGD's arithmetic in one kernel, and
``sync_every`` only decides how often the host looks at the on-device NaN flag.
A run resumed with other speed switches therefore continues the same run.
"""

from __future__ import annotations

import contextlib
import inspect
from typing import Any, ContextManager, Iterable, Mapping

import torch
from torch import nn

from .perf_settings import AMP_MODES, HASHED, PERF_DEFAULTS, check_perf, hashed_perf  # noqa: F401 (re-exported)


def autocast(perf: Mapping[str, Any], device: torch.device) -> ContextManager[Any]:
    """bf16 autocast around a training step (weights, BN statistics and grads stay fp32)."""
    if perf.get("amp", "none") == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def memory_format(perf: Mapping[str, Any]) -> torch.memory_format:
    return torch.channels_last if perf.get("channels_last") else torch.contiguous_format


def prepare_model(model: nn.Module, perf: Mapping[str, Any]) -> nn.Module:
    """Apply the layout in place; returns the module training steps should call.

    The returned module may be a ``torch.compile`` wrapper: checkpoints keep
    saving the original ``model`` so state-dict keys never change.
    """
    if perf.get("channels_last"):
        model.to(memory_format=torch.channels_last)
    if perf.get("compile"):
        return torch.compile(model)  # type: ignore[return-value]
    return model


def prepare_input(x: torch.Tensor, perf: Mapping[str, Any]) -> torch.Tensor:
    if perf.get("channels_last") and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


def set_backends(perf: Mapping[str, Any], device: torch.device) -> None:
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = bool(perf.get("cudnn_benchmark"))


def make_sgd(params: Iterable[torch.nn.Parameter], optim: Mapping[str, Any], perf: Mapping[str, Any],
             device: torch.device) -> tuple[torch.optim.SGD, str]:
    """SGD as the config asks, plus the implementation used ('default', 'fused' or 'foreach')."""
    kw = dict(lr=float(optim["lr"]), momentum=float(optim["momentum"]), nesterov=bool(optim["nesterov"]),
              weight_decay=float(optim["weight_decay"]))
    impl = "default"
    if perf.get("fused_optimizer"):
        fused_ok = device.type == "cuda" and "fused" in inspect.signature(torch.optim.SGD).parameters
        impl = "fused" if fused_ok else "foreach"
        kw[impl] = True
    return torch.optim.SGD(params, **kw), impl


def provenance(perf: Mapping[str, Any], device: torch.device, **effective: Any) -> dict[str, Any]:
    """What done.json and evaluation JSONs record: the switches, the device and its precision."""
    out: dict[str, Any] = {**perf, **effective, "device": str(device), "torch": torch.__version__}
    if device.type == "cuda":
        out.update(gpu=torch.cuda.get_device_name(device), cuda=torch.version.cuda,
                   tf32_matmul=bool(torch.backends.cuda.matmul.allow_tf32),
                   tf32_cudnn=bool(torch.backends.cudnn.allow_tf32))
    return out


__all__ = ["PERF_DEFAULTS", "HASHED", "check_perf", "hashed_perf", "autocast", "prepare_model",
           "prepare_input", "set_backends", "make_sgd", "provenance", "memory_format"]
