"""Pipeline subcommands: list, plan, render, diff, prepare-data (what the Snakemake rules call)."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from ..errors import ConfigError, DatasetMissingError
from ..io import read_yaml

CONFIG = "config/config.yaml"


def workflow_config(args: argparse.Namespace) -> dict[str, Any]:
    cfg = read_yaml(CONFIG)
    for key in ("scale", "work_dir", "results_dir", "data_dir"):
        if getattr(args, key, None):
            cfg[key] = getattr(args, key)
    if getattr(args, "download", False):
        cfg["download"] = True
    return cfg


def _dag(args: argparse.Namespace):
    from .dag import Dag

    return Dag(workflow_config(args))


def _cmd_list(args: argparse.Namespace) -> int:
    from ..report.progress_status import natural_key

    dag = _dag(args)
    for paper, spec in dag.specs.items():
        print(f"{paper}: {spec.title} ({len(spec.runs)} runs, {len(spec.analyses)} analyses declared)")
        for a in sorted(spec.artifacts.values(), key=lambda a: natural_key(a.name)):
            built = "built" if os.path.exists(dag.artifact_outputs(a)[0]) else "not built"
            print(f"  {a.name:<14} {a.kind:<10} {built:<10} {a.title}")
            if args.targets:
                for t in dag.artifact_outputs(a):
                    print(f"      {t}")
    return 0


def _cmd_plan(args: argparse.Namespace) -> int:
    from .plan import format_plan, plan

    p = plan(_dag(args), args.targets, gpu_mem_gib=args.gpu_mem_gib)
    print(json.dumps(p, indent=2) if args.json else format_plan(p))
    return 0


def _artifact_plan(args: argparse.Namespace) -> tuple[str, Any]:
    """The plan file a render or diff reads: ``--plan`` (what the rules pass), or for a command typed by
    hand, ``--paper``/``--artifact`` planned here first (the job itself reads only the plan)."""
    if args.plan:
        if args.paper or args.artifact:
            raise ConfigError("give --plan FILE or --paper P --artifact A, not both")
        return args.plan, None
    if not (args.paper and args.artifact):
        raise ConfigError(f"{args.command} needs --plan FILE (written by the DAG) or --paper P --artifact A")
    dag = _dag(args)
    art = dag.artifact(args.paper, args.artifact)
    dag.write_plans()
    return dag.plan_path("artifact", f"{art.paper}/{art.name}"), dag


def _cmd_render(args: argparse.Namespace) -> int:
    from ..jobs.render import render

    plan, _ = _artifact_plan(args)
    frame = render(plan, args.out)
    print(f"wrote {args.out} ({frame.scale} scale)")
    return 0


def _cmd_diff(args: argparse.Namespace) -> int:
    from ..readback import read_plan
    from ..jobs.diff import diff_planned

    plan, dag = _artifact_plan(args)
    doc = read_plan(plan, "artifact")
    csv_out = [o for o in doc["outputs"] if o.endswith(".csv") and not o.endswith((".diff.csv", ".claims.csv"))]
    regenerated = args.regenerated or csv_out[0]
    out = args.out or regenerated[: -len(".csv")] + ".diff.csv"
    res = diff_planned(plan, regenerated, out)
    print(f"wrote {out}: " + ", ".join(f"{v} {k}" for k, v in sorted(res["counts"].items())))
    for c in res["claims"]:
        print(f"  claim {c['claim']}: published {c['published']}, reproduced {c['reproduced']}")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from ..report.progress_status import artifact_progress, format_progress
    from .status import write_status

    dag = _dag(args)
    if args.out:  # the verdict counts the `status` rule writes
        rows = write_status(dag, args.out)
        counts: dict[str, int] = {}
        for r in rows:
            counts[r["status"]] = counts.get(r["status"], 0) + 1
        print(f"wrote {args.out}: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    else:
        print(format_progress(artifact_progress(dag)))
    return 0


def _cmd_prepare(args: argparse.Namespace) -> int:
    """Make one dataset ready under the scale's data root: generate, verify or import."""
    from ..data import DATASETS, read_manifest

    dag = _dag(args)
    name, root = args.dataset, dag.data_root
    if name in DATASETS and DATASETS.get(name).generated:
        # generated from its catalog parameters alone: the same data at every scale, offline
        from ..data.importers import import_dataset

        import_dataset(name, root)
        print(f"{name}: generated under {root}")
        return 0
    if dag.scale.generated:
        spec = dag.scale.datasets.get(name)
        if spec is None:
            raise ConfigError(f"{dag.scale.path}: data.datasets has no entry for {name!r}")
        from ..data.generated.synthetic import write_generated

        # a stand-in for a catalog dataset has that dataset's split names (imgnet100: val, no test)
        heldout = DATASETS.get(name).eval_split if name in DATASETS else "test"
        others = [sp for sp in DATASETS.get(name).splits if sp not in ("train", heldout)] if name in DATASETS else []
        heldout = heldout or (others.pop(0) if others else "test")
        write_generated(name, root, num_classes=spec["classes"], image_size=spec["size"],
                        n_train=spec["n_train"], n_test=spec["n_test"], domain=spec["domain"],
                        related_to=spec.get("related_to"), relatedness=spec.get("relatedness", 0.0),
                        related_classes=spec.get("related_classes"), heldout_split=heldout,
                        contrast=spec.get("contrast", 1.0), extra_heldout=others, channels=spec.get("channels", 3))
        print(f"generated {name} under {root}")
        return 0
    DATASETS.get(name, where="prepare-data")
    folders = dag.scale.raw["data"].get("folders") if dag.scale.raw["data"]["source"] == "folders" else None
    if folders is not None:
        if name not in folders:
            raise ConfigError(f"{dag.scale.path}: data.folders has no entry for {name!r} (this scale imports "
                              f"{', '.join(sorted(folders)) or 'nothing'})")
        from ..data.importers import import_from_source

        print(f"{name}: prepared under {import_from_source(name, root, folders[name], str(dag.scale.path))}")
        return 0
    try:
        read_manifest(name, root)
        print(f"{name}: prepared under {root}")
        return 0
    except DatasetMissingError:
        if not dag.config.get("download"):
            raise
    from ..data.importers import import_dataset

    import_dataset(name, root, allow_download=True)
    return 0


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = -1.0
    if not v > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of GiB, got {text!r}")
    return v


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scale", default=None, help="scale name (default: config/config.yaml)")
    p.add_argument("--work-dir", dest="work_dir", default=None)
    p.add_argument("--results-dir", dest="results_dir", default=None)
    p.add_argument("--data-dir", dest="data_dir", default=None)


def _artifact_args(p: argparse.ArgumentParser) -> None:
    """Which artifact: its plan file, or a paper and artifact planned at --scale first."""
    p.add_argument("--plan", default=None, help="the artifact's plan file (work/<scale>/plan/artifact/...)")
    p.add_argument("--paper", default=None, help="or the paper ...")
    p.add_argument("--artifact", default=None, help="... and the artifact (planned at --scale first)")


def add_subcommands(sub: Any) -> None:
    p = sub.add_parser("list", help="papers and artifacts (built or not); --targets adds their Snakemake targets")
    p.add_argument("--targets", action="store_true", help="print each artifact's output files too")
    _common(p)
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("plan", help="distinct runs and GPU-hours behind targets")
    p.add_argument("targets", nargs="+", help="artifact outputs (results/table2.csv) or PAPER/ARTIFACT")
    p.add_argument("--json", action="store_true")
    p.add_argument("--gpu-mem-gib", dest="gpu_mem_gib", type=_positive_float, default=None,
                   help="card memory for the data-placement column (default: config/costs.yaml gpus.v100 "
                        "memory_gib, else 32)")
    _common(p)
    p.set_defaults(func=_cmd_plan)

    p = sub.add_parser("render", help="render one artifact from its evaluations")
    _artifact_args(p)
    p.add_argument("--out", required=True)
    _common(p)
    p.set_defaults(func=_cmd_render)

    p = sub.add_parser("diff", help="diff a regenerated table against the published values")
    _artifact_args(p)
    p.add_argument("--regenerated", default=None, help="regenerated CSV (default: results/<paper>/<artifact>.csv)")
    p.add_argument("--out", default=None)
    _common(p)
    p.set_defaults(func=_cmd_diff)

    p = sub.add_parser("status", help="every artifact built / running (epoch, ETA) / missing; with --out, "
                                      "its diff and claim verdicts counted into a CSV")
    p.add_argument("--out", default=None, help="write the verdict counts here (the `status` rule: results/status.csv)")
    _common(p)
    p.set_defaults(func=_cmd_status)

    p = sub.add_parser("prepare-data", help="generate (smoke) or verify/import (real scales) one dataset")
    p.add_argument("dataset")
    p.add_argument("--download", action="store_true", help="allow downloading official archives")
    _common(p)
    p.set_defaults(func=_cmd_prepare)
