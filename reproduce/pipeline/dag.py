"""What the Snakefile asks of the specs: targets, run ids, inputs and resources."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..config import run_id as config_run_id
from ..errors import ConfigError
from .scales import Scale, load_scale
from .spec import Artifact, PaperSpec, load_all


@dataclass(frozen=True)
class RunRef:
    paper: str
    name: str  # canonical run name in its paper spec
    run_id: str


class Dag:
    """Specs at one scale, indexed for Snakemake input functions."""

    def __init__(self, config: Mapping[str, Any], pipelines_dir: str = "pipelines") -> None:
        self.config = dict(config)
        self.scale: Scale = load_scale(str(config["scale"]))
        self.specs: dict[str, PaperSpec] = load_all(pipelines_dir)
        self.work = Path(config["work_dir"]) / self.scale.name
        self.results = Path(config["results_dir"])
        self.data_root = (self.work / self.scale.raw["data"].get("root", "data")) if self.scale.generated \
            else Path(config["data_dir"])
        self.runs: dict[str, RunRef] = {}
        self.configs: dict[str, dict[str, Any]] = {}
        self._ids: dict[tuple[str, str], str] = {}
        self._resources: dict[str, dict[str, int]] = {}
        for paper, spec in self.specs.items():
            for name in spec.runs:
                cfg = spec.run_config(name, self.scale)
                rid = config_run_id(cfg)
                self.runs[rid] = RunRef(paper, name, rid)
                self.configs[rid] = cfg
                self._ids[(paper, name)] = rid

    # --- names
    def artifact(self, paper: str, name: str) -> Artifact:
        try:
            return self.specs[paper].artifacts[name]
        except KeyError:
            raise ConfigError(f"unknown artifact {paper}/{name}") from None

    def artifacts(self, kind: str | None = None) -> list[Artifact]:
        return [a for s in self.specs.values() for a in s.artifacts.values() if kind in (None, a.kind)]

    def run_id(self, paper: str, name: str) -> str:
        return self._ids[(paper, self.specs[paper].canonical(name))]

    # --- paths
    def run_dir(self, run_id: str) -> Path:
        return self.work / "runs" / run_id

    def done(self, run_id: str) -> str:
        return str(self.run_dir(run_id) / "done.json")

    def eval_path(self, run_id: str, protocol: str) -> str:
        return str(self.work / "evals" / run_id / f"{protocol}.json")

    def manifest(self, dataset: str) -> str:
        return str(self.data_root / dataset / "manifest.json")

    def artifact_outputs(self, art: Artifact) -> list[str]:
        base = self.results / art.paper / art.name
        if art.kind == "figure":
            return [f"{base}.png", f"{base}.pdf", f"{base}.csv"]
        outs = [f"{base}.csv", f"{base}.md"]
        if art.published is not None:
            outs += [f"{base}.diff.csv", f"{base}.diff.md", f"{base}.claims.csv"]
        return outs + [str(self.results / a) for a in art.aliases]

    def all_targets(self) -> list[str]:
        return [o for a in self.artifacts() for o in self.artifact_outputs(a)]

    def alias_sources(self) -> dict[str, str]:
        """results-relative alias -> the artifact CSV it copies."""
        return {alias: str(self.results / a.paper / f"{a.name}.csv") for a in self.artifacts() for alias in a.aliases}

    # --- inputs
    def datasets_of(self, run_id: str) -> list[str]:
        d = self.configs[run_id]["data"]
        return [d["primary"], *d["aux"]]

    def train_inputs(self, run_id: str) -> list[str]:
        self._known(run_id)
        return [self.manifest(ds) for ds in self.datasets_of(run_id)]

    def artifact_evals(self, art: Artifact) -> list[str]:
        if art.kind == "figure":
            return [self.done(self.run_id(art.paper, r)) for r in art.runs]
        paths = []
        for rid_row, run in art.rows.items():
            rid = self.run_id(art.paper, run)
            paths += [self.eval_path(rid, p) for p in art.row_protocols[rid_row].values()]
        return list(dict.fromkeys(paths))

    def train_jobs(self, arts: list[Artifact]) -> list[str]:
        return list(dict.fromkeys(self.run_id(a.paper, r) for a in arts for r in a.runs))

    def _known(self, run_id: str) -> RunRef:
        if run_id not in self.runs:
            raise ConfigError(f"unknown run id {run_id!r} at scale {self.scale.name}")
        return self.runs[run_id]

    # --- commands and resources
    def train_args(self, run_id: str) -> str:
        ref = self._known(run_id)
        return f"--paper {ref.paper} --run {ref.name} --scale {self.scale.name}"

    def resources(self, run_id: str) -> dict[str, int]:
        if run_id not in self._resources:
            self._resources[run_id] = self._estimate(run_id)
        return self._resources[run_id]

    def _estimate(self, run_id: str) -> dict[str, int]:
        from .plan import gpu_hours

        r = self.scale.resources
        hours = gpu_hours(self.configs[run_id]) if self.scale.name == "paper" else 0.0
        runtime = max(int(r.get("runtime_floor_min", 10)), int(hours * 60 * 1.25))
        return {"gpu": int(r.get("gpu", 0)), "mem_mb": int(r.get("mem_mb", 4000)),
                "cpus_per_task": int(r.get("cpus_per_task", 1)), "runtime": runtime}
