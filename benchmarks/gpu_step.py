"""Images/s of PGD-10 adversarial training on one GPU: the engine's fast path vs the papers' loop.

Rows, per model and batch size (Linf eps 8/255, step 2/255, PGD-10, attack in eval mode):
- naive:        as the papers' code: CPU DataLoader over a TensorDataset with torchvision
                transforms (RandomCrop(pad 4), flip), ``loss.backward()`` inside the attack
                (weight gradients computed and thrown away), fp32, ``.item()`` every step;
- engine fp32:  reproduce's loop body (GPU-resident uint8 data, on-device augmentation,
                input-only attack gradients, no per-step host sync), fp32 eager;
- engine fast:  the same plus bf16 autocast, channels_last, fused SGD, cudnn.benchmark
                (and torch.compile with ``--compile``);
- bound:        K x (forward + input-only backward) + (forward + full backward + SGD step)
                on a fixed batch, no data or attack logic: what a PGD-K AT step cannot beat.

Batch 128, then (``--max-batch``) the largest power-of-two multiple of it that the fast
engine fits in memory (doubling until OOM). Without CUDA, or with ``--cpu-smoke``, sizes
shrink (small CNN, 16x16 images, tiny batches) so tests exercise the code on a CPU.

``--epoch-timing CONFIG`` (a run YAML, or ``PAPER/RUN`` of a spec at ``--scale``) instead times ``--timing-steps`` steps of a run config's
method/model/batch on synthetic data of its dataset's shape, extrapolates one epoch and
prints the ``config/costs.yaml`` line (hours per pass-epoch on this GPU) to paste.

Last line: ``gpu speedup vs naive: X.XXx`` (engine fast / naive images/s at batch 128,
geometric mean over models).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
from pathlib import Path
from typing import Any, Callable

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import step_paths as sp  # noqa: E402

FAST = {"amp": "bf16", "channels_last": True, "fused_optimizer": True, "cudnn_benchmark": True,
        "sync_every": 50, "compile": False}
FP32 = {"amp": "none", "channels_last": False, "fused_optimizer": False, "cudnn_benchmark": False,
        "sync_every": 50, "compile": False}


def environment(device: torch.device) -> dict[str, Any]:
    env = {"device": str(device), "torch": torch.__version__, "cuda": torch.version.cuda,
           "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
           "python": platform.python_version(), "gpu": None}
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    return env


def measure(run: sp.Runner, batch: int, warmup: int, iters: int, reps: int) -> dict[str, float]:
    run(warmup)
    secs = statistics.median(run(iters) for _ in range(reps))
    return {"images_per_s": batch * iters / secs, "ms_per_step": 1000.0 * secs / iters}


def guarded(fn: Callable[[], dict[str, float]], device: torch.device) -> dict[str, float] | None:
    """A row's numbers, or None when it does not fit in memory."""
    try:
        return fn()
    except (torch.cuda.OutOfMemoryError, RuntimeError) as e:
        if not sp.is_oom(e):
            raise
        return None
    finally:
        sp.free(device)


def largest_batch(model: str, start: int, cap: int, size: int, classes: int, steps: int,
                  device: torch.device, perf: dict[str, Any]) -> int:
    """Double the batch from ``start`` while one fast engine step still fits."""
    best, b = start, start * 2
    while b <= cap:
        def attempt(b: int = b) -> dict[str, float]:
            run = sp.make_engine(sp.at_config(model, b, steps, perf), {"bench": sp.synthetic_split(b, size, classes)},
                                 classes, device)
            run(2)
            return {}
        if guarded(attempt, device) is None:
            break
        best, b = b, b * 2
    return best


def bench_model(model: str, batch: int, a: argparse.Namespace, device: torch.device, size: int,
                classes: int, fast: dict[str, Any], with_fp32: bool) -> list[dict[str, Any]]:
    n_images = max(batch * 4, 512 if device.type == "cuda" else batch * 2)
    split = sp.synthetic_split(n_images, size, classes)
    # the largest batch takes seconds per step: fewer timed steps keep a run within minutes
    w, n, reps = (a.warmup, a.iters, a.reps) if batch == a.batch else (1, a.big_iters, 2)
    m = lambda run: measure(run, batch, w, n, reps)  # noqa: E731
    cases: list[tuple[str, Callable[[], dict[str, float]]]] = [
        ("naive", lambda: m(sp.make_naive(model, split, classes, batch, a.steps, device, a.naive_workers))),
    ]
    if with_fp32:
        cases += [("engine fp32", lambda: m(sp.make_engine(sp.at_config(model, batch, a.steps, FP32),
                                                           {"bench": split}, classes, device))),
                  ("bound fp32", lambda: m(sp.make_bound(model, size, classes, batch, a.steps, device, FP32)))]
    cases += [("engine fast", lambda: m(sp.make_engine(sp.at_config(model, batch, a.steps, fast),
                                                       {"bench": split}, classes, device))),
              ("bound fast", lambda: m(sp.make_bound(model, size, classes, batch, a.steps, device, fast)))]
    if a.compile:
        comp = {**fast, "compile": True}
        cases.append(("engine fast+compile", lambda: m(sp.make_engine(sp.at_config(model, batch, a.steps, comp),
                                                                      {"bench": split}, classes, device))))
    rows = []
    for path, fn in cases:
        r = guarded(fn, device)
        rows.append({"model": model, "batch": batch, "path": path, **(r or {"images_per_s": None,
                                                                              "ms_per_step": None})})
        print(f"  {model:<10} batch {batch:<5} {path:<20} "
              + ("OOM" if r is None else f"{r['images_per_s']:9.1f} img/s {r['ms_per_step']:9.1f} ms/step"),
              flush=True)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'model':<10} {'batch':>6}  {'path':<20} {'img/s':>10} {'ms/step':>9} {'vs naive':>9}"]
    naive = {(r["model"], r["batch"]): r["images_per_s"] for r in rows if r["path"] == "naive"}
    for r in rows:
        base = naive.get((r["model"], r["batch"]))
        ips = r["images_per_s"]
        rel = f"{ips / base:8.2f}x" if ips and base else "      n/a"
        lines.append(f"{r['model']:<10} {r['batch']:>6}  {r['path']:<20} "
                     + (f"{ips:>10.1f} {r['ms_per_step']:>9.1f} {rel}" if ips else f"{'OOM':>10}"))
    return "\n".join(lines)


def speedups(rows: list[dict[str, Any]], batch: int) -> dict[str, float]:
    out = {}
    for model in dict.fromkeys(r["model"] for r in rows):
        get = {r["path"]: r["images_per_s"] for r in rows if r["model"] == model and r["batch"] == batch}
        best_fast = max((v for k, v in get.items() if k.startswith("engine fast") and v), default=None)
        if best_fast and get.get("naive"):
            out[model] = best_fast / get["naive"]
    return out


def main_bench(a: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    smoke = a.cpu_smoke or device.type != "cuda"
    if smoke:  # a CPU exercise of every code path, not a measurement
        models, batch, size, a.steps, a.iters, a.warmup, a.reps = ["small_cnn"], 8, 16, 2, 1, 1, 1
        a.batch, a.big_iters = batch, 1
        a.naive_workers, cap = 0, 16
        torch.set_num_threads(1)  # tiny tensors: threads only oversubscribe a shared CPU
    else:
        models, batch, size, cap = a.models.split(","), a.batch, 32, a.max_batch_cap
    env = environment(device)
    print(f"device: {env['gpu'] or 'cpu'}{' (smoke sizes)' if smoke else ''}; torch {env['torch']}, "
          f"CUDA {env['cuda']}, cuDNN {env['cudnn']}", flush=True)
    print(f"PGD-{a.steps} AT, Linf eps 8/255 step 2/255; {a.iters} timed steps x {a.reps} reps "
          f"(median) after {a.warmup} warm-up", flush=True)
    fast = {**FAST, "amp": "none"} if (device.type == "cpu" and not smoke) else dict(FAST)
    rows: list[dict[str, Any]] = []
    for model in models:
        rows += bench_model(model, batch, a, device, size, 10, fast, with_fp32=True)
        if a.max_batch or smoke:
            big = largest_batch(model, batch, cap, size, 10, a.steps, device, fast)
            if big > batch:
                rows += bench_model(model, big, a, device, size, 10, fast, with_fp32=False)
    sp_ = speedups(rows, batch)
    geo = math.exp(sum(math.log(v) for v in sp_.values()) / len(sp_)) if sp_ else float("nan")
    print()
    print(table(rows))
    for model, v in sp_.items():
        print(f"{model}: engine fast vs naive at batch {batch}: {v:.2f}x")
    result = {"environment": env, "smoke": smoke, "pgd_steps": a.steps, "fast_perf": fast, "rows": rows,
              "speedup_vs_naive": sp_, "speedup_vs_naive_geomean": geo}
    print(f"gpu speedup vs naive: {geo:.2f}x")
    return result


def main_epoch_timing(a: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    from reproduce import io
    from reproduce.config import resolve_run
    from reproduce.data.catalog import DATASETS
    from reproduce.pipeline.plan import _costs, passes_per_step

    from reproduce.pipeline.scales import load_scale

    if Path(a.epoch_timing).is_file():
        raw = io.read_yaml(a.epoch_timing)
        raw = load_scale(a.scale).apply(raw) if a.scale else raw
    else:  # PAPER/RUN: the run as `reproduce train --paper P --run R --scale S` would train it
        from reproduce.pipeline.nodes import run_config
        from reproduce.pipeline.papers import load_spec

        paper, _, name = a.epoch_timing.partition("/")
        raw = run_config(load_spec(ROOT / "pipelines" / paper / "spec.yaml"), name, load_scale(a.scale or "paper"))
    if a.amp:  # time the bf16 path of a run whose scale keeps fp32
        raw = {**raw, "perf": {**(raw.get("perf") or {}), "amp": a.amp}}
    cfg = resolve_run(raw, where=str(a.epoch_timing))
    costs = _costs()

    def shape(name: str) -> tuple[int, int]:
        info = DATASETS.get(name, where=f"{a.epoch_timing}: data")
        return int(info.image_size), int(info.num_classes)

    primary = cfg["data"]["primary"]
    size, classes = shape(primary)
    bs = int(cfg["batch_size"])
    n_train = int(cfg["data"]["n_train"] or costs["train_images"].get(primary, 50000))
    # a few batches' worth of synthetic images per split: speed does not depend on content
    splits = {primary: sp.synthetic_split(bs * 4, size, classes)}
    for aux in cfg["data"]["aux"]:
        s, c = shape(aux)
        splits[aux] = sp.synthetic_split(max(bs, int(cfg["method"].get("aux_batch_size", bs))) * 4, s, c)
    run = sp.make_engine(cfg, splits, classes, device, epoch=max(0, int(cfg["epochs"]) // 2))
    run(a.warmup)
    secs = run(a.timing_steps) / a.timing_steps
    steps_per_epoch = n_train // bs
    epoch_h = secs * steps_per_epoch / 3600
    factor = float(costs.get("method_factor", {}).get(cfg["method"]["name"], 1.0))
    per_pass = epoch_h / passes_per_step(cfg) / factor
    env = environment(device)
    print(f"device: {env['gpu'] or 'cpu'}; torch {env['torch']}, CUDA {env['cuda']}")
    print(f"{cfg['name']}: {cfg['method']['name']} {cfg['model']['name']} batch {bs}, perf {cfg['perf']}")
    print(f"{secs * 1000:.1f} ms/step, {bs / secs:.1f} img/s; epoch of {n_train} = {steps_per_epoch} steps "
          f"= {epoch_h * 60:.1f} min; {int(cfg['epochs'])} epochs = {epoch_h * int(cfg['epochs']):.2f} h")
    print(f"costs.yaml: gpus: {a.gpu_key}: hours_per_pass_epoch: {{{cfg['model']['name']}: {per_pass:.5f}}}")
    return {"environment": env, "run": cfg["name"], "config": cfg, "seconds_per_step": secs,
            "images_per_s": bs / secs, "steps_per_epoch": steps_per_epoch, "epoch_hours": epoch_h,
            "total_hours": epoch_h * int(cfg["epochs"]), "hours_per_pass_epoch": per_pass, "gpu_key": a.gpu_key}


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="resnet18,wrn-34-10")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10, help="PGD steps K")
    ap.add_argument("--iters", type=int, default=10, help="timed steps per rep")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--max-batch", action="store_true", help="also time the largest batch that fits")
    ap.add_argument("--max-batch-cap", type=int, default=8192)
    ap.add_argument("--big-iters", type=int, default=3, help="timed steps per rep at the largest batch")
    ap.add_argument("--compile", action="store_true", help="add an engine row with torch.compile")
    ap.add_argument("--naive-workers", type=int, default=4, help="DataLoader workers of the naive loop")
    ap.add_argument("--cpu-smoke", action="store_true", help="tiny sizes (automatic without CUDA)")
    ap.add_argument("--epoch-timing", default=None, metavar="CONFIG|PAPER/RUN",
                    help="time a run config (YAML file, or a spec run at --scale, default paper) instead")
    ap.add_argument("--scale", default=None, help="with --epoch-timing: apply this scale's overrides")
    ap.add_argument("--timing-steps", type=int, default=30)
    ap.add_argument("--amp", choices=("none", "bf16"), default=None, help="with --epoch-timing: override perf.amp")
    ap.add_argument("--gpu-key", default="h100", help="costs.yaml gpus key the printed line is for")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse(argv)
    from reproduce.train.setup import select_device

    # config/ and pipelines/ paths are relative to the repository root
    a.out = a.out and str(Path(a.out).resolve())
    if a.epoch_timing and Path(a.epoch_timing).is_file():
        a.epoch_timing = str(Path(a.epoch_timing).resolve())
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        device = select_device(a.device)
        result = main_epoch_timing(a, device) if a.epoch_timing else main_bench(a, device)
    finally:
        os.chdir(cwd)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(result, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
