"""What the Snakefile asks of the specs: targets, node ids, inputs and resources."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from ..artifacts import Artifact
from ..errors import ConfigError
from .nodes import Graph
from .scales import Scale, load_scale
from .papers import load_all
from .spec import PaperSpec
from ..jobs.values import source_inputs

STOP_MARGIN_MIN = 5  # a training job stops itself this long before its walltime (train --stop-margin-min)


class Dag:
    """All specs at one scale, indexed for Snakemake input functions."""

    def __init__(self, config: Mapping[str, Any], pipelines_dir: str = "pipelines") -> None:
        self.config = dict(config)
        self.scale: Scale = load_scale(str(config["scale"]))
        self.specs: dict[str, PaperSpec] = load_all(pipelines_dir)
        self.work = Path(config["work_dir"]) / self.scale.name
        # paper-scale outputs live at results/<paper>/...; every other scale's under results/<scale>/, so
        # a demo or a budget run never overwrites (or is taken for) a paper-scale table
        self.results = Path(config["results_dir"]) / ("" if self.scale.name == "paper" else self.scale.name)
        self.data_root = (self.work / self.scale.raw["data"].get("root", "data")) if self.scale.own_data \
            else Path(config.get("data_dir") or os.environ.get("REPRODUCE_DATA_DIR") or "data")
        self.graph = Graph(self.specs, self.scale)
        self.configs = {rid: n.cfg for rid, n in self.graph.runs.items()}
        self._resources: dict[str, dict[str, int]] = {}
        self._protocols: dict[str, set[str]] | None = None
        self._repeats: dict[tuple[str, str], set[str]] | None = None
        from .resources import walltime_cap

        self.walltime_cap = walltime_cap(config)

    # --- names
    def artifact(self, paper: str, name: str) -> Artifact:
        """The artifact as this scale builds it (sweeps thinned where the scale says so)."""
        try:
            art = self.specs[paper].artifacts[name]
        except KeyError:
            raise ConfigError(f"unknown artifact {paper}/{name}; see `reproduce list`") from None
        art = art.thin(self.scale.keeps, self.scale.row_filter(paper, name), self.scale.column_filter(paper, name))
        if self.scale.select.get("code_paths"):
            drop = self._repeated_rows().get((paper, name))
            art = art.thin(lambda i, n: True, lambda rid: rid not in drop) if drop else art
        return art

    def _repeated_rows(self) -> dict[tuple[str, str], set[str]]:
        """``select: {code_paths: true}``: the rows that execute no code path another row does not."""
        if self._repeats is None:
            from .code_paths import rows_left_out

            self._repeats = {}  # artifacts read while it is computed are the sweep-thinned ones
            arts = [self.artifact(s.paper, a.name) for s in self.specs.values() for a in s.artifacts.values()
                    if self.scale.builds(s.paper, a.name)]
            self._repeats = rows_left_out(self, arts)
        return self._repeats

    def artifacts(self, family: str | None = None) -> list[Artifact]:
        """Every artifact this scale builds (a scale with ``artifacts:`` builds only those)."""
        return [self.artifact(s.paper, a.name) for s in self.specs.values() for a in s.artifacts.values()
                if family in (None, a.family) and self.scale.builds(s.paper, a.name)]

    def run_id(self, paper: str, name: str) -> str:
        ids = self.graph.run_ids(paper, name)
        if len(ids) != 1:
            raise ConfigError(f"{paper}: {name!r} is a seed group of {len(ids)} runs, not one run")
        return ids[0]

    # --- paths
    def run_dir(self, run_id: str) -> Path:
        return self.work / "runs" / run_id

    def done(self, run_id: str) -> str:
        return str(self.run_dir(run_id) / "done.json")

    def eval_path(self, run_id: str, protocol: str) -> str:
        return str(self.work / "evals" / run_id / f"{protocol}.json")

    @property
    def evals_per_run(self) -> bool:
        """Does this scale evaluate each run in one job (every protocol any artifact reads from it)?

        Per-protocol jobs suit a cluster (an AutoAttack is hours, with its own walltime);
        on a CPU each job's start-up (about 5 s: torch, specs, data) costs more than a
        smoke evaluation, so small scales group them.
        """
        return self.scale.eval.get("jobs", "protocol") == "run"

    def eval_index(self, run_id: str) -> str:
        """Written last by a per-run evaluation job: the protocols it evaluated."""
        return str(self.work / "evals" / f"{run_id}.json")

    def eval_input(self, run_id: str, protocol: str) -> str:
        """The file a DAG edge names for one evaluation (the reader always opens ``eval_path``)."""
        return self.eval_index(run_id) if self.evals_per_run else self.eval_path(run_id, protocol)

    def run_protocols(self, run_id: str) -> list[str]:
        """Every protocol some artifact (of any paper) reads from this run at this scale."""
        if self._protocols is None:
            from ..jobs.values import source_runs

            self._protocols = {}
            for art in self.artifacts():
                for row in art.rows.values():
                    for src in row.cells.values():
                        if "eval" in src:
                            for rid in source_runs(self, art, row, src):
                                self._protocols.setdefault(rid, set()).add(str(src["eval"]))
        if run_id not in self._protocols:
            raise ConfigError(f"no artifact evaluates run {run_id!r} at scale {self.scale.name}")
        return sorted(self._protocols[run_id])

    def plan_path(self, kind: str, node_id: str) -> str:
        """A node's plan file (``kind``: run, analysis, eval, artifact; an eval id is RUN or RUN/PROTOCOL,
        an artifact id PAPER/NAME)."""
        return str(self.work / "plan" / kind / f"{node_id}.json")

    def write_plans(self) -> dict[str, int]:
        """Write (or leave current) the plan file of every node this scale builds."""
        from .planfiles import PlanWriter

        return PlanWriter(self).write()

    def every_scale(self, run_id: str) -> bool:
        """A CPU-sized toy declared for every scale (it may run on the CPU at a comparable scale)."""
        node = self._known(run_id)
        return bool(self.specs[node.paper].runs[node.name].every_scale)

    def eval_plan(self, run_id: str, protocol: str | None = None) -> str:
        return self.plan_path("eval", run_id if protocol is None else f"{run_id}/{protocol}")

    def analysis_dir(self, analysis_id: str) -> Path:
        return self.work / "analyses" / analysis_id

    def analysis_result(self, analysis_id: str) -> str:
        return str(self.analysis_dir(analysis_id) / "result.json")

    def manifest(self, dataset: str) -> str:
        return str(self.data_root / dataset / "manifest.json")

    def artifact_outputs(self, art: Artifact) -> list[str]:
        base = self.results / art.paper / art.name
        outs = [f"{base}.png", f"{base}.pdf", f"{base}.csv"] if art.family == "figure" else [f"{base}.csv", f"{base}.md"]
        if art.published is not None or art.claims:
            outs += [f"{base}.diff.csv", f"{base}.diff.md", f"{base}.claims.csv"]
        return outs + [str(self.results / a) for a in art.aliases]

    def diff_outputs(self) -> list[str]:
        """Every artifact's ``.diff.csv`` (artifacts with published values or claims)."""
        return [str(self.results / a.paper / f"{a.name}.diff.csv") for a in self.artifacts()
                if a.published is not None or a.claims]

    def all_targets(self) -> list[str]:
        return [o for a in self.artifacts() for o in self.artifact_outputs(a)]

    def known_results(self) -> list[str]:
        """Every file under the results directory this scale's rules make (paths as the rules name them)."""
        pages = [str(self.results / a.paper / f"{a.name}.html") for a in self.artifacts()]
        return [*self.all_targets(), *pages, str(self.results / "status.csv"), str(self.results / "index.html")]

    def no_such_target(self, target: str) -> None:
        """A requested results file no rule makes: say so, with the closest valid targets."""
        import difflib

        known = self.known_results()
        close = difflib.get_close_matches(target, known, n=4, cutoff=0.5)
        hint = f"; closest: {', '.join(close)}" if close else ""
        raise ConfigError(f"{target} is not a target at scale {self.scale.name}{hint} "
                          f"(`reproduce list --scale {self.scale.name}` prints them all)")

    def alias_sources(self) -> dict[str, str]:
        """results-relative alias -> the artifact CSV it copies."""
        return {alias: str(self.results / a.paper / f"{a.name}.csv") for a in self.artifacts() for alias in a.aliases}

    # --- inputs
    def datasets_of(self, run_id: str) -> list[str]:
        cfg = self.configs[run_id]
        d = cfg["data"]
        # eval logs may read another dataset (CIFAR-10-C beside CIFAR-10), prepared like the primary
        logs = [e["dataset"] for e in cfg.get("eval_logs") or [] if e.get("dataset")]
        comp = [d["composite"]["dataset"]] if d.get("composite") else []
        return list(dict.fromkeys([d["primary"], *d["aux"], *comp, *logs]))

    def dep_files(self, deps: list[tuple[str, str]]) -> list[str]:
        """The outputs of a node's upstream runs (done.json) and analyses (result.json): its rule's inputs."""
        return [self.done(i) if k == "run" else self.analysis_result(i) for k, i in deps]

    def train_inputs(self, run_id: str) -> list[str]:
        node = self._known(run_id)
        return [self.manifest(ds) for ds in self.datasets_of(run_id)] + self.dep_files(node.deps)

    def analysis_inputs(self, analysis_id: str) -> list[str]:
        node = self._analysis(analysis_id)
        files = self.dep_files(node.deps)
        from ..analyses import ANALYSES

        datasets = {d for k, i in node.deps if k == "run" for d in self.datasets_of(i)}
        datasets |= set(ANALYSES.get(node.kind).datasets(node.params))
        return files + [self.manifest(d) for d in sorted(datasets)]

    def artifact_inputs(self, art: Artifact) -> list[str]:
        files = [f for row in art.rows.values() for src in row.cells.values() for f in source_inputs(self, art, row, src)]
        return list(dict.fromkeys(files))

    def claim_artifacts(self, art: Artifact) -> dict[str, str]:
        """Other artifacts this one's claims read: name -> their regenerated CSV."""
        names = {n for c in art.claims for n in c.artifacts if n != art.name}
        return {n: str(self.results / art.paper / f"{n}.csv") for n in sorted(names)}

    def train_jobs(self, arts: list[Artifact]) -> list[str]:
        """Every run the artifacts need, upstream runs (helpers, sources of subsets) included."""
        return [node_id for kind, node_id in self.upstream(arts) if kind == "run"]

    def upstream(self, arts: list[Artifact]) -> dict[tuple[str, str], None]:
        """Every ``("run" | "analysis", id)`` the artifacts need, upstream ones included, in the order met."""
        seen: dict[tuple[str, str], None] = {}
        todo = [Path(f) for a in arts for f in self.artifact_inputs(a)]
        while todo:
            f = todo.pop()
            if f.parent.parent.name == "evals":
                todo.append(Path(self.done(f.parent.name)))
                continue
            if f.parent.name == "evals":  # a per-run evaluation index
                todo.append(Path(self.done(f.stem)))
                continue
            if f.name == "done.json" and f.parent.name in self.graph.runs:
                node, deps = ("run", f.parent.name), self.graph.runs[f.parent.name].deps
            elif f.name == "result.json" and f.parent.name in self.graph.analyses:
                node, deps = ("analysis", f.parent.name), self.graph.analyses[f.parent.name].deps
            else:
                continue
            if node not in seen:
                seen[node] = None
                todo += [Path(d) for d in self.dep_files(deps)]
        return seen

    def _known(self, run_id: str):
        if run_id not in self.graph.runs:
            raise ConfigError(f"unknown run id {run_id!r} at scale {self.scale.name}")
        return self.graph.runs[run_id]

    def _analysis(self, analysis_id: str):
        if analysis_id not in self.graph.analyses:
            raise ConfigError(f"unknown analysis id {analysis_id!r} at scale {self.scale.name}")
        if analysis_id in self.graph.unbuildable:
            raise ConfigError(f"{self.graph.unbuildable[analysis_id]} (at scale {self.scale.name})")
        return self.graph.analyses[analysis_id]

    # --- commands and resources
    def analysis_gpu(self, analysis_id: str) -> int:
        from ..analyses import ANALYSES

        needs = ANALYSES.get(self.graph.analyses[analysis_id].kind).gpu  # asked of every node, built or not
        return int(self.scale.resources.get("gpu", 0)) if needs else 0

    def resources(self, run_id: str) -> dict[str, int]:
        """One training job's request: runtime = min(estimate, walltime cap); longer runs chain."""
        if run_id not in self._resources:
            r = self.scale.resources
            total = self.train_minutes(run_id)
            from .resources import host_mem_mb

            mem = host_mem_mb(self.configs[run_id], int(r.get("mem_mb", 4000)), self.scale)
            self._resources[run_id] = {"gpu": int(r.get("gpu", 0)), "mem_mb": mem,
                                       "cpus_per_task": int(r.get("cpus_per_task", 1)),
                                       "runtime": min(total, self.walltime_cap)}
        return self._resources[run_id]

    @property
    def _on_gpu(self) -> bool:
        return int(self.scale.resources.get("gpu", 0)) > 0

    def train_minutes(self, run_id: str) -> int:
        from .resources import train_minutes

        floor = int(self.scale.resources.get("runtime_floor_min", 10))
        # CPU scales (smoke) run locally in minutes: the floor; GPU scales use the cost model
        return train_minutes(self.configs[run_id], floor, self.graph) if self._on_gpu else floor

    def analysis_runtime(self, analysis_id: str) -> int:
        """Minutes for one analysis job: the floor, or for an analysis that declares its passes (a robust
        dataset: about 31 V100-hours) its cost-model estimate, capped; such an analysis resumes by chunk."""
        import math

        from .plan import analysis_hours
        from .resources import SAFETY, STARTUP_MIN

        floor = int(self.scale.resources.get("runtime_floor_min", 10))
        hours = (analysis_hours(self, analysis_id) or 0.0) if self._on_gpu else 0.0
        return min(self.walltime_cap, max(floor, math.ceil(hours * 60 * SAFETY) + STARTUP_MIN))

    def train_retries(self) -> int:
        """Snakemake retries for the train rule: one resubmission after a real failure. A run
        longer than the walltime cap chains by requeueing its own SLURM job (train/requeue.py),
        which Snakemake never counts, so a bad config is not resubmitted once per chained job."""
        from .resources import EXTRA_RETRIES

        return EXTRA_RETRIES

    def eval_runtime(self, run_id: str, protocol: str | None = None) -> int:
        """Minutes for one evaluation job, from the protocol's passes per image and the model
        (``protocol`` None: every protocol of a per-run job)."""
        if protocol is None:
            return min(self.walltime_cap, sum(self.eval_runtime(run_id, p) for p in self.run_protocols(run_id)))
        from ..evaluate.catalog import PROTOCOLS
        from .resources import eval_minutes

        floor = int(self.scale.resources.get("eval_floor_min", 30))
        if not self._on_gpu:
            return floor
        proto = PROTOCOLS.get(self.scale.protocol_to_run(protocol), where="protocol")
        return min(self.walltime_cap, eval_minutes(self.configs[run_id], proto, self.scale.eval_cap("protocols"), floor))
