"""The one expansion mechanism: ``for:`` templates and ``seeds:`` over spec entries.

An entry ``{for: {beta: [1, 3, 6]}, ...}`` under the name ``trades-b{beta}``
becomes one entry per value; every string in it is a template. A string that
is exactly ``"{beta}"`` takes the value with its type (``6.0`` stays a number).
Several variables expand as a product. ``seeds: [0, 1, 2]`` is the same with
the variable ``seed`` and the run's ``seed`` key set (unless the entry gives ``seed:`` itself),
named ``<name>-s<seed>``.
"""

from __future__ import annotations

import itertools
import re
import string
from typing import Any, Mapping

from ..errors import ConfigError

_WHOLE = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_VAR = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _fields(s: str) -> set[str]:
    try:
        return {f for _, f, _, _ in string.Formatter().parse(s) if f}
    except ValueError:
        return set()


def substitute(obj: Any, env: Mapping[str, Any], where: str, strict: bool = True) -> Any:
    # inside a longer string a value reads as it does in names (6.0 -> 6); alone it keeps its type
    text = {k: _label(v) for k, v in env.items()}
    return _substitute(obj, env, text, where, strict)


def _substitute(obj: Any, env: Mapping[str, Any], text: Mapping[str, str], where: str, strict: bool) -> Any:
    """Fill ``{var}`` templates in every string of ``obj`` from ``env``.

    ``strict=False`` leaves unknown names for an inner expansion (an artifact's
    ``for:`` around rows and claims that have their own).
    """
    if isinstance(obj, str):
        m = _WHOLE.match(obj)
        if m and m.group(1) in env:
            return env[m.group(1)]
        names = _fields(obj)
        if not names:
            return obj
        missing = sorted(n for n in names if n not in env)
        if missing and not strict:
            return _VAR.sub(lambda v: text[v.group(1)] if v.group(1) in text else v.group(0), obj)
        if missing:
            raise ConfigError(f"{where}: template {obj!r} names undefined for: variable(s) "
                              f"{', '.join(missing)}; defined: {', '.join(sorted(env)) or '(none)'}")
        return obj.format(**text)
    if isinstance(obj, Mapping):
        return {_substitute(k, env, text, where, strict) if isinstance(k, str) else k:
                _substitute(v, env, text, f"{where}.{k}", strict) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_substitute(v, env, text, f"{where}[{i}]", strict) for i, v in enumerate(obj)]
    return obj


def _label(v: Any) -> str:
    """How a value reads inside a name: 0.5 -> 0.5, 6.0 -> 6, 'svhn' -> svhn."""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def is_sweep(values: list[Any]) -> bool:
    """A ``for:`` list a scale may thin: more than two numbers (a dataset or method list is not)."""
    return len(values) > 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def expand_entries(entries: Mapping[str, Any], where: str, env: Mapping[str, Any] | None = None,
                   seed_key: str | None = "seed", strict: bool = True,
                   positions: bool = False) -> dict[str, dict[str, Any]]:
    """name -> entry with every ``for:``/``seeds:`` expanded; colliding names are errors.

    Each expanded entry carries ``_vars`` (its variable values) and, for seeds,
    ``_group`` (the unexpanded name) so tables can aggregate over seeds. With
    ``positions`` it also carries ``_sweep``: var -> (index, length) for every
    sweep variable (``is_sweep``), which a scale's ``thin: {sweeps: k}`` reads.
    """
    out: dict[str, dict[str, Any]] = {}
    origin: dict[str, str] = {}
    for name, entry in (entries or {}).items():
        if not isinstance(entry, Mapping):
            entry = {"_value": entry}
        loop = dict(entry.get("for") or {})
        for var, values in loop.items():
            if not isinstance(values, list) or not values:
                raise ConfigError(f"{where}.{name}.for.{var}: expected a non-empty list, got {values!r}")
        seeds = entry.get("seeds")
        if seeds is not None and seed_key is not None:
            if not isinstance(seeds, list) or not seeds:
                raise ConfigError(f"{where}.{name}.seeds: expected a non-empty list, got {seeds!r}")
        body = {k: v for k, v in entry.items() if k not in ("for", "seeds")}
        seeded = seeds is not None and seed_key is not None
        if seeded:
            if "seed" in loop:
                raise ConfigError(f"{where}.{name}: seeds: and a for: variable named seed cannot both be given")
            loop["seed"] = list(seeds)
        keys = list(loop)
        for idx in itertools.product(*(range(len(loop[k])) for k in keys)) if keys else [()]:
            values = tuple(loop[k][i] for k, i in zip(keys, idx))
            scope = {**(env or {}), **dict(zip(keys, values))}
            labels = {k: _label(v) if k in loop else v for k, v in scope.items()}
            nm = substitute(name, labels, f"{where}.{name}")
            item = substitute(body, scope, f"{where}.{name}", strict)
            item["_vars"] = dict(scope)
            if positions:
                item["_sweep"] = {k: (i, len(loop[k])) for k, i in zip(keys, idx)
                                  if k != "seed" and is_sweep(loop[k])}
            final = nm
            if seeded:  # members of a seed group are named <name>-s<seed> and carry the group's name
                final = f"{nm}-s{scope['seed']}"
                # an entry that writes its own seed keeps it: the group then varies only what its
                # {seed} templates name (Subset AT's random draws under one training seed)
                if seed_key not in body:
                    item[seed_key] = scope["seed"]
                item["_group"] = nm
            if final in out:
                raise ConfigError(f"{where}: {origin[final]} and {name} both produce the name {final!r}")
            out[final] = item
            origin[final] = name
    return out


def expand_values(template: Any, loop: Mapping[str, list[Any]], where: str) -> list[Any]:
    """``template`` filled once per combination of the loop's values (unnamed: claims, lists)."""
    for var, values in loop.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}.for.{var}: expected a non-empty list, got {values!r}")
    keys = list(loop)
    return [substitute(template, dict(zip(keys, vals)), where)
            for vals in (itertools.product(*(loop[k] for k in keys)) if keys else [()])]
