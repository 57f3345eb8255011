"""Training observers: the per-step and per-epoch work around the method's loss, one class each.

An observer is registered under a name (the name analyses use when they say what their runs
need, e.g. ``per_instance``) and names the run-config keys that switch it on (``keys``); a run
gets exactly the observers its config declares (:func:`observers_for`), so no new config key,
and no run id, comes with the mechanism. The loop calls, in this order:

- ``on_setup(run)``  before any data loads (a check that must fail early);
- ``on_model(run)``  the model is built and seeded, before the method and optimizer see it;
- ``on_start(run)``  the run directory exists; ``load_state_dict(run, ck)`` follows on a resume;
- ``on_epoch_start(run, epoch)``, then ``load_partial(run, partial)`` when a mid-epoch
  checkpoint resumes inside this epoch;
- ``on_step(run, epoch, it, batch, out)`` after each optimizer step;
- ``on_epoch_end(run, epoch, row)`` before the epoch's checkpoint; it may add metrics to ``row``;
- ``on_end(run)`` after the last epoch.

``state_dict(run)`` returns entries of ``last.pt`` and ``partial_state_dict(run)`` entries of its
mid-epoch ``partial``, so a killed run resumes with the state it had; both keep the checkpoint
layout of the loop that wired these in by hand, so older checkpoints resume. Hooks run in
name order, except that an observer runs after those it names in ``after`` (the selection
rule reads this epoch's eval logs); no other order matters, as each writes its own files. Observers draw no random number from the
training streams: the weights of a run do not depend on which observers it has.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Mapping

from ...config import RUN_DEFAULTS
from ...registry import Registry
from ..arrays import save_array
from ..state import TrainRun


class Observer:
    name: str = ""  # set by register()
    keys: tuple[str, ...] = ()  # run-config keys (dotted) any of which, set, switches it on
    after: tuple[str, ...] = ()  # observers whose epoch-end results it reads

    def __init__(self, cfg: Mapping[str, Any]) -> None:
        self.cfg = cfg

    @classmethod
    def declared(cls, cfg: Mapping[str, Any]) -> bool:
        """Does the resolved run config ``cfg`` switch this observer on?"""
        return any(bool(config_value(cfg, k)) for k in cls.keys)

    def on_setup(self, run: TrainRun) -> None: ...

    def on_model(self, run: TrainRun) -> None: ...

    def on_start(self, run: TrainRun) -> None: ...

    def on_epoch_start(self, run: TrainRun, epoch: int) -> None: ...

    def on_step(self, run: TrainRun, epoch: int, it: int, batch: Any, out: Any) -> None: ...

    def on_epoch_end(self, run: TrainRun, epoch: int, row: dict[str, Any]) -> None: ...

    def on_end(self, run: TrainRun) -> None: ...

    def state_dict(self, run: TrainRun) -> dict[str, Any]:
        return {}

    def load_state_dict(self, run: TrainRun, ck: Mapping[str, Any]) -> None: ...

    def partial_state_dict(self, run: TrainRun) -> dict[str, Any]:
        return {}

    def load_partial(self, run: TrainRun, partial: Mapping[str, Any]) -> None: ...


OBSERVERS: Registry[type[Observer]] = Registry("observer")
# entries the loop itself writes into last.pt and its mid-epoch ``partial``: no observer may take them
LOOP_ENTRIES = ("model", "optimizer", "method", "epoch", "history", "config_hash", "step_rows", "partial")
PARTIAL_ENTRIES = ("epoch", "step", "tally", "rng", "method")


def config_value(cfg: Mapping[str, Any], key: str) -> Any:
    for part in key.split("."):
        cfg = cfg.get(part) if isinstance(cfg, Mapping) else None
    return cfg


def register(name: str) -> Callable[[type[Observer]], type[Observer]]:
    """Register an observer class; every key it is declared by must be a run-config key."""

    def deco(cls: type[Observer]) -> type[Observer]:
        for key in cls.keys:
            head, _, rest = key.partition(".")
            if head not in RUN_DEFAULTS or (rest and rest not in (RUN_DEFAULTS[head] or {})):
                raise ValueError(f"observer {name!r}: {key!r} is not a run-config key (reproduce/config.py)")
        cls.name = name
        return OBSERVERS.register(name)(cls)

    return deco


def _ordered(names: list[str]) -> list[str]:
    """Name order, each observer moved behind the ones it names in ``after``."""
    out: list[str] = []

    def place(n: str, path: tuple[str, ...]) -> None:
        if n in out or n not in names:
            return
        if n in path:
            raise ValueError(f"observers {' -> '.join(path + (n,))}: a cycle in 'after'")
        for dep in OBSERVERS.get(n, where="after").after:
            place(dep, path + (n,))
        out.append(n)

    for n in names:
        place(n, ())
    return out


def observers_for(cfg: Mapping[str, Any]) -> "Observers":
    """The observers the resolved run config ``cfg`` declares, in hook order."""
    declared = [n for n in OBSERVERS.names() if OBSERVERS.get(n).declared(cfg)]
    return Observers([OBSERVERS.get(n)(cfg) for n in _ordered(declared)])


class Observers:
    """A run's observers, called as one."""

    def __init__(self, items: list[Observer]) -> None:
        self.items = items

    def __iter__(self) -> Iterator[Observer]:
        return iter(self.items)

    def names(self) -> list[str]:
        return [o.name for o in self.items]

    def get(self, name: str) -> Observer | None:
        return next((o for o in self.items if o.name == name), None)

    def call(self, hook: str, *args: Any) -> None:
        for o in self.items:
            getattr(o, hook)(*args)

    def state_dict(self, run: TrainRun) -> dict[str, Any]:
        return _merged(((o.name, o.state_dict(run)) for o in self.items), LOOP_ENTRIES)

    def partial_state_dict(self, run: TrainRun) -> dict[str, Any]:
        return _merged(((o.name, o.partial_state_dict(run)) for o in self.items), PARTIAL_ENTRIES)


def _merged(parts: Iterator[tuple[str, dict[str, Any]]], loop_entries: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    owner: dict[str, str] = {k: "the loop" for k in loop_entries}
    for name, part in parts:
        for k, v in part.items():
            if k in owner:  # one checkpoint entry, two writers: the second would overwrite the first
                raise ValueError(f"observer {name!r} saves checkpoint entry {k!r}, which {owner[k]} saves too")
            owner[k] = f"observer {name!r}"
            out[k] = v
    return out


__all__ = ["OBSERVERS", "Observer", "Observers", "observers_for", "register", "save_array"]
