"""Typed references between nodes: where they may stand, what they name, and no cycles.

A run may reference runs in ``init`` and in the method parameters its method
lists in ``references`` (HAT's helper), and an analysis in ``data.subset``, ``data.eval_indices``,
``data.train_from``, ``data.composite.labels`` and ``data.composite.subset`` (pseudo-labels and a
selection of the extra data).
An analysis may reference runs and analyses in the parameters it lists in
``references``. A reference is ``{run: NAME, checkpoint: best|last|epoch_N}``
or ``{analysis: NAME[, key: K]}``; a bare string is a name of the declared type.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Mapping

from ..errors import ConfigError

Ref = tuple[str, str]  # ("run" | "analysis", name)


def run_reference_slots(cfg: Mapping[str, Any], check_registries: bool = True) -> Iterator[tuple[str, Any, str]]:
    """(dotted place, value, expected type) of every place in a run config that may hold a reference."""
    if cfg.get("init") is not None:
        yield "init", cfg["init"], "run"
    for key in ("subset", "eval_indices", "train_from"):
        value = (cfg.get("data") or {}).get(key)
        if isinstance(value, Mapping) and "analysis" in value:
            yield f"data.{key}", value, "analysis"
    comp = (cfg.get("data") or {}).get("composite")
    for key in ("labels", "subset"):
        value = comp.get(key) if isinstance(comp, Mapping) else None
        if isinstance(value, Mapping) and "analysis" in value:
            yield f"data.composite.{key}", value, "analysis"
    feats = cfg.get("feature_stats")
    if isinstance(feats, Mapping) and feats.get("groups") is not None:
        yield "feature_stats.groups", feats["groups"], "analysis"
    method = cfg.get("method") or {}
    if check_registries and method.get("name"):
        from ..methods import METHODS

        if method["name"] in METHODS:
            for p in METHODS.get(method["name"]).references:
                if method.get(p) is not None:
                    yield f"method.{p}", method[p], "run"


def analysis_reference_slots(kind: str, params: Mapping[str, Any]) -> Iterator[tuple[str, Any, str]]:
    from ..analyses import ANALYSES

    for p, typ in ANALYSES.get(kind).references.items():
        if params.get(p) is not None:
            yield p, params[p], {"runs": "run", "analyses": "analysis"}.get(typ, typ)


def names_in(value: Any, typ: str, where: str) -> list[Ref]:
    """The nodes one slot names (a list slot may name several)."""
    if isinstance(value, list):
        return [r for i, v in enumerate(value) for r in names_in(v, typ, f"{where}[{i}]")]
    if isinstance(value, str):
        return [(typ, value)]
    if isinstance(value, Mapping):
        kinds = [k for k in ("run", "analysis") if k in value]
        if len(kinds) != 1:
            raise ConfigError(f"{where}: a reference names exactly one of run: or analysis:, got {dict(value)}")
        return [(kinds[0], str(value[kinds[0]]))]
    raise ConfigError(f"{where}: expected a reference ({{run: NAME}} or {{analysis: NAME}}), got {value!r}")


def map_refs(value: Any, typ: str, fn: Callable[[str, str], Any], where: str) -> Any:
    """The slot with every named node replaced by ``fn(type, name)`` (its id); groups become lists."""
    if isinstance(value, list):
        out: list[Any] = []
        for i, v in enumerate(value):
            m = map_refs(v, typ, fn, f"{where}[{i}]")
            out += m if isinstance(m, list) and not isinstance(v, list) else [m]
        return out
    if isinstance(value, str):
        value = {typ: value}
    kind = "run" if "run" in value else "analysis"
    got = fn(kind, str(value[kind]))
    if kind == "run" and "checkpoint" in value and hasattr(fn, "epoch_at"):
        value = {**value, "checkpoint": fn.epoch_at(str(value["run"]), value["checkpoint"])}
    if isinstance(got, list):
        return [{**value, kind: g} for g in got]
    return {**value, kind: got}


def check_references(spec: Any, check_registries: bool = True) -> None:
    """Every reference names a declared node; no node depends on itself."""
    edges: dict[Ref, list[Ref]] = {}

    def exists(ref: Ref, where: str) -> None:
        kind, name = ref
        if kind == "run":
            spec.members(name, where)
        else:
            spec.check_analysis(name, where)

    for name, decl in spec.runs.items():
        deps = []
        for place, value, typ in run_reference_slots(decl.cfg, check_registries):
            where = f"runs.{name}.{place}"
            for ref in names_in(value, typ, f"{spec.path}: {where}"):
                exists(ref, where)
                deps += [("run", m) for m in spec.members(ref[1])] if ref[0] == "run" else [ref]
        edges[("run", name)] = deps
    for name, decl in spec.analyses.items():
        deps = []
        if check_registries:
            for place, value, typ in analysis_reference_slots(decl.kind, decl.params):
                where = f"analyses.{name}.{place}"
                for ref in names_in(value, typ, f"{spec.path}: {where}"):
                    exists(ref, where)
                    deps += [("run", m) for m in spec.members(ref[1])] if ref[0] == "run" else [ref]
        edges[("analysis", name)] = deps
    state: dict[Ref, int] = {}

    def visit(node: Ref, stack: list[Ref]) -> None:
        if state.get(node) == 2:
            return
        if state.get(node) == 1:
            cycle = stack[stack.index(node):] + [node]
            raise ConfigError(f"{spec.path}: reference cycle: " + " -> ".join(f"{k}s.{n}" for k, n in cycle))
        state[node] = 1
        for dep in edges.get(node, []):
            visit(dep, stack + [node])
        state[node] = 2

    for node in edges:
        visit(node, [])
