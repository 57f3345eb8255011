"""The `reproduce` command line: what Snakemake rules call, and what users run by hand."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

from .errors import ReproduceError

Handler = Callable[[argparse.Namespace], int]


def default_data_root() -> str:
    return os.environ.get("REPRODUCE_DATA_DIR", "data")


def _cmd_train(args: argparse.Namespace) -> int:
    from . import io
    from .train import train

    if args.config:
        cfg = io.read_yaml(args.config)
        if not isinstance(cfg, dict):
            raise ReproduceError(f"{args.config}: a run config must be a YAML mapping")
    elif args.paper and args.run:
        cfg = _spec_run_config(args)
    else:
        raise ReproduceError("train needs --config FILE, or --paper P --run NAME [--scale S]")
    summary = train(cfg, args.out, data_root=args.data_root, device=args.device, progress=not args.no_progress,
                    allow_cpu=args.allow_cpu)
    print(f"trained {summary['run']}: best epoch {summary['best']['epoch']} score {summary['best']['score']}")
    return 0


def _spec_run_config(args: argparse.Namespace) -> dict:
    from pathlib import Path

    from .config import run_id
    from .pipeline.scales import load_scale
    from .pipeline.spec import load_spec

    spec = load_spec(Path("pipelines") / args.paper / "spec.yaml")
    cfg = spec.run_config(args.run, load_scale(args.scale))
    # the run directory is named by the config hash: refuse to mix configs in one directory
    if Path(args.out).name.startswith(cfg["name"] + "-") and Path(args.out).name != run_id(cfg):
        raise ReproduceError(f"{args.out}: this directory name does not match run id {run_id(cfg)}; "
                             "the spec changed since the DAG was planned")
    return cfg


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from . import io
    from .config import config_hash
    from .data import load_split
    from .evaluate import evaluate
    from .pipeline.provenance import git_commit, runtime_provenance
    from .train.setup import build_from_run_dir, select_device

    run_cfg = io.read_yaml(Path(args.run) / "config.yaml") if (Path(args.run) / "config.yaml").exists() else {}
    dev = select_device(args.device, scale=run_cfg.get("scale"), allow_cpu=args.allow_cpu)
    cfg, model, meta = build_from_run_dir(args.run, args.data_root, dev, f"{args.checkpoint}.pt")
    split = args.split or cfg["data"]["eval_split"]
    images, labels = load_split(cfg["data"]["primary"], split, args.data_root)
    t0 = time.time()
    res = evaluate(model, images, labels, args.protocol, device=dev, batch_size=args.batch_size,
                   seed=args.seed, n=args.n)
    # a scale may run a cheaper protocol in place of the requested one: both are recorded
    res["protocol_run"] = args.protocol
    res["protocol"] = args.label or args.protocol
    res.update({"run": Path(args.run).name, "config_hash": config_hash(cfg), "scale": cfg["scale"],
                "checkpoint": args.checkpoint, "checkpoint_epoch": meta.get("epoch"),
                "selection": cfg["selection"], "split": split, "dataset": cfg["data"]["primary"],
                "wall_seconds": round(time.time() - t0, 3), "git_commit": git_commit(),
                "provenance": runtime_provenance(dev, seed=args.seed, scale=cfg["scale"])})
    io.write_json(args.out, res)
    print(f"{res['run']} {args.protocol}: {res['accuracy']:.2f}% of {res['n']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="reproduce", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train (or resume) one run")
    t.add_argument("--config", help="run config (YAML)")
    t.add_argument("--paper", help="take the run from pipelines/<paper>/spec.yaml ...")
    t.add_argument("--run", help="... this run name ...")
    t.add_argument("--scale", default="paper", help="... at this scale")
    t.add_argument("--out", required=True, help="run directory")
    t.add_argument("--data-root", default=default_data_root())
    t.add_argument("--device", default="auto")
    t.add_argument("--allow-cpu", action="store_true", help="let --device auto fall back to CPU at a paper scale")
    t.add_argument("--no-progress", action="store_true")
    t.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    t.set_defaults(func=_cmd_train)

    e = sub.add_parser("evaluate", help="evaluate a trained run under a named protocol")
    e.add_argument("--run", required=True, help="run directory")
    e.add_argument("--protocol", required=True)
    e.add_argument("--out", required=True, help="JSON file to write")
    e.add_argument("--label", default=None, help="protocol requested, when --protocol is a scale's stand-in")
    e.add_argument("--checkpoint", default="best", choices=("best", "last"))
    e.add_argument("--split", default=None)
    e.add_argument("--n", type=int, default=None, help="first n examples only")
    e.add_argument("--batch-size", type=int, default=256)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--data-root", default=default_data_root())
    e.add_argument("--device", default="auto")
    e.add_argument("--allow-cpu", action="store_true", help="let --device auto fall back to CPU at a paper scale")
    e.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    e.set_defaults(func=_cmd_evaluate)

    from .data import cli as data_cli

    data_cli.add_subcommands(sub)
    from .pipeline import cli as pipeline_cli

    pipeline_cli.add_subcommands(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "threads", None):
        import torch

        # Snakemake runs several jobs side by side: each keeps to the cores it was given
        torch.set_num_threads(args.threads)
    try:
        return int(args.func(args) or 0)
    except ReproduceError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
