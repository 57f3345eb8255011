"""BiaMAT's per-sample terms over one concatenated batch (primary, then each aux dataset).

Every sample of the batch is routed to one head with one target:
- primary samples: primary head, their label;
- "low" aux samples (confidence below the threshold): primary head, the
  uniform target y^ER = 1/C over the C primary classes;
- "high" aux samples: their own dataset's aux head, their own label.

The functions return one value per sample so that the attack can maximise
the unweighted sum (the authors' ``xent_merge``) while the training loss
weighs and normalises the same terms (Algorithm 1, lines 11-21).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .trades import kl_per_example


@dataclass
class Layout:
    """Where each part of a concatenated batch sits, and how its aux samples are routed."""

    n_primary: int
    # (head name, start, stop) of each aux dataset in the concatenated batch
    segments: list[tuple[str, int, int]]
    y: Tensor  # (N,) labels: primary labels then each aux dataset's own labels
    high: Tensor  # (N,) bool: True for aux samples routed to their aux head
    num_classes: int  # C, the number of primary classes (size of y^ER)
    primary_head: str = "primary"

    @property
    def n(self) -> int:
        return int(self.y.shape[0])


def yer_target(num_classes: int, n: int, device: torch.device | str = "cpu") -> Tensor:
    """y^ER: the uniform distribution over the primary classes, one row per sample."""
    return torch.full((n, num_classes), 1.0 / num_classes, device=device)


def soft_ce(logits: Tensor, target: Tensor) -> Tensor:
    """Cross-entropy to a soft target per sample: ``-sum_c t_c log p_c``."""
    return -(target * F.log_softmax(logits, dim=1)).sum(dim=1)


@dataclass
class HeadLogits:
    """The primary head on every sample, and each aux head on its own dataset's samples."""

    primary: Tensor  # (N, C)
    aux: dict[str, Tensor]  # head name -> (n_t, C_t)


def head_logits(model: nn.Module, x: Tensor, layout: Layout) -> HeadLogits:
    """One trunk pass over the whole batch, then the linear heads.

    A single pass matters in train mode: BatchNorm normalises primary and aux
    images with one set of batch statistics, as the reference code does.
    Applying the primary head to every row costs one matrix product and lets
    routing be a per-row choice between two ready-made terms.
    """
    feats = model.features(x)
    pri = model.heads[layout.primary_head](feats)
    aux = {name: model.heads[name](feats[a:b]) for name, a, b in layout.segments}
    return HeadLogits(pri, aux)


def _route(layout: Layout, on_primary: Tensor, per_segment: dict[str, Tensor]) -> Tensor:
    """Pick, per aux row, the aux-head term (high) or the primary-head term (low)."""
    parts = [on_primary[: layout.n_primary]]
    for name, a, b in layout.segments:
        parts.append(torch.where(layout.high[a:b], per_segment[name], on_primary[a:b]))
    return torch.cat(parts)


def _on_primary_head(pri: Tensor, layout: Layout) -> Tensor:
    """Per-row CE on the primary head: labels for primary rows, y^ER for every aux row.

    Aux rows that are high get their aux-head term instead, in ``_route``.
    """
    y, n_p = layout.y, layout.n_primary
    ce_pri = F.cross_entropy(pri[:n_p], y[:n_p], reduction="none")
    er = soft_ce(pri[n_p:], yer_target(layout.num_classes, layout.n - n_p, y.device))
    return torch.cat([ce_pri, er])


def ce_terms(logits: HeadLogits, layout: Layout) -> Tensor:
    """CE on each sample's own head and target (y^ER soft-CE for low aux samples)."""
    per_seg = {name: F.cross_entropy(logits.aux[name], layout.y[a:b], reduction="none")
               for name, a, b in layout.segments}
    return _route(layout, _on_primary_head(logits.primary, layout), per_seg)


def natural_probs(logits: HeadLogits) -> HeadLogits:
    """Detached softmax of every head (the KL's fixed reference in the TRADES attack)."""
    return HeadLogits(F.softmax(logits.primary, 1).detach(),
                      {k: F.softmax(v, 1).detach() for k, v in logits.aux.items()})


def kl_attack_terms(adv: HeadLogits, p_nat: HeadLogits, layout: Layout,
                    high_ce: bool = False) -> Tensor:
    """TRADES inner objective per sample: KL(p_nat || p_adv) on the sample's own head.

    ``high_ce``: the CIFAR-100 variant, where the aux-head term of the
    attack is CE with the aux label instead of the KL.
    """
    on_primary = F.kl_div(F.log_softmax(adv.primary, 1), p_nat.primary, reduction="none").sum(1)
    per_seg = {}
    for name, a, b in layout.segments:
        if high_ce:
            per_seg[name] = F.cross_entropy(adv.aux[name], layout.y[a:b], reduction="none")
        else:
            per_seg[name] = F.kl_div(F.log_softmax(adv.aux[name], 1), p_nat.aux[name],
                                     reduction="none").sum(1)
    return _route(layout, on_primary, per_seg)


def trades_terms(nat: HeadLogits, adv: HeadLogits, layout: Layout, beta: float,
                 high_ce: bool = False) -> Tensor:
    """TRADES training loss per sample on its own head: CE(nat) + beta * KL(nat || adv).

    Low aux samples use the y^ER soft-CE as their natural term. With
    ``high_ce`` the high aux samples' term is CE on the adversarial example
    alone (the authors' ``trades_loss_BiaMAT_ce``, CIFAR-100 primary); the
    y^ER term keeps the TRADES form.
    """
    on_primary = _on_primary_head(nat.primary, layout) + beta * kl_per_example(adv.primary, nat.primary)
    per_seg = {}
    for name, a, b in layout.segments:
        if high_ce:
            per_seg[name] = F.cross_entropy(adv.aux[name], layout.y[a:b], reduction="none")
        else:
            per_seg[name] = (F.cross_entropy(nat.aux[name], layout.y[a:b], reduction="none")
                             + beta * kl_per_example(adv.aux[name], nat.aux[name]))
    return _route(layout, on_primary, per_seg)


@dataclass
class AuxLoss:
    """The weighted loss and its parts, for logging."""

    total: Tensor
    primary: Tensor  # l: mean over the primary batch
    low: Tensor  # l_low: (1/(T-1)) sum_t of dataset t's low-term sum / |B~_t|
    high: Tensor  # l_high likewise


def combine(terms: Tensor, layout: Layout, alpha: float) -> AuxLoss:
    """L = l + alpha/(T-1) * sum_t (l_low,t + l_high,t) (Algorithm 1 line 21, 000 Eq. 3).

    Each aux dataset's low and high sums are divided by that dataset's whole
    aux batch size |B~_t| (not by the group sizes): samples moved between the
    groups change their target, never the weight of the others. With equal
    splits alpha/(T-1) * sum_t (.)/|B~_t| is the mean over all aux samples.
    """
    n_p = layout.n_primary
    l_pri = terms[:n_p].mean()
    zero = terms.new_zeros(())
    low, high = zero, zero
    for _, a, b in layout.segments:
        seg, hi = terms[a:b], layout.high[a:b]
        low = low + seg[~hi].sum() / (b - a)
        high = high + seg[hi].sum() / (b - a)
    k = len(layout.segments)
    total = l_pri + (alpha / k) * (low + high) if k and alpha != 0 else l_pri
    return AuxLoss(total, l_pri, low / max(k, 1), high / max(k, 1))
