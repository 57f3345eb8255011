"""The one training loop: a method supplies the loss of a batch, the loop does the rest.

Everything a resumed run needs is in ``last.pt``; randomness is re-derived from
(seed, epoch), so a run killed at any point and restarted ends with exactly the
numbers of an uninterrupted run (on CPU, same thread count).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from tqdm import tqdm

from .. import io
from ..config import config_hash, resolve_run
from ..errors import ConfigError, TrainingDivergedError
from ..methods import METHODS, TrainContext
from . import checkpoint
from ..pipeline.provenance import git_commit, runtime_provenance
from .schedule import lr_at
from .setup import build_for_run, load_run_data, select_device

DONE = "done.json"


def epoch_seed(seed: int, epoch: int) -> int:
    return (int(seed) * 1_000_003 + epoch * 7919) % (2**31 - 1)


def _selection_score(model, cfg, data, device, epoch_seed_: int) -> float | None:
    sel = cfg["selection"]
    if not sel.get("protocol"):
        return None
    from ..evaluate import evaluate

    images, labels = data["eval"] if sel["split"] == cfg["data"]["eval_split"] else data["selection"]
    res = evaluate(model, images, labels, sel["protocol"], device=device, seed=epoch_seed_, n=sel.get("n"))
    return float(res["accuracy"])


def _jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows)


def _write_logs(out: Path, history: list[dict[str, Any]], step_rows: list[dict[str, Any]]) -> None:
    """metrics.jsonl (per epoch) and steps.jsonl (per step), rebuilt from the checkpointed state."""
    io.write_text(out / "metrics.jsonl", _jsonl(history))
    if step_rows:
        io.write_text(out / "steps.jsonl", _jsonl(step_rows))


def train(raw_cfg: Mapping[str, Any], out_dir: str | Path, *, data_root: str | Path,
          device: str = "auto", progress: bool = True, allow_cpu: bool = False) -> dict[str, Any]:
    """Train (or resume, or skip if complete) the run described by ``raw_cfg`` into ``out_dir``."""
    cfg = resolve_run(raw_cfg)
    out = Path(out_dir)
    h = config_hash(cfg)
    done = out / DONE
    if done.exists():
        return json.loads(done.read_text())
    dev = select_device(device, scale=cfg["scale"], allow_cpu=allow_cpu)
    data = load_run_data(cfg, data_root, dev)
    ctx = TrainContext(cfg=cfg, device=dev, num_classes=data["num_classes"], datasets=data["train"],
                       steps_per_epoch=data["steps_per_epoch"], extra={"data_root": str(data_root), "runs_dir": str(out.parent)})
    method = METHODS.get(cfg["method"]["name"], where="method.name")(cfg, ctx)
    torch.manual_seed(int(cfg["seed"]))  # weight init depends on the seed only
    model = build_for_run(cfg, data, dev, heads=method.heads())
    method.attach(model)
    # only now that data, method and model are known good does the run directory appear
    out.mkdir(parents=True, exist_ok=True)
    io.write_yaml(out / "config.yaml", cfg)
    opt = torch.optim.SGD(model.parameters(), lr=float(cfg["optim"]["lr"]),
                          momentum=float(cfg["optim"]["momentum"]),
                          nesterov=bool(cfg["optim"]["nesterov"]),
                          weight_decay=float(cfg["optim"]["weight_decay"]))

    start, history, best = 0, [], {"score": -math.inf, "epoch": None}
    step_rows: list[dict[str, Any]] = []
    inst_losses: list[np.ndarray] = []
    last = out / "last.pt"
    if last.exists():
        ck = checkpoint.load(last, dev)
        if ck["config_hash"] != h:
            raise ConfigError(f"{last}: checkpoint belongs to config {ck['config_hash']}, not {h}; "
                              "remove the run directory or use another --out")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        method.load_state_dict(ck["method"])
        start, history, best = ck["epoch"] + 1, ck["history"], ck["best"]
        step_rows = ck.get("step_rows", [])
        if cfg["log_per_instance"] and (out / "instance_losses.npy").exists():
            inst_losses = list(np.load(out / "instance_losses.npy")[: start])

    epochs, steps = int(cfg["epochs"]), data["steps_per_epoch"]
    primary = data["train"][cfg["data"]["primary"]]
    from ..data import iterate

    for epoch in range(start, epochs):
        es = epoch_seed(cfg["seed"], epoch)
        torch.manual_seed(es)
        np.random.seed(es)
        method.start_epoch(model, epoch)
        model.train()
        t0, sums, n_seen = time.time(), {}, 0
        per_inst = torch.full((len(primary),), float("nan")) if cfg["log_per_instance"] else None
        batches = iterate(primary, int(cfg["batch_size"]), shuffle=True, augment=bool(cfg["data"]["augment"]),
                          pad=int(cfg["data"]["pad"]), seed=cfg["seed"], epoch=epoch, drop_last=True)
        bar = tqdm(batches, total=steps, desc=f"{cfg['name']} epoch {epoch + 1}/{epochs}",
                   disable=not progress, leave=False)
        for it, batch in enumerate(bar):
            lr = lr_at(cfg["schedule"], float(cfg["optim"]["lr"]), epochs, epoch, it, steps)
            for g in opt.param_groups:
                g["lr"] = lr
            outp = method.step(model, batch, epoch, it)
            if not torch.isfinite(outp.loss):
                raise TrainingDivergedError(
                    f"run {cfg['name']}: loss is {outp.loss.item()} at epoch {epoch + 1}, batch {it + 1}")
            opt.zero_grad(set_to_none=True)
            outp.loss.backward()
            opt.step()
            n = batch.y.shape[0]
            n_seen += n
            sums["loss"] = sums.get("loss", 0.0) + outp.loss.item() * n
            for k, v in outp.stats.items():
                sums[k] = sums.get(k, 0.0) + float(v) * n
            if per_inst is not None and outp.per_example is not None:
                per_inst[batch.idx.cpu()] = outp.per_example.float().cpu()
            if outp.step_log is not None:
                step_rows.append({"epoch": epoch + 1, "step": epoch * steps + it + 1, **outp.step_log})
            bar.set_postfix(loss=f"{outp.loss.item():.3f}", lr=f"{lr:.4f}")
        row = {"epoch": epoch + 1, "lr": lr, "seconds": round(time.time() - t0, 3),
               **{k: v / max(n_seen, 1) for k, v in sums.items()}, **method.epoch_stats()}
        after = float(cfg["selection"]["after"] or 0)
        after = after * epochs if 0 < after < 1 else after
        if epoch + 1 > after and ((epoch + 1) % int(cfg["selection"]["every"] or 1) == 0 or epoch + 1 == epochs):
            score = _selection_score(model, cfg, data, dev, es)
            if score is not None:
                row["selection_" + cfg["selection"]["protocol"]] = score
                if score > best["score"]:
                    best = {"score": score, "epoch": epoch + 1}
                    checkpoint.save(out / "best.pt", {"model": model.state_dict(), "epoch": epoch + 1,
                                                      "score": score, "config_hash": h})
        history.append(row)
        if per_inst is not None:
            inst_losses.append(per_inst.numpy())
            with io.atomic_path(out / "instance_losses.npy") as tmp:
                with open(tmp, "wb") as f:
                    np.save(f, np.stack(inst_losses).astype(np.float32))
        checkpoint.save(last, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                               "method": method.state_dict(), "epoch": epoch, "history": history,
                               "best": best, "config_hash": h, "step_rows": step_rows})
        _write_logs(out, history, step_rows)
    _write_logs(out, history, step_rows)  # a kill after the last checkpoint may have left them behind
    if best["epoch"] is None:  # no selection rule: the last epoch is the one evaluated
        checkpoint.save(out / "best.pt", {"model": model.state_dict(), "epoch": epochs, "score": None,
                                          "config_hash": h})
        best = {"score": None, "epoch": epochs}
    summary = {"run": out.name, "config_hash": h, "scale": cfg["scale"], "epochs": epochs,
               "best": best, "selection": cfg["selection"], "final": history[-1] if history else {},
               "data": data["provenance"], "git_commit": git_commit(),
               "provenance": runtime_provenance(dev, seed=cfg["seed"], scale=cfg["scale"])}
    io.write_json(done, summary)
    return summary


__all__ = ["train"]
