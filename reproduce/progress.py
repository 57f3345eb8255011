"""One-line progress reports of long jobs, the same under Snakemake (into the job's log) as by hand.

Lines go to stderr, one per epoch or evaluated batch, never carriage-return bars: a log file of a
three-day training reads like the terminal. ``reproduce status`` parses the epoch lines back
(``EPOCH_LINE``) to show a running training's epoch and ETA.
"""

from __future__ import annotations

import re
import sys
from typing import Any, Mapping

EPOCH_LINE = re.compile(r"^\[train\] (?P<run>\S+) epoch (?P<epoch>\d+)/(?P<epochs>\d+) .*"
                        r"elapsed (?P<elapsed>\S+), ETA (?P<eta>\S+)")


def hms(seconds: float) -> str:
    """``3725`` -> ``1:02:05`` (hours grow past 24: a week is ``168:00:00``)."""
    s = int(round(max(seconds, 0.0)))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _pct(v: float) -> str:
    return f"{100 * v:.1f}%"  # the tallies are fractions of the examples seen


def epoch_line(run: str, row: Mapping[str, Any], epochs: int, history: list[Mapping[str, Any]],
               protocol: str | None, best: Mapping[str, Any]) -> str:
    """``[train] RUN epoch 3/6 loss 1.234 train acc 45.1% selection pgd20 41.0% (best 41.0 @ 3)
    elapsed 0:00:12, ETA 0:00:37``: the ETA is this run's mean epoch time times the epochs left."""
    epoch = int(row["epoch"])
    elapsed = sum(float(r.get("seconds", 0.0)) for r in history)
    eta = elapsed / max(len(history), 1) * (epochs - epoch)
    parts = [f"[train] {run} epoch {epoch}/{epochs}"]
    if "loss" in row:
        parts.append(f"loss {row['loss']:.4f}")
    for key, name in (("train_acc", "train acc"), ("train_adv_acc", "train adv acc")):
        if isinstance(row.get(key), (int, float)):
            parts.append(f"{name} {_pct(float(row[key]))}")
    if protocol is not None and f"selection_{protocol}" in row:
        parts.append(f"selection {protocol} {row[f'selection_{protocol}']:.1f}%"
                     f" (best {best.get('score'):.1f} at epoch {best.get('epoch')})")
    parts.append(f"elapsed {hms(elapsed)}, ETA {hms(eta)}")
    return " ".join(parts)


def batch_line(protocol: str, done: int, total: int, images: int, n: int, robust: int, seconds: float) -> str:
    """``[eval] pgd20 batch 3/40 (768/10000 images) correct 41.2% so far, elapsed 0:01:02, ETA 0:12:40``."""
    eta = seconds / max(done, 1) * (total - done)
    return (f"[eval] {protocol} batch {done}/{total} ({images}/{n} images) correct {100 * robust / max(images, 1):.1f}%"
            f" so far, elapsed {hms(seconds)}, ETA {hms(eta)}")
