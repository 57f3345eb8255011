"""Projected gradient attacks (PGD, FGSM) on models that take images in [0, 1].

Gradients are taken with respect to the input only: the model's parameters
have ``requires_grad`` switched off for the duration of the attack, so no
weight gradients are computed (the papers' loops call ``loss.backward()``
and throw the parameter gradients away) and ``.grad`` of every parameter is
left exactly as the caller had it.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator, Literal

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from .losses import check_loss_name, clean_probabilities, per_example_loss

# per-example values to maximise, or (values to ascend, values ``keep_best`` ranks iterates by)
LossFn = Callable[[Tensor], "Tensor | tuple[Tensor, Tensor]"]
# one budget for the batch, or one per example (N,): instance-adaptive training (IAT) attacks each
# example at its own radius with its own step
Budget = float | Tensor
RandomStart = bool | Literal["normal", "normal-clipped"]
# True: uniform in the ball (Madry); False: x itself;
# "normal": x + sigma N(0, I), NOT clipped to [0, 1] before the first gradient -- the official
#   TRADES ``trades_loss`` (yaodongyu/TRADES), MART's ``mart_loss`` and the HAT repository's
#   losses all do this, so it is the default reading of the TRADES/MART/HAT start;
# "normal-clipped": the same point clamped to [0, 1] first (this project's reading before
#   issue 12, kept as a named option).
RANDOM_STARTS = (True, False, "normal", "normal-clipped")

NORMS = ("linf", "l2")
# eval: running statistics; train: batch statistics with running statistics left untouched
# (the BiaMAT AT code's TensorFlow attack, whose moving averages update only with the train op);
# train-update: batch statistics and PyTorch's running-statistics update at every attack step
# (what PyTorch code that attacks in model.train() does).
BN_MODES = ("eval", "train", "train-update")
KEEP_BEST = (False, True, "exclude_last")


@contextmanager
def attack_mode(model: nn.Module, bn_mode: str) -> Iterator[None]:
    """Put ``model`` in the attack's train/eval mode with frozen parameters; undo on exit.

    Each submodule's own ``training`` flag is restored (not just the root's),
    because callers sometimes keep parts of a model in eval mode on purpose
    (a frozen BatchNorm, a frozen teacher inside a wrapper).
    """
    if bn_mode not in BN_MODES:
        raise ConfigError(f"bn_mode must be one of {BN_MODES}, got {bn_mode!r}")
    modes = [(m, m.training) for m in model.modules()]
    trainable = [p for p in model.parameters() if p.requires_grad]
    saved = _bn_buffers(model) if bn_mode == "train" else []
    model.train(bn_mode != "eval")
    for p in trainable:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in trainable:
            p.requires_grad_(True)
        for m, was_training in modes:
            m.training = was_training
        for buf, value in saved:
            buf.copy_(value)


def _bn_buffers(model: nn.Module) -> list[tuple[Tensor, Tensor]]:
    """Copies of every BatchNorm running statistic, to put back after a train-mode attack."""
    out = []
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats:
            for buf in (m.running_mean, m.running_var, m.num_batches_tracked):
                if buf is not None:
                    out.append((buf, buf.detach().clone()))
    return out


def per_example(v: Budget, x: Tensor) -> Budget:
    """A float as it is; a per-example (N,) tensor shaped to broadcast against ``x`` (N, ...)."""
    if not isinstance(v, Tensor):
        return v
    if v.shape != (x.shape[0],):
        raise ConfigError(f"a per-example attack budget must have shape ({x.shape[0]},), got {tuple(v.shape)}")
    return v.to(device=x.device, dtype=x.dtype).view(-1, *([1] * (x.dim() - 1)))


def _flat_norm(t: Tensor) -> Tensor:
    """Per-example L2 norm, shaped to broadcast against ``t``."""
    n = t.flatten(1).norm(dim=1)
    return n.view(-1, *([1] * (t.dim() - 1)))


def random_init(
    x: Tensor,
    *,
    eps: Budget,
    norm: str,
    random_start: RandomStart,
    start_sigma: float = 0.001,
    generator: torch.Generator | None = None,
) -> Tensor:
    """The attack's starting point: in [0, 1] except for the unclipped ``"normal"`` start.
    ``eps``: a float, or a per-example tensor already shaped by :func:`per_example`."""
    if random_start is False:
        return x.clone()
    if random_start in ("normal", "normal-clipped"):
        # TRADES / MART / HAT: x + 0.001 N(0, I), not projected onto the ball (the first
        # step's projection takes care of that); the official code also leaves it outside
        # [0, 1] for the first gradient, so only "normal-clipped" clamps here.
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        start = x + start_sigma * noise
        return start.clamp(0.0, 1.0) if random_start == "normal-clipped" else start
    if random_start is not True:
        raise ConfigError(f"attack.random_start must be one of {RANDOM_STARTS}, got {random_start!r}")
    if norm == "linf":
        u = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return (x + (2.0 * u - 1.0) * eps).clamp(0.0, 1.0)
    # L2: a uniform point in the ball = uniform direction times eps * U^(1/d).
    direction = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    direction = direction / _flat_norm(direction).clamp_min(1e-12)
    d = x[0].numel()
    u = torch.rand((x.shape[0],), generator=generator, device=x.device, dtype=x.dtype)
    # the radius as a column times eps (a product commutes bit for bit), so eps may be per example
    radius = u.pow(1.0 / d).view(-1, *([1] * (x.dim() - 1))) * eps
    return (x + radius * direction).clamp(0.0, 1.0)


def _project(x_adv: Tensor, x: Tensor, eps: Budget, norm: str, lo: Tensor | None, hi: Tensor | None) -> Tensor:
    if norm == "linf":
        # lo/hi fold the eps-ball and [0, 1] into one clamp (x itself is in [0, 1]).
        return torch.clamp(x_adv, lo, hi)
    delta = x_adv - x
    scale = (eps / _flat_norm(delta).clamp_min(1e-12)).clamp(max=1.0)
    # Clamping to [0, 1] after the L2 projection moves each coordinate towards
    # x's own (valid) value, so it can only shrink the norm: still in the ball.
    return (x + delta * scale).clamp(0.0, 1.0)


def pgd(
    model: nn.Module,
    x: Tensor,
    y: Tensor | None,
    *,
    eps: Budget,
    step_size: Budget,
    steps: int,
    norm: str = "linf",
    loss: str = "ce",
    random_start: RandomStart = True,
    start_sigma: float = 0.001,
    keep_best: bool | str = False,
    bn_mode: str = "eval",
    loss_fn: LossFn | None = None,
    generator: torch.Generator | None = None,
    cw_kappa: float = 50.0,
    score_last: bool = True,
) -> Tensor:
    """Maximise a per-example loss over the ``norm`` ball of radius ``eps`` around ``x``.

    Linf takes sign steps; L2 takes steps along the per-example normalised
    gradient. Every iterate is projected onto the ball and clamped to [0, 1].
    ``loss_fn(x_adv) -> (N,)`` replaces ``loss``/``y`` (multi-head methods
    pass a closure). With ``keep_best`` the iterate of highest loss per example
    is returned, the final one included unless ``score_last=False`` (the Subset AT
    code scores only the iterates it takes a gradient at, x_0..x_{K-1}, so the
    last step is never used and the clean start can win).
    ``"exclude_last"`` returns the highest-loss iterate among the start and the first steps-1 steps,
    never scoring the final one, ties going to the later iterate (the hard-instance code's
    ``use_worst``, ``util/attack.py``): with ``steps=1`` that is the random start itself. Returns a
    detached tensor; the model's modes and parameter gradients are unchanged.

    ``eps`` and ``step_size`` may be (N,) tensors, one budget per example (IAT); equal entries give
    the scalar attack's result bit for bit. A ``loss_fn`` returning ``(losses, scores)`` ascends
    ``losses`` and lets ``keep_best`` rank the iterates by ``scores`` of the same forward (the
    hard-instance code ascends a TRADES KL but keeps the iterate of highest cross-entropy).
    """
    _check(norm, keep_best, loss, y, loss_fn)
    exclude_last = keep_best == "exclude_last"
    x = x.detach()
    if x.is_inference():
        x = x.clone()
    eps, step_size = per_example(eps, x), per_example(step_size, x)
    lo = hi = None
    if norm == "linf":
        lo, hi = (x - eps).clamp(min=0.0), (x + eps).clamp(max=1.0)

    with attack_mode(model, bn_mode), torch.enable_grad():
        objective = loss_fn if loss_fn is not None else _objective(model, x, y, loss, cw_kappa)
        x_adv = random_init(
            x, eps=eps, norm=norm, random_start=random_start,
            start_sigma=start_sigma, generator=generator,
        )
        best = _Best(ties_to_later=exclude_last)
        for _ in range(steps):
            x_adv.requires_grad_(True)
            losses, scores = _with_scores(objective(x_adv))
            (grad,) = torch.autograd.grad(losses.sum(), x_adv)
            x_adv = x_adv.detach()
            if keep_best:
                best.remember(x_adv, scores)
            x_adv = _project(_ascend(x_adv, grad, step_size, norm), x, eps, norm, lo, hi)

        if exclude_last:
            assert best.x is not None or steps == 0
            return (x_adv if best.x is None else best.x).detach().clamp(0.0, 1.0)
        if keep_best and best.x is not None:
            if score_last:  # one extra forward pass scores the last iterate, which no step has seen
                with torch.no_grad():
                    best.remember(x_adv, _with_scores(objective(x_adv))[1])
            # the unclipped "normal" start may be the best iterate; the code clamps before use
            return best.x.detach().clamp(0.0, 1.0)
    # a no-op after any step; with steps=0 it is the official code's final clamp of the start
    return x_adv.detach().clamp(0.0, 1.0)


def _with_scores(out: Tensor | tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    """(values to ascend, values to rank iterates by): one tensor serves as both."""
    return out if isinstance(out, tuple) else (out, out)


def _check(norm: str, keep_best: bool | str, loss: str, y: Tensor | None, loss_fn: LossFn | None) -> None:
    if norm not in NORMS:
        raise ConfigError(f"attack norm must be one of {NORMS}, got {norm!r}")
    if keep_best not in KEEP_BEST:
        raise ConfigError(f"attack.keep_best must be one of {KEEP_BEST}, got {keep_best!r}")
    if loss_fn is None:
        check_loss_name(loss)
        if loss != "kl" and y is None:
            raise ConfigError(f"attack loss {loss!r} needs labels")


def _objective(model: nn.Module, x: Tensor, y: Tensor | None, loss: str, cw_kappa: float) -> LossFn:
    """Per-example ``loss`` at an input; the KL loss compares with the clean prediction, taken once."""
    p_clean = clean_probabilities(model, x) if loss == "kl" else None

    def objective(xa: Tensor) -> Tensor:
        return per_example_loss(loss, model(xa), y, p_clean=p_clean, cw_kappa=cw_kappa)

    return objective


def _ascend(x_adv: Tensor, grad: Tensor, step_size: Budget, norm: str) -> Tensor:
    """One step up the loss: a sign step (Linf) or along the per-example normalised gradient (L2)."""
    if norm == "linf":
        return x_adv + step_size * grad.sign()
    return x_adv + step_size * grad / _flat_norm(grad).clamp_min(1e-12)


class _Best:
    """The highest-loss iterate per example so far; ties go to the later one when ``ties_to_later``."""

    def __init__(self, ties_to_later: bool) -> None:
        self.ties_to_later = ties_to_later
        self.x: Tensor | None = None
        self.loss: Tensor | None = None

    def remember(self, xa: Tensor, losses: Tensor) -> None:
        losses = losses.detach()
        if self.x is None or self.loss is None:
            self.x, self.loss = xa.clone(), losses.clone()
            return
        better = losses >= self.loss if self.ties_to_later else losses > self.loss
        self.loss = torch.where(better, losses, self.loss)
        self.x[better] = xa[better]


def fgsm(
    model: nn.Module,
    x: Tensor,
    y: Tensor | None,
    *,
    eps: float,
    loss: str = "ce",
    bn_mode: str = "eval",
    random_start: RandomStart = False,
    step_size: float | None = None,
    norm: str = "linf",
    loss_fn: LossFn | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """One signed-gradient step of size ``step_size`` (default ``eps``).

    With ``random_start=True`` and e.g. ``step_size=1.25 * eps`` this is the
    "fast AT" FGSM (uniform start, one step, projection back to the ball).
    """
    return pgd(
        model, x, y, eps=eps, step_size=eps if step_size is None else step_size,
        steps=1, norm=norm, loss=loss, random_start=random_start, bn_mode=bn_mode,
        loss_fn=loss_fn, generator=generator,
    )
