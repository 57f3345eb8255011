"""Instance difficulty d(x) from per-instance training logs, its groups and class-balanced subsets.

``difficulty`` (the hard-instance code's ``analyze/sort_instance.py`` with ``--min_epoch 10
--metric loss``): per instance the **sum** of the logged training-time values over 0-based epochs
``>= min_epoch``; ``metric: loss`` reads ``instance_losses.npy`` (higher = harder), ``metric: acc``
reads ``instance_correct.npy`` (fewer correct epochs = harder). ``log: <name>`` reads the run's
eval log ``eval_<name>_losses.npy`` / ``_correct.npy`` instead (eval mode, its own split: T5's d). The rank is global over classes
with midpoint ties, Eq. (1) with e drawn from the set including x itself:

    d(i) = (A_i + c_i / 2) / N,  A_i = #{j: harder than i},  c_i = #{j: as hard as i} (i included)

so d lies in (0, 1), **d near 0 is hardest**. ``agg: sum`` needs every instance seen every epoch
(``data.drop_last: false``); ``nanmean`` ranks by the mean over seen epochs instead (recorded).

``groups``: G_k = {i: min(int(10 d_i), 9) = k}; G0 hardest (the text's D.5 swaps the names).

``subset``: per class, sort by d ascending (ties by original index); ``hard`` takes the first
``n // classes``, ``easy`` the last, ``random`` a seeded permutation's first (the code's is unseeded).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import ConfigError
from .base import ANALYSES, REQUIRED, Analysis, AnalysisContext, positive_ints
from .margins import save_npz

DIFFICULTY_FILE = "difficulty.npz"
METRICS = {"loss": "instance_losses.npy", "acc": "instance_correct.npy"}
AGGS = ("sum", "nanmean")
MODES = ("easy", "random", "hard")


def midpoint_rank(hardness: np.ndarray) -> np.ndarray:
    """d = (#strictly harder + #equally hard / 2) / N for each entry (higher ``hardness`` = harder)."""
    n = len(hardness)
    values, inverse, counts = np.unique(hardness, return_inverse=True, return_counts=True)
    # np.unique sorts ascending: the instances strictly harder than value v are those of later values
    harder = np.concatenate([np.cumsum(counts[::-1])[::-1][1:], [0]])
    return (harder[inverse] + counts[inverse] / 2.0) / n


def scores(values: np.ndarray, metric: str, min_epoch: int, agg: str, where: str) -> np.ndarray:
    """Per-instance S over epochs >= min_epoch, oriented so that higher = harder."""
    v = values[min_epoch:].astype(np.float64)
    if metric == "acc":
        v = np.where(values[min_epoch:] == 255, np.nan, v)  # 255 marks an unseen instance
    if v.shape[0] == 0:
        raise ConfigError(f"{where}: min_epoch {min_epoch} leaves no epochs of the {values.shape[0]} logged")
    if agg == "sum":
        if np.isnan(v).any():
            raise ConfigError(f"{where}: agg sum needs every instance logged every epoch (train with "
                              "data.drop_last: false) or agg: nanmean")
        s = v.sum(0)
    else:
        s = np.nanmean(v, 0)
    return s if metric == "loss" else -s


def load_difficulty(analysis_dir: Path) -> dict[str, np.ndarray]:
    with np.load(Path(analysis_dir) / DIFFICULTY_FILE) as z:
        return {k: z[k] for k in z.files}


@ANALYSES.register("difficulty")
class Difficulty(Analysis):
    """d(x) of a run's training instances from its per-instance logs (Eq. 1, the code's sum)."""

    # log: train (the training-time InstanceLog) or the name of one of the run's eval_logs
    params = {"run": REQUIRED, "metric": "loss", "min_epoch": 10, "agg": "sum", "log": "train"}
    epoch_params = {"min_epoch": "run"}
    references = {"run": "run"}
    observers = ("per_instance",)

    @classmethod
    def resolve_params(cls, given: Mapping[str, Any], where: str) -> dict[str, Any]:
        out = super().resolve_params(given, where)
        if out["log"] == "train":  # added after ids were in use: at its default it stays out of the hash
            out.pop("log")
        return out

    @classmethod
    def required_observers(cls, params: Mapping[str, Any]) -> tuple[str, ...]:
        return cls.observers if params.get("log", "train") == "train" else (f"eval_log:{params['log']}",)

    @classmethod
    def check(cls, params: Mapping[str, Any], where: str) -> None:
        if params["metric"] not in METRICS:
            raise ConfigError(f"{where}: metric must be one of {', '.join(METRICS)}, got {params['metric']!r}")
        if not isinstance(params["log"], str) or not params["log"]:
            raise ConfigError(f"{where}: log must be 'train' or the name of one of the run's eval_logs, "
                              f"got {params['log']!r}")
        if params["agg"] not in AGGS:
            raise ConfigError(f"{where}: agg must be one of {', '.join(AGGS)}, got {params['agg']!r}")
        m = params["min_epoch"]
        if isinstance(m, bool) or not isinstance(m, int) or m < 0:
            raise ConfigError(f"{where}: min_epoch must be a non-negative integer, got {m!r}")

    def run(self, ctx: AnalysisContext) -> dict[str, Any]:
        from ..data import load_split

        p, log = ctx.params, ctx.params.get("log", "train")
        lg = read_log(Path(ctx.inputs["run"]), log, p["metric"])
        s = scores(lg["values"], p["metric"], int(p["min_epoch"]), p["agg"], str(lg["path"]))
        d = midpoint_rank(s)
        _, labels = load_split(*lg["source"], ctx.data_root)
        labels = np.asarray(labels)[lg["ids"]]
        save_npz(ctx.out_dir / DIFFICULTY_FILE, indices=lg["ids"], d=d, score=s, labels=labels)
        return {"n": int(len(d)), "metric": p["metric"], "min_epoch": int(p["min_epoch"]), "agg": p["agg"],
                "epochs_used": int(lg["values"].shape[0] - int(p["min_epoch"])),
                "distinct_scores": int(len(np.unique(s))), "dataset": lg["cfg"]["data"]["primary"], "log": log,
                "d_mean": float(d.mean())}


def read_log(run: Path, log: str, metric: str) -> dict[str, Any]:
    """A run's per-instance log: values [epochs x N], original ids, (dataset, split) they come from."""
    from .. import io

    cfg = io.read_yaml(run / "config.yaml")
    if log == "train":
        path, index_file = run / METRICS[metric], run / "instance_indices.npy"
        source = (cfg["data"]["primary"], cfg["data"]["train_split"])
        hint = "train the run with log_per_instance: true"
    else:
        from ..train.eval_logs import files, log_source

        entry = next((e for e in cfg.get("eval_logs") or [] if e["name"] == log), None)
        if entry is None:
            raise ConfigError(f"{run / 'config.yaml'}: no eval_logs entry named {log!r}")
        f = files(log)
        path, index_file = run / f["losses" if metric == "loss" else "correct"], run / f["indices"]
        source, hint = log_source(cfg, entry), f"the run's eval log {log!r} was not written"
    if not path.exists() or not index_file.exists():
        raise ConfigError(f"{path}: no per-instance log; {hint}")
    return {"values": np.load(path), "ids": np.load(index_file), "path": path, "source": source, "cfg": cfg}


def log_difficulty(run: Path, log: str, metric: str, min_epoch: int, agg: str) -> tuple[np.ndarray, np.ndarray]:
    """(original ids, d) of one run's log, as the ``difficulty`` analysis computes them."""
    lg = read_log(run, log, metric)
    return lg["ids"], midpoint_rank(scores(lg["values"], metric, min_epoch, agg, str(lg["path"])))


def group_of(d: np.ndarray, n_groups: int) -> np.ndarray:
    return np.minimum((n_groups * d).astype(int), n_groups - 1)


@ANALYSES.register("groups")
class Groups(Analysis):
    """G0..G{n-1} by difficulty: values G{k} = the original ids in group k (G0 hardest)."""

    params = {"difficulty": REQUIRED, "n_groups": 10}
    references = {"difficulty": "analysis"}

    @classmethod
    def check(cls, params: Mapping[str, Any], where: str) -> None:
        positive_ints(params, ("n_groups",), where)

    def run(self, ctx: AnalysisContext) -> dict[str, Any]:
        z = load_difficulty(ctx.inputs["difficulty"])
        g = group_of(z["d"], int(ctx.params["n_groups"]))
        save_npz(ctx.out_dir / "groups.npz", indices=z["indices"], group=g)
        out: dict[str, Any] = {f"G{k}": sorted(int(i) for i in z["indices"][g == k])
                               for k in range(int(ctx.params["n_groups"]))}
        out["sizes"] = [len(out[f"G{k}"]) for k in range(int(ctx.params["n_groups"]))]
        return out


def balanced_subset(ids: np.ndarray, d: np.ndarray, labels: np.ndarray, mode: str, n: int,
                    seed: int, where: str) -> np.ndarray:
    """Original ids of a class-balanced easy/random/hard subset of n // classes per class."""
    classes = np.unique(labels)
    per = n // len(classes)
    rng = np.random.default_rng(seed)
    picks = []
    for c in classes:
        members = np.flatnonzero(labels == c)
        if len(members) < per:
            raise ConfigError(f"{where}: class {int(c)} has {len(members)} instances, fewer than {per} per class")
        order = members[np.lexsort((ids[members], d[members]))]  # d ascending, ties by original id
        if mode == "hard":
            chosen = order[:per]
        elif mode == "easy":
            chosen = order[len(order) - per:]
        else:
            chosen = rng.permutation(members)[:per]
        picks.append(ids[chosen])
    return np.sort(np.concatenate(picks))


@ANALYSES.register("subset")
class Subset(Analysis):
    """A class-balanced subset by difficulty; values.indices feeds ``data.subset: {analysis, key: indices}``."""

    # scale_n (CPU scales): n is a count out of the real training split; take the same fraction
    # of the (smaller) pool the difficulty ranks, so "hard 10k of 50k" stays "the hardest fifth"
    params = {"difficulty": REQUIRED, "mode": REQUIRED, "n": REQUIRED, "seed": 0, "scale_n": False}
    references = {"difficulty": "analysis"}
    data_sized = "scale_n"

    @classmethod
    def check(cls, params: Mapping[str, Any], where: str) -> None:
        if params["mode"] not in MODES:
            raise ConfigError(f"{where}: mode must be one of {', '.join(MODES)}, got {params['mode']!r}")
        for key in ("n", "seed"):
            v = params[key]
            if isinstance(v, bool) or not isinstance(v, int) or v < (1 if key == "n" else 0):
                raise ConfigError(f"{where}: {key} must be a {'positive' if key == 'n' else 'non-negative'} "
                                  f"integer, got {v!r}")

    def run(self, ctx: AnalysisContext) -> dict[str, Any]:
        p = ctx.params
        z = load_difficulty(ctx.inputs["difficulty"])
        n = int(p["n"])
        if p["scale_n"]:
            n = scaled_count(n, len(z["d"]), Path(ctx.inputs["difficulty"]), len(np.unique(z["labels"])))
        keep = balanced_subset(z["indices"], z["d"], z["labels"], p["mode"], n, int(p["seed"]),
                               f"analysis subset ({p['mode']} {n})")
        pos = np.searchsorted(z["indices"], keep) if np.all(np.diff(z["indices"]) > 0) else \
            np.array([int(np.flatnonzero(z["indices"] == i)[0]) for i in keep])
        return {"indices": [int(i) for i in keep], "n": int(len(keep)), "mode": p["mode"], "seed": int(p["seed"]),
                "n_requested": int(p["n"]), "per_class": n // len(np.unique(z["labels"])),
                "d_mean": float(z["d"][pos].mean())}


def scaled_count(n: int, pool: int, difficulty_dir: Path, classes: int) -> int:
    """``n`` of the real training split, as the same fraction of ``pool`` (at least one per class)."""
    import json

    from ..data.catalog import DATASETS

    dataset = json.loads((difficulty_dir / "result.json").read_text())["values"]["dataset"]
    full = DATASETS.get(dataset).split_sizes.get("train")
    if not full:
        raise ConfigError(f"analysis subset: scale_n needs the catalog's train size of {dataset!r}")
    return max(classes, min(pool, round(n * pool / int(full))))
