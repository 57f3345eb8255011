"""JSON Schema validation with errors that name the file and the key."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import ConfigError

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "workflow" / "schemas"


@lru_cache(maxsize=None)
def _schema(kind: str) -> dict[str, Any]:
    import yaml

    path = SCHEMA_DIR / f"{kind}.schema.yaml"
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def validate_schema(obj: Any, kind: str, where: str) -> None:
    import jsonschema

    validator = jsonschema.Draft202012Validator(_schema(kind))
    errors = sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path))
    if errors:
        lines = []
        for e in errors[:10]:
            while e.context:  # no alternative of oneOf/anyOf accepts the value: say what the one of its type objects to
                fits = [c for c in e.context if c.validator != "type"]
                e = jsonschema.exceptions.best_match(fits or e.context)
            key = ".".join(str(p) for p in e.absolute_path) or "(top level)"
            lines.append(f"{key}: {e.message}")
        # one line, whatever the count: every error a user acts on is a single `error:` line
        more = f" (and {len(errors) - 10} more)" if len(errors) > 10 else ""
        raise ConfigError(f"{where}: does not match the {kind} schema: " + "; ".join(lines) + more)
