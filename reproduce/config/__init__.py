"""Run configs: strict loading, defaults, and the hash that names a run.

A run is fully described by its resolved config; two artifacts asking for the
same resolved config share one training job because the hash is the same.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any, Mapping

from ..errors import ConfigError
from ..speclang.numbers import parse_number
from ..perf_settings import PERF_DEFAULTS, check_perf, hashed_perf

# Every key a run config may hold, with its default. Nested dicts are sections;
# ``None`` in a section default means "no default: required".
RUN_DEFAULTS: dict[str, Any] = {
    "name": None,
    "scale": "paper",
    "seed": 0,
    "data": {
        "primary": None,
        "aux": [],
        "train_split": "train",
        "eval_split": "test",
        "n_train": None,
        # the first `pool` training images, the same number per class in original order and
        # independent of the seed, cut before any subset (a CPU scale's fixed 5k-image set)
        "pool": None,
        "augment": True,
        "pad": 4,
        # a subset of the training split: {classes: [...]}, {indices: [...]} or {analysis: ID, key: K}
        "subset": None,
        # pseudo-labelled extra data in every batch: {dataset: NAME, fraction: 0.5, epoch_images: N}
        "composite": None,
        # false keeps the partial last batch (PyTorch DataLoader default; HAT: 391 steps on CIFAR-10)
        "drop_last": True,
        # degrees of a random rotation after crop and flip (HAT's CIFAR-100: RandomRotation(15)); 0 = none
        "rotate": 0,
        # ColorJitter [brightness, contrast, saturation] between flip and rotation (Subset AT: [.25, .25, .25])
        "color_jitter": None,
        # a validation part cut from the training split: {kind: first|random, fraction: F} (reproduce/data/feeding/holdout.py)
        "holdout": None,
        # test-set index lists from an analysis ({analysis: NAME}): its `selection` list feeds the
        # best-checkpoint rule, its `final` list the evaluation (Subset AT's seeded permutation)
        "eval_indices": None,
        # a training split an analysis produced ({analysis: NAME}: its images.npy and labels.npy, e.g. a
        # robust dataset); the evaluation and selection splits stay data.primary's (reproduce/train/refs.py)
        "train_from": None,
        # named parts of the training split, the ones trained on, a fixed noise on some
        # ({sizes, seed, use, noise}; reproduce/data/feeding/parts.py: BiaMAT 000 Table 5)
        "parts": None,
        # seeded subsample of an aux dataset: {NAME: {by: classes|samples, ratio, seed}} (feeding/subsample.py)
        "aux_subsample": None,
    },
    # head: {hidden: H} gives every head a ReLU hidden layer (transfer heads; reproduce/train/transfer.py)
    "model": {"name": None, "heads": None, "normalize": "none", "head": None},
    "method": {"name": None},
    "attack": {
        "norm": "linf",
        "eps": "8/255",
        "step_size": "2/255",
        "steps": 10,
        "random_start": True,
        "keep_best": False,
        "bn_mode": "train",
        "loss": "ce",
    },
    "optim": {"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": False, "weight_decay": 5e-4},
    "schedule": {
        "kind": "piecewise",
        "milestones": [],
        "gamma": 0.1,
        "per": "epoch",
        "warmup_epochs": 0,
        "pct_start": 0.25,
        # onecycle only: torch OneCycleLR's momentum cycling (its default, which HAT's code keeps)
        "cycle_momentum": False,
        "base_momentum": 0.85,
        "max_momentum": 0.95,
        # cosine_iter only: the LR falls per step from optim.lr to lr_min; step t uses the factor of
        # t + step_offset (1: Hendrycks' scheduler.step() before optimizer.step(), tune.py:145-149)
        "lr_min": 0.0,
        "step_offset": 0,
        # best_epoch: epoch e runs at the schedule's epoch e_best + e, e_best the epoch of the init
        # run's checkpoint (milestones then count epochs of the whole pre-training + fine-tuning)
        "continue_from_init": None,
    },
    "epochs": None,
    "batch_size": 128,
    # best-checkpoint rule: evaluate `protocol` on the first n of `split` every `every` epochs,
    # from epoch `after` on (a fraction means a fraction of training, as the BiaMAT AT code does)
    # ties: first keeps the earliest of equal scores; latest the later one (HAT's `>=`, train.py:196)
    "selection": {"protocol": None, "split": "test", "n": None, "every": 1, "after": 0, "ties": "first",
                  "at_epochs": None},
    "log_per_instance": False,
    # per-epoch eval-mode per-instance logs [{name, split, protocol, n}] (reproduce/train/eval_logs.py)
    "eval_logs": [],
    # epochs whose weights are kept as checkpoints/epoch_N.pt (0: the starting weights), for margin trends
    "snapshots": [],
    # per-epoch penultimate-feature magnitude of difficulty groups of the training set under an attack:
    # {groups: {analysis: NAME}, protocol: P} (reproduce/train/observers/features.py; hard-instance F2b)
    "feature_stats": None,
    # start from another run's weights: {run: RUN_ID, checkpoint: best|last|epoch_N, load: all|trunk}
    "init": None,
    # trunk: train the heads only, on the init run's fixed features (BatchNorm kept in eval mode)
    "freeze": None,
    # an external checkpoint in place of training: {file, sha256, format, url, provenance}
    # (reproduce/config/imports.py); the rest of the config is the recipe that made it
    "import": None,
    # speed switches (reproduce/perf.py); only amp and compile enter the hash, see there why
    "perf": dict(PERF_DEFAULTS),
}

# keys added after run ids were in use: left out of the hash while at these defaults,
# so every run id computed before they existed stays valid
HASH_NEUTRAL = {("data", "holdout"): None, ("optim", "name"): "sgd", ("data", "pool"): None,
                ("data", "eval_indices"): None, ("data", "train_from"): None, ("data", "parts"): None,
                ("data", "aux_subsample"): None,
                ("model", "head"): None, ("schedule", "lr_min"): 0.0, ("schedule", "step_offset"): 0,
                ("schedule", "continue_from_init"): None}

SCHEDULE_KINDS = ("piecewise", "onecycle", "constant", "cosine_epoch", "cosine_iter")


def _merge(defaults: Mapping[str, Any], given: Mapping[str, Any], where: str, open_keys: bool,
           prefix: str = "") -> dict:
    out: dict[str, Any] = {}
    loc = f"{prefix}{where}" if where else prefix.rstrip(". ") or "run"
    if not isinstance(given, Mapping):
        raise ConfigError(f"{loc}: expected a mapping, got {type(given).__name__}")
    unknown = sorted(set(given) - set(defaults))
    if unknown and not open_keys:
        raise ConfigError(
            f"{loc}: unknown key(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(sorted(defaults))}"
        )
    for key, default in defaults.items():
        sub = f"{where}.{key}" if where else key
        if isinstance(default, dict) and key not in ("heads",):
            # method parameters are checked by the method itself, so that section is open
            out[key] = _merge(default, given.get(key, {}) or {}, sub, (key == "method"), prefix)
        elif key in given:
            out[key] = copy.deepcopy(given[key])
        elif default is None and key in ("name", "epochs"):
            raise ConfigError(f"{prefix}{sub}: required key missing")
        else:
            out[key] = copy.deepcopy(default)
    for key in unknown:
        out[key] = copy.deepcopy(given[key])
    return out


def resolve_run(raw: Mapping[str, Any], where: str = "run") -> dict[str, Any]:
    """Fill defaults and reject unknown keys; registry names are checked later."""
    cfg = _merge(RUN_DEFAULTS, raw, "", False, prefix=f"{where}.") if isinstance(raw, Mapping) else None
    if cfg is None:
        raise ConfigError(f"{where}: a run config must be a mapping")
    for section, key in (("data", "primary"), ("model", "name"), ("method", "name")):
        if not cfg[section].get(key):
            raise ConfigError(f"{where}: {section}.{key} is required")
    if not isinstance(cfg["data"]["aux"], list):
        raise ConfigError(f"{where}: data.aux must be a list of dataset names")
    if cfg["schedule"]["kind"] not in SCHEDULE_KINDS:
        raise ConfigError(f"{where}: schedule.kind {cfg['schedule']['kind']!r} not one of {SCHEDULE_KINDS}")
    if cfg["schedule"]["per"] not in ("epoch", "iteration"):
        raise ConfigError(f"{where}: schedule.per must be 'epoch' or 'iteration'")
    ep = cfg["epochs"] if isinstance(cfg["epochs"], int) and not isinstance(cfg["epochs"], bool) else None
    late = [m for m in cfg["schedule"]["milestones"] or [] if ep and isinstance(m, (int, float)) and m > ep]
    if late and cfg["schedule"]["kind"] == "piecewise" and not cfg["schedule"]["continue_from_init"]:
        # an iteration count (39000) read as an epoch would silently never decay the LR
        raise ConfigError(f"{where}: schedule.milestones {late} lie beyond the {cfg['epochs']} epochs; milestones "
                          "count epochs (per: iteration only moves the LR within them) or are fractions of training")
    if cfg["attack"]["bn_mode"] not in ("train", "eval", "train-update"):
        raise ConfigError(f"{where}: attack.bn_mode must be 'eval', 'train' (batch statistics, running "
                          "statistics kept) or 'train-update' (running statistics updated by the attack)")
    for key in ("eps", "step_size"):
        parse_number(cfg["attack"][key], f"{where}: attack.{key}")
    if cfg["selection"]["ties"] not in ("first", "latest"):
        raise ConfigError(f"{where}: selection.ties must be 'first' or 'latest', got {cfg['selection']['ties']!r}")
    rot = cfg["data"]["rotate"]
    if isinstance(rot, bool) or not isinstance(rot, (int, float)) or not 0 <= rot <= 180:
        raise ConfigError(f"{where}: data.rotate must be degrees in [0, 180], got {rot!r}")
    if rot and not cfg["data"]["augment"]:
        raise ConfigError(f"{where}: data.rotate {rot} needs data.augment: true (rotation is part of augmentation)")
    cj = cfg["data"]["color_jitter"]
    if cj is not None and (not isinstance(cj, list) or len(cj) != 3 or not cfg["data"]["augment"]
                           or not all(isinstance(v, (int, float)) and 0 <= v for v in cj)):
        raise ConfigError(f"{where}: data.color_jitter must be [brightness, contrast, saturation] >= 0 "
                          f"with data.augment: true, got {cj!r}")
    for section, key in (("data", "drop_last"), ("schedule", "cycle_momentum")):
        if not isinstance(cfg[section][key], bool):
            raise ConfigError(f"{where}: {section}.{key} must be true or false, got {cfg[section][key]!r}")
    for key in ("epochs", "batch_size"):
        if isinstance(cfg[key], bool) or not isinstance(cfg[key], int) or cfg[key] < 1:
            raise ConfigError(f"{where}: {key} must be a positive integer, got {cfg[key]!r}")
    for key in ("eps", "step_size"):  # a negative radius or step would silently attack nothing
        if key in cfg["attack"] and parse_number(cfg["attack"][key], f"{where}: attack.{key}") < 0:
            raise ConfigError(f"{where}: attack.{key} must be >= 0, got {cfg['attack'][key]!r}")
    pool = cfg["data"]["pool"]
    if pool is not None and (isinstance(pool, bool) or not isinstance(pool, int) or pool < 1):
        raise ConfigError(f"{where}: data.pool must be a positive integer (images), got {pool!r}")
    from ..data.feeding.holdout import check_holdout

    check_holdout(cfg["data"]["holdout"], where)
    check_data_variants(cfg["data"], where)
    check_optim(cfg["optim"], where)
    check_perf(cfg["perf"], where)
    if cfg["data"]["composite"] is not None:
        from ..data.feeding.composite import check_composite

        check_composite(cfg["data"]["composite"], where)
        if cfg["log_per_instance"]:
            raise ConfigError(f"{where}: log_per_instance is not defined for data.composite runs")
    check_train_from(cfg["data"], where)
    fs = cfg["feature_stats"]
    if fs is not None and (not isinstance(fs, Mapping) or set(fs) != {"groups", "protocol"}):
        raise ConfigError(f"{where}: feature_stats takes groups ({{analysis: NAME}}) and protocol, got {fs!r}")
    check_splits(cfg, where)
    from ..bounds import check_bounds

    check_bounds(cfg, where)
    from .transfer import check_transfer

    check_transfer(cfg, where)
    check_schedule(cfg, where)
    from .imports import check_import

    check_import(cfg, where)
    from .eval_logs import check_eval_logs

    cfg["eval_logs"] = check_eval_logs(cfg, where)
    return cfg


def check_train_from(data: Mapping[str, Any], where: str) -> None:
    """``data.train_from`` names one analysis; its images replace the primary's training split whole."""
    tf = data.get("train_from")
    if tf is None:
        return
    if not isinstance(tf, Mapping) or set(tf) != {"analysis"} or not isinstance(tf["analysis"], str):
        raise ConfigError(f"{where}: data.train_from must be {{analysis: NAME}} (an analysis writing images.npy "
                          f"and labels.npy), got {tf!r}")
    if data.get("composite") is not None:
        raise ConfigError(f"{where}: data.train_from and data.composite cannot be combined")


def check_data_variants(data: Mapping[str, Any], where: str) -> None:
    """``data.parts`` (within the catalog's training split) and ``data.aux_subsample`` (of listed aux sets)."""
    from ..data.catalog import DATASETS
    from ..data.feeding.parts import check_parts
    from ..data.feeding.subsample import check_aux_subsample

    info = DATASETS.get(data["primary"]) if data["primary"] in DATASETS else None
    check_parts(data["parts"], where, (info.split_sizes or {}).get(data["train_split"]) if info else None)
    check_aux_subsample(data["aux_subsample"], data["aux"], where)


def check_schedule(cfg: Mapping[str, Any], where: str) -> None:
    """cosine_iter's ``lr_min`` and ``step_offset`` in range; ``continue_from_init`` with an ``init``."""
    sched = cfg["schedule"]
    lo, off = sched["lr_min"], sched["step_offset"]
    if isinstance(lo, bool) or not isinstance(lo, (int, float)) or lo < 0:
        raise ConfigError(f"{where}: schedule.lr_min must be a number >= 0, got {lo!r}")
    cont = sched["continue_from_init"]
    if cont not in (None, "best_epoch"):
        raise ConfigError(f"{where}: schedule.continue_from_init must be best_epoch or null, got {cont!r}")
    if cont and (sched["kind"] != "piecewise" or any(0 < m < 1 for m in sched["milestones"] or [])):
        raise ConfigError(f"{where}: schedule.continue_from_init needs kind piecewise with milestones in epochs of "
                          "the whole schedule (not fractions)")
    if cont and not cfg.get("init"):
        raise ConfigError(f"{where}: schedule.continue_from_init needs init: (the run whose checkpoint epoch it "
                          "continues from)")
    if isinstance(off, bool) or not isinstance(off, int) or off not in (0, 1):
        raise ConfigError(f"{where}: schedule.step_offset must be 0 or 1 (1: the scheduler steps before the "
                          f"update, as torch LambdaLR called first in the loop), got {off!r}")


OPTIMIZERS = ("sgd", "adam")  # reproduce.train.optim builds each


def check_optim(optim: Mapping[str, Any], where: str) -> None:
    if optim.get("name", "sgd") not in OPTIMIZERS:
        raise ConfigError(f"{where}: optim.name must be one of {', '.join(OPTIMIZERS)}, got {optim.get('name')!r}")
    if optim.get("name") == "adam" and optim.get("nesterov"):
        raise ConfigError(f"{where}: optim.nesterov applies to sgd only, not adam")


def check_splits(cfg: Mapping[str, Any], where: str = "run") -> None:
    """Every split a run reads must exist in its primary dataset's catalog entry.

    Checked when the config is resolved (spec load, DAG planning), so a run that
    evaluates on ``test`` of a dataset with only ``train``/``val`` (ImgNet100) fails
    before any job starts, not after training. Datasets outside the catalog
    (generated ones in tests, user additions) are not checked here.
    """
    from ..data.catalog import DATASETS

    primary = cfg["data"]["primary"]
    if primary not in DATASETS:
        return
    splits = DATASETS.get(primary).splits
    named = [("data.train_split", cfg["data"]["train_split"]), ("data.eval_split", cfg["data"]["eval_split"])]
    if cfg["selection"].get("protocol"):
        named.append(("selection.split", cfg["selection"]["split"]))
    for key, split in named:
        if split not in splits:
            raise ConfigError(f"{where}: {key} is {split!r} but dataset {primary!r} has splits "
                              f"{', '.join(splits)} (reproduce/data/catalog/)")


def config_hash(cfg: Mapping[str, Any], length: int = 8) -> str:
    """Hash of everything that changes what training computes (not the name)."""
    body = {k: v for k, v in cfg.items() if k not in ("name", "perf")}
    for (section, key), default in HASH_NEUTRAL.items():
        if isinstance(body.get(section), Mapping) and key in body[section] and body[section][key] == default:
            body[section] = {k: v for k, v in body[section].items() if k != key}
    perf = hashed_perf(cfg.get("perf") or {})
    if perf:  # absent when every numeric switch is at its default: older run ids stay valid
        body["perf"] = perf
    if isinstance(body.get("data"), Mapping) and body["data"].get("color_jitter") is None:
        # added after runs existed: leaving the unset key out keeps their ids
        body["data"] = {k: v for k, v in body["data"].items() if k != "color_jitter"}
    if body.get("eval_logs") == []:  # added after runs existed: no logs keeps their ids
        body.pop("eval_logs")
    for key in ("freeze", "feature_stats", "import"):  # the same
        if body.get(key) is None:
            body.pop(key, None)
    init = body.get("init")
    if isinstance(init, Mapping) and init.get("load") == "all":  # the default, written or not: one id
        body["init"] = {k: v for k, v in init.items() if k != "load"}
    blob = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


def run_id(cfg: Mapping[str, Any]) -> str:
    return f"{cfg['name']}-{config_hash(cfg)}"
