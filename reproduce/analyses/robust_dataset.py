"""A robust dataset (Ilyas et al. 2019), as BiaMAT builds it from its AT models (000 Table 15, App. J).

``robust_dataset``: for every training image x of the ``model`` run (its training split after the
run's own cuts), x_r starts from a seeded random *different* training image (any class) and
descends ``||g(x_r) - g(x)||_2`` with ``steps`` normalised-gradient L2 steps of ``step_size``,
clipped to [0, 1] and otherwise unbounded; g is the run's trunk (its pooled features) in eval
mode. The dataset is the pairs (x_r, label of x). BiaMAT gives no optimiser: the steps, the
step size, the unnormalised loss and the last iterate follow Ilyas et al.'s settings (choice C-T15;
normalising the loss by ||g(x)|| as their library does is immaterial under normalised steps).

At paper scale one node is about 31 V100-hours (1,000 passes over 50k images of WRN-28-10), so it
works in chunks of ``chunk`` images: each finished chunk is saved under ``chunks/`` and a killed
job restarts at the first missing one. The optimisation has no randomness after the seeded
pairing and eval mode makes every image independent of its batch, so a resumed node writes the
same arrays as an uninterrupted one.

Arrays: ``images.npy`` (float32 N x H x W x C in [0, 1]), ``labels.npy`` (int64), ``indices.npy``
(the target's original id), ``partners.npy`` (the original id x_r started from). ``data.train_from``
reads the first two as a run's training split. Values: ``n``, ``num_classes``, ``image_shape``, and
the feature distance before and after (``distance_start``, ``distance_end``: means over images).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch

from .. import io
from ..errors import ConfigError
from .base import ANALYSES, REQUIRED, Analysis, AnalysisContext, positive_ints
from .margins import save_npz

FILES = ("images.npy", "labels.npy", "indices.npy", "partners.npy")
CHUNKS = "chunks"


def partners(n: int, seed: int) -> np.ndarray:
    """For each of ``n`` positions, a seeded uniform draw among the *other* positions (never itself)."""
    if n < 2:
        raise ConfigError(f"analysis robust_dataset: {n} training image(s); the start image must differ from "
                          "the target, which needs at least 2")
    draw = np.random.default_rng(seed).integers(0, n - 1, size=n)
    return draw + (draw >= np.arange(n))  # skip the position itself: uniform over the n - 1 others


def match_features(g: Callable[[torch.Tensor], torch.Tensor], target: torch.Tensor, start: torch.Tensor,
                   steps: int, step_size: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x_r after ``steps``, distance at the start, distance at the end): normalised-gradient L2 descent
    on ``||g(x_r) - g(target)||_2`` per image, clipped to [0, 1]."""
    with torch.no_grad():
        ft = g(target).flatten(1)
        d0 = torch.linalg.vector_norm(g(start).flatten(1) - ft, dim=1)
    x = start.detach().clone()
    for _ in range(steps):
        x.requires_grad_(True)
        loss = torch.linalg.vector_norm(g(x).flatten(1) - ft, dim=1).sum()  # images are independent in eval mode
        (grad,) = torch.autograd.grad(loss, x)
        norm = torch.linalg.vector_norm(grad.flatten(1), dim=1).view(-1, *([1] * (x.dim() - 1)))
        x = (x.detach() - step_size * grad / (norm + 1e-10)).clamp_(0.0, 1.0)  # Ilyas et al.'s L2 step
    with torch.no_grad():
        d1 = torch.linalg.vector_norm(g(x).flatten(1) - ft, dim=1)
    return x.detach(), d0, d1


def build_chunks(g: Callable[[torch.Tensor], torch.Tensor], images: Callable[[np.ndarray], torch.Tensor],
                 pair: np.ndarray, out_dir: Path, *, steps: int, step_size: float, chunk: int, batch_size: int,
                 after_chunk: Callable[[int], None] | None = None) -> list[Path]:
    """Each chunk of ``chunk`` targets optimised and saved once (``chunks/chunk_NNNNN.npz``); chunks already
    on disk are kept, so a killed job resumes at the first missing one. ``images(positions)`` gives model
    inputs N x C x H x W; ``after_chunk(c)`` is called after chunk c is saved (tests stop a job there)."""
    n = len(pair)
    cdir = out_dir / CHUNKS
    meta = {"n": n, "chunk": chunk, "steps": steps, "step_size": step_size}
    meta_path = cdir / "meta.json"
    if meta_path.exists() and json.loads(meta_path.read_text()) != meta:
        raise ConfigError(f"{meta_path}: chunks of another setting ({meta_path.read_text().strip()}) lie here; "
                          f"remove {cdir} to rebuild")
    io.write_json(meta_path, meta)
    paths = []
    for c, lo in enumerate(range(0, n, chunk)):
        path = cdir / f"chunk_{c:05d}.npz"
        paths.append(path)
        if path.exists():
            continue
        pos = np.arange(lo, min(n, lo + chunk))
        xs, d0s, d1s = [], [], []
        for b in range(0, len(pos), batch_size):  # batches aligned to the chunk: the same whether resumed or not
            p = pos[b:b + batch_size]
            x, d0, d1 = match_features(g, images(p), images(pair[p]), steps, step_size)
            xs.append(x.permute(0, 2, 3, 1).cpu().numpy().astype(np.float32))
            d0s.append(d0.cpu().numpy())
            d1s.append(d1.cpu().numpy())
        save_npz(path, images=np.concatenate(xs), d0=np.concatenate(d0s), d1=np.concatenate(d1s))
        if after_chunk is not None:
            after_chunk(c)
    return paths


def _save_npy(path: Path, array: np.ndarray) -> None:
    with io.atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)


@ANALYSES.register("robust_dataset")
class RobustDataset(Analysis):
    """Ilyas et al.'s robust dataset of a run's training images, in the run's trunk feature space."""

    params = {"model": REQUIRED, "steps": 1000, "step_size": 0.1, "init": "random_other", "seed": 0,
              "chunk": 2500, "batch_size": 500}
    references = {"model": "run"}
    gpu = True

    @classmethod
    def check(cls, params: Mapping[str, Any], where: str) -> None:
        positive_ints(params, ("steps", "chunk", "batch_size"), where)
        s = params["step_size"]
        if isinstance(s, bool) or not isinstance(s, (int, float)) or s <= 0:
            raise ConfigError(f"{where}: step_size must be a positive number, got {s!r}")
        if params["init"] != "random_other":
            raise ConfigError(f"{where}: init must be random_other (a seeded random different training image), "
                              f"got {params['init']!r}")
        if isinstance(params["seed"], bool) or not isinstance(params["seed"], int):
            raise ConfigError(f"{where}: seed must be an integer, got {params['seed']!r}")

    @classmethod
    def pass_epochs(cls, params: Mapping[str, Any]) -> float:
        """Forward+backward passes over the source run's training images: one a step, one for the targets."""
        return float(params["steps"]) + 1.0

    def run(self, ctx: AnalysisContext) -> dict[str, Any]:
        from ..config.references import checkpoint_file
        from ..data import load_split
        from ..train.run_data import training_positions
        from ..train.setup import build_from_run_dir

        p = ctx.params
        ref = p["model"] if isinstance(p["model"], Mapping) else {"run": p["model"]}
        cfg, model, _ = build_from_run_dir(Path(ctx.inputs["model"]), ctx.data_root, ctx.device, checkpoint_file(ref))
        for w in model.parameters():  # gradients flow to the images only
            w.requires_grad_(False)
        model.eval()
        d = cfg["data"]
        x_all, y_all = load_split(d["primary"], d["train_split"], ctx.data_root)
        pos, _ = training_positions(cfg, y_all)  # the images the source model trained on, after its cuts
        pair = partners(len(pos), int(p["seed"]))

        def images(rows: np.ndarray) -> torch.Tensor:
            x = torch.from_numpy(np.asarray(x_all[pos[rows]])).to(ctx.device).permute(0, 3, 1, 2)
            return x.float() / 255.0 if x.dtype == torch.uint8 else x.float()

        paths = build_chunks(model.features, images, pair, ctx.out_dir, steps=int(p["steps"]),
                             step_size=float(p["step_size"]), chunk=int(p["chunk"]), batch_size=int(p["batch_size"]))
        parts = [np.load(f) for f in paths]
        xr = np.concatenate([z["images"] for z in parts])
        d0, d1 = (np.concatenate([z[k] for z in parts]) for k in ("d0", "d1"))
        labels = np.asarray(y_all[pos], dtype=np.int64)
        for name, arr in zip(FILES, (xr, labels, pos.astype(np.int64), pos[pair].astype(np.int64))):
            _save_npy(ctx.out_dir / name, arr)
        return {"n": int(len(pos)), "num_classes": _num_classes(ctx, d["primary"]),
                "image_shape": list(xr.shape[1:]), "dataset": d["primary"], "steps": int(p["steps"]),
                "step_size": float(p["step_size"]), "seed": int(p["seed"]), "checkpoint": checkpoint_file(ref),
                "distance_start": float(d0.mean()), "distance_end": float(d1.mean()), "files": list(FILES)}


def _num_classes(ctx: AnalysisContext, dataset: str) -> int:
    from ..data import read_manifest

    return int(read_manifest(dataset, ctx.data_root)["num_classes"])
