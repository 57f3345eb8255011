"""The one training loop: a method supplies the loss of a batch, observers record, the loop does the rest.

Everything a resumed run needs is in ``last.pt``; randomness is re-derived from
(seed, epoch), so a run killed at any point and restarted ends with exactly the
numbers of an uninterrupted run (on CPU, same thread count). What a run records
besides its metrics (per-instance and eval logs, snapshots, the selected ``best.pt``)
and how it starts (``init``) are observers its config declares (reproduce/train/observers/).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

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
from ..provenance import git_commit, runtime_provenance
from .schedule import lr_at, momentum_at
from .midepoch import partial_state, set_rng_state
from .run_data import load_run_data
from .setup import build_for_run, select_device
from .optim import make_optimizer
from .observers import observers_for
from .refs import RunReferences, Upstream
from .state import TrainRun, epoch_seed
from .stop import Preempted, StopRequest
from .tally import EpochTally
from .timing import timing_summary
from .transfer import trainable_parameters

DONE = "done.json"


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
    from ..config.imports import imported

    if imported(resolve_run(raw_cfg)):  # an external checkpoint: verified and converted, not trained
        from .imported import import_run

        return import_run(raw_cfg, out_dir, data_root)
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
    if (out / DONE).exists():
        return json.loads((out / DONE).read_text())
    dev = select_device(device, scale=cfg["scale"], allow_cpu=allow_cpu, comparable=comparable)
    run = TrainRun(cfg=cfg, out=out, config_hash=config_hash(cfg), device=dev, data_root=data_root,
                   upstream=upstream, resuming=(out / "last.pt").exists(), observers=observers_for(cfg))
    sgd_impl = _set_up(run)
    start, partial = _resume(run)
    for epoch in range(start, run.epochs):
        _train_epoch(run, epoch, partial if partial is not None and partial["epoch"] == epoch else None,
                     stop, progress)
        partial = None
    _write_logs(out, run.history, run.step_rows)  # a kill after the last checkpoint may have left them behind
    run.observers.call("on_end", run)
    return _finish(run, sgd_impl)


def _set_up(run: TrainRun) -> str:
    """Data, method, model and optimizer of ``run``, then its directory; returns the SGD implementation."""
    cfg, dev = run.cfg, run.device
    run.observers.call("on_setup", run)
    run.data = data = load_run_data(cfg, run.data_root, dev, runs_dir=run.upstream)
    # one line per process start: a run streamed from host memory is slower, and the log says why
    print(f"run {cfg['name']}: {data['placement'].summary()}", file=sys.stderr, flush=True)
    ctx = TrainContext(cfg=cfg, device=dev, num_classes=data["num_classes"], datasets=data["train"],
                       steps_per_epoch=data["steps_per_epoch"], extra={"data_root": str(run.data_root)},
                       refs=RunReferences(run.upstream, run.data_root, dev))
    run.method = METHODS.get(cfg["method"]["name"], where="method.name")(cfg, ctx)
    torch.manual_seed(int(cfg["seed"]))  # weight init depends on the seed only
    run.model = build_for_run(cfg, data, dev, heads=run.method.heads())
    run.observers.call("on_model", run)  # transfer loads its source's weights and freezes the trunk here
    run.method.attach(run.model)
    pf = cfg["perf"]
    fast.set_backends(pf, dev)
    run.step_model = fast.prepare_model(run.model, pf)  # checkpoints keep saving `model` itself
    # only now that data, method and model are known good does the run directory appear
    run.out.mkdir(parents=True, exist_ok=True)
    io.write_yaml(run.out / "config.yaml", cfg)
    run.observers.call("on_start", run)
    run.optimizer, sgd_impl = make_optimizer(trainable_parameters(run.model), cfg["optim"], pf, dev)
    return sgd_impl


def _resume(run: TrainRun) -> tuple[int, dict[str, Any] | None]:
    """The first epoch to train and, when ``last.pt`` was written inside an epoch, its ``partial`` state."""
    if not run.resuming:
        return 0, None
    ck = checkpoint.load(run.last, run.device)
    if ck["config_hash"] != run.config_hash:
        raise ConfigError(f"{run.last}: checkpoint belongs to config {ck['config_hash']}, not {run.config_hash}; "
                          "remove the run directory or use another --out")
    run.model.load_state_dict(ck["model"])
    run.optimizer.load_state_dict(ck["optimizer"])
    run.method.load_state_dict(ck["method"])
    run.history, run.step_rows = ck["history"], ck.get("step_rows", [])
    run.observers.call("load_state_dict", run, ck)
    partial = ck.get("partial")
    # the method state was saved at the stop step, after that epoch's start_epoch ran
    return ck["epoch"] + 1, None if partial is None else {**partial, "method": ck["method"]}


def _checkpoint(run: TrainRun, epoch: int, partial: dict[str, Any] | None = None) -> None:
    """``last.pt`` after 0-based ``epoch``, with ``partial`` when it is taken inside the next one."""
    payload = {"model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
               "method": run.method.state_dict(), "epoch": epoch, "history": run.history,
               **run.observers.state_dict(run), "config_hash": run.config_hash, "step_rows": run.step_rows}
    checkpoint.save(run.last, payload if partial is None else {**payload, "partial": partial})
    _write_logs(run.out, run.history, run.step_rows)


def _train_epoch(run: TrainRun, epoch: int, partial: dict[str, Any] | None, stop: StopRequest,
                 progress: bool) -> None:
    """One epoch from its first step, or from where ``partial`` (a mid-epoch checkpoint of it) stopped."""
    es = run.epoch_seed(epoch)
    torch.manual_seed(es)
    np.random.seed(es)
    run.method.start_epoch(run.model, epoch)
    run.model.train()
    t0, tally = time.time(), EpochTally(run.device)
    run.observers.call("on_epoch_start", run, epoch)
    first = 0
    if partial is not None:
        run.method.load_state_dict(partial["method"])
        tally.load_state_dict(partial["tally"])
        run.observers.call("load_partial", run, partial)
        set_rng_state(partial["rng"], run.device)
        first = int(partial["step"])
    lr = _steps(run, epoch, first, tally, stop, progress)
    tally.raise_if_diverged(run.cfg["name"], epoch)  # before anything of this epoch is saved
    run.step_rows.extend(tally.step_rows())
    row = {"epoch": epoch + 1, "lr": lr, "seconds": round(time.time() - t0, 3),
           **tally.means(), **run.method.epoch_stats()}
    run.observers.call("on_epoch_end", run, epoch, row)
    run.history.append(row)
    say(epoch_line(run.cfg["name"], row, run.epochs, run.history, run.cfg["selection"].get("protocol"), run.best))
    _checkpoint(run, epoch)
    if epoch + 1 < run.epochs and stop.requested():
        raise Preempted(f"run {run.cfg['name']}: stopped by {stop.requested()} after epoch {epoch + 1}; "
                        f"{run.last} resumes it", reason=stop.requested())


def _batches(run: TrainRun, epoch: int, first: int) -> Iterable[Any]:
    """The epoch's batches from batch ``first`` on: a pure function of (seed, epoch)."""
    cfg, d = run.cfg, run.cfg["data"]
    primary = run.data["train"][d["primary"]]
    if d.get("composite"):
        from ..data.feeding.composite import composite_batches

        return composite_batches(primary, run.data["train"]["composite"], d["composite"], int(cfg["batch_size"]),
                                 seed=cfg["seed"], epoch=epoch, augment=bool(d["augment"]), pad=int(d["pad"]),
                                 start_batch=first, drop_last=bool(d["drop_last"]))
    from ..data import iterate

    return iterate(primary, int(cfg["batch_size"]), shuffle=True, augment=bool(d["augment"]), pad=int(d["pad"]),
                   seed=cfg["seed"], epoch=epoch, drop_last=bool(d["drop_last"]), rotate=float(d["rotate"]),
                   color_jitter=d["color_jitter"], start_batch=first)


def _steps(run: TrainRun, epoch: int, first: int, tally: EpochTally, stop: StopRequest, progress: bool) -> float:
    """The epoch's optimizer steps from batch ``first``; returns the last step's learning rate."""
    cfg, pf, opt, name = run.cfg, run.cfg["perf"], run.optimizer, run.cfg["name"]
    epochs, steps, every = run.epochs, run.data["steps_per_epoch"], int(cfg["perf"]["sync_every"])
    bar = tqdm(_batches(run, epoch, first), total=steps, initial=first, desc=f"{name} epoch {epoch + 1}/{epochs}",
               disable=not progress, leave=False)
    for it, batch in enumerate(bar, start=first):
        lr = lr_at(cfg["schedule"], float(cfg["optim"]["lr"]), epochs, epoch + run.epoch_offset, it, steps)
        mom = momentum_at(cfg["schedule"], epochs, epoch, it, steps)
        for g in opt.param_groups:
            g["lr"] = lr
            if mom is not None:
                g["momentum"] = mom
        if pf["channels_last"]:
            batch = dataclasses.replace(batch, x=fast.prepare_input(batch.x, pf))
        with fast.autocast(pf, run.device):
            outp = run.method.step(run.step_model, batch, epoch, it)
        # no host sync per step: the NaN flag is read every `sync_every` steps and at epoch end
        tally.watch(outp.loss, it)
        if every == 1:  # the synchronous path stops before a bad batch updates the weights
            tally.raise_if_diverged(name, epoch)
        opt.zero_grad(set_to_none=True)
        outp.loss.backward()
        opt.step()
        with fast.autocast(pf, run.device):  # logs a method takes from the updated model (IAT)
            run.method.after_step(run.step_model, batch, epoch, it, outp)
        tally.add({"loss": outp.loss, **outp.stats}, int(batch.y.shape[0]))
        run.observers.call("on_step", run, epoch, it, batch, outp)
        if outp.step_log is not None:
            tally.log_row({"epoch": epoch + 1, "step": epoch * steps + it + 1, **outp.step_log})
        if (it + 1) % every == 0:
            if every > 1:
                tally.raise_if_diverged(name, epoch)
            if progress:
                bar.set_postfix(loss=f"{tally.mean('loss'):.3f}", lr=f"{lr:.4f}")
        if it + 1 < steps and stop.requested():  # the last step falls through to the epoch's own checkpoint
            tally.raise_if_diverged(name, epoch)  # never checkpoint a diverged state
            _checkpoint(run, epoch - 1, partial_state(epoch, it + 1, tally.state_dict(),
                                                      run.observers.partial_state_dict(run), run.device))
            raise Preempted(f"run {name}: stopped by {stop.requested()} at epoch {epoch + 1}, "
                            f"step {it + 1}/{steps}; {run.last} resumes it", reason=stop.requested())
    return lr


def _finish(run: TrainRun, sgd_impl: str) -> dict[str, Any]:
    """``done.json``: what the run was, where it ended and what it ran on."""
    cfg, data, pf = run.cfg, run.data, run.cfg["perf"]
    summary = {"run": run.out.name, "config_hash": run.config_hash, "scale": cfg["scale"], "epochs": run.epochs,
               "best": run.best, "selection": cfg["selection"], "final": run.history[-1] if run.history else {},
               "data": data["provenance"], "git_commit": git_commit(),
               "perf": fast.provenance(pf, run.device, optimizer_impl=sgd_impl),
               "data_placement": data["placement"].as_dict(),
               "provenance": runtime_provenance(run.device, seed=cfg["seed"], scale=cfg["scale"])}
    # the measured hours (BiaMAT Table 11); done.json is never hashed, so run ids stay as they were
    summary.update(timing_summary(run.history, run.epochs, summary["provenance"]))
    if run.epoch_offset:  # schedule.continue_from_init: where in the global schedule the run started
        summary["schedule_epoch_offset"] = run.epoch_offset
    if cfg.get("import"):  # a scale without the file trained the recipe in its place: say so
        summary["import"] = {**cfg["import"], "note": "a stand-in trained at this scale, not the imported file"}
    io.write_json(run.out / DONE, summary)
    return summary


__all__ = ["epoch_seed", "train"]
