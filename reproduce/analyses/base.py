"""What an analysis supplies to the one generic ``analyze`` rule.

An analysis is a DAG node like a training run: its id is a hash of (kind,
params, upstream ids), its output is ``work/<scale>/analyses/<id>/result.json``
(the shared envelope) plus any arrays it writes beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch

from ..errors import ConfigError
from ..registry import Registry

REQUIRED = object()  # a param default meaning "the spec must give it"


@dataclass
class AnalysisContext:
    """What ``run`` receives: resolved params and the filesystem places of its inputs."""

    params: dict[str, Any]
    # param name -> resolved upstream: a run directory (Path), an analysis directory (Path),
    # or a list of those for list-valued references
    inputs: dict[str, Any]
    out_dir: Path
    data_root: Path
    device: torch.device
    scale: str
    extra: dict[str, Any] = field(default_factory=dict)


class Analysis:
    """Base class: declare ``params`` (name -> default or REQUIRED), ``references`` and ``run``."""

    params: dict[str, Any] = {}
    # param name -> "run" | "runs" | "analysis" | "analyses": params that name upstream nodes
    references: dict[str, str] = {}
    # param listing checkpoint names (epoch_N) of the run named by another param: a scale that
    # shortens the run's schedule moves each to the same point of it (``<param>_at_scale``)
    checkpoint_lists: dict[str, str] = {}
    # epoch-valued param -> the reference param naming the run whose epochs it counts: a scale that
    # shortens that run's schedule moves the value to the same point of it, as it moves milestones
    epoch_params: dict[str, str] = {}
    # a boolean param the engine turns on where the scale's data is smaller than the catalog's (its
    # named dataset's split, or the training pool of a run upstream): counts then shrink in proportion
    data_sized: str | None = None
    # observers the referenced runs must have switched on (per_instance, checkpoints, ...)
    observers: tuple[str, ...] = ()
    gpu: bool = False  # needs an accelerator at paper scale

    @classmethod
    def resolve_params(cls, given: Mapping[str, Any], where: str) -> dict[str, Any]:
        unknown = sorted(set(given) - set(cls.params))
        if unknown:
            raise ConfigError(f"{where}: unknown parameter(s) {', '.join(unknown)}; "
                              f"allowed: {', '.join(sorted(cls.params)) or '(none)'}")
        out = {**cls.params, **given}
        missing = sorted(k for k, v in out.items() if v is REQUIRED)
        if missing:
            raise ConfigError(f"{where}: required parameter(s) {', '.join(missing)} missing")
        cls.check(out, where)
        return out

    @classmethod
    def required_observers(cls, params: Mapping[str, Any]) -> tuple[str, ...]:
        """Observers its runs must have on for these params (``eval_log:NAME``: that eval log)."""
        return tuple(cls.observers)

    @classmethod
    def datasets(cls, params: Mapping[str, Any]) -> list[str]:
        """Datasets it reads beyond its runs' own (a ``dataset`` param: CIFAR-10-C for a CIFAR-10 model)."""
        ds = params.get("dataset")
        return [ds] if isinstance(ds, str) else []

    @classmethod
    def check(cls, params: Mapping[str, Any], where: str) -> None:
        """Static validation of the resolved params; raise ConfigError naming ``where``."""

    @classmethod
    def at_scale(cls, params: dict[str, Any], scale: Any) -> dict[str, Any]:
        """Params that follow the scale's data (a class count of generated data); default as given."""
        return params

    @classmethod
    def static_values(cls, params: Mapping[str, Any]) -> dict[str, Any] | None:
        """Values computable from the params alone, cheaply and small (a seeded draw of classes):
        a run referencing them gets them inlined before hashing, so equal subsets are one run.
        None: the analysis must run as a node."""
        return None

    @classmethod
    def key_fraction(cls, params: Mapping[str, Any], key: str | None, num_classes: int) -> float | None:
        """The share of the population (classes or examples) the value ``key`` selects, known
        before the analysis runs (the planner's cost of a subset run); None when unknown."""
        return None

    @classmethod
    def pass_epochs(cls, params: Mapping[str, Any]) -> float | None:
        """Forward+backward passes over its source run's training images, for the planner's GPU-hours
        (priced at that run's model); None: negligible beside training (one forward pass or less)."""
        return None

    @classmethod
    def forward_images(cls, params: Mapping[str, Any]) -> dict[str, int]:
        """Images that the model of each run-reference param sees in forward passes alone (no
        backward), per param: the planner's GPU cost of the node (a forward is ``eval_passes.forward``
        of a pass). Empty: not declared, counted as 0."""
        return {}

    def run(self, ctx: AnalysisContext) -> dict[str, Any]:
        """Compute and return the JSON values (arrays go to ``ctx.out_dir``)."""
        raise NotImplementedError


ANALYSES: Registry[type[Analysis]] = Registry("analysis")


def positive_ints(params: Mapping[str, Any], keys: tuple[str, ...], where: str) -> None:
    """Each of ``keys`` must be an int >= 1 (a bool is not one): one error line naming the key."""
    for key in keys:
        v = params[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"{where}: {key} must be a positive integer, got {v!r}")


def non_negative_ints(params: Mapping[str, Any], keys: tuple[str, ...], where: str) -> None:
    """Each of ``keys`` must be an int >= 0 (a bool is not one): one error line naming the key."""
    for key in keys:
        v = params[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ConfigError(f"{where}: {key} must be a non-negative integer, got {v!r}")
