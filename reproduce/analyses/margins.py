"""HAT's directional-margin analyses: ``directions`` (R_init, R_k) and ``margins`` (Tables 1, 6; Figs 3, 7).

Two nodes, because the directions come from one model (the standard run for R_init, a
fine-tuning snapshot for R_k) and are measured on others; one directions node feeds
many margins nodes.

``directions``: PGD-20 (Linf 8/255, step 2/255, uniform start, CE, eval mode) on a
seeded random subset of a split. The attacked label is the model's *prediction*
(``target: predicted``), as the authors' ``save_and_eval_adversarial`` calls
``eval_attack.perturb(x)`` without labels (``core/utils/train.py:270``;
``core/attacks/base.py:53-63``); ``target: true`` attacks y as Eq. (2) writes it.
The stored r = clamp(x + delta, 0, 1) - x (``pgd.py:68-69``), so clipping is included.
The authors' index draw (``np.random.choice`` after ``seed(1)``, ``train.py:75-84``)
depends on their RNG history and cannot be recovered: ours is
``default_rng(seed).choice(N, n, replace=False)``, recorded.

``margins``: see ``line_search`` for the two modes. Reported: median (the tables),
mean, p10/p25/p75/p90, how many directions never flipped (their margin is the cap).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from .. import io
from ..speclang.numbers import parse_number
from ..errors import ConfigError
from .base import ANALYSES, REQUIRED, Analysis, AnalysisContext, positive_ints
from .line_search import MODES, margins_code_exact, margins_exact, summarize

DIRECTIONS_FILE = "directions.npz"
MARGINS_FILE = "margins.npz"
TARGETS = ("predicted", "true")


def load_run_model(ctx: AnalysisContext, param: str) -> tuple[dict[str, Any], torch.nn.Module]:
    """(resolved config, model in eval mode) of the run a reference parameter names."""
    from ..config.references import checkpoint_file
    from ..train.setup import build_from_run_dir

    ref = ctx.params[param]
    ck = checkpoint_file(ref) if isinstance(ref, Mapping) else "best.pt"
    cfg, model, _ = build_from_run_dir(Path(ctx.inputs[param]), ctx.data_root, ctx.device, ck)
    return cfg, model


def load_examples(dataset: str, split: str, indices: np.ndarray, root: Path,
                  device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Float inputs (as the model takes them) and labels of ``indices`` of a prepared split."""
    from ..data import DeviceDataset, load_split

    images, labels = load_split(dataset, split, root)
    ds = DeviceDataset(images[indices], labels[indices], device)
    b = ds.batch(torch.arange(len(ds)))
    return b.x, b.y


def _predict(model: torch.nn.Module) -> Any:
    @torch.no_grad()
    def f(x: torch.Tensor) -> torch.Tensor:
        return model(x).argmax(dim=1)

    return f


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    with io.atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


def adversarial_directions(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, target: str,
                           eps: float, step_size: float, steps: int, random_start: bool | str = True,
                           generator: torch.Generator | None = None,
                           batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """(r = x_adv - x on the CPU, the clean predictions) of Linf PGD with CE in eval mode.

    ``target="predicted"`` maximises CE of the model's own prediction (the authors' code),
    ``"true"`` CE of y (Eq. (2)); they differ only on misclassified inputs.
    """
    from ..attacks import pgd

    if target not in TARGETS:
        raise ConfigError(f"directions: target must be one of {TARGETS}, got {target!r}")
    rs, preds = [], []
    for xb, yb in zip(x.split(batch_size), y.split(batch_size)):
        pred = _predict(model)(xb)
        x_adv = pgd(model, xb, pred if target == "predicted" else yb, eps=eps, step_size=step_size,
                    steps=steps, norm="linf", loss="ce", random_start=random_start, bn_mode="eval",
                    generator=generator)
        rs.append((x_adv - xb).cpu())  # pgd keeps every iterate in [0, 1]: r includes the clipping
        preds.append(pred.cpu())
    return torch.cat(rs), torch.cat(preds)


@ANALYSES.register("directions")
class Directions(Analysis):
    """Adversarial directions r_i of one model on a fixed random subset of a split."""

    params = {"model": REQUIRED, "split": None, "n": 1024, "seed": 0, "eps": "8/255",
              "step_size": "2/255", "steps": 20, "random_start": True, "target": "predicted",
              "batch_size": 256}
    references = {"model": "run"}
    gpu = True

    @classmethod
    def check(cls, params: Mapping[str, Any], where: str) -> None:
        if params["target"] not in TARGETS:
            raise ConfigError(f"{where}: target must be one of {TARGETS}, got {params['target']!r}")
        positive_ints(params, ("n", "steps", "batch_size"), where)
        for key in ("eps", "step_size"):
            parse_number(params[key], f"{where}: {key}")

    def run(self, ctx: AnalysisContext) -> dict[str, Any]:
        from ..data import read_manifest

        p = ctx.params
        cfg, model = load_run_model(ctx, "model")
        dataset = cfg["data"]["primary"]
        split = p["split"] or cfg["data"]["eval_split"]
        total = int(read_manifest(dataset, ctx.data_root)["splits"][split]["n"])
        if p["n"] > total:
            raise ConfigError(f"directions: n={p['n']} exceeds the {total} examples of {dataset}/{split}")
        idx = np.random.default_rng(int(p["seed"])).choice(total, int(p["n"]), replace=False)
        x, y = load_examples(dataset, split, idx, ctx.data_root, ctx.device)
        gen = torch.Generator(device=ctx.device).manual_seed(int(p["seed"]))
        r, pred = adversarial_directions(
            model, x, y, target=p["target"], eps=parse_number(p["eps"], "eps"),
            step_size=parse_number(p["step_size"], "step_size"), steps=int(p["steps"]),
            random_start=p["random_start"], generator=gen, batch_size=int(p["batch_size"]))
        with torch.no_grad():
            adv_pred = _predict(model)(x + r.to(ctx.device)).cpu()
        save_npz(ctx.out_dir / DIRECTIONS_FILE, indices=idx.astype(np.int64), r=r.numpy().astype(np.float32),
                 labels=y.cpu().numpy(), pred=pred.numpy(), adv_pred=adv_pred.numpy(),
                 dataset=np.array(dataset), split=np.array(split))
        l2 = r.flatten(1).norm(dim=1)
        return {"dataset": dataset, "split": split, "n": int(p["n"]), "seed": int(p["seed"]),
                "target": p["target"], "clean_accuracy": 100.0 * float((pred == y.cpu()).float().mean()),
                "flipped_fraction": float((adv_pred != pred).float().mean()),
                "robust_accuracy": 100.0 * float((adv_pred == y.cpu()).float().mean()),
                "r_l2_median": float(l2.median()), "r_linf_max": float(r.abs().max()),
                "file": DIRECTIONS_FILE}


@ANALYSES.register("margins")
class Margins(Analysis):
    """Margins of one model along a directions node's r_i (line search, see ``line_search``)."""

    params = {"model": REQUIRED, "directions": REQUIRED, "mode": "exact", "precision": 0.1, "cap": 35,
              "clamp": False, "bisect_steps": 10, "batch_size": 128}
    references = {"model": "run", "directions": "analysis"}
    gpu = True

    @classmethod
    def check(cls, params: Mapping[str, Any], where: str) -> None:
        if params["mode"] not in MODES:
            raise ConfigError(f"{where}: mode must be one of {MODES}, got {params['mode']!r}")
        prec = params["precision"]
        if not isinstance(prec, (int, float)) or isinstance(prec, bool) or not 0 < prec <= 1 \
                or abs(1 / prec - round(1 / prec)) > 1e-9:
            raise ConfigError(f"{where}: precision must be 1/k for an integer k >= 1, got {prec!r}")
        if not isinstance(params["cap"], int) or params["cap"] < 2:
            raise ConfigError(f"{where}: cap must be an integer >= 2, got {params['cap']!r}")
        if not isinstance(params["clamp"], bool):
            raise ConfigError(f"{where}: clamp must be true or false, got {params['clamp']!r}")

    def run(self, ctx: AnalysisContext) -> dict[str, Any]:
        p = ctx.params
        path = Path(ctx.inputs["directions"]) / DIRECTIONS_FILE
        if not path.exists():
            raise ConfigError(f"margins: {path} does not exist; run the directions analysis first")
        with np.load(path, allow_pickle=False) as z:
            dirs = {k: z[k] for k in z.files}
        cfg, model = load_run_model(ctx, "model")
        dataset, split = str(dirs["dataset"]), str(dirs["split"])
        if cfg["data"]["primary"] != dataset:
            raise ConfigError(f"margins: model is trained on {cfg['data']['primary']!r} but the "
                              f"directions are on {dataset!r}")
        x, _ = load_examples(dataset, split, dirs["indices"], ctx.data_root, ctx.device)
        r = torch.from_numpy(dirs["r"]).to(ctx.device)
        ms, cs = [], []
        for xb, rb in zip(x.split(p["batch_size"]), r.split(p["batch_size"])):
            if p["mode"] == "exact":
                m, c = margins_exact(_predict(model), xb, rb, precision=float(p["precision"]), cap=p["cap"],
                                     clamp=p["clamp"], bisect_steps=int(p["bisect_steps"]))
            else:
                m, c = margins_code_exact(_predict(model), xb, rb, precision=float(p["precision"]),
                                          cap=p["cap"], clamp=p["clamp"])
            ms.append(m.cpu())
            cs.append(c.cpu())
        m_all, c_all = torch.cat(ms).numpy(), torch.cat(cs).numpy()
        save_npz(ctx.out_dir / MARGINS_FILE, indices=dirs["indices"], margins=m_all, capped=c_all)
        return {**summarize(m_all, c_all), "mode": p["mode"], "precision": float(p["precision"]),
                "cap": int(p["cap"]), "clamp": bool(p["clamp"]), "dataset": dataset, "split": split,
                "file": MARGINS_FILE}
