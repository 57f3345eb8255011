"""The one training loop: a method supplies the loss of a batch, the loop does the rest.

Everything a resumed run needs is in ``last.pt``; randomness is re-derived from
(seed, epoch), so a run killed at any point and restarted ends with exactly the
numbers of an uninterrupted run (on CPU, same thread count).
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from tqdm import tqdm

from .. import io, perf as fast
from ..progress import epoch_line, say
from ..bounds import check_attacks
from ..config import config_hash, resolve_run
from ..errors import ConfigError
from ..methods import METHODS, TrainContext
from . import checkpoint
from ..pipeline.provenance import git_commit, runtime_provenance
from .schedule import lr_at, momentum_at
from .midepoch import partial_state, set_rng_state
from .run_data import load_run_data
from .setup import build_for_run, select_device
from .optim import make_optimizer
from .eval_logs import EvalLogs
from .observers import InstanceLog, write_holdout
from .refs import Upstream
from .stop import Preempted, StopRequest
from .tally import EpochTally
from .transfer import apply_freeze, load_init, source_checkpoint, trainable_parameters

DONE = "done.json"


def epoch_seed(seed: int, epoch: int) -> int:
    return (int(seed) * 1_000_003 + epoch * 7919) % (2**31 - 1)


def _selection_score(model, cfg, data, device, epoch_seed_: int) -> float | None:
    sel = cfg["selection"]
    if not sel.get("protocol"):
        return None
    from ..evaluate import evaluate

    # a separate selection split, or the index list data.eval_indices picks from the test split
    images, labels = data["selection"] if data["selection"] is not None else data["eval"]
    res = evaluate(model, images, labels, sel["protocol"], device=device, seed=epoch_seed_, n=sel.get("n"))
    return float(res["accuracy"])


def _selects(sel: Mapping[str, Any], epoch: int, epochs: int) -> bool:
    """Is the 1-based ``epoch`` one the selection rule evaluates?"""
    if sel.get("at_epochs"):  # an explicit list; negative entries count from the end (-5: the last five)
        wanted = set()
        for e in sel["at_epochs"]:
            wanted |= set(range(epochs + int(e) + 1, epochs + 1)) if int(e) < 0 else {int(e)}
        return epoch in wanted
    after = float(sel["after"] or 0)
    after = after * epochs if 0 < after < 1 else after
    return epoch > after and (epoch % int(sel["every"] or 1) == 0 or epoch == epochs)


def _snapshot_epochs(cfg: Mapping[str, Any], epochs: int) -> set[int]:
    """Epochs whose weights are kept as checkpoints/epoch_N.pt (0 = the weights training starts from)."""
    return {int(e) for e in cfg.get("snapshots") or [] if 0 <= int(e) <= epochs}


def _jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows)


def _write_logs(out: Path, history: list[dict[str, Any]], step_rows: list[dict[str, Any]]) -> None:
    """metrics.jsonl (per epoch) and steps.jsonl (per step), rebuilt from the checkpointed state."""
    io.write_text(out / "metrics.jsonl", _jsonl(history))
    if step_rows:
        io.write_text(out / "steps.jsonl", _jsonl(step_rows))


def train(raw_cfg: Mapping[str, Any], out_dir: str | Path, *, data_root: str | Path,
          device: str = "auto", progress: bool = True, allow_cpu: bool = False,
          stop: StopRequest | None = None, upstream: Upstream | None = None,
          comparable: bool | None = None) -> dict[str, Any]:
    """Train (or resume, or skip if complete) the run described by ``raw_cfg`` into ``out_dir``.

    ``stop`` (default: SIGURG/SIGUSR1/SIGTERM handlers) ends the run at the next step with a
    mid-epoch checkpoint and :class:`Preempted`. ``upstream`` (from the plan) says where the
    runs and analyses this run references live; ``comparable`` is the plan's word on whether
    the run's scale is comparable with the papers (it refuses a silent CPU fallback).
    """
    stop = stop or StopRequest()
    stop.install()
    try:
        up = upstream or Upstream.beside_dir(Path(out_dir).parent)
        return _train(raw_cfg, out_dir, data_root=data_root, device=device, progress=progress,
                      allow_cpu=allow_cpu, stop=stop, upstream=up, comparable=comparable)
    finally:
        stop.close()


def _train(raw_cfg: Mapping[str, Any], out_dir: str | Path, *, data_root: str | Path,
           device: str, progress: bool, allow_cpu: bool, stop: StopRequest, upstream: Upstream,
           comparable: bool | None) -> dict[str, Any]:
    cfg = resolve_run(raw_cfg)
    # a method that trains on attacked inputs needs an attack step (checked at DAG load too)
    check_attacks(cfg, METHODS.get(cfg["method"]["name"], where="method.name").attacks, f"run {cfg['name']}")
    out = Path(out_dir)
    h = config_hash(cfg)
    done = out / DONE
    if done.exists():
        return json.loads(done.read_text())
    dev = select_device(device, scale=cfg["scale"], allow_cpu=allow_cpu, comparable=comparable)
    last = out / "last.pt"
    # a resumed run has every weight in last.pt; a fresh one needs its source before any data loads
    init_from = bool(cfg.get("init")) and not last.exists()
    if init_from:
        source_checkpoint(cfg, upstream)
    data = load_run_data(cfg, data_root, dev, runs_dir=upstream)
    # one line per process start: a run streamed from host memory is slower, and the log says why
    print(f"run {cfg['name']}: {data['placement'].summary()}", file=sys.stderr, flush=True)
    ctx = TrainContext(cfg=cfg, device=dev, num_classes=data["num_classes"], datasets=data["train"],
                       steps_per_epoch=data["steps_per_epoch"], extra={"data_root": str(data_root), "runs_dir": upstream})
    method = METHODS.get(cfg["method"]["name"], where="method.name")(cfg, ctx)
    torch.manual_seed(int(cfg["seed"]))  # weight init depends on the seed only
    model = build_for_run(cfg, data, dev, heads=method.heads())
    if init_from:  # fine-tuning and transfer start from another run's weights (reproduce/train/transfer.py)
        load_init(model, cfg, upstream, dev)
    apply_freeze(model, cfg)  # freeze: trunk trains the heads on fixed features
    method.attach(model)
    pf = cfg["perf"]
    fast.set_backends(pf, dev)
    step_model = fast.prepare_model(model, pf)  # checkpoints keep saving `model` itself
    # only now that data, method and model are known good does the run directory appear
    out.mkdir(parents=True, exist_ok=True)
    io.write_yaml(out / "config.yaml", cfg)
    if data.get("holdout") is not None:  # original ids of the held-out validation part
        write_holdout(out, data["holdout"][2])
    if 0 in _snapshot_epochs(cfg, int(cfg["epochs"])) and not (out / "checkpoints" / "epoch_0.pt").exists():
        checkpoint.save(out / "checkpoints" / "epoch_0.pt", {"model": model.state_dict(), "epoch": 0,
                                                             "config_hash": config_hash(cfg)})
    opt, sgd_impl = make_optimizer(trainable_parameters(model), cfg["optim"], pf, dev)

    start, history, best = 0, [], {"score": -math.inf, "epoch": None}
    step_rows: list[dict[str, Any]] = []
    primary = data["train"][cfg["data"]["primary"]]
    inst_log = InstanceLog(primary.indices, dev) if cfg["log_per_instance"] else None
    eval_logs = EvalLogs(cfg, data, data_root) if cfg["eval_logs"] else None
    partial: dict[str, Any] | None = None  # set when last.pt was written inside an epoch
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
        partial = ck.get("partial")
        if inst_log is not None:
            inst_log.resume(out, start)
        if eval_logs is not None:
            eval_logs.resume(out, start)

    epochs, steps = int(cfg["epochs"]), data["steps_per_epoch"]
    every = int(pf["sync_every"])
    from ..data import iterate

    for epoch in range(start, epochs):
        es = epoch_seed(cfg["seed"], epoch)
        torch.manual_seed(es)
        np.random.seed(es)
        method.start_epoch(model, epoch)
        model.train()
        t0, tally = time.time(), EpochTally(dev)
        if inst_log is not None:
            inst_log.start_epoch()
        first = 0
        if partial is not None and partial["epoch"] == epoch:
            # the method state was saved at the stop step, after this epoch's start_epoch ran
            method.load_state_dict(ck["method"])
            tally.load_state_dict(partial["tally"])
            if inst_log is not None and partial["per_inst"] is not None:
                inst_log.load_partial(partial["per_inst"])
            set_rng_state(partial["rng"], dev)
            first, partial = int(partial["step"]), None
        if cfg["data"].get("composite"):
            from ..data.feeding.composite import composite_batches

            batches = composite_batches(primary, data["train"]["composite"], cfg["data"]["composite"],
                                        int(cfg["batch_size"]), seed=cfg["seed"], epoch=epoch,
                                        augment=bool(cfg["data"]["augment"]), pad=int(cfg["data"]["pad"]),
                                        start_batch=first)
        else:
            batches = iterate(primary, int(cfg["batch_size"]), shuffle=True, augment=bool(cfg["data"]["augment"]),
                              pad=int(cfg["data"]["pad"]), seed=cfg["seed"], epoch=epoch,
                              drop_last=bool(cfg["data"]["drop_last"]), rotate=float(cfg["data"]["rotate"]),
                              color_jitter=cfg["data"]["color_jitter"], start_batch=first)
        bar = tqdm(batches, total=steps, initial=first, desc=f"{cfg['name']} epoch {epoch + 1}/{epochs}",
                   disable=not progress, leave=False)
        for it, batch in enumerate(bar, start=first):
            lr = lr_at(cfg["schedule"], float(cfg["optim"]["lr"]), epochs, epoch, it, steps)
            mom = momentum_at(cfg["schedule"], epochs, epoch, it, steps)
            for g in opt.param_groups:
                g["lr"] = lr
                if mom is not None:
                    g["momentum"] = mom
            if pf["channels_last"]:
                batch = dataclasses.replace(batch, x=fast.prepare_input(batch.x, pf))
            with fast.autocast(pf, dev):
                outp = method.step(step_model, batch, epoch, it)
            # no host sync per step: the NaN flag is read every `sync_every` steps and at epoch end
            tally.watch(outp.loss, it)
            if every == 1:  # the synchronous path stops before a bad batch updates the weights
                tally.raise_if_diverged(cfg["name"], epoch)
            opt.zero_grad(set_to_none=True)
            outp.loss.backward()
            opt.step()
            tally.add({"loss": outp.loss, **outp.stats}, int(batch.y.shape[0]))
            if inst_log is not None:  # logged from the pre-step forward, as the hard-instance code does
                inst_log.record(batch.idx, outp.per_example, outp.per_example_correct, outp.per_instance)
            if outp.step_log is not None:
                tally.log_row({"epoch": epoch + 1, "step": epoch * steps + it + 1, **outp.step_log})
            if (it + 1) % every == 0:
                if every > 1:
                    tally.raise_if_diverged(cfg["name"], epoch)
                if progress:
                    bar.set_postfix(loss=f"{tally.mean('loss'):.3f}", lr=f"{lr:.4f}")
            if it + 1 < steps and stop.requested():  # the last step falls through to the epoch's own checkpoint
                tally.raise_if_diverged(cfg["name"], epoch)  # never checkpoint a diverged state
                checkpoint.save(last, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                                       "method": method.state_dict(), "epoch": epoch - 1, "history": history,
                                       "best": best, "config_hash": h, "step_rows": step_rows,
                                       "partial": partial_state(epoch, it + 1, tally.state_dict(),
                                                              inst_log.partial() if inst_log else None, dev)})
                _write_logs(out, history, step_rows)
                raise Preempted(f"run {cfg['name']}: stopped by {stop.requested()} at epoch {epoch + 1}, "
                                f"step {it + 1}/{steps}; {last} resumes it", reason=stop.requested())
        tally.raise_if_diverged(cfg["name"], epoch)  # before anything of this epoch is saved
        step_rows.extend(tally.step_rows())
        row = {"epoch": epoch + 1, "lr": lr, "seconds": round(time.time() - t0, 3),
               **tally.means(), **method.epoch_stats()}
        if eval_logs is not None:  # eval mode, own generators: the training stream is untouched
            row.update(eval_logs.run_epoch(model, out, epoch_seed=es, device=dev))
        if _selects(cfg["selection"], epoch + 1, epochs):
            # a log of the same split and protocol already attacked this epoch's model: no second attack
            # a log covers the split's first images, never an index list of it
            reusable = eval_logs is not None and not cfg["data"].get("eval_indices")
            score = eval_logs.selection_score(cfg["selection"]) if reusable else None
            if score is None:
                score = _selection_score(model, cfg, data, dev, es)
            if score is not None:
                row["selection_" + cfg["selection"]["protocol"]] = score
                if score > best["score"] or (score == best["score"] and cfg["selection"]["ties"] == "latest"):
                    best = {"score": score, "epoch": epoch + 1}
                    checkpoint.save(out / "best.pt", {"model": model.state_dict(), "epoch": epoch + 1,
                                                      "score": score, "config_hash": h})
        history.append(row)
        say(epoch_line(cfg["name"], row, epochs, history, cfg["selection"].get("protocol"), best))
        if epoch + 1 in _snapshot_epochs(cfg, epochs):
            checkpoint.save(out / "checkpoints" / f"epoch_{epoch + 1}.pt",
                            {"model": model.state_dict(), "epoch": epoch + 1, "config_hash": h})
        if inst_log is not None:
            inst_log.end_epoch(out)
        checkpoint.save(last, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                               "method": method.state_dict(), "epoch": epoch, "history": history,
                               "best": best, "config_hash": h, "step_rows": step_rows})
        _write_logs(out, history, step_rows)
        if epoch + 1 < epochs and stop.requested():
            raise Preempted(f"run {cfg['name']}: stopped by {stop.requested()} after epoch {epoch + 1}; "
                            f"{last} resumes it", reason=stop.requested())
    _write_logs(out, history, step_rows)  # a kill after the last checkpoint may have left them behind
    if best["epoch"] is None:  # no selection rule: the last epoch is the one evaluated
        checkpoint.save(out / "best.pt", {"model": model.state_dict(), "epoch": epochs, "score": None,
                                          "config_hash": h})
        best = {"score": None, "epoch": epochs}
    summary = {"run": out.name, "config_hash": h, "scale": cfg["scale"], "epochs": epochs,
               "best": best, "selection": cfg["selection"], "final": history[-1] if history else {},
               "data": data["provenance"], "git_commit": git_commit(),
               "perf": fast.provenance(pf, dev, optimizer_impl=sgd_impl),
               "data_placement": data["placement"].as_dict(),
               "provenance": runtime_provenance(dev, seed=cfg["seed"], scale=cfg["scale"])}
    io.write_json(done, summary)
    return summary


__all__ = ["train"]
