"""ATTA fast adversarial training with reweighting or adaptive targets (hard-instance paper, §6.1 and
App. D; notes ``hard_instances.md`` §3.4), as the authors' code computes it (``algorithm/adv_fast.py``,
``util/augmentation.py``).

Per batch: the instance's cached perturbation, kept at padded size, is cut with the image's crop and
flip; one forward at x + delta; one signed step on the cross-entropy (clamped to the eps-box, then to
[0, 1]); the new perturbation pasted back into the cache; a forward at the new point; the loss
``sum_i w_i * CE(soft target_i, f(x_i + delta_i)) / sum_i w_i``; the optimizer step.

Options (defaults follow the code that made the published numbers; the text's reading is a value):

- ``augment``: ``code`` (default) crops and flips inside the method as ``apply_aug`` does: pad 4 with
  the constant ``pad_value`` 0.5, offsets 0..2*pad-1 (8 positions), drawn per epoch from the run seed
  (needs ``data.augment: false``); ``loop`` uses the loader's zero-padded crop (offsets 0..2*pad) and
  flip from ``Batch.crop``/``Batch.flip`` (needs ``data.augment: true``). ``data.pad`` sets the pad.
- ``target_from``: ``pre_step`` (default) updates the adaptive target with softmax f(x + delta_cached),
  the logits before the step (``adv_fast.py:95-108``); ``post_step`` is Algorithm 1's f(x + delta)
  after it (trap T14).
- ``reweight``: ``none``; ``prob`` = softmax f(x + delta)[y] after the step, the text's weight
  [L392-396]; ``nat_prob`` = softmax f(x)[y], the README command of the published run (one more
  train-mode forward; trap T15). Weights are detached; 1 before epoch ``warmup_rw``.
- ``rho``, ``beta``, ``warmup``: from epoch ``warmup`` on, t_i <- rho t_i + (1 - rho) p_i (t_i starts
  one-hot) and the loss's target is beta onehot + (1 - beta) t_i; before it, one-hot.
- ``delta_reset``: the cache is drawn anew, U(-eps, eps) over the padded frame, at epochs that are
  multiples of it (the published runs pass 1000: only at epoch 0). The code draws an instance's
  perturbation when it first sees it; drawing every row at the reset is the same distribution.

Attack settings: ``attack.eps``, ``attack.step_size`` (4/255 in the paper), ``attack.steps: 1`` and
``attack.bn_mode`` for the first forward (``train-update``: the code's train mode); the first forward
takes x + delta unclipped, as the code does. The cache (0.96 GB for CIFAR-10) and the targets are in
``state_dict``, hence in ``last.pt``.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..attacks.pgd import attack_mode
from ..errors import ConfigError
from .base import METHODS, Method, StepOutput, TrainContext
from .instances import InstanceRows, check_choice, check_number, keyed_generator
from .padded import pad_frame, paste, window

REWEIGHTS = ("none", "prob", "nat_prob")


@METHODS.register("atta")
class Atta(Method):
    """One cached-perturbation step per batch; soft-target CE weighted per instance."""

    params = {"reweight": "none", "rho": 0.9, "beta": 1.0, "warmup": 5, "warmup_rw": 5, "delta_reset": 1000,
              "augment": "code", "pad_value": 0.5, "target_from": "pre_step"}
    adapts = ("weight", "target_y")
    epoch_params = ("warmup", "warmup_rw")

    def __init__(self, cfg: Mapping[str, Any], ctx: TrainContext) -> None:
        super().__init__(cfg, ctx)
        p = self.p
        check_choice("atta", "reweight", p["reweight"], REWEIGHTS)
        check_choice("atta", "augment", p["augment"], ("code", "loop"))
        check_choice("atta", "target_from", p["target_from"], ("pre_step", "post_step"))
        self.rho = check_number("atta", "rho", p["rho"], 0.0, 1.0)
        self.beta = check_number("atta", "beta", p["beta"], 0.0, 1.0)
        self.pad_value = check_number("atta", "pad_value", p["pad_value"], 0.0, 1.0)
        for key in ("warmup", "warmup_rw", "delta_reset"):
            v = p[key]
            if isinstance(v, bool) or not isinstance(v, int) or v < (1 if key == "delta_reset" else 0):
                raise ConfigError(f"method atta: method.{key} must be an integer >= "
                                  f"{1 if key == 'delta_reset' else 0}, got {v!r}")
        a, d = self.attack_kwargs, cfg["data"]
        if a["steps"] != 1 or a["norm"] != "linf":
            raise ConfigError(f"method atta: one linf step per batch (attack.steps: 1, attack.norm: linf), "
                              f"got steps {a['steps']}, norm {a['norm']}")
        if bool(d["augment"]) != (p["augment"] == "loop"):
            raise ConfigError(f"method atta: method.augment {p['augment']} needs data.augment: "
                              f"{str(p['augment'] == 'loop').lower()} (the crop and flip are drawn once)")
        self.pad = int(d["pad"])
        self.rows = InstanceRows(ctx)
        ds = ctx.datasets[d["primary"]]
        c, h, w = (int(s) for s in ds.images.shape[1:])
        self.frame = (c, h + 2 * self.pad, w + 2 * self.pad)
        self.delta = torch.zeros((self.rows.n, *self.frame), device=ctx.device)
        self.target = F.one_hot(self.rows.labels, ctx.num_classes).float()
        self.crops = self.flips = None

    def start_epoch(self, model: nn.Module, epoch: int) -> None:
        seed = int(self.cfg["seed"])
        if epoch % int(self.p["delta_reset"]) == 0:
            g = keyed_generator("atta-delta", seed, epoch)
            u = torch.rand((self.rows.n, *self.frame), generator=g)
            self.delta = ((u * 2 - 1) * self.attack_kwargs["eps"]).to(self.ctx.device)
        if self.p["augment"] == "code":  # one crop and flip per instance and epoch, as the loader draws them
            g = keyed_generator("atta-augment", seed, epoch)
            self.crops = torch.randint(0, 2 * self.pad, (self.rows.n, 2), generator=g).to(self.ctx.device)
            self.flips = torch.randint(0, 2, (self.rows.n,), generator=g).bool().to(self.ctx.device)

    def augmented(self, batch: Any, rows: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The training images and the crop/flip that made them."""
        if self.p["augment"] == "loop":
            if batch.crop is None:
                raise ConfigError("method atta: augment loop needs batches that carry their crop and flip")
            return batch.x, batch.crop, batch.flip
        crop, flip = self.crops[rows], self.flips[rows]
        h, w = batch.x.shape[-2:]
        return window(pad_frame(batch.x, self.pad, self.pad_value), crop, flip, h, w), crop, flip

    def step(self, model: nn.Module, batch: Any, epoch: int, it: int) -> StepOutput:
        y, rows = batch.y, self.rows(batch.idx)
        x, crop, flip = self.augmented(batch, rows)
        onehot = F.one_hot(y, self.ctx.num_classes).to(x.dtype)
        eps, alpha = self.attack_kwargs["eps"], self.attack_kwargs["step_size"]
        delta = window(self.delta[rows], crop, flip, *x.shape[-2:])
        with attack_mode(model, self.attack_kwargs["bn_mode"]), torch.enable_grad():
            delta.requires_grad_(True)
            logits = model(x + delta)
            ce = -(F.log_softmax(logits, dim=-1) * onehot).sum(dim=1).mean()
            (grad,) = torch.autograd.grad(ce, delta)
        logits = logits.detach()
        new = (delta.detach() + grad.sign() * alpha).clamp(-eps, eps)
        new = (x + new).clamp(0.0, 1.0) - x
        self.delta[rows] = paste(self.delta[rows], crop, flip, new)
        adv_logits = model(x + new)
        seen = logits if self.p["target_from"] == "pre_step" else adv_logits.detach()
        target = self.soft_target(rows, onehot, seen, epoch)
        weight = self.weights(model, x, y, adv_logits, epoch)
        per = -(F.log_softmax(adv_logits, dim=-1) * target).sum(dim=1)
        loss = (per * weight).sum() / weight.sum()
        ce_y = F.cross_entropy(adv_logits.detach(), y, reduction="none")
        target_y = target.gather(1, y[:, None]).squeeze(1)
        return StepOutput(loss, ce_y, {"train_adv_acc": (adv_logits.argmax(1) == y).float().mean(),
                                       "weight_mean": weight.mean(), "target_y_mean": target_y.mean()},
                          per_example_correct=logits.argmax(1) == y,
                          adapted={"weight": weight, "target_y": target_y})

    def soft_target(self, rows: Tensor, onehot: Tensor, logits: Tensor, epoch: int) -> Tensor:
        """The loss's target; from epoch ``warmup`` on, the EMA of the predictions mixed with one-hot."""
        if epoch < int(self.p["warmup"]):
            return onehot
        t = self.target[rows] * self.rho + F.softmax(logits.float(), dim=1) * (1.0 - self.rho)
        self.target[rows] = t
        return (onehot * self.beta + t.to(onehot.dtype) * (1.0 - self.beta)).detach()

    def weights(self, model: nn.Module, x: Tensor, y: Tensor, adv_logits: Tensor, epoch: int) -> Tensor:
        how = self.p["reweight"]
        if how == "none" or epoch < int(self.p["warmup_rw"]):
            return torch.ones_like(y, dtype=adv_logits.dtype)
        if how == "prob":
            scored = adv_logits.detach()
        else:
            with torch.no_grad():  # a train-mode forward: it moves the BatchNorm statistics, as the code's does
                scored = model(x)
        return F.softmax(scored, dim=-1).gather(1, y[:, None]).squeeze(1)

    def state_dict(self) -> dict[str, Any]:
        return {"delta": self.delta, "target": self.target}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        # copies: the loop hands the same checkpoint dict to a mid-epoch resume after start_epoch
        self.delta = state["delta"].to(self.ctx.device).clone()
        self.target = state["target"].to(self.ctx.device).clone()
