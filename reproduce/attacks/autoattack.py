"""The one door to AutoAttack (and to robustbench, which imports it).

Backends, in order of preference:
1. the official ``autoattack`` package (``pip install git+https://github.com/fra31/auto-attack``);
2. ``pyautoattack`` from PyPI (0.2.0): the same attack modules, a different driver:
   - ``AutoAttack(model, *, attacks=None, device='cpu', eps=0.3, norm='Linf',
     seed=None, version='standard')`` - keyword-only; ``attacks`` is the
     official ``attacks_to_run``; there is no ``verbose``/``log_path``/
     ``is_tf_model`` argument (it logs to the ``logging`` logger "auto-attack");
     ``version='standard'`` together with ``attacks`` raises ``ValueError``;
   - ``run_standard_evaluation(x, y, /, *, batch_size=250, state_path=None)``
     always returns ``(x_adv, y_adv)`` (official: ``bs=``, returns ``x_adv``
     unless ``return_labels=True``);
   - like the official code, every attack re-seeds the *global* torch RNG
     (``torch.random.manual_seed(seed)``), and FAB calls ``.backward()`` (so
     parameter ``.grad`` would fill up unless parameters are frozen).

robustbench 1.1.1 does ``from autoattack import AutoAttack`` /
``from autoattack.state import EvaluationState`` with the official API, and
``import pkg_resources`` (gone from setuptools >= 81). ``import_robustbench``
installs shims for both before importing it.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
import types
import warnings
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

import torch
from torch import Tensor, nn

from ..errors import ConfigError, ReproduceError
from .pgd import attack_mode

_SHIM_FLAG = "__reproduce_shim__"
AA_ATTACKS = ("apgd-ce", "apgd-dlr", "apgd-t", "fab", "fab-t", "square")


class PrimaryLogits(nn.Module):
    """Adapts a model to "[0, 1] images in, primary-head logits out"."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        out = self.model(x)
        if isinstance(out, dict):  # multi-head outputs: the first head is the primary one
            out = next(iter(out.values()))
        elif isinstance(out, (tuple, list)):
            out = out[0]
        return out


def _official_available() -> bool:
    mod = sys.modules.get("autoattack")
    if mod is not None:
        return not getattr(mod, _SHIM_FLAG, False)
    return importlib.util.find_spec("autoattack") is not None


def backend() -> str:
    """``"autoattack"`` (official), ``"pyautoattack"``, or raise naming both options."""
    if _official_available():
        return "autoattack"
    if importlib.util.find_spec("pyautoattack") is not None:
        return "pyautoattack"
    raise ReproduceError(
        "AutoAttack is not installed: install the official package "
        "(pip install git+https://github.com/fra31/auto-attack) or pyautoattack==0.2.0"
    )


def _norm_name(norm: str) -> str:
    mapping = {"linf": "Linf", "l2": "L2", "l1": "L1"}
    key = norm.lower()
    if key not in mapping:
        raise ConfigError(f"AutoAttack norm must be Linf, L2 or L1, got {norm!r}")
    return mapping[key]


@contextmanager
def _quiet_logger(verbose: bool) -> Iterator[None]:
    logger = logging.getLogger("auto-attack")
    old = logger.level
    logger.setLevel(logging.DEBUG if verbose else logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(old)


def _rng_devices(device: str | torch.device) -> list[int]:
    dev = torch.device(device)
    if dev.type == "cuda":
        return [dev.index if dev.index is not None else torch.cuda.current_device()]
    return []


def run_autoattack(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    norm: str = "Linf",
    eps: float,
    version: str = "standard",
    attacks: Sequence[str] | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    batch_size: int = 500,
    verbose: bool = False,
    restarts: int | None = None,
    targets: int | None = None,
    iterations: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Run AutoAttack; return ``(x_adv, robust)`` with ``robust`` a bool mask.

    ``robust[i]`` is True iff the model still predicts ``y[i]`` on ``x_adv[i]``
    (AutoAttack leaves ``x_adv[i] = x[i]`` for examples it could not break and
    for those already misclassified, so this equals AutoAttack's own flags).
    ``restarts``/``targets`` pin APGD-CE's restarts and APGD-T's target classes (both backends
    keep them as ``apgd.n_restarts`` / ``apgd_targeted.n_target_classes``); None keeps the
    version's settings ('custom': the constructors' 5 restarts and 9 targets). ``iterations``
    replaces APGD's 100 iterations (smoke stand-ins only: never for reported numbers).
    The model runs in eval mode with frozen parameters; its modes, parameter
    gradients and the caller's global RNG state are left as they were.
    """
    if version not in ("standard", "custom", "plus", "rand"):
        raise ConfigError(f"unknown AutoAttack version {version!r}")
    if version == "custom":
        if not attacks:
            raise ConfigError("AutoAttack version 'custom' needs a list of attacks")
        unknown = [a for a in attacks if a not in AA_ATTACKS]
        if unknown:
            raise ConfigError(f"unknown AutoAttack attacks {unknown}; known: {', '.join(AA_ATTACKS)}")
    elif attacks:
        raise ConfigError(f"AutoAttack version {version!r} fixes its attacks; use version 'custom'")
    aa_norm = _norm_name(norm)
    x = x.detach().to(device).float().contiguous()  # AutoAttack .view()s gradients shaped like x
    y = y.detach().to(device).long()
    net = PrimaryLogits(model)
    which = backend()

    with attack_mode(model, "eval"), torch.random.fork_rng(devices=_rng_devices(device)), _quiet_logger(verbose):
        if which == "autoattack":
            from autoattack import AutoAttack  # type: ignore[import-not-found]

            adversary = AutoAttack(
                net, norm=aa_norm, eps=eps, version=version, seed=seed, device=device,
                verbose=verbose, attacks_to_run=list(attacks or []),
            )
            _pin(adversary, restarts, targets, iterations)
            x_adv = adversary.run_standard_evaluation(x, y, bs=batch_size)
        else:
            from pyautoattack import AutoAttack as PyAutoAttack

            adversary = PyAutoAttack(
                net, attacks=list(attacks) if attacks else None, device=device,
                eps=eps, norm=aa_norm, seed=seed, version=version,
            )
            adversary.verbose = verbose
            _pin(adversary, restarts, targets, iterations)
            x_adv, _ = adversary.run_standard_evaluation(x, y, batch_size=batch_size)
        x_adv = x_adv.detach()
        with torch.no_grad():
            preds = torch.cat([net(xb).argmax(1) for xb in x_adv.split(batch_size)])
    return x_adv, preds.eq(y)


def _pin(adversary: Any, restarts: int | None, targets: int | None, iterations: int | None = None) -> None:
    if restarts is not None:
        adversary.apgd.n_restarts = int(restarts)
    if targets is not None:
        adversary.apgd_targeted.n_target_classes = int(targets)
    for attack in (adversary.apgd, adversary.apgd_targeted) if iterations else ():
        # APGD derives its step-size checkpoints from n_iter in __init__ (autopgd_base.py): redo them
        n = int(iterations)
        attack.n_iter = attack.n_iter_orig = n
        attack.n_iter_2, attack.n_iter_min = max(int(0.22 * n), 1), max(int(0.06 * n), 1)
        attack.size_decr = max(int(0.03 * n), 1)
    if iterations:  # FAB's iterations and Square's queries (both backends name them so)
        for attr, key in (("fab", "n_iter"), ("square", "n_queries")):
            if getattr(adversary, attr, None) is not None:
                setattr(getattr(adversary, attr), key, int(iterations))


# --------------------------------------------------------------------------- shims


class _OfficialAPIAutoAttack:
    """The official ``autoattack.AutoAttack`` signature on top of pyautoattack (for robustbench)."""

    def __init__(
        self, model: Any, norm: str = "Linf", eps: float = 0.3, seed: int | None = None,
        verbose: bool = True, attacks_to_run: Sequence[str] = (), version: str = "standard",
        is_tf_model: bool = False, device: str = "cuda", log_path: str | None = None,
    ) -> None:
        from pyautoattack import AutoAttack as PyAutoAttack

        if is_tf_model:
            raise ReproduceError("the pyautoattack-backed shim supports PyTorch models only")
        custom = list(attacks_to_run) if version == "custom" else None
        self._aa = PyAutoAttack(model, attacks=custom, device=device, eps=eps, norm=norm,
                                seed=seed, version=version)
        self._aa.verbose = verbose

    def __getattr__(self, name: str) -> Any:  # apgd, fab, square, attacks_to_run, ...
        if name == "_aa":  # not built yet (failed __init__): avoid infinite recursion
            raise AttributeError(name)
        return getattr(self._aa, name)

    def run_standard_evaluation(self, x_orig: Tensor, y_orig: Tensor, bs: int = 250,
                                return_labels: bool = False, state_path: Any = None) -> Any:
        x_adv, y_adv = self._aa.run_standard_evaluation(x_orig, y_orig, batch_size=bs,
                                                        state_path=state_path)
        return (x_adv, y_adv) if return_labels else x_adv

    def run_standard_evaluation_individual(self, x_orig: Tensor, y_orig: Tensor, bs: int = 250,
                                           return_labels: bool = False) -> Any:
        adv = self._aa.run_standard_evaluation_individual(x_orig, y_orig, batch_size=bs)
        return adv if return_labels else {k: v[0] for k, v in adv.items()}


def install_autoattack_shim() -> None:
    """Make ``import autoattack`` work when only pyautoattack is installed."""
    if _official_available() or "autoattack" in sys.modules:
        return
    py_state = importlib.import_module("pyautoattack.state")
    mod = types.ModuleType("autoattack")
    mod.AutoAttack = _OfficialAPIAutoAttack  # type: ignore[attr-defined]
    mod.state = py_state  # type: ignore[attr-defined]
    mod.__path__ = []  # a package, so "autoattack.state" resolves through sys.modules
    setattr(mod, _SHIM_FLAG, True)
    sys.modules["autoattack"] = mod
    sys.modules["autoattack.state"] = py_state


def install_pkg_resources_shim() -> None:
    """robustbench's loaders use ``pkg_resources.resource_filename`` only; provide it if missing."""
    if "pkg_resources" in sys.modules:
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*pkg_resources is deprecated.*")
        try:
            importlib.import_module("pkg_resources")
            return
        except ImportError:
            pass

    def resource_filename(package: str, resource: str) -> str:
        from importlib.resources import files

        return str(files(package).joinpath(resource))

    mod = types.ModuleType("pkg_resources")
    mod.resource_filename = resource_filename  # type: ignore[attr-defined]
    setattr(mod, _SHIM_FLAG, True)
    sys.modules["pkg_resources"] = mod


def import_robustbench() -> types.ModuleType:
    """Import robustbench with the autoattack and pkg_resources shims in place."""
    install_autoattack_shim()
    install_pkg_resources_shim()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*pkg_resources is deprecated.*")
        return importlib.import_module("robustbench")
