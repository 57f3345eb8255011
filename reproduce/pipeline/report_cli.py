"""`reproduce report`: the results page, from the files the DAG wrote (no job runs)."""

from __future__ import annotations

import argparse
from typing import Any


def _cmd_report(args: argparse.Namespace) -> int:
    from ..report.pages import view_from_plan, write_artifact_page, write_index

    if args.plan:  # one artifact's page (the `artifact_page` rule)
        view = view_from_plan(args.plan)
        write_artifact_page(view, args.out, index=args.index)
        print(f"wrote {args.out} ({view.key}, {view.scale or 'not built'})")
        return 0
    from .cli import _dag

    dag = _dag(args)
    out = args.out or str(dag.results / "index.html")
    views = write_index(dag, out)
    built = sum(v.built for v in views)
    print(f"wrote {out}: {built} of {len(views)} artifacts built at {dag.scale.name} scale")
    return 0


def add_subcommands(sub: Any) -> None:
    from .cli import _common

    p = sub.add_parser("report", help="the results page: every artifact's table, published values, verdicts, "
                                      "claims and figure in one self-contained results/index.html")
    p.add_argument("--out", default=None, help="default: <results dir>/index.html")
    p.add_argument("--plan", default=None, help="one artifact's page from its plan file (the Snakemake rule)")
    p.add_argument("--index", default=None, help="with --plan: the landing page to link back to")
    _common(p)
    p.set_defaults(func=_cmd_report)
