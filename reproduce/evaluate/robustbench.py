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
from pathlib import Path
from typing import Any, Sequence

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
