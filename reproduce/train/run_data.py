"""A run's data: its training split cut to the run's images, plus its evaluation and selection splits.

One assembly for both storages: array datasets (batched on the device, ``DeviceDataset``) and
full-resolution JPEG datasets (``storage: jpeg``, streamed by ``StreamSplit``). The training split
is cut on labels and instance ids only, in one order (``training_positions``): pool -> subset ->
n_train -> hold-out; the images follow the positions that remain.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from ..errors import ConfigError
from .setup import place_data


def subset_indices(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """A class-balanced, seeded subset: small CPU scales keep every class represented."""
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    per = max(1, n // len(classes))
    picks = [rng.permutation(np.flatnonzero(labels == c))[:per] for c in classes]
    return np.sort(np.concatenate(picks))[:n]


def pool_indices(labels: np.ndarray, n: int) -> np.ndarray:
    """The first ``n // classes`` instances of every class in original order (seed-free, so every
    seed and every subset drawn from it see the same images)."""
    classes = np.unique(labels)
    per = n // len(classes)
    if per < 1:
        raise ConfigError(f"data.pool: {n} images cannot hold one image of each of {len(classes)} classes")
    return np.sort(np.concatenate([np.flatnonzero(labels == c)[:per] for c in classes]))


def training_positions(cfg: Mapping[str, Any], labels: np.ndarray,
                       runs_dir: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """(training positions, held-out positions) into the primary training split, whose labels are ``labels``.

    A position is an instance id (original ids survive every cut, so per-instance logs line up
    across runs). The cuts, each on what the one before kept: ``data.pool`` (seed-free), ``data.subset``
    (classes, indices or an analysis's list), ``data.n_train`` (class-balanced, seeded by the run
    seed), then ``data.holdout``.
    """
    from ..data.feeding.holdout import split_holdout
    from .refs import subset_indices as chosen

    d = cfg["data"]
    pos = np.arange(len(labels))
    if d.get("pool"):
        pos = pos[pool_indices(labels[pos], int(d["pool"]))]
    if d.get("parts"):
        pos = np.sort(np.concatenate([ids for name, ids in training_parts(cfg, labels).items()
                                      if name in d["parts"]["use"]]))
    if d.get("subset"):
        pos = pos[chosen(d["subset"], labels[pos], runs_dir)]
    if d["n_train"]:
        pos = pos[subset_indices(labels[pos], int(d["n_train"]), int(cfg["seed"]))]
    keep, held = split_holdout(pos, d.get("holdout"), int(cfg["seed"]))
    return pos[keep], pos[held]


def training_parts(cfg: Mapping[str, Any], labels: np.ndarray) -> dict[str, np.ndarray]:
    """``data.parts``: part name -> the original ids of its images, cut from the pool (if any)."""
    from ..data.catalog import DATASETS
    from ..data.feeding.parts import choose_parts

    d = cfg["data"]
    pos = np.arange(len(labels))
    if d.get("pool"):
        pos = pos[pool_indices(labels[pos], int(d["pool"]))]
    info = DATASETS.get(d["primary"]) if d["primary"] in DATASETS else None
    catalog_n = (info.split_sizes or {}).get(d["train_split"]) if info is not None else None
    _, parts = choose_parts(d["parts"], labels[pos], catalog_n)
    return {name: pos[p] for name, p in parts.items()}


def _checked(indices: list[int], n: int, where: str) -> np.ndarray:
    idx = np.asarray(indices, dtype=np.int64)
    if len(idx) and (idx.min() < 0 or idx.max() >= n):
        raise ConfigError(f"{where}: index {int(idx.max())} outside a split of {n} images")
    return idx


def listed_selection(cfg: Mapping[str, Any], selection: Any, eval_split: Any, runs_dir: str | Path | None) -> Any:
    """The selection images: ``data.eval_indices``' selection list of the selection split, when the run has one."""
    from .refs import eval_lists

    lists = eval_lists(cfg, runs_dir)
    if lists is None:
        return selection
    sx, sy = selection if selection is not None else eval_split
    pick = _checked(lists["selection"], len(sy), "data.eval_indices selection")
    return sx[pick], sy[pick]


def _prov(man: Mapping[str, Any]) -> dict[str, Any]:
    return {"name": man.get("name"), "synthetic": bool(man.get("synthetic", False)),
            "splits": {k: v.get("images_sha256") or v.get("files_sha256") for k, v in man.get("splits", {}).items()}}


def load_run_data(cfg: Mapping[str, Any], root: str | Path, device: torch.device,
                  runs_dir: str | Path | None = None) -> dict[str, Any]:
    """The run's training splits on the device (or streamed), its eval and selection splits, and what they are.

    Keys: ``train`` ({dataset: DeviceDataset | StreamSplit}), ``eval``, ``selection``, ``holdout``
    ((images, labels, ids) or None), ``num_classes``, ``image_size``, ``channels``,
    ``steps_per_epoch``, ``provenance``, ``manifest``, ``placement``.
    """
    from ..data import load_split, read_manifest

    d = cfg["data"]
    primary = d["primary"]
    man = read_manifest(primary, root)
    jpeg = man.get("storage") == "jpeg"  # full-resolution JPEGs are streamed, never one tensor
    out = (_streamed if jpeg else _arrays)(cfg, man, root, device, runs_dir)
    n, bs = out.pop("n_train"), int(cfg["batch_size"])
    steps = n // bs if d["drop_last"] else -(-n // bs)  # the OneCycle horizon follows
    if d.get("composite"):
        from ..data.feeding.composite import steps_per_epoch

        steps = steps_per_epoch(d["composite"], n, bs, len(out["train"]["composite"]), bool(d["drop_last"]))
    if steps < 1:
        raise ConfigError(f"run {cfg['name']}: batch_size {cfg['batch_size']} exceeds the {n} training images")
    ex, ey = load_split(primary, d["eval_split"], root)
    sel_split = cfg["selection"]["split"]
    selection = load_split(primary, sel_split, root) if sel_split != d["eval_split"] else None
    selection = listed_selection(cfg, selection, (ex, ey), runs_dir)
    return {**out, "eval": (ex, ey), "num_classes": int(man["num_classes"]), "steps_per_epoch": steps,
            "selection": selection, "manifest": man}


def _arrays(cfg: Mapping[str, Any], man: Mapping[str, Any], root: str | Path, device: torch.device,
            runs_dir: Any) -> dict[str, Any]:
    """Array datasets: the primary's kept images, every auxiliary and composite split, placed once."""
    from ..data import DeviceDataset, load_split, read_manifest

    d = cfg["data"]
    primary = d["primary"]
    x, y = load_split(primary, d["train_split"], root)
    if d.get("train_from"):  # an analysis's images (a robust dataset) replace the primary's training split
        from .refs import analysis_split

        x, y = analysis_split(d["train_from"], runs_dir, tuple(x.shape[1:]), int(man["num_classes"]), primary)
    pos, held = training_positions(cfg, y, runs_dir)
    holdout = (x[held], y[held], held) if len(held) else None
    full_y = y
    if not np.array_equal(pos, np.arange(len(y))):  # uncut splits stay as loaded (memory-mapped when large)
        x, y = x[pos], y[pos]
    provenance = {primary: _prov(man)}
    if d.get("train_from"):
        provenance[primary]["train_from"] = str(d["train_from"]["analysis"])
    if d.get("parts"):  # the noisy parts' images replaced by their fixed noisy copies (feeding/parts.py)
        from ..data.feeding.parts import describe, noisy_images

        parts = training_parts(cfg, full_y)
        x = noisy_images(d["parts"], x, pos, parts)
        provenance[primary]["parts"] = describe(d["parts"], parts, full_y)
    splits = {primary: (x, y, pos)}
    aux_classes = {}
    for aux in d["aux"]:
        ax, ay = load_split(aux, "train", root)
        aux_man = read_manifest(aux, root)
        provenance[aux], aux_classes[aux] = _prov(aux_man), int(aux_man["num_classes"])
        sub = (d.get("aux_subsample") or {}).get(aux)
        if sub:  # a seeded subsample, labels renumbered when whole classes go (feeding/subsample.py)
            from ..data.feeding.subsample import kept_classes, subsample

            keep, ay = subsample(ay, aux_classes[aux], sub)
            ax, aux_classes[aux] = ax[keep], kept_classes(aux_classes[aux], sub)
            provenance[aux]["subsample"] = {**dict(sub), "images": int(len(keep)), "classes": aux_classes[aux]}
        splits[aux] = (ax, ay, None)
    comp = d.get("composite")
    if comp:  # pseudo-labelled extra data mixed into every batch (reproduce/data/feeding/composite.py)
        from .composite_refs import composite_extra

        cx, cy = load_split(comp["dataset"], comp.get("split", "train"), root)
        splits["composite"] = composite_extra(comp, cx, cy, int(man["num_classes"]), runs_dir)
        provenance[comp["dataset"]] = _prov(read_manifest(comp["dataset"], root))
    # decided before any split is copied: a split that does not fit must never reach the device
    placement = place_data(cfg, splits, device, classes=int(man["num_classes"]), aux_classes=aux_classes)
    train = {k: DeviceDataset(sx, sy, device, indices=sids, storage=placement.placement)
             for k, (sx, sy, sids) in splits.items()}
    return {"train": train, "n_train": len(y), "image_size": int(x.shape[1]), "channels": int(x.shape[3]),
            "provenance": provenance, "holdout": holdout, "placement": placement}


def _streamed(cfg: Mapping[str, Any], man: Mapping[str, Any], root: str | Path, device: torch.device,
              runs_dir: Any) -> dict[str, Any]:
    """A primary stored as JPEG files: a ``StreamSplit`` of the kept files; held-out images get the eval transform."""
    from ..data.feeding.placement import Placement, gib
    from ..data.feeding.stream import StreamSplit
    from ..data.storage.jpeg import read_file_split

    d = cfg["data"]
    primary = d["primary"]
    if d["aux"] or d.get("composite") or d.get("train_from"):
        raise ConfigError(f"run {cfg['name']}: data.aux, data.composite and data.train_from are not supported with the streamed "
                          f"(full-resolution JPEG) dataset {primary!r}")
    if (d.get("parts") or {}).get("noise"):
        raise ConfigError(f"run {cfg['name']}: data.parts.noise is not supported with the streamed "
                          f"(full-resolution JPEG) dataset {primary!r}")
    fs = read_file_split(primary, d["train_split"], root, meta=dict(man))
    pos, held = training_positions(cfg, fs.labels, runs_dir)
    full = StreamSplit(fs.paths(), fs.labels, device)
    holdout = (full.eval_array(held), fs.labels[held], held) if len(held) else None
    train = full.subset(pos)
    nbytes = int(man["splits"][d["train_split"]].get("bytes", 0))
    placement = Placement("stream", cfg["perf"]["data_placement"], str(device), nbytes, None, 0,
                          f"{train.describe()}; JPEGs {gib(nbytes)} on disk")
    return {"train": {primary: train}, "n_train": len(pos), "image_size": int(man["image_size"]),
            "channels": int(man["channels"]), "provenance": {primary: _prov(man)}, "holdout": holdout,
            "placement": placement}
