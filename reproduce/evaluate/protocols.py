"""Frozen evaluation protocols and the one ``evaluate`` entry point.

Settings and where they come from (looked up in the papers and their code):
- BiaMAT evaluates "with an Linf bound with the same setting as that used in
  the training" (paper 001, Sec. 4): its AT code (``Saehyung-Lee/BiaMAT``
  ``AT/config.json``, ``AT/evaluate.py``) runs PGD-K and CW-K with epsilon
  8/255, step size 2/255 and a uniform random start, K = 20 or 100 from the
  command line; the CW loss is the margin loss of ``reproduce.attacks.losses.cw_loss``.
  Its TRADES code (``TRADES/evaluate.py``, as in the original TRADES
  ``pgd_attack_cifar10.py``) defaults to epsilon 0.031, step 0.003, 100 steps
  (20 in TRADES), random start only with ``--random``. We freeze the AT
  setting (8/255, 2/255, random start) for pgd20 / pgd100 / cw100; a
  TRADES-exact variant would be a new protocol, never a change to these.
- HAT (paper 003, App. E) selects checkpoints with PGD-20 (Linf 8/255, the
  training attack's step 2/255) and reports AutoAttack standard.
- Subset AT (paper 002, Sec. 4) trains with L2 PGD-7, eps 0.5 on CIFAR and
  reports AutoAttack (L2, eps 0.5); it gives no PGD evaluation step size. Our
  L2 PGD protocols use eps 0.5 with step eps/4 = 0.125 (enough steps to cross
  the ball twice within 20 steps) and a uniform start in the ball.

Counting (``Protocol.counting``), i.e. what "robust accuracy" divides:
- ``clean_and_adv`` (default of the common protocols): an example counts only if it is
  classified correctly clean and at every restart's adversarial point. AutoAttack's own
  flags (and RobustBench) count this way: a misclassified input is already "broken".
- ``adv_only``: only the prediction at the adversarial point(s) counts, as the TRADES
  ``pgd_attack_cifar10.py`` / BiaMAT ``TRADES/evaluate.py`` (``err_pgd`` on ``model(X_pgd)``),
  the BiaMAT AT ``evaluate.py`` (``model.num_correct`` on the adversarial batch) and
  torchattacks users compute it. A clean mistake that the attack happens to fix counts.
A paper's protocols declare the convention of its evaluation scripts
(``paper_protocols.py``); every evaluation JSON records ``counting`` and the accuracy under
both conventions (``accuracy_by_counting``), from the same attack.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np
import torch
from torch import Tensor, nn

from ..attacks import pgd, run_autoattack
from ..errors import ConfigError
from ..progress import batch_line, say
from .catalog import EPS_L2, EPS_LINF, KINDS, PROTOCOLS, STEP_L2, STEP_LINF, Protocol  # noqa: F401
from .state import EvalState

def _as_float_nchw(images: np.ndarray | Tensor) -> Tensor:
    """numpy arrays are NHWC as ``load_split`` returns them (uint8, or float32 in [0, 1]);
    tensors are NCHW (``DeviceDataset``): uint8, or float in [0, 1]."""
    if isinstance(images, np.ndarray):
        if images.ndim != 4:
            raise ConfigError(f"numpy images must be N x H x W x C, got shape {images.shape}")
        t = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
        return (t.float().div_(255.0) if images.dtype == np.uint8 else t.float()).contiguous()
    # contiguous: AutoAttack's checks .view() the input gradient, which fails on permuted layouts
    if images.dtype == torch.uint8:
        return images.float().div(255.0).contiguous()
    return images.float().contiguous()


def _labels(labels: np.ndarray | Tensor) -> Tensor:
    if isinstance(labels, np.ndarray):
        return torch.from_numpy(labels.astype(np.int64))
    return labels.long()


@torch.no_grad()
def _predict(model: nn.Module, x: Tensor) -> Tensor:
    return model(x).argmax(dim=1)


def evaluate(
    model: nn.Module,
    images: np.ndarray | Tensor,
    labels: np.ndarray | Tensor,
    protocol: Protocol | str,
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 256,
    seed: int = 0,
    n: int | None = None,
    state: EvalState | None = None,
) -> dict[str, Any]:
    """Evaluate ``model`` (inputs in [0, 1], logits out, already on ``device``) under one protocol.

    ``correct_mask``/``accuracy`` follow ``protocol.counting``: ``clean_and_adv`` counts an
    example only if it is classified correctly clean and at every restart's adversarial
    point; ``adv_only`` needs the adversarial points alone (every restart's). Both
    accuracies are recorded under ``accuracy_by_counting``.
    Random starts come from one generator seeded with ``seed`` and consumed in
    batch order, so a result is reproducible for a given (seed, batch_size). AutoAttack runs
    batch by batch with ``seed``. With ``state``, progress is saved after every batch and a
    matching saved state is resumed (``reproduce.evaluate.state``).
    """
    proto = PROTOCOLS.get(protocol) if isinstance(protocol, str) else protocol
    x_all, y_all = _inputs(images, labels, n)
    start = time.perf_counter()
    gen = None if proto.kind in ("clean", "autoattack") else torch.Generator(device=torch.device(device)).manual_seed(seed)
    clean_parts: list[Tensor] = []
    adv_parts: list[Tensor] = []
    saved = state.load() if state is not None else None
    if saved is not None:
        clean_parts, adv_parts = list(saved["clean"]), list(saved["adv"])
        if gen is not None:
            gen.set_state(saved["generator"])
    resumed_at = sum(int(t.shape[0]) for t in clean_parts)
    batches = list(zip(x_all.split(batch_size), y_all.split(batch_size)))
    t_start = time.time()
    with _eval_mode(model):
        for xb, yb in batches[len(clean_parts):]:
            xb, yb = xb.to(device), yb.to(device)
            clean_ok = _predict(model, xb).eq(yb)
            adv_ok = _adversarial_correct(model, xb, yb, clean_ok, proto, gen, seed=seed, device=device,
                                          batch_size=batch_size)
            clean_parts.append(clean_ok.cpu())
            adv_parts.append(adv_ok.cpu())
            if state is not None:
                state.save(clean_parts, adv_parts, gen)
            done = sum(int(t.shape[0]) for t in clean_parts)
            say(batch_line(proto.name, len(clean_parts), len(batches), done, int(y_all.shape[0]),
                           int(sum(int(a.sum()) for a in adv_parts)), time.time() - t_start))
    result = _counted(proto, torch.cat(clean_parts), torch.cat(adv_parts))
    return {**result, "seconds": round(time.perf_counter() - start, 3), "seed": seed, "batch_size": batch_size,
            "resumed_at_example": resumed_at}


def _inputs(images: np.ndarray | Tensor, labels: np.ndarray | Tensor, n: int | None) -> tuple[Tensor, Tensor]:
    """Float NCHW images and int64 labels, the first ``n`` of each; mismatched or empty inputs are errors."""
    x_all = _as_float_nchw(images)
    y_all = _labels(labels)
    if x_all.shape[0] != y_all.shape[0]:
        raise ConfigError(f"{x_all.shape[0]} images but {y_all.shape[0]} labels")
    if n is not None:
        x_all, y_all = x_all[:n], y_all[:n]
    if int(y_all.shape[0]) == 0:
        raise ConfigError("evaluate() got no examples")
    return x_all, y_all


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """``model`` in eval mode; each submodule's own ``training`` flag is restored afterwards."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, was_training in modes:
            m.training = was_training


def _adversarial_correct(model: nn.Module, xb: Tensor, yb: Tensor, clean_ok: Tensor, proto: Protocol,
                         gen: torch.Generator | None, *, seed: int, device: str | torch.device,
                         batch_size: int) -> Tensor:
    """Per example of one batch: still correct at every adversarial point the protocol tries."""
    if proto.kind == "autoattack":
        # one AutoAttack call per batch: a batch's result depends on nothing outside it,
        # which is what lets a killed evaluation resume batch by batch
        _, adv_ok = run_autoattack(
            model, xb, yb, norm=proto.norm, eps=proto.eps,
            version=proto.version or "standard", attacks=proto.attacks,
            seed=seed, device=device, batch_size=batch_size,
            restarts=proto.restarts if proto.targets is not None else None, targets=proto.targets,
            iterations=proto.steps if proto.targets is not None and proto.steps else None,
        )
        return adv_ok
    if proto.kind == "clean":
        return clean_ok.clone()
    adv_ok = torch.ones_like(clean_ok)
    for _ in range(proto.restarts):
        x_adv = pgd(
            model, xb, yb, eps=proto.eps, step_size=proto.step_size,
            steps=proto.steps, norm=proto.norm,
            loss="cw" if proto.kind == "cw" else "ce",
            random_start=proto.random_start, bn_mode="eval", generator=gen,
        )
        adv_ok &= _predict(model, x_adv).eq(yb)
    return adv_ok


def _counted(proto: Protocol, clean_mask: Tensor, adv_mask: Tensor) -> dict[str, Any]:
    """The result's accuracies under the protocol's counting and both conventions."""
    total = int(clean_mask.shape[0])
    masks = {"clean_and_adv": clean_mask & adv_mask, "adv_only": adv_mask}
    correct_mask = masks[proto.counting]
    correct = int(correct_mask.sum())
    return {
        "protocol": proto.name,
        "params": proto.params(),
        "counting": proto.counting,
        "n": total,
        "correct": correct,
        "accuracy": 100.0 * correct / total,
        "accuracy_by_counting": {k: 100.0 * int(m.sum()) / total for k, m in masks.items()},
        "clean_accuracy": 100.0 * int(clean_mask.sum()) / total,
        "correct_mask": [int(v) for v in correct_mask.tolist()],
    }
