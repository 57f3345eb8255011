"""The `reproduce` command line: what Snakemake rules call, and what users run by hand."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable, Sequence

from .errors import EXIT_PREEMPTED, Preempted, ReproduceError

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
    from .train.stop import StopRequest

    # the walltime is a SLURM job's limit: outside a job (a local run) nothing ends the run early
    wall = args.walltime_min if os.environ.get("SLURM_JOB_ID") else None
    summary = train(cfg, args.out, data_root=args.data_root, device=args.device, progress=not args.no_progress,
                    allow_cpu=args.allow_cpu, stop=StopRequest(wall, args.stop_margin_min))
    print(f"trained {summary['run']}: best epoch {summary['best']['epoch']} score {summary['best']['score']}")
    return 0


def _spec_run_config(args: argparse.Namespace) -> dict:
    from pathlib import Path

    from .config import run_id
    from .pipeline.nodes import Graph
    from .pipeline.scales import load_scale
    from .pipeline.spec import load_all

    specs = load_all()
    if args.paper not in specs:
        raise ReproduceError(f"unknown paper {args.paper!r}; known: {', '.join(sorted(specs))}")
    if len(specs[args.paper].members(args.run, "--run")) != 1:
        raise ReproduceError(f"--run {args.run}: a seed group; name one of its runs ({args.run}-s<seed>)")
    graph = Graph(specs, load_scale(args.scale))
    cfg = graph.runs[graph.run_id(args.paper, args.run)].cfg
    # the run directory is named by the config hash: refuse to mix configs in one directory
    if Path(args.out).name.startswith(cfg["name"] + "-") and Path(args.out).name != run_id(cfg):
        raise ReproduceError(f"{args.out}: this directory name does not match run id {run_id(cfg)}; "
                             "the spec changed since the DAG was planned")
    return cfg


def _eval_outputs(args: argparse.Namespace) -> tuple[list[str], list[str] | None, list[Path], list[Path]]:
    """Protocols, labels, one result JSON per requested protocol (named as the per-protocol rule
    names it) and the per-batch state file beside each."""
    from .evaluate.job import split_list
    from .evaluate.state import state_path_for

    protocols = split_list(args.protocol, "--protocol")
    labels = split_list(args.label, "--label") if args.label else None
    if (args.out is None) == (args.out_dir is None):
        raise ReproduceError("evaluate needs exactly one of --out FILE (one protocol) or --out-dir DIR")
    if args.out is not None and len(protocols) > 1:
        raise ReproduceError(f"--protocol {args.protocol}: several protocols need --out-dir, not --out")
    outs = [Path(args.out)] if args.out else [Path(args.out_dir) / f"{lab}.json" for lab in labels or protocols]
    return protocols, labels, outs, [state_path_for(o) for o in outs]


def _cmd_evaluate(args: argparse.Namespace) -> int:
    if args.robustbench is not None or args.run is None:
        return _cmd_evaluate_zoo(args)
    from . import io
    from .evaluate.job import evaluate_run

    protocols, labels, outs, states = _eval_outputs(args)
    results = evaluate_run(args.run, protocols, labels, data_root=args.data_root, device=args.device,
                           checkpoint=args.checkpoint, split=args.split, n=args.n,
                           batch_size=args.batch_size, seed=args.seed, allow_cpu=args.allow_cpu,
                           state_paths=states)
    for res, path in zip(results, outs):
        io.write_json(path, res)
        print(f"{res['run']} {res['protocol_run']}: {res['accuracy']:.2f}% of {res['n']}")
    if args.index:
        if args.out_dir is None:
            raise ReproduceError("--index lists the files of --out-dir; give --out-dir")
        # written after every protocol's JSON: a present index means a complete job
        io.write_json(args.index, {"run": results[0]["run"], "scale": results[0]["scale"],
                                   "protocols": {r["protocol"]: f"{r['protocol']}.json" for r in results},
                                   "directory": str(args.out_dir)})
    for st in states:  # progress is kept until the job's last output exists
        st.unlink(missing_ok=True)
    return 0


def _cmd_evaluate_zoo(args: argparse.Namespace) -> int:
    """``evaluate --robustbench NAME``: a RobustBench zoo model in place of a trained run."""
    from . import io
    from .evaluate.robustbench import evaluate_zoo, zoo_summary

    if (args.run is None) == (args.robustbench is None):
        raise ReproduceError("evaluate needs exactly one of --run DIR (a trained run) or --robustbench NAME")
    protocols, labels, outs, states = _eval_outputs(args)
    if args.index and args.out_dir is None:
        raise ReproduceError("--index lists the files of --out-dir; give --out-dir")
    results = evaluate_zoo(args.robustbench, protocols, args.data_root, labels=labels, dataset=args.rb_dataset,
                           threat_model=args.rb_threat, model_dir=args.model_dir, model_info=args.rb_model_info,
                           device=args.device, split=args.split, n=args.n, batch_size=args.batch_size,
                           seed=args.seed, state_paths=states)
    for res, path in zip(results, outs):
        io.write_json(path, res)
        print(zoo_summary(res))
    if args.index:
        io.write_json(args.index, {"run": results[0]["run"], "scale": None, "directory": str(args.out_dir),
                                   "protocols": {r["protocol"]: f"{r['protocol']}.json" for r in results}})
    for st in states:
        st.unlink(missing_ok=True)
    return 0


def _cmd_analyze(args: argparse.Namespace) -> int:
    from .analyses.runner import run_analysis

    res = run_analysis(args.paper, args.analysis, args.scale, args.work_dir, args.data_root, args.device)
    print(f"analysis {res.get('id')}: {len(res.get('values', {}))} values")
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
    t.add_argument("--walltime-min", type=float, default=None,
                   help="inside a SLURM job: checkpoint and exit 75 this many minutes after start, less the margin")
    t.add_argument("--stop-margin-min", type=float, default=5.0, help="minutes kept free before the walltime")
    t.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    t.set_defaults(func=_cmd_train)

    e = sub.add_parser("evaluate", help="evaluate a trained run under a named protocol")
    e.add_argument("--run", default=None, help="run directory (or --robustbench NAME)")
    e.add_argument("--protocol", required=True, help="a protocol, or a comma list evaluated in one job")
    e.add_argument("--out", default=None, help="JSON file to write (one protocol)")
    e.add_argument("--out-dir", default=None, help="directory for <label>.json per protocol")
    e.add_argument("--index", default=None, help="with --out-dir: JSON listing what was written, written last")
    e.add_argument("--label", default=None,
                   help="protocol(s) requested, when --protocol is a scale's stand-in (comma list, same order)")
    e.add_argument("--checkpoint", default="best", choices=("best", "last"))
    e.add_argument("--split", default=None)
    e.add_argument("--n", type=int, default=None, help="first n examples only")
    e.add_argument("--batch-size", type=int, default=256)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--data-root", default=default_data_root())
    e.add_argument("--device", default="auto")
    e.add_argument("--allow-cpu", action="store_true", help="let --device auto fall back to CPU at a paper scale")
    e.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    # a RobustBench model-zoo checkpoint instead of --run: checks the evaluation stack against the leaderboard
    e.add_argument("--robustbench", default=None, metavar="NAME", help="RobustBench zoo model to evaluate")
    e.add_argument("--rb-dataset", default="cifar10", choices=("cifar10", "cifar100"), help="its zoo dataset")
    e.add_argument("--rb-threat", default="Linf", choices=("Linf", "L2", "corruptions"), help="its threat model")
    e.add_argument("--model-dir", default="models", help="robustbench's model_dir: <dir>/<dataset>/<threat>/NAME.pt")
    e.add_argument("--rb-model-info", default="model_info",
                   help="robustbench's model_info directory (leaderboard numbers), if you have a checkout")
    e.set_defaults(func=_cmd_evaluate)

    a = sub.add_parser("analyze", help="compute one analysis node of a paper spec")
    a.add_argument("--paper", required=True)
    a.add_argument("--analysis", required=True, help="analysis name in the spec")
    a.add_argument("--scale", default="paper")
    a.add_argument("--work-dir", default="work", help="the workflow's work_dir (runs under <work_dir>/<scale>)")
    a.add_argument("--data-root", default=default_data_root())
    a.add_argument("--device", default="auto")
    a.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    a.set_defaults(func=_cmd_analyze)

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
    except Preempted as e:  # not an error: a requeue (or a retry) resumes from the checkpoint it wrote
        print(f"preempted: {e}", file=sys.stderr, flush=True)
        from .train.requeue import requeue_self

        said = requeue_self(e.reason)  # inside a SLURM job: chain by requeueing the same job
        if said:
            print(said, file=sys.stderr, flush=True)
        return EXIT_PREEMPTED
    except ReproduceError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a full disk or read-only directory outside the atomic writers
        where = f"{e.filename}: " if e.filename else ""
        print(f"error: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
