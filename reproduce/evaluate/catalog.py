"""The frozen evaluation protocols: their settings and the ``PROTOCOLS`` registry.

Torch-free, so that specs are validated and tables rendered without importing
torch; ``protocols.py`` runs them. See there how each kind counts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping

from ..errors import ConfigError
from ..registry import Registry

KINDS = ("clean", "pgd", "cw", "autoattack")
COUNTINGS = ("clean_and_adv", "adv_only")


@dataclass(frozen=True)
class Protocol:
    """One frozen evaluation setting; ``params()`` is what every output records."""

    name: str
    kind: str
    norm: str = "linf"
    eps: float = 0.0
    step_size: float = 0.0
    steps: int = 0
    restarts: int = 1
    random_start: bool | str = False
    version: str | None = None
    attacks: tuple[str, ...] | None = None
    counting: str = "clean_and_adv"
    # AutoAttack: pin APGD-T's target classes (and APGD-CE's restarts to ``restarts``, APGD's
    # iterations to ``steps`` when > 0); None keeps the backend's settings for the version
    # ('custom': the constructor's 5 restarts, 9 targets, 100 iterations)
    targets: int | None = None

    def __post_init__(self) -> None:
        if self.targets is not None and (self.kind != "autoattack" or int(self.targets) < 1):
            raise ConfigError(f"protocol {self.name!r}: targets is a positive count for AutoAttack only")
        if self.kind not in KINDS:
            raise ConfigError(f"protocol {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.norm not in ("linf", "l2"):
            raise ConfigError(f"protocol {self.name!r}: norm must be 'linf' or 'l2', got {self.norm!r}")
        if self.counting not in COUNTINGS:
            raise ConfigError(f"protocol {self.name!r}: counting must be one of {COUNTINGS}, got {self.counting!r}")

    def params(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("name")
        if d["targets"] is None:  # added later: protocols that leave it unset record what they did
            d.pop("targets")
        if d["attacks"] is not None:
            d["attacks"] = list(d["attacks"])
        return d


PROTOCOLS: Registry[Protocol] = Registry("protocol")


def _add(p: Protocol) -> None:
    PROTOCOLS.add(p.name, p)


EPS_LINF = 8 / 255
STEP_LINF = 2 / 255
EPS_L2 = 0.5
STEP_L2 = EPS_L2 / 4

_add(Protocol("clean", "clean"))
# Single-step FGSM from the clean point, step = eps.
_add(Protocol("fgsm", "pgd", "linf", EPS_LINF, EPS_LINF, 1, 1, False))
_add(Protocol("pgd20", "pgd", "linf", EPS_LINF, STEP_LINF, 20, 1, True))
_add(Protocol("pgd100", "pgd", "linf", EPS_LINF, STEP_LINF, 100, 1, True))
_add(Protocol("cw100", "cw", "linf", EPS_LINF, STEP_LINF, 100, 1, True))
_add(Protocol("aa-standard", "autoattack", "linf", EPS_LINF, version="standard"))
# APGD-CE alone: cheap enough for tests and smoke runs, never for reported numbers.
_add(Protocol("aa-custom-fast", "autoattack", "linf", EPS_LINF, version="custom", attacks=("apgd-ce",)))
_add(Protocol("l2-pgd20", "pgd", "l2", EPS_L2, STEP_L2, 20, 1, True))
_add(Protocol("l2-pgd100", "pgd", "l2", EPS_L2, STEP_L2, 100, 1, True))
_add(Protocol("aa-l2-standard", "autoattack", "l2", EPS_L2, version="standard"))


def capped(name: str, iterations: int) -> str:
    """The protocol ``name`` with every attack cut to ``iterations`` iterations, registered as
    ``NAME-itN`` (a scale that proves code paths, never numbers); ``name`` itself where nothing is cut."""
    from dataclasses import replace

    proto = PROTOCOLS.get(name, where="protocol")
    n = int(iterations)
    if proto.kind == "clean" or (proto.kind != "autoattack" and proto.steps <= n):
        return name
    short = f"{name}-it{n}"
    if proto.kind == "autoattack":
        # APGD, FAB and Square all cut (attacks.autoattack pins them when targets is set); the
        # version's attacks, target classes and one APGD restart otherwise as the paper ran them
        cut = replace(proto, name=short, steps=n, targets=proto.targets or 9, restarts=1)
    else:
        cut = replace(proto, name=short, steps=n)
    if short not in PROTOCOLS:
        PROTOCOLS.add(short, cut)
    return short


def planned(names: Any) -> dict[str, dict[str, Any]]:
    """Definitions of the named protocols as a plan file records them (spec-declared ones included)."""
    return {n: PROTOCOLS.get(n, where="protocol").params() for n in sorted(set(names))}


def register_planned(defs: Mapping[str, Mapping[str, Any]], where: str) -> None:
    """Register the protocols a plan file defines, so that a job never needs the specs that declared
    them; a name already registered with other settings is an error naming the plan."""
    for name, params in defs.items():
        kw = dict(params)
        if kw.get("attacks") is not None:
            kw["attacks"] = tuple(kw["attacks"])
        try:
            proto = Protocol(name, **kw)
        except TypeError as e:
            raise ConfigError(f"{where}: protocol {name!r}: {e}") from None
        if name in PROTOCOLS:
            if PROTOCOLS.get(name) != proto:
                raise ConfigError(f"{where}: protocol {name!r} differs from the registered one of that name; "
                                  "the plan was written by another version of the harness: rerun the DAG")
            continue
        PROTOCOLS.add(name, proto)
