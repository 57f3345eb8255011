"""The hardest and easiest training images of each class, with d and the PGD prediction (F20, F21).

``extremes``: per class (the labels a ``difficulty`` analysis stored), the ``k`` instances of
lowest d (hardest, shown hardest first) and the ``k`` of highest d (easiest, shown easiest
first); ties in d go to the lower original index in both. A class with fewer than ``k``
instances shows all it has; one with fewer than 2k shows some images in both panels
(``overlap`` counts them). The images are read from the ``run``'s training split (the split
d ranks; ``split: train`` is the only one, since d comes from training logs) and predicted
by the run's model at ``checkpoint`` (the paper attacks the final model: ``last``) in eval
mode, clean and under the PGD of ``protocol`` (a registered pgd/cw protocol, seeded). With
several restarts the shown prediction is the first restart's, replaced by a later
restart's where that one fools the model and the earlier did not.

Arrays (``extremes.npz``), for g in hardest / easiest: ``g`` images [n, H, W, C] in [0, 1],
``g_adv`` the PGD images, ``g_d``, ``g_label``, ``g_pred`` (clean), ``g_pgd_pred``,
``g_index`` (original ids). Values per g: ``d_edge`` (the max d shown for hardest, the min
for easiest), ``pgd_correct`` / ``clean_correct`` (fractions equal to the label), ``n``;
and the claims' four numbers at the top level.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from ..errors import ConfigError
from .base import ANALYSES, REQUIRED, Analysis, AnalysisContext, positive_ints
from .difficulty import load_difficulty
from .margins import load_examples, save_npz

EXTREMES_FILE = "extremes.npz"
SPLITS = ("train",)


def pick_extremes(ids: np.ndarray, d: np.ndarray, labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the k hardest (d ascending) and k easiest (d descending) per class, classes in
    ascending order; ties by original id ascending in both."""
    hard, easy = [], []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        hard.append(members[np.lexsort((ids[members], d[members]))][:k])
        easy.append(members[np.lexsort((ids[members], -d[members]))][:k])
    return np.concatenate(hard).astype(np.int64), np.concatenate(easy).astype(np.int64)


def attack_predictions(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, proto: Any,
                       generator: torch.Generator, batch_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(clean predictions, PGD predictions, PGD images) in eval mode, batch by batch."""
    from ..attacks import pgd

    model.eval()
    preds, advs, adv_imgs = [], [], []
    for xb, yb in zip(x.split(batch_size), y.split(batch_size)):
        with torch.no_grad():
            clean = model(xb).argmax(1)
        shown, shown_x = None, None
        for _ in range(max(1, int(proto.restarts))):
            x_adv = pgd(model, xb, yb, eps=proto.eps, step_size=proto.step_size, steps=proto.steps,
                        norm=proto.norm, loss="cw" if proto.kind == "cw" else "ce",
                        random_start=proto.random_start, bn_mode="eval", generator=generator)
            with torch.no_grad():
                p = model(x_adv).argmax(1)
            if shown is None:
                shown, shown_x = p, x_adv
            else:  # a later restart that fools the model where the earlier ones did not
                take = (shown == yb) & (p != yb)
                shown = torch.where(take, p, shown)
                shown_x = torch.where(take.view(-1, 1, 1, 1), x_adv, shown_x)
        preds.append(clean.cpu())
        advs.append(shown.cpu())
        adv_imgs.append(shown_x.detach().cpu())
    return torch.cat(preds), torch.cat(advs), torch.cat(adv_imgs)


def _stats(d: np.ndarray, label: np.ndarray, pred: np.ndarray, pgd_pred: np.ndarray, edge: str) -> dict[str, Any]:
    n = int(len(d))
    return {"n": n, "d_edge": float(d.max() if edge == "max" else d.min()) if n else None,
            "d_mean": float(d.mean()) if n else None,
            "pgd_correct": float((pgd_pred == label).mean()) if n else None,
            "clean_correct": float((pred == label).mean()) if n else None}


@ANALYSES.register("extremes")
class Extremes(Analysis):
    """The k hardest / easiest training images per class with d, label and PGD prediction."""

    params = {"difficulty": REQUIRED, "run": REQUIRED, "protocol": REQUIRED, "k": 15, "split": "train",
              "checkpoint": "last", "seed": 0, "batch_size": 256}
    references = {"difficulty": "analysis", "run": "run"}
    gpu = True

    @classmethod
    def check(cls, params: Mapping[str, Any], where: str) -> None:
        from ..config.references import checkpoint_file

        positive_ints(params, ("k", "batch_size"), where)
        if params["split"] not in SPLITS:
            raise ConfigError(f"{where}: split must be one of {', '.join(SPLITS)} (d ranks training "
                              f"instances), got {params['split']!r}")
        if not isinstance(params["protocol"], str):
            raise ConfigError(f"{where}: protocol must be a protocol name, got {params['protocol']!r}")
        checkpoint_file({"checkpoint": params["checkpoint"]})

    def run(self, ctx: AnalysisContext) -> dict[str, Any]:
        from ..evaluate.catalog import PROTOCOLS
        from ..config.references import checkpoint_file
        from ..train.setup import build_from_run_dir

        p = ctx.params
        proto = PROTOCOLS.get(str(p["protocol"]), where="analysis extremes: protocol")
        if proto.kind not in ("pgd", "cw"):
            raise ConfigError(f"analysis extremes: protocol {proto.name!r} is {proto.kind}, not a pgd/cw attack")
        diff_dir = Path(ctx.inputs["difficulty"])
        z = load_difficulty(diff_dir)
        cfg, model, _ = build_from_run_dir(Path(ctx.inputs["run"]), ctx.data_root, ctx.device,
                                           checkpoint_file({"checkpoint": p["checkpoint"]}))
        dataset = cfg["data"]["primary"]
        diff_dataset = json.loads((diff_dir / "result.json").read_text())["values"].get("dataset") \
            if (diff_dir / "result.json").exists() else dataset
        if diff_dataset != dataset:
            raise ConfigError(f"analysis extremes: the difficulty ranks {diff_dataset!r} but the run "
                              f"trained on {dataset!r}")
        hard, easy = pick_extremes(z["indices"], z["d"], z["labels"], int(p["k"]))
        gen = torch.Generator(device=ctx.device).manual_seed(int(p["seed"]))
        arrays: dict[str, np.ndarray] = {}
        out: dict[str, Any] = {"k": int(p["k"]), "protocol": proto.name, "attack": proto.params(),
                               "checkpoint": p["checkpoint"], "dataset": dataset, "seed": int(p["seed"]),
                               "overlap": int(len(np.intersect1d(z["indices"][hard], z["indices"][easy]))),
                               "file": EXTREMES_FILE}
        for name, pos, edge in (("hardest", hard, "max"), ("easiest", easy, "min")):
            x, y = load_examples(dataset, cfg["data"]["train_split"], z["indices"][pos], ctx.data_root, ctx.device)
            if not np.array_equal(y.cpu().numpy(), z["labels"][pos]):
                raise ConfigError(f"analysis extremes: labels of {dataset} differ from those the difficulty stored")
            pred, pgd_pred, x_adv = attack_predictions(model, x, y, proto, gen, int(p["batch_size"]))
            arrays.update({name: x.cpu().permute(0, 2, 3, 1).numpy().astype(np.float32),
                           f"{name}_adv": x_adv.permute(0, 2, 3, 1).numpy().astype(np.float32),
                           f"{name}_d": z["d"][pos], f"{name}_label": z["labels"][pos],
                           f"{name}_pred": pred.numpy(), f"{name}_pgd_pred": pgd_pred.numpy(),
                           f"{name}_index": z["indices"][pos]})
            out[name] = _stats(z["d"][pos], z["labels"][pos], pred.numpy(), pgd_pred.numpy(), edge)
            out[name]["per_class"] = {str(int(c)): int(n) for c, n in
                                      zip(*np.unique(z["labels"][pos], return_counts=True))}
        save_npz(ctx.out_dir / EXTREMES_FILE, **arrays)
        out["hardest_d_max"], out["easiest_d_min"] = out["hardest"]["d_edge"], out["easiest"]["d_edge"]
        out["hardest_pgd_wrong"] = None if out["hardest"]["pgd_correct"] is None else 1 - out["hardest"]["pgd_correct"]
        out["easiest_pgd_right"] = out["easiest"]["pgd_correct"]
        return out
