"""What a training method supplies to the one training loop."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol

import torch
from torch import Tensor, nn

from ..speclang.numbers import parse_number
from ..errors import ConfigError
from ..registry import Registry


@dataclass
class StepOutput:
    """A batch's loss, optional per-example losses (for per-instance logs) and scalars to log."""

    loss: Tensor
    per_example: Tensor | None = None
    # scalars may be 0-d tensors: the loop sums them on the device and reads them at epoch end,
    # so a method never needs a per-step host sync (.item())
    stats: dict[str, Tensor | float] = field(default_factory=dict)
    # per-step values worth plotting over training (BiaMAT's n_high/n_aux); written to steps.jsonl
    step_log: dict[str, Tensor | float] | None = None
    # further per-example values for the per-instance observer (Subset AT's entropy ranking):
    # key -> (B,) tensor, stored per epoch as instance_<key>.npy beside instance_losses.npy
    per_instance: dict[str, Tensor] | None = None
    # per-example correctness (bool) of the same forward, for per-instance logs (0-1 difficulty)
    per_example_correct: Tensor | None = None
    # what a method adapts per instance, as this step left it: key -> (B,) values for the batch's
    # instances (ATTA's weight and target[y], IAT's budget, SAT's weight); the `per_instance_adapted` observer
    # stores them per epoch by original dataset index (keys: the method's ``adapts``)
    adapted: dict[str, Tensor] | None = None


@dataclass
class TrainContext:
    """What a method may need beyond the batch: the run config, data, device."""

    cfg: Mapping[str, Any]
    device: torch.device
    num_classes: int
    datasets: dict[str, Any]  # name -> DeviceDataset (primary train split and any aux splits)
    steps_per_epoch: int
    extra: dict[str, Any] = field(default_factory=dict)
    # resolves reference parameters (another run's model, an analysis's index list); the trainer
    # supplies it, so a method never reaches up into how runs are stored
    refs: "References | None" = None


class References(Protocol):
    """What the trainer hands a method for its reference parameters (``Method.references``)."""

    def model(self, ref: Mapping[str, Any]) -> nn.Module:
        """The referenced run's model, in eval mode."""

    def indices(self, subset: Mapping[str, Any], labels: Any) -> Any:
        """The sorted training indices a subset reference keeps (classes, indices or an analysis's list)."""


class Method:
    """Base class. Subclasses declare ``params`` (name -> default) and implement ``step``."""

    params: dict[str, Any] = {}
    # params whose value references another run ({run: RUN_ID, checkpoint: best}); the spec layer
    # resolves names to ids before hashing and the DAG makes the referenced run an input
    references: tuple[str, ...] = ()
    # does the method train on attacked inputs (then attack.steps >= 1)?
    attacks: bool = True
    # keys of StepOutput.adapted the method reports every step; non-empty switches the run's
    # `per_instance_adapted` observer on (reproduce/train/observers/adapted.py)
    adapts: tuple[str, ...] = ()
    # epoch-valued params (warm-ups): a scale that shortens the schedule moves them to the same point
    epoch_params: tuple[str, ...] = ()

    def __init__(self, cfg: Mapping[str, Any], ctx: TrainContext) -> None:
        given = {k: v for k, v in cfg["method"].items() if k != "name"}
        unknown = sorted(set(given) - set(self.params))
        if unknown:
            raise ConfigError(
                f"method {cfg['method']['name']!r}: unknown parameter(s) {', '.join(unknown)}; "
                f"allowed: {', '.join(sorted(self.params)) or '(none)'}"
            )
        self.p = {**self.params, **given}
        self.cfg = cfg
        self.ctx = ctx
        a = cfg["attack"]
        self.attack_kwargs = dict(
            eps=parse_number(a["eps"], "attack.eps"),
            step_size=parse_number(a["step_size"], "attack.step_size"),
            steps=int(a["steps"]),
            norm=a["norm"],
            random_start=a["random_start"],
            keep_best=a["keep_best"],  # False, True or "exclude_last"
            bn_mode=a["bn_mode"],
        )

    def referenced_model(self, param: str) -> nn.Module:
        """The frozen model a reference parameter names (HAT's helper), in eval mode."""
        if self.ctx.refs is None:
            raise ConfigError(f"method {self.cfg['method']['name']}: {param} references a run, but this "
                              "training context resolves no references")
        model = self.ctx.refs.model(self.p[param])
        for q in model.parameters():
            q.requires_grad_(False)
        return model

    @classmethod
    def attacked_fraction(cls, method: Mapping[str, Any], num_classes: int, n_train: int,
                          ref_fraction: Callable[[Mapping[str, Any]], float | None]) -> float:
        """Share of each batch the attack runs on (the planner's cost): 1 unless a method attacks
        a subset. ``ref_fraction`` gives an analysis reference's share without running it."""
        return 1.0

    @classmethod
    def canonical(cls, method: dict[str, Any]) -> dict[str, Any]:
        """The resolved params in one form, so equal trainings written two ways hash equal."""
        return method

    def heads(self) -> dict[str, int] | None:
        """Named output heads the model needs (None: one primary head)."""
        return None

    def attach(self, model: nn.Module) -> None:
        """Called once the model exists (methods that keep a frozen copy or hooks)."""

    def epoch_stats(self) -> dict[str, float]:
        """Per-epoch scalars for metrics.jsonl (e.g. BiaMAT's n_high/n_aux)."""
        return {}

    def start_epoch(self, model: nn.Module, epoch: int) -> None:
        """Called before each epoch (warm-up switches, threshold freezing)."""

    def step(self, model: nn.Module, batch: Any, epoch: int, it: int) -> StepOutput:
        raise NotImplementedError

    def after_step(self, model: nn.Module, batch: Any, epoch: int, it: int, out: StepOutput) -> None:
        """Called after the optimizer step, before the observers see ``out`` (which it may fill):
        for logs the code takes from the updated model (IAT's post-step attack)."""

    def state_dict(self) -> dict[str, Any]:
        """Method state saved in every checkpoint (thresholds, caches)."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        pass


MethodFactory = Callable[[Mapping[str, Any], TrainContext], Method]
METHODS: Registry[type[Method]] = Registry("method")
