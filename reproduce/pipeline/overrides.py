"""A scale's ``overrides:``: one ordered list of ``{when: selector, set: patch}`` entries.

A selector with ``analysis`` patches the parameters of the analyses of that kind; any
other selector (or none) deep-merges its patch into the run configs it matches. Every
entry is checked when the scale loads, so a typo in a selector or a patch path fails
with one line naming the file and the entry, not after hours of training.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Mapping

from ..errors import ConfigError
from ..speclang.merge import deep_merge

RUN_SELECTORS = ("paper", "run", "method", "model")
# sections of a run config whose keys belong to a registry entry, not to the run schema
_OPEN_SECTIONS = ("method", "heads")


@dataclass(frozen=True)
class Override:
    when: Mapping[str, str]
    patch: Mapping[str, Any]
    where: str  # "<file>: overrides[i]", for errors

    @property
    def analysis(self) -> str | None:
        """The analysis kind it patches, or None for an entry over run configs."""
        return self.when.get("analysis")

    def matches_run(self, cfg: Mapping[str, Any], paper: str | None, name: str | None) -> bool:
        """Judged on ``cfg`` as the entries before this one left it (a model swapped by an earlier
        entry is the model a later ``model:`` selector sees)."""
        if self.analysis is not None:
            return False
        have = {"paper": paper, "run": name, "method": (cfg.get("method") or {}).get("name"),
                "model": (cfg.get("model") or {}).get("name")}
        return all(have[k] is not None and fnmatchcase(str(have[k]), v) for k, v in self.when.items())

    def matches_analysis(self, kind: str, paper: str | None) -> bool:
        if self.analysis is None or not fnmatchcase(kind, self.analysis):
            return False
        return "paper" not in self.when or (paper is not None and fnmatchcase(paper, self.when["paper"]))


def parse_overrides(entries: list[Mapping[str, Any]], path: str) -> tuple[Override, ...]:
    """The entries of one scale file, each checked (the schema has already checked their shape)."""
    out = []
    for i, e in enumerate(entries):
        o = Override(dict(e.get("when") or {}), dict(e["set"]), f"{path}: overrides[{i}]")
        _check_selector(o)
        _check_patch(o)
        out.append(o)
    return tuple(out)


def _exact(value: str) -> bool:
    return not any(c in value for c in "*?[")


def _check_selector(o: Override) -> None:
    if o.analysis is not None:
        extra = sorted(set(o.when) - {"analysis", "paper"})
        if extra:
            raise ConfigError(f"{o.where}.when: an analysis selector takes only analysis and paper, "
                              f"not {', '.join(extra)} (run settings go in an entry of their own)")
    from ..analyses import ANALYSES
    from ..methods import METHODS
    from ..models import MODELS

    for key, registry in (("analysis", ANALYSES), ("method", METHODS), ("model", MODELS)):
        value = o.when.get(key)
        if value is None:
            continue
        names = list(registry)
        if not any(fnmatchcase(n, value) for n in names):
            raise ConfigError(f"{o.where}.when.{key}: {value!r} names no registered {key}; "
                              f"known: {', '.join(sorted(names))}")


def _check_patch(o: Override) -> None:
    if o.analysis is not None:
        from ..analyses import ANALYSES

        kinds = [k for k in ANALYSES if fnmatchcase(k, o.analysis)]
        for kind in kinds:
            unknown = sorted(set(o.patch) - set(ANALYSES.get(kind).params))
            if unknown:
                raise ConfigError(f"{o.where}.set.{unknown[0]}: analysis {kind!r} has no parameter {unknown[0]!r}; "
                                  f"it has {', '.join(sorted(ANALYSES.get(kind).params))}")
        return
    from ..config import RUN_DEFAULTS

    _check_run_keys(o.patch, RUN_DEFAULTS, f"{o.where}.set")
    method = o.when.get("method")
    if isinstance(o.patch.get("method"), Mapping) and method and _exact(method):
        from ..methods import METHODS

        allowed = set(METHODS.get(method).params) | {"name"}
        unknown = sorted(set(o.patch["method"]) - allowed)
        if unknown:
            raise ConfigError(f"{o.where}.set.method.{unknown[0]}: method {method!r} has no parameter "
                              f"{unknown[0]!r}; it has {', '.join(sorted(allowed - {'name'}))}")


def _check_run_keys(patch: Mapping[str, Any], defaults: Mapping[str, Any], where: str) -> None:
    """Every key of a run patch names a key of the run schema (reproduce/config.py)."""
    for key, value in patch.items():
        if key not in defaults:
            raise ConfigError(f"{where}.{key}: no such run config key; allowed: {', '.join(sorted(defaults))}")
        sub = defaults[key]
        if isinstance(value, Mapping) and isinstance(sub, dict) and sub and key not in _OPEN_SECTIONS:
            _check_run_keys(value, sub, f"{where}.{key}")


def patch_run(cfg: dict[str, Any], overrides: tuple[Override, ...], paper: str | None,
              name: str | None) -> tuple[dict[str, Any], set[str]]:
    """``cfg`` with every matching entry merged in order; also which of ``schedule.milestones`` and
    ``optim.lr`` an entry set itself (then a shorter schedule or a smaller batch leaves them alone)."""
    fixed: set[str] = set()
    for o in overrides:
        if o.matches_run(cfg, paper, name):
            cfg = deep_merge(cfg, o.patch)
            fixed |= {f"{s}.{k}" for s, k in (("schedule", "milestones"), ("optim", "lr")) if k in (o.patch.get(s) or {})}
    return cfg, fixed


def patch_analysis(kind: str, paper: str | None, overrides: tuple[Override, ...]) -> dict[str, Any]:
    """The parameters a scale sets for an analysis of ``kind`` (later entries win)."""
    out: dict[str, Any] = {}
    for o in overrides:
        if o.matches_analysis(kind, paper):
            out = deep_merge(out, o.patch)
    return out
