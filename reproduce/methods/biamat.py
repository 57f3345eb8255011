"""BiaMAT: biased multi-domain adversarial training with auxiliary datasets.

Lee et al., "Inducing Data Amplification Using Auxiliary Datasets in
Adversarial Training" (WACV 2023; ICLR 2022 submission "Biased Multi-Domain
Adversarial Training"). Algorithm 1 of the paper plus the choices of the
authors' code (see pipelines/biamat/HPARAMS.md sections 4 and 12):

- each step draws ``aux_batch_size`` aux images (split evenly over the aux
  datasets) next to the primary batch; after ``warmup_epochs`` of plain
  adversarial training, aux samples whose primary-head confidence (max
  softmax, eval mode, clean image) is below the frozen threshold
  ``omega = pi * mean primary confidence`` go to the primary head with the
  uniform target y^ER; the others go to their dataset's head with their label;
- L = l + alpha/(T-1) * sum_t (l_low,t + l_high,t), each aux sum divided by
  that dataset's whole aux batch size;
- one attack over the concatenated batch maximises the unweighted sum of the
  per-sample terms (``xent_merge``).

``labels: ytilde`` (naive BiaMAT) routes every aux sample high and
``labels: yer`` (the shuffle test) every one low; both skip warm-up unless
``warmup_epochs`` is given.

Where the paper text and the authors' code differ, the default follows the
code (it made the published numbers) and the paper is an option:
``warmup_aux_forward`` true (aux images in the warm-up batches with weight 0,
so BatchNorm sees them) vs false ("warm-up training on D");
``warmup_aux_loss`` false (the published code: weight 0 in warm-up) vs true (the
submission-era code, ``BiaMAT_under_review``: the aux head trained with alpha
during warm-up too; HPARAMS §12.2);
``threshold_batch`` first_after_warmup vs last_warmup (Algorithm 1 line 8:
the last warm-up batch, scored after its update). ``aux_loss: ce`` is the
code's TRADES variant for CIFAR-100 (only the aux-head term becomes CE on the
adversarial example).
"""

from __future__ import annotations

import hashlib
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..attacks import attack_mode, pgd
from ..errors import ConfigError
from .base import METHODS, Method, StepOutput, TrainContext
from .biamat_loss import (
    Layout,
    ce_terms,
    combine,
    head_logits,
    kl_attack_terms,
    natural_probs,
    trades_terms,
)

CHOICES = {
    "base": ("at", "trades"),
    "labels": ("selection", "ytilde", "yer"),
    "aux_loss": ("same", "ce"),
    "threshold_batch": ("first_after_warmup", "last_warmup"),
}
# Table 2's warm-up (000: "including 5 warm-up epochs"); naive / shuffled runs have none.
SELECTION_WARMUP_EPOCHS = 5


def _eval_confidence(model: nn.Module, x: Tensor, head: str) -> Tensor:
    """Max softmax of ``head`` on clean ``x`` with BatchNorm in eval mode and no graph.

    ``attack_mode`` restores every submodule's train/eval flag afterwards.
    """
    with attack_mode(model, "eval"), torch.no_grad():
        return F.softmax(model(x, head=head), dim=1).amax(dim=1)


class AuxStream:
    """An aux dataset's endless batch stream, addressed by the global training step.

    Batch k is a pure function of (run seed, aux index, k) (``reproduce.data.infinite``),
    so a resumed run draws exactly the batches of an uninterrupted one with no saved
    state; the live iterator is only rebuilt when the requested step is not the next one.
    """

    def __init__(self, ds: Any, batch_size: int, *, seed: int, index: int, augment: bool, pad: int) -> None:
        # a seed of its own: with the run seed itself an aux split of the primary's size
        # would be shuffled (and cropped) in lockstep with the primary batches
        digest = hashlib.sha256(f"biamat-aux:{int(seed)}:{int(index)}".encode()).digest()
        self.seed = int.from_bytes(digest[:4], "little") >> 1
        self.ds, self.batch_size, self.augment, self.pad = ds, int(batch_size), augment, pad
        self._it: Any = None
        self._pos = -1

    def batch_at(self, k: int) -> tuple[Tensor, Tensor]:
        if self._it is None or self._pos != k:
            from ..data import infinite

            self._it = infinite(self.ds, self.batch_size, seed=self.seed, start_step=k,
                                augment=self.augment, pad=self.pad)
        b = next(self._it)
        self._pos = k + 1
        return b.x, b.y


@METHODS.register("biamat")
class BiaMAT(Method):
    """AT or TRADES plus auxiliary data routed by primary-head confidence."""

    epoch_params = ("warmup_epochs",)
    params = {
        "base": "at",
        "labels": "selection",
        "alpha": 1.0,
        "pi": 0.5,
        "warmup_epochs": None,  # None: 5 for labels=selection, 0 for ytilde / yer
        "beta": 6.0,
        "aux_batch_size": 128,
        "aux_loss": "same",
        "warmup_aux_forward": True,
        "warmup_aux_loss": False,
        "threshold_batch": "first_after_warmup",
    }

    def __init__(self, cfg: Mapping[str, Any], ctx: TrainContext) -> None:
        super().__init__(cfg, ctx)
        p = self.p
        for key, allowed in CHOICES.items():
            if p[key] not in allowed:
                raise ConfigError(f"method biamat: {key} must be one of {allowed}, got {p[key]!r}")
        if p["aux_loss"] == "ce" and p["base"] != "trades":
            raise ConfigError("method biamat: aux_loss 'ce' is the TRADES CIFAR-100 variant; "
                              "with base 'at' every term is already CE, so leave it 'same'")
        self.aux_names: list[str] = list(cfg["data"]["aux"])
        if not self.aux_names:
            raise ConfigError("method biamat needs at least one auxiliary dataset in data.aux")
        if len(set(self.aux_names)) != len(self.aux_names):
            raise ConfigError(f"method biamat: data.aux lists a dataset twice: {self.aux_names}")
        for name in self.aux_names:
            if name == "primary" or "." in name or name not in ctx.datasets:
                raise ConfigError(f"method biamat: aux dataset {name!r} is not loaded or cannot name "
                                  "a head (no dots, not 'primary')")
        k = len(self.aux_names)
        n_aux = int(p["aux_batch_size"])
        if n_aux < k or n_aux % k:
            raise ConfigError(f"method biamat: aux_batch_size {n_aux} must split evenly over the {k} "
                              "aux dataset(s) (000: n/(2(T-1)) per aux dataset)")
        for key in ("warmup_aux_forward", "warmup_aux_loss"):
            if not isinstance(p[key], bool):
                raise ConfigError(f"method biamat: {key} must be true or false, got {p[key]!r}")
        if p["warmup_aux_loss"] and not p["warmup_aux_forward"]:
            raise ConfigError("method biamat: warmup_aux_loss true trains the aux head during warm-up, "
                              "which needs the aux images in the batch (warmup_aux_forward: true)")
        self.alpha, self.pi, self.beta = float(p["alpha"]), float(p["pi"]), float(p["beta"])
        if self.alpha < 0 or self.pi < 0:
            raise ConfigError("method biamat: alpha and pi must be >= 0")
        w = p["warmup_epochs"]
        if w is None:
            w = SELECTION_WARMUP_EPOCHS if p["labels"] == "selection" else 0
        if isinstance(w, bool) or not isinstance(w, int) or w < 0:
            raise ConfigError(f"method biamat: warmup_epochs must be an integer >= 0, got {w!r}")
        self.warmup_steps = w * int(ctx.steps_per_epoch)
        shape = tuple(ctx.datasets[cfg["data"]["primary"]].images.shape[1:])
        for name in self.aux_names:
            if tuple(ctx.datasets[name].images.shape[1:]) != shape:
                raise ConfigError(f"method biamat: aux dataset {name!r} has images of shape "
                                  f"{tuple(ctx.datasets[name].images.shape[1:])}, the primary {shape}; "
                                  "aux data are resized to the primary size when prepared (001: 'resized "
                                  "to the primary data size')")
            if len(ctx.datasets[name]) < n_aux // k:
                raise ConfigError(f"method biamat: aux dataset {name!r} has {len(ctx.datasets[name])} "
                                  f"images, fewer than one aux batch of {n_aux // k}")
        d = cfg["data"]
        seed = int(cfg["seed"])
        self.streams = [
            AuxStream(ctx.datasets[name], n_aux // k, seed=seed, index=i,
                      augment=bool(d["augment"]), pad=int(d["pad"]))
            for i, name in enumerate(self.aux_names)
        ]
        self.aux_classes = {name: self._num_classes(name) for name in self.aux_names}
        self.omega: float | None = None
        # last_warmup: the final warm-up batch, kept until the warmed-up model scores it
        self._pending: Tensor | None = None

    # -- configuration ---------------------------------------------------------------------

    def _num_classes(self, name: str) -> int:
        """Aux head size: the prepared manifest when known, else the largest label + 1; a
        ``data.aux_subsample`` by classes keeps fewer (its labels are renumbered 0..k-1)."""
        root = self.ctx.extra.get("data_root")
        if root is None:
            return int(self.ctx.datasets[name].labels.max().item()) + 1
        from ..data import read_manifest
        from ..data.feeding.subsample import kept_classes

        n = int(read_manifest(name, root)["num_classes"])
        sub = (self.ctx.cfg["data"].get("aux_subsample") or {}).get(name)
        return kept_classes(n, sub) if sub else n

    def heads(self) -> dict[str, int]:
        return {"primary": int(self.ctx.num_classes), **self.aux_classes}

    # -- threshold -------------------------------------------------------------------------

    def _threshold(self, model: nn.Module, x: Tensor) -> float:
        """omega = pi * mean max-softmax of the primary head on clean primary images."""
        return self.pi * float(_eval_confidence(model, x, model.primary).mean().item())

    def start_epoch(self, model: nn.Module, epoch: int) -> None:
        # Algorithm 1 line 8 scores the last warm-up batch B after its update; this is the
        # first hook that sees the updated weights.
        if (self.omega is None and self._pending is not None
                and epoch * self.ctx.steps_per_epoch >= self.warmup_steps):
            self.omega = self._threshold(model, self._pending.to(self.ctx.device))
            self._pending = None

    def _route(self, model: nn.Module, x_aux: Tensor) -> tuple[Tensor, Tensor | None]:
        """(high mask, confidences or None) of the concatenated aux images."""
        mode = self.p["labels"]
        if mode == "ytilde":
            return torch.ones(len(x_aux), dtype=torch.bool, device=x_aux.device), None
        if mode == "yer":
            return torch.zeros(len(x_aux), dtype=torch.bool, device=x_aux.device), None
        assert self.omega is not None
        conf = _eval_confidence(model, x_aux, model.primary)
        # Algorithm 1 line 15: low iff max h_pri(x~) < omega
        return conf >= self.omega, conf

    # -- the step --------------------------------------------------------------------------

    def _draw(self, k: int) -> list[tuple[Tensor, Tensor]]:
        return [s.batch_at(k) for s in self.streams]

    def step(self, model: nn.Module, batch: Any, epoch: int, it: int) -> StepOutput:
        k = epoch * int(self.ctx.steps_per_epoch) + it
        if k < self.warmup_steps:
            if self.p["threshold_batch"] == "last_warmup" and k == self.warmup_steps - 1:
                self._pending = batch.x.detach().clone()
            aux = self._draw(k) if self.p["warmup_aux_forward"] else []
            # the authors' code: aux images ride along with weight 0 (BN sees them); omega is
            # unset (0) then, so the attack sends them through their aux heads
            high = torch.ones(sum(len(a[1]) for a in aux), dtype=torch.bool, device=batch.x.device)
            # submission-era code: the same route with alpha in the loss (warmup_aux_loss)
            out, _ = self._train(model, batch, aux, high, alpha=self.alpha if self.p["warmup_aux_loss"] else 0.0)
            return out
        if self.p["labels"] == "selection" and self.omega is None:
            # first_after_warmup, or last_warmup without a warm-up batch (warmup_epochs 0)
            self.omega = self._threshold(model, batch.x)
            self._pending = None
        aux = self._draw(k)
        high, conf = self._route(model, torch.cat([a[0] for a in aux]))
        out, parts = self._train(model, batch, aux, high, alpha=self.alpha)
        # counts stay on the device (the loop reads them at epoch end); float64 keeps the
        # ratio equal to the Python division it replaces
        n_aux, n_high = int(high.numel()), high.sum()
        omega = {"ytilde": 0.0, "yer": 1.0}.get(self.p["labels"], self.omega)
        log: dict[str, Any] = {"n_high": n_high, "n_aux": n_aux, "ratio": n_high.double() / n_aux,
                               "omega": float(omega)}
        if len(aux) > 1:
            a = 0
            for name, (_, y) in zip(self.aux_names, aux):
                log[f"n_high_{name}"] = high[a:a + len(y)].sum()
                a += len(y)
        out.step_log = log
        out.stats.update(ratio=log["ratio"], omega=log["omega"], l_low=parts.low.detach(),
                         l_high=parts.high.detach())
        if conf is not None:
            out.stats["aux_conf"] = conf.mean().detach()
        return out

    def _layout(self, model: nn.Module, batch: Any, aux: list[tuple[Tensor, Tensor]],
                high: Tensor) -> tuple[Tensor, Layout]:
        xs, ys, segments = [batch.x], [batch.y], []
        a = len(batch.y)
        for name, (x, y) in zip(self.aux_names, aux):
            xs.append(x)
            ys.append(y)
            segments.append((name, a, a + len(y)))
            a += len(y)
        y_cat = torch.cat(ys)
        high_all = torch.zeros(len(y_cat), dtype=torch.bool, device=y_cat.device)
        high_all[len(batch.y):] = high
        layout = Layout(len(batch.y), segments, y_cat, high_all, int(self.ctx.num_classes), model.primary)
        return torch.cat(xs), layout

    def adversarial(self, model: nn.Module, x: Tensor, layout: Layout) -> Tensor:
        """One attack on the whole concatenated batch: the unweighted sum of per-sample terms.

        Unweighted as in the authors' ``xent_merge``: alpha scales only the training loss.
        In train BN mode the samples share batch statistics, so a weighted objective would
        move even the primary examples.
        """
        kw = self.attack_kwargs
        if self.p["base"] == "at":
            return pgd(model, x, None, loss_fn=lambda xa: ce_terms(head_logits(model, xa, layout), layout),
                       **kw)
        # TRADES: the KL's reference is each sample's clean prediction on its own head, taken
        # in the attack's BN mode as the TRADES code does (model.eval() around the whole attack)
        with attack_mode(model, kw["bn_mode"]), torch.no_grad():
            p_nat = natural_probs(head_logits(model, x, layout))
        high_ce = self.p["aux_loss"] == "ce"
        return pgd(model, x, None, **kw,
                   loss_fn=lambda xa: kl_attack_terms(head_logits(model, xa, layout), p_nat, layout, high_ce))

    def _train(self, model: nn.Module, batch: Any, aux: list[tuple[Tensor, Tensor]], high: Tensor,
               alpha: float) -> tuple[StepOutput, Any]:
        x, layout = self._layout(model, batch, aux, high)
        x_adv = self.adversarial(model, x, layout)
        if self.p["base"] == "at":
            adv = head_logits(model, x_adv, layout)
            terms = ce_terms(adv, layout)
        else:
            nat = head_logits(model, x, layout)
            adv = head_logits(model, x_adv, layout)
            terms = trades_terms(nat, adv, layout, self.beta, self.p["aux_loss"] == "ce")
        parts = combine(terms, layout, alpha)
        n_p = layout.n_primary
        acc = (adv.primary[:n_p].argmax(1) == batch.y).float().mean()
        stats = {"l_primary": parts.primary.detach(), "train_adv_acc": acc}
        return StepOutput(parts.total, terms[:n_p].detach(), stats), parts

    # -- state -----------------------------------------------------------------------------

    def epoch_stats(self) -> dict[str, float]:
        return {} if self.omega is None else {"threshold": float(self.omega)}

    def state_dict(self) -> dict[str, Any]:
        return {"omega": self.omega,
                "pending": None if self._pending is None else self._pending.detach().cpu()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.omega = None if state.get("omega") is None else float(state["omega"])
        pending = state.get("pending")
        self._pending = None if pending is None else pending.to(self.ctx.device)
