"""References from one run to another, as the trainer and analyses receive them.

A spec writes ``{run: NAME, checkpoint: best|last|epoch_N}``; the spec layer
replaces NAME by the upstream run id before hashing, so by the time a config
reaches the trainer a reference is ``{run: RUN_ID, checkpoint: ...}``. Where that
run (or analysis) lives, and which config hash it must carry, is the plan's word
(``Upstream``); a hand-written config finds its references beside its own run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch

from ..config.references import checkpoint_file
from ..errors import ConfigError
from ..readback import check_recorded, check_run_dir, read_json



class Upstream:
    """The outputs a job may read, as its plan file lists them: run id -> (directory, config hash),
    analysis id -> directory. Every lookup checks the recorded identity before anything is read."""

    def __init__(self, runs: Mapping[str, Mapping[str, str]], analyses: Mapping[str, str], plan: str | Path,
                 beside: Path | None = None) -> None:
        self.runs, self.analyses, self.plan, self.beside = dict(runs), dict(analyses), str(plan), beside

    @classmethod
    def from_plan(cls, plan: Mapping[str, Any], path: str | Path) -> "Upstream":
        up = plan.get("upstream") or {}
        return cls(up.get("runs") or {}, up.get("analyses") or {}, path)

    @classmethod
    def beside_dir(cls, runs_dir: str | Path) -> "Upstream":
        """A hand-written run config (``train --config``): references live next to the run, unchecked."""
        return cls({}, {}, "(no plan: a hand-written config)", Path(runs_dir))

    def run(self, rid: str) -> Path:
        if rid in self.runs:
            entry = self.runs[rid]
            path = Path(entry["dir"])
            if not (path / "done.json").exists():
                raise ConfigError(f"{path}: run {rid} has not finished (no done.json)")
            check_run_dir(path, rid, entry["config_hash"], self.plan)  # config.yaml and done.json
            return path
        if self.beside is not None:
            return self.beside / rid
        raise ConfigError(f"{self.plan}: run {rid} is referenced but not listed among the plan's upstream runs")

    def analysis(self, aid: str) -> Path:
        if aid in self.analyses:
            path = Path(self.analyses[aid])
            check_recorded(read_json(path / "result.json", f"result of upstream analysis {aid}"),
                           path / "result.json", {"id": aid}, self.plan)
            return path
        if self.beside is not None:
            return self.beside.parent / "analyses" / aid
        raise ConfigError(f"{self.plan}: analysis {aid} is referenced but not listed among the plan's upstream "
                          "analyses")


def upstream_of(runs_dir: "str | Path | Upstream | None") -> Upstream | None:
    if runs_dir is None or isinstance(runs_dir, Upstream):
        return runs_dir
    return Upstream.beside_dir(runs_dir)


def is_reference(value: Any) -> bool:
    return isinstance(value, Mapping) and ("run" in value or "analysis" in value)


def run_dir(ref: Mapping[str, Any], runs_dir: "str | Path | Upstream") -> Path:
    if not isinstance(ref, Mapping) or "run" not in ref:
        raise ConfigError(f"expected a run reference {{run: ID, checkpoint: best}}, got {ref!r}")
    return upstream_of(runs_dir).run(str(ref["run"]))  # type: ignore[union-attr]


def load_model(ref: Mapping[str, Any], runs_dir: "str | Path | Upstream", data_root: str | Path,
               device: torch.device) -> torch.nn.Module:
    """The referenced run's model in eval mode (it must have finished: its done.json is a DAG input)."""
    from .setup import build_from_run_dir

    _, model, _ = build_from_run_dir(run_dir(ref, runs_dir), data_root, device, checkpoint_file(ref))
    return model


def subset_indices(subset: Mapping[str, Any], labels: Any, runs_dir: "str | Path | Upstream | None") -> Any:
    """Training indices a ``data.subset`` keeps: listed classes, listed indices, or an analysis's list."""
    import numpy as np

    if "classes" in subset:
        return np.flatnonzero(np.isin(labels, [int(c) for c in subset["classes"]]))
    if "indices" in subset:
        return np.asarray(sorted(int(i) for i in subset["indices"]), dtype=np.int64)
    if "analysis" in subset:
        values = analysis_values(subset, runs_dir, "data.subset")
        key = subset.get("key", "indices")
        if key not in values:
            raise ConfigError(f"data.subset: analysis {subset['analysis']} has no value {key!r}; "
                              f"has {', '.join(sorted(values))}")
        return np.asarray(sorted(int(i) for i in values[key]), dtype=np.int64)
    raise ConfigError(f"data.subset: expected classes:, indices: or analysis:, got {dict(subset)}")


def analysis_values(ref: Mapping[str, Any], runs_dir: "str | Path | Upstream | None", where: str) -> dict[str, Any]:
    """The ``values`` of the analysis ``ref`` names (a DAG input: it ran first)."""
    up = upstream_of(runs_dir)
    if up is None:
        raise ConfigError(f"{where} names an analysis, but the run directory is unknown")
    path = up.analysis(str(ref["analysis"])) / "result.json"
    if not path.exists():
        raise ConfigError(f"{path}: the analysis this run's {where} names has not run")
    values = read_json(path, "analysis result").get("values")
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: no 'values' mapping in the analysis result")
    return values


TRAIN_FROM_FILES = ("images.npy", "labels.npy")  # what an analysis writes to be a training split


def analysis_split(ref: Mapping[str, Any], runs_dir: "str | Path | Upstream | None", image_shape: tuple[int, ...],
                   num_classes: int, primary: str) -> tuple[Any, Any]:
    """``data.train_from``: (images N x H x W x C float32 in [0, 1], labels) an analysis wrote, checked
    against ``data.primary``'s training images (``image_shape``) and class count, one line per mismatch."""
    import numpy as np

    up = upstream_of(runs_dir)
    if up is None:
        raise ConfigError("data.train_from names an analysis, but the run directory is unknown")
    path = up.analysis(str(ref["analysis"]))
    files = [path / f for f in TRAIN_FROM_FILES]
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise ConfigError(f"data.train_from: analysis {ref['analysis']} wrote no {', '.join(missing)}; it is not "
                          "a training split")
    x, y = np.load(files[0], mmap_mode="r"), np.load(files[1])
    if tuple(x.shape[1:]) != tuple(image_shape) or x.dtype not in (np.float32, np.uint8):
        raise ConfigError(f"data.train_from: {files[0]} holds {x.dtype} images of shape {tuple(x.shape[1:])}, "
                          f"but {primary} trains on {tuple(image_shape)} (uint8 or float32)")
    if y.ndim != 1 or len(y) != len(x) or (len(y) and (int(y.min()) < 0 or int(y.max()) >= num_classes)):
        raise ConfigError(f"data.train_from: {files[1]} must hold one label in [0, {num_classes}) per image "
                          f"({primary} has {num_classes} classes), got {len(y)} labels in "
                          f"[{int(y.min()) if len(y) else 0}, {int(y.max()) if len(y) else 0}] for {len(x)} images")
    return x, y.astype(np.int64)


def eval_lists(cfg: Mapping[str, Any], runs_dir: "str | Path | Upstream | None") -> dict[str, list[int]] | None:
    """``data.eval_indices``: the test-split positions the selection rule and the evaluation use, in the
    analysis's order (a permutation's prefix is the selection set, the rest the final set)."""
    ref = (cfg.get("data") or {}).get("eval_indices")
    if not ref:
        return None
    values = analysis_values(ref, runs_dir, "data.eval_indices")
    missing = [k for k in ("selection", "final") if k not in values]
    if missing:
        raise ConfigError(f"data.eval_indices: analysis {ref['analysis']} has no {', '.join(missing)} list")
    return {k: [int(i) for i in values[k]] for k in ("selection", "final")}


class RunReferences:
    """A method's reference parameters resolved against the plan's upstream outputs (``methods.base.References``)."""

    def __init__(self, upstream: "Upstream | None", data_root: str | Path, device: torch.device) -> None:
        self.upstream, self.data_root, self.device = upstream, data_root, device

    def model(self, ref: Mapping[str, Any]) -> torch.nn.Module:
        if self.upstream is None:
            raise ConfigError(f"reference {dict(ref)}: the run directory is unknown")
        return load_model(ref, self.upstream, self.data_root, self.device)

    def indices(self, subset: Mapping[str, Any], labels: Any) -> Any:
        return subset_indices(subset, labels, self.upstream)
