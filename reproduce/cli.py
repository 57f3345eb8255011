"""The `reproduce` command line: what Snakemake rules call, and what users run by hand."""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Callable, Sequence

from .errors import EXIT_PREEMPTED, Preempted, ReproduceError

Handler = Callable[[argparse.Namespace], int]


def default_data_root() -> str:
    return os.environ.get("REPRODUCE_DATA_DIR") or "data"


def _data_dir(p: argparse.ArgumentParser) -> None:
    """``--data-dir`` everywhere (default: $REPRODUCE_DATA_DIR, else ./data); ``--data-root`` is the
    old spelling, still read but not shown."""
    p.add_argument("--data-dir", dest="data_root", default=default_data_root(),
                   help="prepared datasets (default: $REPRODUCE_DATA_DIR, else ./data)")
    p.add_argument("--data-root", dest="data_root", help=argparse.SUPPRESS)


def _cmd_train(args: argparse.Namespace) -> int:
    from . import io
    from .train import train

    if (args.plan is None) == (args.config is None):
        raise ReproduceError("train needs exactly one of --plan FILE (a DAG node) or --config FILE --out DIR")
    from .train.stop import StopRequest

    # the walltime is a SLURM job's limit: outside a job (a local run) nothing ends the run early
    wall = args.walltime_min if os.environ.get("SLURM_JOB_ID") else None
    stop = StopRequest(wall, args.stop_margin_min)
    common = {"data_root": args.data_root, "device": args.device, "progress": not args.no_progress, "stop": stop}
    if args.plan:
        from .jobs.train import train_planned

        summary = train_planned(args.plan, allow_cpu=args.allow_cpu, **common)
    else:
        if not args.out:
            raise ReproduceError("train --config needs --out DIR (the run directory)")
        cfg = io.read_yaml(args.config)
        if not isinstance(cfg, dict):
            raise ReproduceError(f"{args.config}: a run config must be a YAML mapping")
        summary = train(cfg, args.out, allow_cpu=args.allow_cpu, **common)
    proto = (summary.get("selection") or {}).get("protocol") or "last epoch, no selection protocol"
    print(f"trained {summary['run']}: best epoch {summary['best']['epoch']} score {summary['best']['score']} ({proto})")
    return 0


def _eval_outputs(args: argparse.Namespace) -> tuple[list[str], list[str] | None, list[Path], list[Path]]:
    """Protocols, labels, one result JSON per requested protocol (named as the per-protocol rule
    names it) and the per-batch state file beside each."""
    from .jobs.evaluate import split_list
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
    if args.plan is not None:
        if args.run or args.robustbench or args.protocol:
            raise ReproduceError("evaluate --plan FILE takes its run and protocols from the plan; "
                                 "drop --run, --robustbench and --protocol")
        from .jobs.evaluate import evaluate_planned

        evaluate_planned(args.plan, data_root=args.data_root, device=args.device, allow_cpu=args.allow_cpu,
                         seed=args.seed)
        return 0
    if args.protocol is None:
        raise ReproduceError("evaluate needs --protocol (or --plan FILE)")
    for flag, v in (("--n", args.n), ("--batch-size", args.batch_size)):
        if v is not None and v < 1:  # a negative n once evaluated all but the last |n| images
            raise ReproduceError(f"{flag} must be a positive number of images, got {v}")
    if args.robustbench is not None or args.run is None:
        return _cmd_evaluate_zoo(args)
    from . import io
    from .jobs.evaluate import evaluate_run

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
    from .evaluate import PROTOCOLS
    from .jobs.zoo import evaluate_zoo, zoo_summary
    from .pipeline.papers import register_spec_protocols

    if (args.run is None) == (args.robustbench is None):
        raise ReproduceError("evaluate needs exactly one of --run DIR (a trained run) or --robustbench NAME")
    protocols, labels, outs, states = _eval_outputs(args)
    if args.index and args.out_dir is None:
        raise ReproduceError("--index lists the files of --out-dir; give --out-dir")
    if any(p not in PROTOCOLS for p in protocols):  # a paper's protocol, declared in its spec
        register_spec_protocols()
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
    from .jobs.analyze import run_analysis

    res = run_analysis(args.plan, args.data_root, args.device)
    print(f"analysis {res.get('id')}: {len(res.get('values', {}))} values")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="reproduce", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train (or resume) one run")
    t.add_argument("--plan", help="the run's plan file (work/<scale>/plan/run/<run_id>.json, written by the DAG)")
    t.add_argument("--config", help="or a run config written by hand (YAML) ...")
    t.add_argument("--out", help="... and its run directory")
    _data_dir(t)
    t.add_argument("--device", default="auto")
    t.add_argument("--allow-cpu", action="store_true", help="let --device auto fall back to CPU at a paper scale")
    t.add_argument("--no-progress", action="store_true")
    t.add_argument("--walltime-min", type=float, default=None,
                   help="inside a SLURM job: checkpoint and exit 75 this many minutes after start, less the margin")
    t.add_argument("--stop-margin-min", type=float, default=5.0, help="minutes kept free before the walltime")
    t.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    t.set_defaults(func=_cmd_train)

    e = sub.add_parser("evaluate", help="evaluate a trained run under a named protocol")
    e.add_argument("--plan", default=None, help="an evaluation's plan file (written by the DAG): run, protocols, outputs")
    e.add_argument("--run", default=None, help="or a run directory (or --robustbench NAME) ...")
    e.add_argument("--protocol", default=None, help="... and a protocol, or a comma list evaluated in one job")
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
    _data_dir(e)
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

    a = sub.add_parser("analyze", help="compute one analysis node from its plan file")
    a.add_argument("--plan", required=True, help="the analysis's plan file (work/<scale>/plan/analysis/<id>.json)")
    _data_dir(a)
    a.add_argument("--device", default="auto")
    a.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    a.set_defaults(func=_cmd_analyze)

    from .data import cli as data_cli

    data_cli.add_subcommands(sub)
    from .pipeline import cli as pipeline_cli

    pipeline_cli.add_subcommands(sub)
    from .pipeline import models_cli

    models_cli.add_subcommands(sub)
    from .pipeline import report_cli

    report_cli.add_subcommands(sub)
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
    except (json.JSONDecodeError, csv.Error, tarfile.TarError, zipfile.BadZipFile, UnicodeDecodeError) as e:
        # a malformed file read outside the checked readers (reproduce/readback.py): still one line
        print(f"error: a file could not be read ({type(e).__name__}: {' '.join(str(e).split())[:200]}); "
              "delete the file the job names above and rerun it", file=sys.stderr)
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
