"""Claim expressions: arithmetic and comparisons over cells, parsed once, evaluated safely.

A cell is ``[artifact:]row.column`` (row ids may hold dots and dashes, so binary
operators are written with spaces: ``a.aa - b.aa >= 1``). Functions: abs, min,
max, mean, first, last, len, mean_from, span_from, increasing, decreasing, decreasing_from,
argmax, argmin, pearson, spearman, dominates, or_inf, count, increasing_within, at_best
(``at_best(test, valid)`` = test[argmax(valid)]), at_frac (``at_frac(curve, 0.1)`` = the value a tenth of the way). A column ``<col>_sd`` is the spread over a
seed group's members. Lists are written ``[a.x, b.x]``. Nothing else is evaluated.

``or_inf(a.x)`` reads a missing cell as +infinity ("never": a curve that never crosses a
threshold stores null); an expression whose every cell is missing is still unknown, so a
paper that publishes none of them is not judged on infinities alone.
"""

from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..errors import ConfigError

_TOKEN = re.compile(r"\s*(>=|<=|==|!=|[<>()\[\],+*/|]|-(?=\s)|[A-Za-z0-9_.:\-]+)")
_NUMBER = re.compile(r"^-?\d+(\.\d+)?([eE]-?\d+)?$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _rank(x: np.ndarray) -> np.ndarray:
    order = x.argsort(kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x), dtype=float)
    for v in np.unique(x):  # ties share the midpoint rank
        ranks[x == v] = ranks[x == v].mean()
    return ranks


def _pearson(a: Any, b: Any) -> float:
    x, y = np.asarray(a, float), np.asarray(b, float)
    return float(np.corrcoef(x, y)[0, 1])


def _decreasing_from(frac: Any, *curves: Any) -> bool:
    """At every index from ``int(frac * length)`` on, curves[0] > curves[1] > ... elementwise
    (a start given as a fraction of the run, so "every epoch >= 5 of 200" survives a short schedule)."""
    arrs = [np.asarray(c, float) for c in curves]
    n = min(len(a) for a in arrs)
    start = int(n * float(frac))
    if len(arrs) < 2 or start >= n:
        return False
    m = np.stack([a[start:n] for a in arrs])
    return bool(np.all(m[:-1] > m[1:]))


def _seq(args: tuple[Any, ...]) -> list[float]:
    return list(args[0]) if len(args) == 1 and isinstance(args[0], (list, tuple)) else list(args)


def _at_best(curve: Any, by: Any) -> float:
    """``curve`` at the epoch where ``by`` peaks (the first, on ties): validation-selected test accuracy."""
    a, b = list(curve), list(by)
    if not b or len(a) != len(b):
        raise ValueError(f"at_best: curves of {len(a)} and {len(b)} points")
    return float(a[int(np.argmax(b))])


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "abs": abs,
    "min": lambda *a: min(_seq(a)),
    "max": lambda *a: max(_seq(a)),
    "mean": lambda *a: float(np.mean(_seq(a))),
    "first": lambda a: list(a)[0],
    "last": lambda a: list(a)[-1],
    "len": lambda a: len(list(a)),
    "or_inf": lambda a: math.inf if a is None else a,
    "decreasing_from": _decreasing_from,
    # mean of a curve from a fraction of its length on (past a warm-up)
    "mean_from": lambda a, frac: float(np.mean(list(a)[int(len(a) * float(frac)):])),
    # max - min of a curve from a fraction of its length on (has it converged?)
    "span_from": lambda a, frac: float(np.ptp(list(a)[int(len(a) * float(frac)):])),
    "increasing": lambda *a: all(x < y for x, y in zip(_seq(a), _seq(a)[1:])),
    "decreasing": lambda *a: all(x > y for x, y in zip(_seq(a), _seq(a)[1:])),
    "argmax": lambda *a: int(np.argmax(_seq(a))),
    "argmin": lambda *a: int(np.argmin(_seq(a))),
    "pearson": _pearson,
    "spearman": lambda a, b: _pearson(_rank(np.asarray(a, float)), _rank(np.asarray(b, float))),
    "dominates": lambda a, b: all(x >= y for x, y in zip(a, b)),
    "at_best": lambda a, by: _at_best(a, by),
    # a curve's value a fraction of the way along it (epoch 20 of 200 is 0.1), so a claim survives a shorter run
    "at_frac": lambda a, frac: list(a)[min(len(list(a)) - 1, int(len(list(a)) * float(frac)))],
    # rises (each value >= the one before minus tol): "non-decreasing within 1 point"
    "increasing_within": lambda tol, *a: all(y >= x - float(tol) for x, y in zip(_seq(a), _seq(a)[1:])),
    # how many of a list hold: "in >= 7 of 9 sizes" is count([a1 > b1, ..., a9 > b9]) >= 7
    "count": lambda *a: int(sum(bool(x) for x in _seq(a))),
}
_CMP = {ast.Gt: "gt", ast.GtE: "ge", ast.Lt: "lt", ast.LtE: "le", ast.Eq: "eq", ast.NotEq: "ne"}


@dataclass(frozen=True)
class Ref:
    artifact: str | None
    row: str
    column: str

    def __str__(self) -> str:
        return f"{self.artifact + ':' if self.artifact else ''}{self.row}.{self.column}"


@dataclass
class Expr:
    text: str
    tree: ast.Expression
    refs: list[Ref]
    optional: frozenset[int] = frozenset()  # refs read through or_inf: missing means +inf


def _split_ref(tok: str, where: str) -> Ref:
    art, _, rest = tok.rpartition(":") if ":" in tok else (None, "", tok)
    row, dot, col = rest.rpartition(".")
    if not dot or not row or not col:
        raise ConfigError(f"{where}: {tok!r} is not a cell (row.column or artifact:row.column)")
    return Ref(art or None, row, col)


def parse(text: str, where: str) -> Expr:
    pos, out, refs = 0, [], []
    text = str(text)
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            if text[pos:].strip() == "":
                break
            raise ConfigError(f"{where}: cannot read {text[pos:]!r} in {text!r}")
        tok = m.group(1)
        pos = m.end()
        nxt = text[pos:].lstrip()[:1]
        if tok == "-":
            out.append(tok)
        elif tok in FUNCTIONS and nxt == "(":
            out.append(tok)
        elif _NUMBER.match(tok) or tok in ("True", "False"):
            out.append(tok)
        elif tok == "|":
            raise ConfigError(f"{where}: write abs(x) instead of |x| in {text!r}")
        elif re.match(r"^[A-Za-z0-9_.:\-]+$", tok) and not _IDENT.match(tok) or "." in tok:
            refs.append(_split_ref(tok, where))
            out.append(f"_v{len(refs) - 1}")
        elif _IDENT.match(tok):
            raise ConfigError(f"{where}: unknown name {tok!r} in {text!r} (cells are row.column; "
                              f"functions: {', '.join(sorted(FUNCTIONS))})")
        else:
            out.append(tok)
    try:
        tree = ast.parse(" ".join(out), mode="eval")
    except SyntaxError:
        raise ConfigError(f"{where}: bad expression {text!r}") from None
    for node in ast.walk(tree):
        ok = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Compare, ast.Call, ast.Name, ast.Constant, ast.List,
              ast.Load, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.USub, ast.BoolOp, ast.And, ast.Or, *_CMP)
        if not isinstance(node, ok):
            raise ConfigError(f"{where}: {type(node).__name__} is not allowed in {text!r}")
    optional = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "or_inf":
            if len(node.args) != 1 or not isinstance(node.args[0], ast.Name) or not node.args[0].id.startswith("_v"):
                raise ConfigError(f"{where}: or_inf takes one cell (row.column) in {text!r}")
            optional.add(int(node.args[0].id[2:]))
    return Expr(text, tree, refs, frozenset(optional))


class Missing(Exception):
    """A cell the expression reads has no value."""


def evaluate(expr: Expr, lookup: Callable[[Ref], Any]) -> tuple[Any, float | None]:
    """(value, margin): for a top-level comparison, margin = how far it is from flipping."""
    env: dict[str, Any] = dict(FUNCTIONS)
    values = [lookup(ref) for ref in expr.refs]
    absent = [v is None or (isinstance(v, float) and math.isnan(v)) for v in values]
    for i, (ref, v) in enumerate(zip(expr.refs, values)):
        if absent[i] and (i not in expr.optional or all(absent)):
            raise Missing(str(ref))
        env[f"_v{i}"] = None if absent[i] else v
    body = expr.tree.body
    if isinstance(body, ast.Compare) and len(body.ops) == 1 and type(body.ops[0]) in (ast.Gt, ast.GtE, ast.Lt, ast.LtE):
        left = eval(compile(ast.Expression(body.left), "<claim>", "eval"), {"__builtins__": {}}, env)
        right = eval(compile(ast.Expression(body.comparators[0]), "<claim>", "eval"), {"__builtins__": {}}, env)
        ok = {ast.Gt: left > right, ast.GtE: left >= right, ast.Lt: left < right,
              ast.LtE: left <= right}[type(body.ops[0])]
        return bool(ok), abs(float(left) - float(right))
    return eval(compile(expr.tree, "<claim>", "eval"), {"__builtins__": {}}, env), None
