"""The papers' specs as the pipeline loads them: each parsed (``spec.parse_spec``), then resolved at paper
scale, so that a spec whose runs or analyses cannot be planned fails when it is loaded, not when a job runs."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from ..errors import ConfigError
from .nodes import Graph
from .scales import load_scale
from .spec import PIPELINES_DIR, PaperSpec, parse_spec


def load_spec(path: str | Path, check_registries: bool = True) -> PaperSpec:
    spec = parse_spec(path, check_registries)
    # every run and analysis resolves at paper scale before any job is planned
    Graph({spec.paper: spec}, load_scale("paper"), check_registries)
    return spec


@lru_cache(maxsize=None)
def load_all(pipelines_dir: str = str(PIPELINES_DIR), check_registries: bool = True) -> dict[str, PaperSpec]:
    specs = {}
    for p in sorted(Path(pipelines_dir).glob("*/spec.yaml")):
        spec = load_spec(p, check_registries=check_registries)
        specs[spec.paper] = spec
    if not specs:
        raise ConfigError(f"no paper specs found under {pipelines_dir}/*/spec.yaml")
    return specs


def register_spec_protocols() -> None:
    """Papers declare their own protocols in their specs (``protocols:``); loading the specs registers them
    (for commands run by hand, such as a zoo evaluation; DAG jobs read them from their plan files)."""
    if Path(PIPELINES_DIR).is_dir():
        load_all(str(PIPELINES_DIR), check_registries=False)
