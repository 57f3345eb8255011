"""The extra split of a ``data.composite`` run, shaped by the analyses it names (BiaMAT's RST rows).

``labels: {analysis: ID}`` names a ``pseudo_labels`` analysis: its ``values`` record the dataset,
split and class count it labelled and the array file (``file``, array ``labels``) whose labels
replace the split's own. ``subset: {analysis: ID, key: indices}`` names a list of positions in that
split (a ``topk_per_class`` selection); only those images are drawn. Both are DAG inputs of the run
(``reproduce/pipeline/references.py``), so their ids are in its hash. Every mismatch (another
dataset, another class count, a length that is not the split's, a selection made from other
pseudo-labels) is one ``ConfigError`` line naming the key and the analysis.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import ConfigError
from ..readback import read_json
from .refs import upstream_of


def _envelope(ref: Mapping[str, Any], runs_dir: Any, where: str) -> tuple[Path, dict[str, Any]]:
    up = upstream_of(runs_dir)
    if up is None:
        raise ConfigError(f"{where} names an analysis, but the run directory is unknown")
    path = up.analysis(str(ref["analysis"]))
    if not (path / "result.json").exists():
        raise ConfigError(f"{path / 'result.json'}: the analysis this run's {where} names has not run")
    env = read_json(path / "result.json", "analysis result")
    if not isinstance(env.get("values"), dict):
        raise ConfigError(f"{path / 'result.json'}: no 'values' mapping in the analysis result")
    return path, env


def pseudo_labels(comp: Mapping[str, Any], n_extra: int, num_classes: int, runs_dir: Any) -> np.ndarray:
    """The labels ``comp['labels']`` names, checked against the extra split and the primary's classes."""
    where = "data.composite.labels"
    path, env = _envelope(comp["labels"], runs_dir, where)
    v, aid = env["values"], comp["labels"]["analysis"]
    split = comp.get("split", "train")
    if (v.get("dataset"), v.get("split")) != (comp["dataset"], split):
        raise ConfigError(f"{where}: analysis {aid} labelled {v.get('dataset')}:{v.get('split')}, but the run "
                          f"draws from {comp['dataset']}:{split}")
    if v.get("num_classes") != num_classes:
        raise ConfigError(f"{where}: analysis {aid} labels {v.get('num_classes')} classes, but the primary "
                          f"dataset has {num_classes}")
    if not v.get("file") or not (path / v["file"]).exists():
        raise ConfigError(f"{path}: analysis {aid} names no labels file (values.file), or it is missing")
    with np.load(path / v["file"]) as z:
        labels = np.asarray(z["labels"], dtype=np.int64)
    if len(labels) != n_extra:
        raise ConfigError(f"{where}: analysis {aid} holds {len(labels)} labels, but {comp['dataset']}:{split} "
                          f"has {n_extra} images")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise ConfigError(f"{where}: analysis {aid} has a label outside 0..{num_classes - 1}")
    return labels


def subset_positions(comp: Mapping[str, Any], n_extra: int, runs_dir: Any) -> np.ndarray:
    """The positions ``comp['subset']`` keeps (sorted), in range and chosen from the run's own pseudo-labels."""
    where = "data.composite.subset"
    ref = comp["subset"]
    _, env = _envelope(ref, runs_dir, where)
    key = ref.get("key", "indices")
    if key not in env["values"]:
        raise ConfigError(f"{where}: analysis {ref['analysis']} has no value {key!r}; "
                          f"has {', '.join(sorted(env['values']))}")
    made_from = (env.get("params") or {}).get("labels")
    if comp.get("labels") and isinstance(made_from, Mapping) and made_from.get("analysis") != comp["labels"]["analysis"]:
        raise ConfigError(f"{where}: analysis {ref['analysis']} selects from pseudo-labels "
                          f"{made_from.get('analysis')}, but data.composite.labels names {comp['labels']['analysis']}")
    idx = np.unique(np.asarray(env["values"][key], dtype=np.int64))
    if not len(idx):
        raise ConfigError(f"{where}: analysis {ref['analysis']} keeps no image")
    if idx[0] < 0 or idx[-1] >= n_extra:
        raise ConfigError(f"{where}: analysis {ref['analysis']} lists position {int(idx[-1])} outside "
                          f"{comp['dataset']}'s {n_extra} images")
    return idx


def composite_extra(comp: Mapping[str, Any], images: np.ndarray, labels: np.ndarray, num_classes: int,
                    runs_dir: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(images, labels, original positions or None) of the extra split the sampler draws from."""
    if comp.get("labels") is not None:
        labels = pseudo_labels(comp, len(labels), num_classes, runs_dir)
    if comp.get("subset") is None:
        return images, labels, None
    idx = subset_positions(comp, len(labels), runs_dir)
    return images[idx], labels[idx], idx
