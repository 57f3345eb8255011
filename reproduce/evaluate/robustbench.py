"""RobustBench model-zoo checkpoints under the project's frozen protocols.

A published zoo model, scored by the same attacks, counting and prepared data
that score our runs, and set beside its leaderboard entry, checks the whole
evaluation stack against an outside reference (``reproduce evaluate --robustbench NAME``).

The architecture and the state-dict fix-ups (``module.`` prefixes, ensembles,
checkpoints known not to load strictly) are robustbench 1.1.1's own
(``robustbench.utils.load_model``); this module only makes sure the weights are
already on disk first, because robustbench fetches missing ones from Google
Drive and a harness run must never download behind the user's back.

Input convention: every zoo model takes [0, 1] NCHW images (robustbench's
``load_cifar10`` is ``ToTensor()`` alone and AutoAttack clips to [0, 1]); those
trained on normalized inputs normalize inside ``forward`` (``mu``/``sigma`` or
``mean``/``std`` buffers, e.g. ``DMWideResNet``), those trained on raw pixels
(``Carmon2019Unlabeled``'s WideResNet) do not. So nothing is normalized here.
"""

from __future__ import annotations

import difflib
import json
import pickle
import re
import time
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from ..errors import ConfigError, ReproduceError, UnknownNameError

# robustbench dataset -> the prepared dataset its test split comes from (ImageNet needs
# robustbench's own preprocessing and 5000-image subset: not offered)
PREPARED = {"cifar10": "cifar10", "cifar100": "cifar100"}
THREATS = ("Linf", "L2", "corruptions")
# the protocol behind the leaderboard's robust accuracy: AutoAttack standard at its eps
# (CIFAR Linf 8/255, L2 0.5 - the eps of our aa-standard / aa-l2-standard)
LEADERBOARD_PROTOCOL: dict[str, str | None] = {"Linf": "aa-standard", "L2": "aa-l2-standard", "corruptions": None}
LEADERBOARD_N = 10_000  # the leaderboard evaluates the full CIFAR test set
DEFAULT_MODEL_DIR = "models"  # robustbench's own default, so a copy it downloaded is found
DEFAULT_MODEL_INFO = "model_info"  # robustbench's location, relative to a checkout of its repository


class ZooModel(nn.Module):
    """A zoo model as the protocols want it: [0, 1] images in, logits out."""

    def __init__(self, net: nn.Module, *, name: str, dataset: str, threat_model: str,
                 weights: Sequence[Path], ensemble: bool) -> None:
        super().__init__()
        self.net = net
        self.name, self.dataset, self.threat_model = name, dataset, threat_model
        self.weights = [Path(w) for w in weights]
        self.ensemble = ensemble

    @property
    def outputs(self) -> str:
        return "log of the averaged probabilities" if self.ensemble else "logits"

    def forward(self, x: Tensor) -> Tensor:
        out = self.net(x)
        if self.ensemble:
            # robustbench's ensembles return averaged softmax probabilities; taken as logits they
            # would flatten the CE loss (softmax of values in [0, 1]) and weaken every attack.
            # log p is a logit vector with softmax(log p) = p, so predictions do not change.
            out = out.clamp_min(1e-12).log()
        return out


def _rb() -> Any:
    from ..attacks.autoattack import import_robustbench

    return import_robustbench()


def _check_dataset_threat(dataset: str, threat_model: str) -> None:
    if dataset not in PREPARED:
        raise ConfigError(f"--rb-dataset {dataset!r}: evaluable zoo datasets are {', '.join(PREPARED)}")
    if threat_model not in THREATS:
        raise ConfigError(f"--rb-threat {threat_model!r}: robustbench threat models are {', '.join(THREATS)}")


def zoo_names(dataset: str = "cifar10", threat_model: str = "Linf") -> list[str]:
    """The model names robustbench 1.1.1 lists for ``dataset`` / ``threat_model``."""
    _check_dataset_threat(dataset, threat_model)
    _rb()
    from robustbench.model_zoo import model_dicts
    from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel

    return list(model_dicts[BenchmarkDataset(dataset)].get(ThreatModel(threat_model), {}))  # cifar100 has no L2


def zoo_entry(name: str, dataset: str = "cifar10", threat_model: str = "Linf") -> dict[str, Any]:
    """robustbench's entry (``model`` constructor, ``gdrive_id``) or a one-line error with close names."""
    names = zoo_names(dataset, threat_model)
    if not names:
        raise UnknownNameError(f"robustbench has no {dataset}/{threat_model} zoo (--rb-dataset / --rb-threat)")
    if name not in names:
        close = difflib.get_close_matches(name, names, n=4, cutoff=0.5)
        # the commonest slip: a right name under another threat model or dataset
        elsewhere = [f"{d}/{t}" for d in PREPARED for t in THREATS
                     if (d, t) != (dataset, threat_model) and name in zoo_names(d, t)]
        hint = (f"; it is a {' and '.join(elsewhere)} model (--rb-dataset / --rb-threat)" if elsewhere
                else f"; close: {', '.join(close)}" if close
                else f"; {len(names)} known, e.g. {', '.join(names[:4])}")
        raise UnknownNameError(f"--robustbench {name!r}: not in robustbench's {dataset}/{threat_model} zoo{hint}")
    from robustbench.model_zoo import model_dicts
    from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel

    return model_dicts[BenchmarkDataset(dataset)][ThreatModel(threat_model)][name]


def weights_paths(name: str, dataset: str = "cifar10", threat_model: str = "Linf",
                  model_dir: str | Path = DEFAULT_MODEL_DIR) -> list[Path]:
    """Where robustbench keeps the weights: ``<dir>/<dataset>/<threat>/<name>.pt``; an
    ensemble has one file per member, ``<name>.pt_m<i>.pt``."""
    ids = zoo_entry(name, dataset, threat_model)["gdrive_id"]
    base = Path(model_dir) / dataset / threat_model / f"{name}.pt"
    if isinstance(ids, list):
        return [Path(f"{base}_m{i}.pt") for i in range(len(ids))]
    return [base]


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def require_weights(name: str, dataset: str = "cifar10", threat_model: str = "Linf",
                    model_dir: str | Path = DEFAULT_MODEL_DIR) -> list[Path]:
    """The weights files, or a one-line error saying where they belong and how to get them."""
    paths = weights_paths(name, dataset, threat_model, model_dir)
    missing = [p for p in paths if not p.is_file()]
    if missing:
        # robustbench would fetch them from Google Drive at this point; a harness run never downloads
        get = (f"python -c \"import robustbench; robustbench.load_model('{name}', model_dir='{model_dir}', "
               f"dataset='{dataset}', threat_model='{threat_model}')\"")
        raise ReproduceError(
            f"robustbench model {name} ({dataset}/{threat_model}): weights not found at {missing[0]}"
            + (f" (and {len(missing) - 1} more ensemble file(s))" if len(missing) > 1 else "")
            + f"; on a machine with internet run {get} (robustbench downloads them there), "
            "or place the file there yourself (--model-dir names the directory)")
    return paths


def load_zoo_model(name: str, dataset: str = "cifar10", threat_model: str = "Linf",
                   model_dir: str | Path = DEFAULT_MODEL_DIR) -> ZooModel:
    """Build zoo model ``name`` and load its weights from ``model_dir``; never downloads."""
    entry = zoo_entry(name, dataset, threat_model)
    paths = require_weights(name, dataset, threat_model, model_dir)
    rb = _rb()
    try:
        net = rb.utils.load_model(name, model_dir=str(model_dir), dataset=dataset, threat_model=threat_model)
    except pickle.UnpicklingError as e:
        m = re.search(r"WeightsUnpickler error:\s*([^\n]+)", str(e))
        detail = (m.group(1) if m else _first_line(e))[:200]
        if "Unsupported global" in detail:
            # torch.load defaults to weights_only=True: a checkpoint that pickled objects beside its
            # tensors (numpy scalars, argparse namespaces) is refused unless the user vouches for it
            raise ReproduceError(
                f"{paths[0]}: torch.load(weights_only=True) refused it ({detail}); if you trust this file "
                "(robustbench's own copy), rerun with TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1") from None
        raise ReproduceError(f"{paths[0]}: not a torch checkpoint ({detail})") from None
    except (RuntimeError, EOFError, KeyError, ValueError) as e:
        raise ReproduceError(f"{paths[0]}: not loadable as robustbench's {name}: {_first_line(e)[:300]}") from None
    return ZooModel(net, name=name, dataset=dataset, threat_model=threat_model, weights=paths,
                    ensemble=isinstance(entry["gdrive_id"], list)).eval()


def leaderboard(name: str, dataset: str, threat_model: str,
                model_info: str | Path = DEFAULT_MODEL_INFO) -> dict[str, Any] | None:
    """The leaderboard's clean / robust accuracy (percent) from robustbench's ``model_info`` JSON.

    The PyPI package ships no ``model_info``; it lives in robustbench's repository
    (``model_info/<dataset>/<threat>/<name>.json``), so this reads a checkout's copy when given.
    """
    path = Path(model_info) / dataset / threat_model / f"{name}.json"
    if not path.is_file():
        return None
    info = json.loads(path.read_text(encoding="utf-8"))
    # robustbench's ACC_FIELDS: corruptions_acc, else "external" (a stronger attack than AA) before autoattack_acc
    keys = ("corruptions_acc",) if threat_model == "corruptions" else ("external", "autoattack_acc")
    robust_key = next((k for k in keys if str(info.get(k, "")).strip() not in ("", "None")), None)

    def pct(v: Any) -> float | None:
        try:
            return float(v)
        except (TypeError, ValueError):
            return None

    return {"clean_accuracy": pct(info.get("clean_acc")),
            "robust_accuracy": pct(info.get(robust_key)) if robust_key else None,
            "robust_field": robust_key, "eps": info.get("eps"), "source": str(path)}


def evaluate_zoo(name: str, protocols: Sequence[str], data_root: str | Path, *,
                 labels: Sequence[str] | None = None, dataset: str = "cifar10", threat_model: str = "Linf",
                 model_dir: str | Path = DEFAULT_MODEL_DIR, model_info: str | Path = DEFAULT_MODEL_INFO,
                 device: str = "auto", split: str | None = None, n: int | None = None, batch_size: int = 256,
                 seed: int = 0, state_paths: Sequence[str | Path] | None = None) -> list[dict[str, Any]]:
    """Evaluate zoo model ``name`` on the prepared test split; one result per protocol, shaped as
    ``evaluate_run``'s, plus a ``robustbench`` block with the leaderboard's numbers where known.
    ``state_paths[i]`` keeps protocol i's per-batch progress (``reproduce.evaluate.state``)."""
    from .. import perf as fast
    from ..data import load_split, read_manifest
    from ..io import sha256_file
    from ..pipeline.provenance import git_commit, runtime_provenance
    from ..train.setup import select_device
    from ..pipeline.spec import register_spec_protocols
    from .protocols import PROTOCOLS, evaluate
    from .state import EvalState

    labels = list(labels) if labels else list(protocols)
    if len(labels) != len(protocols):
        raise ConfigError(f"--label: {len(labels)} label(s) for {len(protocols)} protocol(s)")
    for p in protocols:  # a typo fails before anything is loaded
        if p not in PROTOCOLS:
            register_spec_protocols()
        PROTOCOLS.get(p, where="--protocol")
    # unknown names and absent weights fail here, before the data and the model are read
    entry_paths = require_weights(name, dataset, threat_model, model_dir)
    data_name, split = PREPARED[dataset], split or "test"
    meta = read_manifest(data_name, data_root)
    classes = 100 if dataset == "cifar100" else 10
    if (meta["num_classes"], meta["image_size"], meta["channels"]) != (classes, 32, 3):
        raise ConfigError(f"prepared {data_name} has {meta['num_classes']} classes of "
                          f"{meta['image_size']}x{meta['image_size']}x{meta['channels']} images; robustbench's "
                          f"{dataset} models take {classes} classes of 32x32x3")
    images, y = load_split(data_name, split, data_root)
    dev = select_device(device)
    model = load_zoo_model(name, dataset, threat_model, model_dir).to(dev)
    board = leaderboard(name, dataset, threat_model, model_info)
    rb_block = {"name": name, "dataset": dataset, "threat_model": threat_model,
                "robustbench_version": _rb_version(), "architecture": type(model.net).__name__,
                "outputs": model.outputs,
                "weights": [{"path": str(p), "sha256": sha256_file(p)} for p in entry_paths],
                "leaderboard": board, "leaderboard_protocol": LEADERBOARD_PROTOCOL[threat_model]}
    prov = fast.provenance({"amp": "none", "channels_last": False}, dev)
    out = []
    for proto, label in zip(protocols, labels):
        t0 = time.time()
        state = None
        if state_paths is not None:
            p = PROTOCOLS.get(proto)
            state = EvalState(state_paths[len(out)], {
                "protocol": p.name, "params": p.params(), "counting": p.counting, "seed": seed,
                "batch_size": batch_size, "n": n, "split": split, "dataset": data_name,
                "weights": [w["sha256"] for w in rb_block["weights"]]})
        res = evaluate(model, images, y, proto, device=dev, batch_size=batch_size, seed=seed, n=n, state=state)
        res["protocol_run"] = proto
        res["protocol"] = label
        res["labels"] = [int(v) for v in y[: len(res["correct_mask"])].tolist()]
        # the leaderboard's number is AutoAttack standard on all 10,000 real test images
        comparable = (proto == LEADERBOARD_PROTOCOL[threat_model] and split == "test"
                      and res["n"] == LEADERBOARD_N and not meta.get("synthetic"))
        res.update({"run": f"robustbench:{name}", "config_hash": None, "scale": None,
                    "checkpoint": str(entry_paths[0]), "checkpoint_epoch": None, "selection": None,
                    "split": split, "dataset": data_name, "wall_seconds": round(time.time() - t0, 3),
                    "git_commit": git_commit(), "perf": prov,
                    "provenance": runtime_provenance(dev, seed=seed, scale=None),  # type: ignore[arg-type]
                    "robustbench": {**rb_block, "comparable_with_leaderboard": comparable}})
        out.append(res)
    return out


def _rb_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("robustbench")
    except PackageNotFoundError:
        return None


def zoo_summary(res: dict[str, Any]) -> str:
    """One line per result for the terminal: ours, and the leaderboard's where it is comparable."""
    rb = res["robustbench"]
    line = f"{res['run']} {res['protocol_run']}: {res['accuracy']:.2f}% of {res['n']}"
    board = rb.get("leaderboard")
    if board and res["protocol_run"] == "clean" and board.get("clean_accuracy") is not None:
        line += f" (leaderboard clean {board['clean_accuracy']:.2f}%)"
    elif board and res["protocol_run"] == rb["leaderboard_protocol"] and board.get("robust_accuracy") is not None:
        line += f" (leaderboard robust {board['robust_accuracy']:.2f}%" + (
            ")" if rb["comparable_with_leaderboard"] else "; not comparable: not the full real test set)")
    return line
