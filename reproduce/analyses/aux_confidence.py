"""Share of an auxiliary dataset above a BiaMAT run's confidence threshold, per class and superclass
(BiaMAT Table 16), and the most / least confident images of one class (Figure 4 of 000).

``aux_confidence``: the primary head's max softmax of the ``model`` run (a BiaMAT run; eval mode,
clean, unaugmented) on every image of ``dataset``/``split``. A sample is high iff conf >= omega
(Algorithm 1 routes "< omega" to y^ER [001:L164-165]). omega is the run's frozen training threshold,
the ``threshold`` its metrics.jsonl logs each epoch after the warm-up (reproduce/methods/biamat.py),
which is the one judged; ``omega_recomputed`` = pi x the mean primary confidence of the final model on
its primary training split is reported beside it, with every ratio under it too.

Per class c of the dataset: ratio_c = share of its images with conf >= omega. ``superclasses`` maps a
superclass to class names, resolved to the dataset's class names (spaces and "_" alike, any case);
a name several classes share is settled by ``disambiguate: {name: wnid}`` (ImageNet's "crane" is a
bird and a machine). A superclass row is the mean and the population std (ddof 0) of its member
classes' ratios; ``Others`` are the classes in no superclass; ``All`` the mean over every class.
``named`` classes' ratios are reported alone (a list of names, or label -> class name). For
``show_class``: the ``k`` most and ``k`` least confident images (ties to the lower index) with their
confidences and primary-head predictions, as arrays for an image grid (``top``, ``top_conf``,
``top_pred``, ``top_pred_name``, ``top_index``; the same for ``bottom``), and per panel how many are
at or above omega (``high``), below it (``low``) and predicted as one of the ``related`` primary
classes.

Generated stand-ins (smoke, shapes) have no real class names: their manifest's names (class0, ...)
are read with ``stand_in`` ({superclasses, named, show_class, disambiguate}) in place of the real
mapping, and every output says ``stand_in: 1``. A real dataset whose names are unknown is an
error, never a silently skipped table.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from ..errors import ConfigError
from .base import ANALYSES, REQUIRED, Analysis, AnalysisContext, positive_ints

CONF_FILE = "aux_confidence.npz"
STAND_IN_DEFAULTS: dict[str, Any] = {"named": [], "disambiguate": {}, "show_class": None, "related": []}
MAPPING_KEYS = ("superclasses", "named", "show_class", "disambiguate", "related")


def norm_name(name: str, case: bool = False) -> str:
    n = " ".join(str(name).replace("_", " ").split())
    return n if case else n.lower()


def resolve(names: list[str], wanted: list[str], wnids: list[str] | None, disambiguate: Mapping[str, str],
            where: str) -> list[int]:
    """Class indices of ``wanted`` names (spaces and "_" alike; the exact case first, then any case); a
    name shared by several classes needs a wnid in ``disambiguate``."""
    index: dict[str, list[int]] = {}
    for i, n in enumerate(names):
        index.setdefault(norm_name(n), []).append(i)
        index.setdefault("=" + norm_name(n, case=True), []).append(i)
    pick = {norm_name(k): v for k, v in disambiguate.items()}
    out = []
    for w in wanted:
        # the exact spelling first: ImageNet has "Cardigan" (the corgi) and "cardigan" (the sweater)
        hits = index.get("=" + norm_name(w, case=True)) or index.get(norm_name(w), [])
        if len(hits) > 1 and norm_name(w) in pick:
            if wnids is None:
                raise ConfigError(f"{where}: {w!r} names {len(hits)} classes and the dataset has no wnids to pick one")
            hits = [i for i in hits if wnids[i] == pick[norm_name(w)]]
        if len(hits) != 1:
            raise ConfigError(f"{where}: class name {w!r} matches {len(hits)} classes of the dataset "
                              + ("(give its wnid under disambiguate)" if hits else "(no such class)"))
        out.append(hits[0])
    return out


def class_ratios(conf: np.ndarray, labels: np.ndarray, omega: float, num_classes: int) -> np.ndarray:
    """Per class, the share of its samples with conf >= omega (NaN for a class with none)."""
    high = np.bincount(labels, weights=(conf >= omega).astype(np.float64), minlength=num_classes)
    count = np.bincount(labels, minlength=num_classes).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return high / count


def group_table(ratios: np.ndarray, groups: Mapping[str, list[int]]) -> dict[str, dict[str, Any]]:
    """Each group's mean and population std (ddof 0) of its classes' ratios, plus Others (the classes
    in no group) and All (every class); classes without samples are left out of both."""
    members = {g: list(ix) for g, ix in groups.items()}
    grouped = {i for ix in members.values() for i in ix}
    members["Others"] = [i for i in range(len(ratios)) if i not in grouped]
    members["All"] = list(range(len(ratios)))
    out = {}
    for g, ix in members.items():
        r = ratios[ix] if ix else np.zeros(0)
        r = r[~np.isnan(r)]
        out[g] = {"mean": float(r.mean()) if len(r) else None, "std": float(r.std()) if len(r) else None,
                  "classes": len(ix)}
    return out


def extremes(conf: np.ndarray, labels: np.ndarray, cls: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the k most confident (descending) and the k least confident (ascending) samples of
    ``cls``; ties to the lower index in both."""
    members = np.flatnonzero(labels == cls)
    top = members[np.lexsort((members, -conf[members]))][:k]
    bottom = members[np.lexsort((members, conf[members]))][:k]
    return top, bottom


@torch.no_grad()
def primary_confidence(model: Any, images: np.ndarray, batch_size: int, device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """(max softmax, argmax) of the primary head on every image, eval mode."""
    from .fid import image_batches

    model.eval()
    conf, pred = [], []
    for x in image_batches(images, np.arange(len(images)), batch_size, device):
        p = torch.softmax(model(x).float(), dim=1)
        c, a = p.max(dim=1)
        conf.append(c.cpu().numpy())
        pred.append(a.cpu().numpy())
    return np.concatenate(conf).astype(np.float64), np.concatenate(pred).astype(np.int64)


def frozen_threshold(run_dir: Path) -> float:
    """The run's training threshold: the ``threshold`` its metrics.jsonl logs (one value, frozen)."""
    path = run_dir / "metrics.jsonl"
    values = [r["threshold"] for r in (json.loads(line) for line in path.read_text().splitlines() if line.strip())
              if r.get("threshold") is not None] if path.exists() else []
    if not values:
        raise ConfigError(f"{path}: no 'threshold' logged; aux_confidence needs a BiaMAT run with selection")
    if max(values) - min(values) > 1e-9:
        raise ConfigError(f"{path}: the logged threshold changes ({min(values)} .. {max(values)}); it should be frozen")
    return float(values[-1])


def dataset_names(dataset: str, root: Path) -> tuple[list[str] | None, list[str] | None, bool]:
    """(class names, wnids or None, generated?) of a prepared dataset: its manifest's names, else the
    catalog's (the downsampled ImageNet's label order is fixed by its pickles)."""
    from ..data import read_manifest
    from ..data.catalog import DATASETS

    man = read_manifest(dataset, root)
    generated = bool(man.get("synthetic"))
    names = man.get("classes") or (None if generated or dataset not in DATASETS else DATASETS.get(dataset).classes)
    wnids = None
    if not generated and dataset in ("imagenet32", "imagenet64"):
        from ..data.catalog.imagenet import imagenet_classes

        wnids = [w for w, _ in imagenet_classes()]
    return (list(names) if names else None), wnids, generated


@ANALYSES.register("aux_confidence")
class AuxConfidence(Analysis):
    """Per-class and per-superclass shares of an aux dataset above a BiaMAT run's threshold."""

    params = {"model": REQUIRED, "dataset": REQUIRED, "split": "train", "superclasses": REQUIRED, "named": [],
              "disambiguate": {}, "show_class": None, "related": [], "k": 10, "batch_size": 1000, "stand_in": None}
    references = {"model": "run"}
    gpu = True

    @classmethod
    def check(cls, params: Mapping[str, Any], where: str) -> None:
        positive_ints(params, ("k", "batch_size"), where)
        _check_mapping(params, where)
        si = params["stand_in"]
        if si is not None:
            if not isinstance(si, Mapping) or set(si) - set(MAPPING_KEYS) or "superclasses" not in si:
                raise ConfigError(f"{where}: stand_in must be a mapping with superclasses (and named, show_class, "
                                  f"disambiguate), got {si!r}")
            _check_mapping({**STAND_IN_DEFAULTS, **si}, f"{where}.stand_in")

    @classmethod
    def forward_images(cls, params: Mapping[str, Any]) -> dict[str, int]:
        from ..data.catalog import DATASETS

        ds = DATASETS.get(str(params["dataset"])) if params["dataset"] in DATASETS else None
        aux = int((ds.split_sizes if ds else {}).get(str(params["split"]), 0))
        return {"model": aux + 50000}  # + the primary training split for the recomputed omega (CIFAR: 50k)

    def run(self, ctx: AnalysisContext) -> dict[str, Any]:
        from ..data import load_split
        from .margins import load_run_model, save_npz

        p = ctx.params
        cfg, model = load_run_model(ctx, "model")
        names, wnids, generated = dataset_names(p["dataset"], ctx.data_root)
        if names is None:
            raise ConfigError(f"analysis aux_confidence: {p['dataset']} has no class names (none in its manifest "
                              "or the catalog); re-import it with a catalog entry that lists them")
        m = {k: p[k] for k in MAPPING_KEYS}
        if generated:
            if p["stand_in"] is None:
                raise ConfigError(f"analysis aux_confidence: {p['dataset']} is a generated stand-in; declare stand_in "
                                  "(superclasses over its class0.. names) to run the code path")
            m = {**STAND_IN_DEFAULTS, **p["stand_in"]}
        where = f"analysis aux_confidence ({p['dataset']})"
        groups = {g: resolve(names, list(v), wnids, m["disambiguate"], where) for g, v in m["superclasses"].items()}
        labels_of = dict(m["named"]) if isinstance(m["named"], Mapping) else {n: n for n in m["named"]}
        named = dict(zip(labels_of, resolve(names, list(labels_of.values()), wnids, m["disambiguate"], where)))
        images, labels = load_split(p["dataset"], p["split"], ctx.data_root, mmap=True)
        conf, pred = primary_confidence(model, images, int(p["batch_size"]), ctx.device)
        labels = np.asarray(labels, dtype=np.int64)
        pi = float((cfg.get("method") or {}).get("pi", 0.0))
        prim, _ = load_split(cfg["data"]["primary"], cfg["data"].get("train_split", "train"), ctx.data_root, mmap=True)
        omega_re = pi * float(primary_confidence(model, prim, int(p["batch_size"]), ctx.device)[0].mean())
        omega = frozen_threshold(Path(ctx.inputs["model"]))
        out: dict[str, Any] = {"dataset": p["dataset"], "split": p["split"], "n": int(len(conf)),
                               # a number, so tables can show it: 1 = generated names, not the dataset's
                               "stand_in": int(generated),
                               "omega": omega, "omega_recomputed": omega_re, "pi": pi, "judged": "omega (frozen)"}
        for tag, w in (("", omega), ("recomputed_", omega_re)):
            ratios = class_ratios(conf, labels, w, len(names))
            out[f"{tag}superclass"] = group_table(ratios, groups)
            out[f"{tag}named"] = {n: _f(ratios[i]) for n, i in named.items()}
            out[f"{tag}high_fraction"] = float((conf >= w).mean())
            if not tag:
                out["class_ratio"] = {names[i]: _f(r) for i, r in enumerate(ratios)}
        arrays: dict[str, np.ndarray] = {"conf": conf.astype(np.float32), "pred": pred.astype(np.int16)}
        if m["show_class"] is not None:
            out.update(_show(m, names, wnids, where, conf, pred, labels, int(p["k"]), omega, images, arrays,
                             cfg["data"]["primary"], ctx.data_root))
        save_npz(ctx.out_dir / CONF_FILE, **arrays)
        out["file"] = CONF_FILE
        return out


def _show(m: Mapping[str, Any], names: list[str], wnids: list[str] | None, where: str, conf: np.ndarray,
          pred: np.ndarray, labels: np.ndarray, k: int, omega: float, images: np.ndarray,
          arrays: dict[str, np.ndarray], primary: str, root: Path) -> dict[str, Any]:
    """The show_class grid's arrays (into ``arrays``) and its summary values."""
    cls = resolve(names, [m["show_class"]], wnids, m["disambiguate"], where)[0]
    if not (labels == cls).any():  # else the grid fails later, far from the cause
        raise ConfigError(f"{where}: show_class {m['show_class']!r} has no image in this split")
    primary_names, _, _ = dataset_names(primary, root)
    out: dict[str, Any] = {"show_class": m["show_class"], "show_class_index": cls, "k": k,
                           "related": list(m["related"])}
    related = resolve(primary_names or [], list(m["related"]), None, {}, f"{where}: related") if m["related"] else []
    for tag, ix in zip(("top", "bottom"), extremes(conf, labels, cls, k)):
        x = np.asarray(images[ix])
        arrays[tag] = (x.astype(np.float32) / 255.0) if x.dtype == np.uint8 else x.astype(np.float32)
        arrays[f"{tag}_conf"] = conf[ix].astype(np.float32)
        arrays[f"{tag}_pred"] = pred[ix].astype(np.int64)
        arrays[f"{tag}_pred_name"] = np.array([primary_names[i] if primary_names else str(i) for i in pred[ix]])
        arrays[f"{tag}_index"] = ix.astype(np.int64)
        out[tag] = {"n": int(len(ix)), "high": int((conf[ix] >= omega).sum()), "low": int((conf[ix] < omega).sum()),
                    "related": int(np.isin(pred[ix], related).sum()),
                    "conf_min": _f(conf[ix].min()) if len(ix) else None, "conf_max": _f(conf[ix].max()) if len(ix) else None,
                    "pred_count": {(primary_names[c] if primary_names else str(c)): int((pred[ix] == c).sum())
                                   for c in np.unique(pred[ix])}}
    return out


def _f(v: Any) -> float | None:
    return None if v is None or np.isnan(v) else float(v)


def _check_mapping(m: Mapping[str, Any], where: str) -> None:
    sc = m["superclasses"]
    if not isinstance(sc, Mapping) or not sc or not all(isinstance(v, list) and v and all(isinstance(n, str) for n in v)
                                                        for v in sc.values()):
        raise ConfigError(f"{where}: superclasses must map each superclass to a non-empty list of class names")
    if {"Others", "All"} & set(sc):
        raise ConfigError(f"{where}: superclasses may not be named Others or All (the table adds them)")
    named = list(m["named"].values()) if isinstance(m["named"], Mapping) else m["named"]
    if not isinstance(named, list) or not all(isinstance(n, str) for n in named):
        raise ConfigError(f"{where}: named must be a list of class names (or label -> class name), got {m['named']!r}")
    if not isinstance(m["related"], list) or not all(isinstance(n, str) for n in m["related"]):
        raise ConfigError(f"{where}: related must be a list of the primary dataset's class names, got {m['related']!r}")
    if not isinstance(m["disambiguate"], Mapping) or not all(isinstance(v, str) for v in m["disambiguate"].values()):
        raise ConfigError(f"{where}: disambiguate must map a class name to a wnid, got {m['disambiguate']!r}")
    if m["show_class"] is not None and not isinstance(m["show_class"], str):
        raise ConfigError(f"{where}: show_class must be a class name, got {m['show_class']!r}")
