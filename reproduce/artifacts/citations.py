"""Sources a reader can follow: a spec's ``001 Table 2`` or ``001:196`` as paper, venue and section.

Specs keep the ids and line numbers of the texts they were transcribed from (maintainers check a
number against its line); `pipelines/citations.yaml` maps each text id to the paper's citation and
its line ranges to sections, and every output a person reads goes through ``cite``.
"""

from __future__ import annotations

import bisect
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..io import read_yaml

CITATIONS = Path("pipelines/citations.yaml")
# `001 Table 2`, `000:143-144`, `002:226-229`: a text id, then a table/figure name or a line (range)
_REF = re.compile(r"\b(00\d)(?::(\d+)(?:-\d+)?|\s+(?=[A-Z§]))")

# `[L163-178]`, `[T:62]`, `[98, 104]`, `[T:220-243, T:228-229]`: lines of a text, for maintainers only
_LINES = re.compile(r"\s*\((?:also )?\[[LT:\d,\s-]+\]\)|\s*\[[LT:\d,\s-]*\d[LT:\d,\s-]*\]")


@lru_cache(maxsize=4)
def _load(path: str) -> dict[str, dict[str, Any]]:
    p = Path(path)
    if not p.exists():  # a copy of the engine without the pipelines: sources print as written
        return {}
    return {str(k): v for k, v in (read_yaml(p) or {}).items()}


def paper_citation(text_id: str, path: str | Path = CITATIONS) -> str | None:
    entry = _load(str(path)).get(text_id)
    return None if entry is None else str(entry["cite"])


def section_of(text_id: str, line: int, path: str | Path = CITATIONS) -> str | None:
    """The section holding ``line`` of text ``text_id``, or None before its first known heading."""
    starts = (_load(str(path)).get(text_id) or {}).get("sections") or []
    i = bisect.bisect_right([s[0] for s in starts], line) - 1
    return None if i < 0 else str(starts[i][1])


def cite(paper: str, source: str, path: str | Path = CITATIONS) -> str:
    """``source`` with each text reference replaced by the paper's citation (once per paper) and the
    section of a cited line: ``001 Table 2`` -> ``Lee & Lee, WACV 2023, Table 2``."""
    seen: set[str] = set()

    def one(m: re.Match[str]) -> str:
        text_id, line = m.group(1), m.group(2)
        name = paper_citation(text_id, path)
        if name is None:
            return m.group(0)
        head = "" if text_id in seen else name
        seen.add(text_id)
        if line is None:  # `001 Table 2`: the table or figure name follows
            return f"{head}, " if head else ""
        sect = section_of(text_id, int(line), path)
        return ", ".join(x for x in (head, sect) if x) or name

    # `003 [52]`: a line reference in brackets is a line (and so a section) of that text
    source = re.sub(r"\b(00\d) \[(\d+)[^\]]*\]", r"\1:\2", source or "")
    out = _LINES.sub("", _REF.sub(one, source))
    return re.sub(r"(,\s*){2,}", ", ", out).strip(" ,")
