"""``reproduce models import NAME --from-file F [--sha256 HEX]``: an external checkpoint into its run node.

NAME is a run with ``import:`` in a paper spec. The file is checked against the spec's sha256 (or
the one given, for files with none published), stored under ``<data dir>/checkpoints/`` where the
run's DAG job finds it, and written as the run's directory at ``--scale`` (default: the config's),
so ``init``, evaluations and analyses read it as any finished run.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import ConfigError


def _cmd_import(args: argparse.Namespace) -> int:
    from ..config.imports import imported
    from ..train.imported import import_run, store
    from .cli import _dag

    dag = _dag(args)
    papers = [args.paper] if args.paper else [p for p, s in dag.specs.items() if args.name in s.runs]
    if len(papers) != 1 or papers[0] not in dag.specs or args.name not in dag.specs[papers[0]].runs:
        raise ConfigError(f"models import: run {args.name!r} is declared in {len(papers)} papers' specs; "
                          "name one with --paper" if len(papers) > 1 else
                          f"models import: no paper declares a run {args.name!r}")
    rid = dag.run_id(papers[0], args.name)
    cfg = dag.configs[rid]
    imp = imported(cfg)
    if imp is None:
        raise ConfigError(f"models import: run {args.name} has no import: at scale {dag.scale.name} "
                          "(not an imported run, or this scale trains a stand-in)")
    dest = store(args.name, imp, args.from_file, dag.data_root, args.sha256)
    summary = import_run(cfg, dag.run_dir(rid), dag.data_root, source=dest)
    print(f"{args.name}: {dest} (sha256 {summary['import']['sha256_found']}) imported as run {rid} "
          f"at {dag.run_dir(rid)}")
    return 0


def add_subcommands(sub: Any) -> None:
    from .cli import _common

    m = sub.add_parser("models", help="external checkpoints as runs")
    msub = m.add_subparsers(dest="models_command", required=True)
    p = msub.add_parser("import", help="verify an external checkpoint and write it as its run's directory")
    p.add_argument("name", help="a run with import: in a paper spec")
    p.add_argument("--from-file", dest="from_file", required=True, help="the downloaded checkpoint")
    p.add_argument("--sha256", default=None, help="its sha256, where the spec pins none (`sha256sum FILE`)")
    p.add_argument("--paper", default=None, help="the paper declaring NAME (default: the one that does)")
    _common(p)
    p.set_defaults(func=_cmd_import)
