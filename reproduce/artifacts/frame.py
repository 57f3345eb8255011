"""What a kind renders from: the artifact's cells, flattened once, with their provenance."""

from __future__ import annotations

import csv
import io as _io
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Frame:
    rows: list[dict[str, Any]]  # one dict per row: row id, attributes, scalar cells, <col>_sd, provenance
    arrays: dict[tuple[str, str], list[float]] = field(default_factory=dict)  # (row, column) -> values
    columns: list[str] = field(default_factory=list)
    scale: str = ""
    comparable: bool = False
    notes: list[str] = field(default_factory=list)

    def value(self, row: str, col: str) -> Any:
        for r in self.rows:
            if r["row"] == row:
                return r.get(col)
        return None


def csv_text(rows: list[dict[str, Any]]) -> str:
    fields: list[str] = []
    for r in rows:
        fields += [k for k in r if k not in fields]
    buf = _io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def markdown_table(rows: list[dict[str, Any]], cols: list[str]) -> str:
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        out.append("| " + " | ".join("" if r.get(c) is None else str(r[c]) for c in cols) + " |")
    return "\n".join(out)


def long_rows(frame: Frame) -> list[dict[str, Any]]:
    """Every cell as lines (row, column, i, value): one per point of an array cell, and one with an
    empty ``i`` per scalar cell, so a figure's CSV holds all that its claims read."""
    # each line names the runs its row was made from, so a diff can refuse a stale figure's data
    ids = {r["row"]: {"run_id": r["run_id"]} if r.get("run_id") else {} for r in frame.rows}
    out = [{"row": r["row"], "column": c, "i": "", "value": r[c], **ids[r["row"]], "scale": frame.scale}
           for r in frame.rows for c in frame.columns if isinstance(r.get(c), (int, float))]
    for (row, col), values in frame.arrays.items():
        out += [{"row": row, "column": col, "i": i, "value": v, **ids.get(row, {}), "scale": frame.scale}
                for i, v in enumerate(values)]
    return out
