"""Each code path once: a scale's ``select: {code_paths: true}`` (the shapes scale).

Two runs whose resolved configs differ only in numbers (betas, learning rates, epochs, sizes,
milestones) or seeds train through the same code; so do two evaluations that differ only in
step counts or radii. A scale that exists to execute every paper-scale code path before a GPU is
spent needs each model, dataset, split, head, method option, reference kind, protocol kind,
analysis kind and artifact kind once, not the hundreds of runs the papers' sweeps, seed groups and
grids make.

Each artifact row is described by the settings it executes: every leaf of the run configs it reads
with numbers masked (``method.name=hat``, ``data.primary=svhn``, ``model.heads=...``), its
protocols with numbers masked, its analyses' kinds and masked parameters, and the kinds of cell it
reads. Artifacts are visited in order; a row is kept when it executes a setting no kept row does,
and every artifact keeps at least one row (so each is rendered and diffed), preferring one whose
runs are built anyway. Combinations are not exhausted: HAT on SVHN and TRADES on CIFAR-100 prove
HAT's and SVHN's code, not HAT-on-SVHN. The rows left out are listed in every output, as a thinned
sweep's are.
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterable, Mapping

_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?(/[-+]?(\d+\.?\d*|\.\d+))?$")
_RUN_ONLY = ("name", "seed", "scale")  # a run's identity, not its code path


def masked(value: Any) -> Any:
    """``value`` with every number (and numeric string: ``8/255``, ``1e-4``) replaced by ``#`` and every
    reference to another node by its kind; booleans, names and structure stay."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return "#"
    if isinstance(value, str):
        return "#" if _NUMBER.match(value) else value
    if isinstance(value, Mapping):
        if "run" in value or "analysis" in value:  # {run: ID, checkpoint: best}: a reference's kind
            return {k: (k if k in ("run", "analysis") else masked(v)) for k, v in sorted(value.items())}
        return {str(k): masked(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        items = [masked(v) for v in value]
        return "#list" if items and all(i == "#" for i in items) else items
    return str(value)


def run_features(cfg: Mapping[str, Any]) -> set[str]:
    """What a run executes, one setting a feature: each leaf of its resolved config less its identity,
    numbers masked (``method.name=hat``, ``data.aux[]=svhn``, ``optim.lr=#``)."""
    return set(_leaves(masked({k: v for k, v in cfg.items() if k not in _RUN_ONLY}), "run"))


def _leaves(value: Any, path: str) -> Iterable[str]:
    if isinstance(value, Mapping) and value:
        for k, v in value.items():
            yield from _leaves(v, f"{path}.{k}")
    elif isinstance(value, list) and value and all(not isinstance(v, (Mapping, list)) for v in value):
        for v in value:  # a list of names: each one is a setting (an auxiliary dataset, a class list)
            yield f"{path}[]={json.dumps(v)}"
    else:
        yield f"{path}={json.dumps(value, sort_keys=True)}"


def row_paths(dag: Any, art: Any, row: Any) -> tuple[set[str], set[str]]:
    """(the settings the row executes, every run and analysis it needs: upstream ones too)."""
    from dataclasses import replace

    from ..analyses import ANALYSES
    from ..evaluate import PROTOCOLS
    from ..jobs.values import source_runs

    paths: set[str] = set()
    for src in row.cells.values():
        paths.add("cell " + json.dumps(sorted(k for k in src if k != "run")))
        if "analysis" in src:
            for aid in dag.graph.analysis_ids(art.paper, src["analysis"]):
                node = dag.graph.analyses[aid]
                refs = ANALYSES.get(node.kind).references  # param -> "run" | "analysis": ids are identity
                params = {k: (f"<{refs[k]}>" if k in refs else v) for k, v in node.params.items()}
                paths.add(f"analysis {node.kind} " + json.dumps(masked(params), sort_keys=True))
            continue
        for rid in source_runs(dag, art, row, src) if "value" not in src else []:
            paths |= run_features(dag.graph.runs[rid].cfg)
        if "eval" in src:
            proto = PROTOCOLS.get(dag.scale.protocol_to_run(str(src["eval"])), where="protocol")
            paths.add("eval " + json.dumps(masked(proto.params()), sort_keys=True))
    return paths, set(dag.upstream([replace(art, rows={row.id: row})]))


def rows_left_out(dag: Any, arts: Iterable[Any]) -> dict[tuple[str, str], set[str]]:
    """``(paper, artifact) -> row ids`` left out: a greedy cover of every setting some row executes,
    each step taking the row with the most new settings per run or analysis it adds to the build."""
    arts = sorted(arts, key=lambda a: (a.paper, a.name))
    rows = {(a.paper, a.name, rid): row_paths(dag, a, r) for a in arts for rid, r in a.rows.items()}
    seen: set[str] = set()
    built: set[str] = set()
    kept: set[tuple[str, str, str]] = set()

    def take(key: tuple[str, str, str]) -> None:
        kept.add(key)
        seen.update(rows[key][0])
        built.update(rows[key][1])

    while True:
        gain = {k: (len(p - seen) / (1 + len(r - built)), -i) for i, (k, (p, r)) in enumerate(rows.items())
                if k not in kept and p - seen}
        if not gain:
            break
        take(max(gain, key=gain.__getitem__))
    for a in arts:  # every artifact is rendered and diffed: on the runs built for others where it can
        mine = [k for k in rows if k[:2] == (a.paper, a.name)]
        if mine and not kept.intersection(mine):
            take(min(mine, key=lambda k: (len(rows[k][1] - built), mine.index(k))))
    return {(a.paper, a.name): {rid for rid in a.rows if (a.paper, a.name, rid) not in kept} for a in arts}
