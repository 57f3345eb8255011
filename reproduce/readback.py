"""Reading outputs back: every file a job reads is parsed strictly and checked against the plan.

A number reaches a table only through these readers. Each failure is one line that names
the file (and the key or row), never a ``JSONDecodeError``, ``TypeError`` or ``KeyError``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Mapping

from .errors import ReproduceError

RERUN = "delete it and rerun the DAG (snakemake) to rebuild it"


def read_json(path: str | Path, what: str) -> dict[str, Any]:
    """A JSON object from ``path``; missing, torn or non-object files are one-line errors."""
    p = Path(path)
    if not p.exists():
        raise ReproduceError(f"{p}: {what} missing; run the DAG (snakemake) first")
    try:
        obj = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ReproduceError(f"{p}: {what} is not valid JSON ({_reason(e)}); {RERUN}") from None
    if not isinstance(obj, dict):
        raise ReproduceError(f"{p}: {what} must be a JSON object, got {type(obj).__name__}; {RERUN}")
    return obj


def _reason(e: Exception) -> str:
    if isinstance(e, json.JSONDecodeError):
        return f"line {e.lineno}, column {e.colno}: {e.msg}"
    return " ".join(str(e).split())[:100]


def read_jsonl(path: str | Path, what: str) -> list[dict[str, Any]]:
    """One JSON object per non-empty line; a torn line names its line number."""
    p = Path(path)
    if not p.exists():
        raise ReproduceError(f"{p}: {what} missing; run the DAG (snakemake) first")
    out = []
    for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise ReproduceError(f"{p}: line {i} is not valid JSON ({e.msg}); {RERUN}") from None
        if not isinstance(obj, dict):
            raise ReproduceError(f"{p}: line {i} is not a JSON object; {RERUN}")
        out.append(obj)
    return out


def epoch_log(path: str | Path, epochs: int | None) -> list[dict[str, Any]]:
    """A per-epoch log (``metrics.jsonl``): epochs 1..N in order, each once, N = the run's epochs."""
    rows = read_jsonl(path, "per-epoch log")
    seen = [r.get("epoch") for r in rows]
    if any(not isinstance(e, int) for e in seen):
        raise ReproduceError(f"{path}: a line has no integer 'epoch'; {RERUN}")
    want = list(range(1, len(rows) + 1)) if epochs is None else list(range(1, int(epochs) + 1))
    if seen != want:
        missing = sorted(set(want) - set(seen))
        extra = sorted({e for e in seen if seen.count(e) > 1 or e not in want})
        raise ReproduceError(f"{path}: epochs {_span(seen)} where the run trained {_span(want)} "
                             f"(missing {missing[:5]}, repeated or extra {extra[:5]}); {RERUN}")
    return rows


def _span(epochs: list[Any]) -> str:
    return f"1..{len(epochs)}" if epochs == list(range(1, len(epochs) + 1)) else f"{epochs[:3]}...({len(epochs)} lines)"


def read_csv_rows(path: str | Path, what: str, key: str | None = "row") -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows of a CSV; ragged rows, a missing ``key`` column and duplicated keys are errors."""
    p = Path(path)
    if not p.exists():
        raise ReproduceError(f"{p}: {what} missing")
    with open(p, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            raise ReproduceError(f"{p}: {what} is empty") from None
        rows = []
        for lineno, cells in enumerate(reader, 2):
            if not cells:
                continue
            if len(cells) != len(header):
                raise ReproduceError(f"{p}: line {lineno} has {len(cells)} fields, the header {len(header)}")
            rows.append(dict(zip(header, cells)))
    if key is not None:
        if key not in header:
            raise ReproduceError(f"{p}: no {key!r} column in {what}")
        ids = [r[key] for r in rows]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ReproduceError(f"{p}: row(s) {', '.join(dup[:5])} appear more than once in {what}")
    return header, rows


def number(value: Any, where: str) -> float:
    """A finite or NaN float from a recorded value; anything else names where it was read."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ReproduceError(f"{where}: expected a number, got {value!r}")
    return float(value)


def numbers(value: Any, where: str) -> list[float]:
    if not isinstance(value, list):
        raise ReproduceError(f"{where}: expected a list of numbers, got {type(value).__name__}")
    return [number(v, f"{where}[{i}]") for i, v in enumerate(value)]


def check_recorded(record: Mapping[str, Any], path: str | Path, expect: Mapping[str, Any], plan: str | Path) -> None:
    """Each ``expect`` key must be recorded in ``record`` with that value (id, config hash, split...)."""
    for key, want in expect.items():
        got = record.get(key)
        if got != want:
            raise ReproduceError(f"{path}: records {key} {got!r}, but the plan {plan} expects {want!r}; "
                                 f"the file was made by another node or plan: {RERUN}")



PLAN_KEYS = {
    "run": ("id", "config_hash", "scale", "dir", "config", "protocols", "upstream", "allow_cpu"),
    "analysis": ("id", "paper", "name", "analysis", "params", "scale", "dir", "upstream"),
    "evaluation": ("run", "scale", "protocols", "definitions", "n", "batch_size", "outputs", "index"),
    "artifact": ("paper", "name", "scale", "artifact", "claims", "runs", "groups", "analyses", "run_nodes",
                 "evals", "analysis_dirs", "others", "outputs", "seeds_kept"),
}


def read_plan(path: str | Path, kind: str) -> dict[str, Any]:
    """A node's plan file (written by the DAG): the only description of its job that the job reads."""
    plan = read_json(path, f"plan file of a {kind} node")
    if plan.get("kind") != kind:
        raise ReproduceError(f"{path}: a plan of a {plan.get('kind')!r} node, where a {kind} plan was expected")
    missing = [k for k in PLAN_KEYS[kind] if k not in plan]
    if missing:
        raise ReproduceError(f"{path}: plan file lacks {', '.join(missing)}; rerun the DAG to rewrite it")
    return plan


def check_run_dir(run_dir: str | Path, rid: str, config_hash: str, plan: str | Path) -> None:
    """A run directory holds the run the plan names: its ``config.yaml`` hashes to the plan's config hash
    (an edited config is refused, not evaluated under the old id), and ``done.json`` agrees."""
    from . import io
    from .config import config_hash as hash_of, resolve_run

    d = Path(run_dir)
    cfg_path = d / "config.yaml"
    if not cfg_path.exists():
        raise ReproduceError(f"{cfg_path}: missing; train run {rid} first (the plan {plan} names it)")
    try:
        got = hash_of(resolve_run(io.read_yaml(cfg_path), where=str(cfg_path)))
    except ReproduceError as e:
        raise ReproduceError(f"{cfg_path}: not the config of run {rid} ({e}); {RERUN}") from None
    if got != config_hash:
        raise ReproduceError(f"{cfg_path}: hashes to config {got}, but the plan {plan} expects {config_hash} "
                             f"for run {rid}; the directory was edited or belongs to another config: {RERUN}")
    if (d / "done.json").exists():
        check_recorded(read_json(d / "done.json", "training summary"), d / "done.json",
                       {"config_hash": config_hash}, plan)


def read_published(path: str | Path, columns: list[str] | None = None) -> tuple[list[str], list[dict[str, str]]]:
    """A published-values CSV (``#`` lines are comments): first column ``row``, no ragged or repeated
    rows, and (given ``columns``) a column for each of the artifact's columns, empty where unpublished."""
    from .errors import ConfigError

    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{p}: published-values CSV not found")
    with open(p, newline="", encoding="utf-8") as f:
        lines = [(i, line) for i, line in enumerate(f, 1) if not line.startswith("#")]
    parsed = list(csv.reader(line for _, line in lines))
    body = [(lines[k][0], cells) for k, cells in enumerate(parsed) if cells]
    if not body or body[0][1][:1] != ["row"]:
        raise ConfigError(f"{p}: first column must be 'row', got {body[0][1][:1] if body else []}")
    header = body[0][1]
    rows = []
    for lineno, cells in body[1:]:
        if len(cells) != len(header):
            raise ConfigError(f"{p}: line {lineno} has {len(cells)} fields, the header {len(header)}")
        rows.append(dict(zip(header, cells)))
    if {"column", "i", "value"} <= set(header):  # curves in long form (artifacts/series.py): a line per point
        keys = [(r["row"], r["column"], r["i"]) for r in rows]
        dup = sorted({"/".join(k) for k in keys if keys.count(k) > 1})
        if dup:
            raise ConfigError(f"{p}: point(s) {', '.join(dup[:5])} appear more than once")
        return header, rows
    ids = [r["row"] for r in rows]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ConfigError(f"{p}: row(s) {', '.join(dup[:5])} appear more than once")
    lost = [c for c in columns or [] if c not in header]
    if lost:
        raise ConfigError(f"{p}: no column {', '.join(map(repr, lost))} of the artifact; a column the paper "
                          "does not publish is kept with empty cells, so a lost column cannot pass for one")
    return header, rows
