"""Numbers as the specs write them: ``8/255``, ``0.031``, ``5e-4``."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from ..errors import ConfigError


def parse_number(value: Any, where: str) -> float:
    """Numbers may be written as fractions (``8/255``) as the papers do."""
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(Fraction(value.replace(" ", "")))
        except (ValueError, ZeroDivisionError):
            pass
    raise ConfigError(f"{where}: expected a number or a fraction like 8/255, got {value!r}")
