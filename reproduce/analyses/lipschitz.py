"""Per-block power-iteration "Lipschitz upper bound" over checkpoints (T6, F11).

The hard-instance code (``util/lipschitz.py`` ``calc_lip_conv2d``, ``arch/resnet_cifar10.py``
``calc_lip``, ``analyze/calc_global_lip.py``): model in eval mode, X ~ N(0, I) of shape
[batch, C, H, W]; the network is walked as a chain (stem conv+BN; each residual block **as a
whole**; pool + flatten + linear head) and for each module f, with its input shape from
propagating X, ``u ~ N(0, I)`` is iterated ``iters`` times as ``u <- g / ||g||`` with
``g = grad_u 1/2 ||f(u) - f(0)||^2`` per sample; the module's estimate is the max over the batch of
``||f(u) - f(0)||``. The product over modules is one estimate; it is repeated ``loops`` times.

NOTE: this is **not a certified bound**. A power iteration underestimates the spectral norm of
an affine map, and for the nonlinear residual blocks ``||f(u) - f(0)||`` at one unit vector is
neither an upper nor a lower bound of the block's Lipschitz constant. It reproduces the paper's
numbers' *procedure*, nothing more. Values: per checkpoint the mean over loops (T6), loop 0 (the
notebook's F11 trend) and all loops.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from .base import ANALYSES, REQUIRED, Analysis, AnalysisContext, positive_ints


def power_estimate(module: Callable[[torch.Tensor], torch.Tensor], sample: torch.Tensor, iters: int,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """max over the batch of ||f(u) - f(0)|| after ``iters`` normalized gradient steps (the code's)."""
    u = torch.randn(sample.shape, generator=generator, device=sample.device, dtype=sample.dtype)
    zero = torch.zeros_like(sample)
    with torch.no_grad():
        f0 = module(zero)
    for _ in range(iters):
        u = u.detach().requires_grad_(True)
        with torch.enable_grad():
            target = (module(u) - f0).flatten(1).norm(dim=1).pow(2).div(2)
            (g,) = torch.autograd.grad(target.sum(), u)
        u = g / g.flatten(1).norm(dim=1).view(-1, *([1] * (g.dim() - 1)))
    with torch.no_grad():
        return (module(u.detach()) - f0).flatten(1).norm(dim=1).max()


def _resnet_chain(trunk: nn.Module, head: nn.Module) -> list[tuple[nn.Module, Callable]]:
    """(module to estimate, how the propagated input moves past it) for the post-activation ResNet."""
    stem = nn.Sequential(trunk.conv1, trunk.bn1)
    chain: list[tuple[nn.Module, Callable]] = [(stem, lambda x: torch.relu(stem(x)))]
    for stage in (trunk.layer1, trunk.layer2, trunk.layer3, trunk.layer4):
        chain += [(block, block) for block in stage]
    tail = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), head)
    return chain + [(tail, tail)]


def _sequential_chain(trunk: nn.Module, head: nn.Module) -> list[tuple[nn.Module, Callable]]:
    """Stand-in for small trunks (``net`` Sequential): each child on its own, then the head."""
    return [(m, m) for m in trunk.net] + [(head, head)]


def module_chain(model: nn.Module) -> list[tuple[nn.Module, Callable]]:
    from ..models.resnet import ResNet

    trunk, head = model.trunk, model._head(None)
    if isinstance(trunk, ResNet):
        return _resnet_chain(trunk, head)
    if isinstance(getattr(trunk, "net", None), nn.Sequential):
        return _sequential_chain(trunk, head)
    raise ConfigError(f"lipschitz: no module chain for trunk {type(trunk).__name__} (resnet18 and small trunks)")


def chain_estimate(model: nn.Module, x: torch.Tensor, iters: int, generator: torch.Generator | None) -> float:
    """One product over the chain; the model's input normalization is left out, as the code's
    ``model[1].calc_lip`` skips its (identity) normalization layer."""
    out, lip = x, 1.0
    for module, move in module_chain(model):
        lip *= float(power_estimate(module, out, iters, generator))
        with torch.no_grad():
            out = move(out)
    return lip


@ANALYSES.register("lipschitz")
class Lipschitz(Analysis):
    """The code's per-block power-iteration product for each listed checkpoint of a run."""

    params = {"run": REQUIRED, "checkpoints": ["last"], "loops": 20, "iters": 100, "batch": 100, "seed": 0}
    references = {"run": "run"}
    checkpoint_lists = {"checkpoints": "run"}
    observers = ("checkpoints",)
    gpu = True

    @classmethod
    def check(cls, params: Mapping[str, Any], where: str) -> None:
        from ..config.references import checkpoint_file

        positive_ints(params, ("loops", "iters", "batch"), where)
        if not isinstance(params["checkpoints"], list) or not params["checkpoints"]:
            raise ConfigError(f"{where}: checkpoints must be a non-empty list (best, last, epoch_N)")
        for c in params["checkpoints"]:
            checkpoint_file({"checkpoint": c})

    def run(self, ctx: AnalysisContext) -> dict[str, Any]:
        from ..data import read_manifest
        from ..config.references import checkpoint_file
        from ..train.setup import build_from_run_dir

        p = ctx.params
        out: dict[str, Any] = {"checkpoints": {}, "loops": p["loops"], "iters": p["iters"]}
        # keyed by the paper's checkpoint names; a shortened schedule may map several to one file
        at_scale = p.get("checkpoints_at_scale") or {}
        done: dict[str, dict[str, Any]] = {}
        for name in p["checkpoints"]:
            file = checkpoint_file({"checkpoint": at_scale.get(name, name)})
            if file in done:
                out["checkpoints"][name] = done[file]
                continue
            cfg, model, meta = build_from_run_dir(ctx.inputs["run"], ctx.data_root, ctx.device, file)
            man = read_manifest(cfg["data"]["primary"], ctx.data_root)
            shape = (int(p["batch"]), int(man.get("channels", 3)), int(man["image_size"]), int(man["image_size"]))
            g = torch.Generator(device=ctx.device).manual_seed(int(p["seed"]))
            x = torch.randn(shape, generator=g, device=ctx.device)
            lips = [chain_estimate(model, x, int(p["iters"]), g) for _ in range(int(p["loops"]))]
            out["checkpoints"][name] = done[file] = {"mean": float(np.mean(lips)), "loop0": lips[0], "all": lips,
                                                     "epoch": meta.get("epoch"), "file": file}
        out["mean"] = {k: v["mean"] for k, v in out["checkpoints"].items()}
        return out
