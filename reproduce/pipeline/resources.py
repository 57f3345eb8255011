"""SLURM-facing resources: training and evaluation runtimes from config/costs.yaml, capped.

A training run longer than the walltime cap is chained: every job asks for
min(estimate, cap) minutes, stops itself (or on SIGURG) with a checkpoint a few
minutes before, and requeues its own SLURM job (reproduce/train/requeue.py); each
start resumes from ``last.pt``. Snakemake's ``retries:`` is therefore one
resubmission after a real failure, whatever the run's length. Evaluations are
sized from the protocol's passes per image and the model's cost, not from
training time. Host memory is the scale's base plus the training data, which
passes through host memory on its way to the card and stays there, pinned, when
the planner streams it.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from ..errors import ConfigError
from .plan import _costs, gpu_hours, hours_per_pass_epoch

SAFETY = 1.25        # estimates are V100 fp32 figures; a slower node or a busy filesystem still fits
STARTUP_MIN = 10     # data loading, model build, CUDA init per job
DEFAULT_CAP_MIN = 2880
EXTRA_RETRIES = 1    # one resubmission after a real failure (chaining requeues, it never retries)
HOST_DATA_SLACK = 1.1  # the uint8 arrays plus their index and label tensors, rounded up


def walltime_cap(config: Mapping[str, Any]) -> int:
    cap = config.get("walltime_cap_min", DEFAULT_CAP_MIN)
    if not isinstance(cap, int) or isinstance(cap, bool) or cap < 30:
        raise ConfigError(f"config: walltime_cap_min must be an integer >= 30 minutes, got {cap!r}")
    return cap


def train_minutes(cfg: Mapping[str, Any], floor: int, graph: Any = None) -> int:
    """Estimated minutes for the whole run (0 GPU-hours at scales without a cost model)."""
    hours = gpu_hours(cfg, graph=graph) or 0.0
    return max(floor, math.ceil(hours * 60 * SAFETY) + STARTUP_MIN)


def host_mem_mb(cfg: Mapping[str, Any], base_mb: int, scale: Any = None) -> int:
    """Host memory (MB) for one training job: ``base_mb`` (process, CUDA, loaders) + its data."""
    from ..costs.memory import data_bytes

    data = data_bytes(cfg, scale)  # None: streamed full-resolution files, the loaders' share is in the base
    return base_mb + (0 if data is None else math.ceil(data * HOST_DATA_SLACK / 2**20))


def chunks(total_min: int, cap: int, margin_min: float) -> int:
    """Jobs a run of ``total_min`` needs when each gets ``cap`` minutes and stops ``margin_min`` early."""
    usable = max(cap - margin_min - STARTUP_MIN, 1)
    return max(1, math.ceil(total_min / usable))


def protocol_passes(protocol: Any, costs: Mapping[str, Any] | None = None) -> float:
    """Forward+backward passes per image under ``protocol`` (a reproduce.evaluate Protocol)."""
    c = (costs or _costs())["eval_passes"]
    fwd = float(c["forward"])
    if protocol.kind == "clean":
        return fwd
    if protocol.kind in ("pgd", "cw"):
        return protocol.steps * protocol.restarts + fwd
    if protocol.kind == "autoattack":
        if protocol.version == "custom":
            per = c["autoattack_attack"]
            missing = [a for a in protocol.attacks or () if a not in per]
            if missing:
                raise ConfigError(f"config/costs.yaml: eval_passes.autoattack_attack has no {missing[0]!r}")
            # pinned restarts / targets scale APGD-CE / APGD-T (costs.yaml: 1 restart, 9 targets)
            scale = {"apgd-ce": protocol.restarts, "apgd-t": protocol.targets / 9} if protocol.targets else {}
            iters = protocol.steps / 100 if protocol.targets and protocol.steps else 1.0  # APGD: 100 a run
            return sum(float(per[a]) * scale.get(a, 1) * iters for a in protocol.attacks or ()) + fwd
        if protocol.version not in c["autoattack"]:
            raise ConfigError(f"config/costs.yaml: eval_passes.autoattack has no version {protocol.version!r}")
        return float(c["autoattack"][protocol.version]) + fwd
    raise ConfigError(f"config/costs.yaml: no evaluation cost for protocol kind {protocol.kind!r}")


def eval_minutes(cfg: Mapping[str, Any], protocol: Any, n: int | None, floor: int) -> int:
    """Estimated minutes to evaluate ``n`` test images (None: the whole test split)."""
    c = _costs()
    per = hours_per_pass_epoch(cfg["model"]["name"], "v100", c) or 0.0
    ds = cfg["data"]["primary"]
    n = n or c.get("test_images", {}).get(ds, 10000)
    factor = c.get("dataset_factor", {}).get(ds, 1.0)
    hours = protocol_passes(protocol, c) * per * (n / 50000) * factor
    return max(floor, math.ceil(hours * 60 * SAFETY) + STARTUP_MIN)
