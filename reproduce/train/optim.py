"""The optimizer a run config names (``optim.name``): a registry of factories.

SGD goes through ``perf.make_sgd`` (fused/foreach switches). Adam is torch's, with coupled L2
weight decay (``weight_decay`` added to the gradient), which is what ``torch.optim.Adam(...,
weight_decay=wd)`` in the hard-instance code's ``util/optim_parser.py`` does; momentum and
nesterov do not apply to it.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

import torch

from .. import perf as fast

Factory = Callable[[Iterable[torch.nn.Parameter], Mapping[str, Any], Mapping[str, Any], torch.device],
                   tuple[torch.optim.Optimizer, str]]


def _adam(params, optim, perf, device):
    return torch.optim.Adam(params, lr=float(optim["lr"]), weight_decay=float(optim["weight_decay"])), "adam"


OPTIMIZERS: dict[str, Factory] = {"sgd": fast.make_sgd, "adam": _adam}


def make_optimizer(params: Iterable[torch.nn.Parameter], optim: Mapping[str, Any], perf: Mapping[str, Any],
                   device: torch.device) -> tuple[torch.optim.Optimizer, str]:
    """(optimizer, implementation name recorded in done.json)."""
    return OPTIMIZERS[optim.get("name", "sgd")](params, optim, perf, device)
