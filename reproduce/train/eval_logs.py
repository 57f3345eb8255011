"""Per-epoch eval-mode per-instance logs: the run key ``eval_logs`` (an observer inside the hash).

Each entry ``{name, split: test|holdout, protocol, n}`` (optionally ``{dataset, corruption,
severity}`` for a corrupted copy of the test set such as CIFAR-10-C) is evaluated after every
epoch's training, before the checkpoint, with the model in eval mode and no augmentation, on the
first ``n`` (default all) instances of its split. As the hard-instance code logs its validation
and test sets every epoch (notes §1.5), per entry:

- ``eval_<name>_losses.npy``  float32 [epochs x N]: CE at the protocol's point (clean protocol: the
  clean input; pgd/cw: the adversarial input, the largest CE over restarts);
- ``eval_<name>_correct.npy`` uint8 [epochs x N]: correct under the protocol's counting, so its mean
  is exactly what ``evaluate`` reports for the same seed and batch size;
- ``eval_<name>_indices.npy`` int64 [N]: original ids (test: 0..N-1; holdout: ids in the training split);
- ``eval_<name>_acc`` (percent) in the epoch's metrics row.

``protocol: selection`` stands for the run's own ``selection.protocol`` and is replaced by it when
the config is resolved (presets that change the selection protocol carry the log along).
An entry whose ``corruption``/``severity`` are lists stands for one log per pair, named
``<name>-<corruption>-<severity>`` (T5: 18 corruptions x 5 severities in one entry).
The attack draws from its own generator seeded from (run seed, epoch, entry name): the training
RNG stream, hence the weights, are those of the same run without logs. The selection rule reads
its score from a log of the same split and protocol instead of attacking a second time.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError
from .arrays import save_array

EVAL_BATCH = 256  # evaluate()'s default: the same batches give the same random starts


def files(name: str) -> dict[str, str]:
    """File names of log ``name`` (the difficulty analysis reads them)."""
    return {"losses": f"eval_{name}_losses.npy", "correct": f"eval_{name}_correct.npy",
            "indices": f"eval_{name}_indices.npy"}


def log_source(cfg: Mapping[str, Any], entry: Mapping[str, Any]) -> tuple[str, str]:
    """(dataset, split) whose images log ``entry`` reads; the hold-out lives in the training split."""
    if entry.get("dataset"):
        return entry["dataset"], f"{entry['corruption']}-{entry['severity']}"
    if entry["split"] == "holdout":
        return cfg["data"]["primary"], cfg["data"]["train_split"]
    return cfg["data"]["primary"], cfg["data"]["eval_split"]


def eval_seed(epoch_seed: int, name: str) -> int:
    """The attack's seed: a stream of its own per (run seed, epoch) x entry."""
    return (int(epoch_seed) + zlib.crc32(name.encode())) % (2**31 - 1)


def check_protocol(name: str, where: str = "eval_logs.protocol") -> Any:
    """The registered protocol ``name``, if a per-instance log can follow it (clean, pgd, cw)."""
    from ..evaluate import PROTOCOLS

    # a paper's own protocols are registered by its spec (at load) or by the run's plan file (in a job)
    p = PROTOCOLS.get(name, where=where)
    if p.kind not in ("clean", "pgd", "cw"):
        raise ConfigError(f"{where}: {name!r} is {p.kind}; per-instance logs support clean, pgd and cw")
    return p


def _x(images: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    return (t.float().div_(255.0) if images.dtype == np.uint8 else t.float()).contiguous()


def log_instances(model: torch.nn.Module, images: np.ndarray, labels: np.ndarray, protocol: Any, *,
                  device: torch.device, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-instance (CE loss, correct) under ``protocol``, with ``evaluate``'s batches and random starts."""
    from ..attacks import pgd

    if len(labels) == 0:
        return np.zeros(0, np.float32), np.zeros(0, np.uint8)
    gen = None if protocol.kind == "clean" else torch.Generator(device=torch.device(device)).manual_seed(seed)
    losses, correct = [], []
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        for i in range(0, len(labels), EVAL_BATCH):
            xb = _x(images[i:i + EVAL_BATCH]).to(device)
            yb = torch.from_numpy(np.asarray(labels[i:i + EVAL_BATCH]).astype(np.int64)).to(device)
            with torch.no_grad():
                logits = model(xb)
            clean_ok = logits.argmax(1).eq(yb)
            loss = F.cross_entropy(logits, yb, reduction="none")
            if protocol.kind != "clean":
                adv_ok, loss = torch.ones_like(clean_ok), torch.full_like(loss, -np.inf)
                for _ in range(protocol.restarts):
                    x_adv = pgd(model, xb, yb, eps=protocol.eps, step_size=protocol.step_size, steps=protocol.steps,
                                norm=protocol.norm, loss="cw" if protocol.kind == "cw" else "ce",
                                random_start=protocol.random_start, bn_mode="eval", generator=gen)
                    with torch.no_grad():
                        adv_logits = model(x_adv)
                    adv_ok &= adv_logits.argmax(1).eq(yb)
                    loss = torch.maximum(loss, F.cross_entropy(adv_logits, yb, reduction="none"))
                ok = clean_ok & adv_ok if protocol.counting == "clean_and_adv" else adv_ok
            else:
                ok = clean_ok
            losses.append(loss.detach().float().cpu())
            correct.append(ok.cpu())
    finally:
        for m, was_training in modes:
            m.training = was_training
    return torch.cat(losses).numpy().astype(np.float32), torch.cat(correct).numpy().astype(np.uint8)


class EvalLogs:
    """The run's eval logs: images loaded once, one row per epoch per entry, resumable."""

    def __init__(self, cfg: Mapping[str, Any], data: Mapping[str, Any], data_root: str | Path) -> None:
        from ..data import load_split

        self.entries = list(cfg["eval_logs"])
        self.sets: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self.protocols = {e["name"]: check_protocol(e["protocol"]) for e in self.entries}
        for e in self.entries:
            if e.get("dataset"):
                x, y = load_split(*log_source(cfg, e), data_root)
                ids = np.arange(len(y))
            elif e["split"] == "holdout":
                # a split too small to cut anything off (shape-checking scales) logs no instance
                x, y, ids = data["holdout"] if data.get("holdout") is not None else (
                    data["eval"][0][:0], data["eval"][1][:0], np.zeros(0, np.int64))
            elif cfg["data"]["eval_split"] == "test":
                (x, y), ids = data["eval"], np.arange(len(data["eval"][1]))
            else:
                x, y = load_split(cfg["data"]["primary"], "test", data_root)
                ids = np.arange(len(y))
            n = e["n"] or len(y)
            self.sets[e["name"]] = (x[:n], np.asarray(y)[:n], np.asarray(ids, dtype=np.int64)[:n])
        self.losses: dict[str, list[np.ndarray]] = {e["name"]: [] for e in self.entries}
        self.correct: dict[str, list[np.ndarray]] = {e["name"]: [] for e in self.entries}

    def run_epoch(self, model: torch.nn.Module, out: Path, *, epoch_seed: int,
                  device: torch.device) -> dict[str, float]:
        """Evaluate every entry, rewrite its files, and return the metrics row's ``eval_<name>_acc``."""
        row = {}
        for e in self.entries:
            name = e["name"]
            x, y, ids = self.sets[name]
            loss, ok = log_instances(model, x, y, self.protocols[name], device=device,
                                     seed=eval_seed(epoch_seed, name))
            self.losses[name].append(loss)
            self.correct[name].append(ok)
            f = files(name)
            save_array(out / f["losses"], np.stack(self.losses[name]).astype(np.float32))
            save_array(out / f["correct"], np.stack(self.correct[name]).astype(np.uint8))
            if not (out / f["indices"]).exists():
                save_array(out / f["indices"], ids)
            if len(ok):  # no value rather than NaN in metrics.jsonl for an empty split
                row[f"eval_{name}_acc"] = 100.0 * float(ok.mean())
        return row

    def selection_score(self, sel: Mapping[str, Any]) -> float | None:
        """The selection accuracy from this epoch's row of a log of the same split and protocol, if any:
        the first ``sel.n`` instances, as ``evaluate(n=...)`` counts them."""
        for e in self.entries:
            n_log = len(self.sets[e["name"]][1])
            k = int(sel.get("n") or n_log)
            if (not e.get("dataset") and e["split"] == sel["split"] and e["protocol"] == sel["protocol"]
                    and k <= n_log and self.correct[e["name"]]):
                return 100.0 * float(self.correct[e["name"]][-1][:k].mean())
        return None

    def resume(self, out: Path, start: int) -> None:
        """Reload the rows of the ``start`` checkpointed epochs; rows written after it are dropped."""
        for e in self.entries:
            f = files(e["name"])
            for key, store in (("losses", self.losses), ("correct", self.correct)):
                path = out / f[key]
                rows = list(np.load(path)[:start]) if path.exists() else []
                if len(rows) != start:
                    raise ConfigError(f"{path}: eval log holds {len(rows)} epochs, checkpoint {start}")
                store[e["name"]] = rows
