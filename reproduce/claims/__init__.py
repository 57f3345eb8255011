"""The paper's claims: parsed from the spec, checked on published and regenerated values.

Verdicts: ``holds``, ``fails``, ``within noise`` (some comparison is closer than
the noise the claim can bear), ``unknown`` (a value is missing),
``not applicable`` (a precondition fails) and ``not comparable`` (the cells ``same:``
lists, such as the device each timed run ran on, differ).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from ..errors import ConfigError
from ..speclang.expand import expand_values
from .grammar import Expr, Missing, Ref, evaluate, parse

CLAIM_KEYS = ("id", "text", "source", "quote", "observation", "checks", "all", "any", "for", "noise", "requires",
              "python", "note", "same")
# a claim the paper does not state is ours: it is checked, but its text says so in every output
OBSERVATION = "[our observation, not the paper's] "


@dataclass
class Claim:
    id: str
    text: str
    source: str
    checks: list[Expr]
    quantifier: str = "all"  # all | any
    noise: float = 0.0
    requires: list[Expr] = field(default_factory=list)
    python: Callable[..., Any] | None = None
    python_ref: tuple[str, str] | None = None  # (claims.py path, function): how a plan file names it
    quote: str = ""  # the paper's own words (verbatim, short); empty for an observation of ours
    observation: str = ""  # why the claim is ours rather than the paper's
    # cells that must hold one value for the claim to be judged (timed runs on one device); a missing
    # cell (the paper's table has no device column) does not stop the check
    same: list[Ref] = field(default_factory=list)

    @property
    def artifacts(self) -> set[str]:
        return {r.artifact for e in [*self.checks, *self.requires] for r in e.refs if r.artifact}


def _python_claim(spec: Any, name: str, where: str) -> Callable[..., Any]:
    return _load_function(Path(spec.path).parent / "claims.py", name, spec.paper, where)


def _load_function(path: Path, name: str, paper: str, where: str) -> Callable[..., Any]:
    if not path.exists():
        raise ConfigError(f"{where}.python: {path} does not exist")
    mod_spec = importlib.util.spec_from_file_location(f"_claims_{paper}", path)
    mod = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(mod)  # type: ignore[union-attr]
    fn = getattr(mod, name, None)
    if not callable(fn):
        raise ConfigError(f"{where}.python: {path} has no function {name!r}")
    return fn


def parse_claims(spec: Any, art: Any, raw: list[Mapping[str, Any]], where: str) -> list[Claim]:
    claims: list[Claim] = []
    seen: set[str] = set()
    for i, c in enumerate(raw):
        cw = f"{where}.claims[{c.get('id', i) if isinstance(c, Mapping) else i}]"
        if not isinstance(c, Mapping) or "id" not in c or "text" not in c:
            raise ConfigError(f"{cw}: a claim needs id and text")
        bad = sorted(set(c) - set(CLAIM_KEYS))
        if bad:
            raise ConfigError(f"{cw}: unknown key(s) {', '.join(bad)}; allowed: {', '.join(CLAIM_KEYS)}")
        if c["id"] in seen:
            raise ConfigError(f"{cw}: claim id {c['id']!r} used twice")
        seen.add(c["id"])
        quant = "any" if "any" in c else "all"
        body = c.get("any", c.get("all"))
        texts = list(c.get("checks") or [])
        # for: is one product of variables, or a list of products whose union is quantified over
        loops = c.get("for") if isinstance(c.get("for"), list) else [c.get("for") or {}]
        bodies = [body] if body is not None else list(texts)
        texts = [] if body is None and any(loops) else texts
        if body is not None or any(loops):
            for loop in loops:
                for t in bodies:
                    texts += expand_values(t, loop, cw)
        fn = _python_claim(spec, c["python"], cw) if c.get("python") else None
        pyref = (str(Path(spec.path).parent / "claims.py"), str(c["python"])) if fn is not None else None
        if not texts and fn is None:
            raise ConfigError(f"{cw}: a claim needs checks, all:, any: or python:")
        checks = [parse(t, cw) for t in texts]
        requires = [parse(t, f"{cw}.requires") for t in c.get("requires") or []]
        for e in [*checks, *requires]:
            for ref in e.refs:
                _check_ref(spec, art, ref, cw)
        same = _same_refs(c.get("same"), cw)
        for ref in same:
            _check_ref(spec, art, ref, cw)
        text = str(c["text"])
        if c.get("observation"):
            text = OBSERVATION + text
        elif c.get("quote") is not None and not str(c["quote"]).strip():
            raise ConfigError(f"{cw}.quote: empty; quote the paper's sentence or mark the claim observation: <why>")
        claims.append(Claim(str(c["id"]), text, str(c.get("source", "")), checks, quant,
                            float(c.get("noise", art.noise)), requires, fn, pyref,
                            quote=str(c.get("quote") or ""), observation=str(c.get("observation") or ""),
                            same=same))
    return claims


def _same_refs(raw: Any, where: str) -> list[Ref]:
    """``same: [row.column, ...]``: at least two cells, each a plain cell reference."""
    if raw is None:
        return []
    if not isinstance(raw, list) or len(raw) < 2:
        raise ConfigError(f"{where}.same: expected a list of at least two cells (row.column), got {raw!r}")
    refs = []
    for t in raw:
        e = parse(str(t), f"{where}.same")
        if len(e.refs) != 1 or e.text.strip() != str(e.refs[0]):
            raise ConfigError(f"{where}.same: {t!r} is not one cell (row.column)")
        refs.append(e.refs[0])
    return refs


def _check_ref(spec: Any, art: Any, ref: Ref, where: str) -> None:
    target = art if ref.artifact in (None, art.name) else spec.artifacts.get(ref.artifact)
    if target is None:
        raise ConfigError(f"{where}: {ref} names unknown artifact {ref.artifact!r}; "
                          f"known: {', '.join(spec.artifacts)}")
    # <col>_sd: the spread of a row that aggregates a seed group (render writes it beside <col>)
    column = ref.column[:-3] if ref.column.endswith("_sd") and ref.column not in target.columns else ref.column
    if ref.row not in target.rows or column not in target.columns:
        raise ConfigError(f"{where}: {ref} is not a row.column of artifact {target.name} "
                          f"(rows: {', '.join(list(target.rows)[:6])}...; columns: {', '.join(target.columns)})")


def claim_to_plan(c: Claim) -> dict[str, Any]:
    """A parsed claim as a plan file records it: expression texts, re-parsed by the diff job."""
    return {"id": c.id, "text": c.text, "source": c.source, "checks": [e.text for e in c.checks],
            "quantifier": c.quantifier, "noise": c.noise, "requires": [e.text for e in c.requires],
            "python": None if c.python_ref is None else list(c.python_ref),
            **({"same": [str(r) for r in c.same]} if c.same else {})}  # plans of claims without it unchanged


def claim_from_plan(d: Mapping[str, Any], paper: str, where: str) -> Claim:
    cw = f"{where}: claim {d.get('id')!r}"
    try:
        fn, ref = None, None
        if d["python"]:
            ref = (str(d["python"][0]), str(d["python"][1]))
            fn = _load_function(Path(ref[0]), ref[1], paper, cw)
        return Claim(str(d["id"]), str(d["text"]), str(d["source"]), [parse(t, cw) for t in d["checks"]],
                     str(d["quantifier"]), float(d["noise"]), [parse(t, cw) for t in d["requires"]], fn, ref,
                     same=[parse(t, cw).refs[0] for t in d.get("same") or []])
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"{cw}: malformed claim record ({type(e).__name__}: {e}); rerun the DAG") from None


Values = Mapping[str | None, Mapping[str, Mapping[str, Any]]]  # artifact (None: own) -> row -> column -> value


def check(claim: Claim, values: Values) -> tuple[str, list[str]]:
    """A verdict and one line per check with its numbers."""
    def lookup(ref: Ref) -> Any:
        return values.get(ref.artifact, {}).get(ref.row, {}).get(ref.column)

    if claim.python is not None:
        verdict, details = claim.python(values, claim)
        return verdict, list(details)
    details: list[str] = []
    seen = [(r, lookup(r)) for r in claim.same]
    if all(v is not None for _, v in seen) and len({str(v) for _, v in seen}) > 1:
        return "not comparable", ["differ: " + ", ".join(f"{r}={_fmt(v)}" for r, v in seen)]
    for e in claim.requires:
        try:
            ok, _ = evaluate(e, lookup)
        except Missing as m:  # published tables often omit what a precondition reads: judge the claim itself
            details.append(f"precondition {e.text}: not checkable (missing {m})")
            continue
        if not ok:
            return "not applicable", [f"precondition {e.text}: no"]
    results = []
    for e in claim.checks:
        try:
            ok, margin = evaluate(e, lookup)
        except Missing as m:
            results.append("unknown")
            details.append(f"{e.text}: missing {m}")
            continue
        except ZeroDivisionError:  # a ratio over a zero cell (a run timed at 0 h) says nothing either way
            results.append("unknown")
            details.append(f"{e.text}: division by zero")
            continue
        near = margin is not None and margin < claim.noise
        nums = ", ".join(f"{r}={_fmt(lookup(r))}" for r in e.refs)
        results.append("noise" if near else ("yes" if ok else "no"))
        details.append(f"{e.text} [{nums}]: {'within noise' if near else ('yes' if ok else 'NO')}")
    if claim.quantifier == "any":
        if "yes" in results:
            return "holds", details
        verdict = "unknown" if "unknown" in results else ("within noise" if "noise" in results else "fails")
        return verdict, details
    if "unknown" in results:
        return "unknown", details
    if "no" in results:
        return "fails", details
    return ("within noise" if "noise" in results else "holds"), details


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, list):
        return f"[{len(v)} values]"
    return str(v)


__all__ = ["Claim", "OBSERVATION", "parse_claims", "check", "claim_to_plan", "claim_from_plan"]
