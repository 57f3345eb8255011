"""Published values re-read straight from the paper texts, independently of the CSV transcription."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAPERS = ROOT.parent / "shared" / "papers"
PUB = ROOT / "pipelines" / "biamat" / "published"
NUM = re.compile(r"\b\d{2}\.\d{2}\b")

pytestmark = pytest.mark.skipif(not PAPERS.exists(), reason="../shared/papers is not beside the checkout")


def _lines(name: str) -> list[str]:
    return (PAPERS / name).read_text(encoding="utf-8").splitlines()


def _block(lines: list[str], start: str, stop: str) -> list[str]:
    i = next(k for k, line in enumerate(lines) if line.startswith(start))
    j = next(k for k in range(i + 1, len(lines)) if lines[k].startswith(stop))
    return lines[i:j]


def _csv(name: str) -> list[dict[str, str]]:
    with open(PUB / f"{name}.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_table2_cells_match_the_published_paper_in_order():
    block = _block(_lines("001_c59c0d18c84aa014.txt"), "Primary dataset\tMethod", "application of the")
    numbers = [n for line in block for n in NUM.findall(line)]
    rows = _csv("table2")
    assert len(rows) == 22
    assert numbers == [r[c] for r in rows for c in ("clean", "pgd100", "cw100", "aa")]


def test_table1_aa_matches_001_and_clean_matches_000():
    lines = _lines("001_c59c0d18c84aa014.txt")
    i = next(k for k, line in enumerate(lines) if line.startswith("Table 1. Accuracy"))
    ytilde = NUM.findall(next(line for line in lines[i:i + 10] if line.startswith("$\\tilde{y}$\t")))
    yer = NUM.findall(next(line for line in lines[i:i + 10] if line.startswith("$y^{\\text{ER}}$\t")))
    rows = {r["row"]: r for r in _csv("table1")}
    auxes = ["svhn", "cifar100", "places365", "imagenet"]
    assert ytilde == [rows[f"{a}-ytilde"]["aa"] for a in auxes] + [rows["baseline"]["aa"]]
    assert yer == [rows[f"{a}-yer"]["aa"] for a in auxes]
    lines0 = _lines("000_ee39e36853903b80.txt")
    i = next(k for k, line in enumerate(lines0) if line.startswith("Method\tAuxiliary dataset\tShuffled"))
    j = next(k for k in range(i + 1, len(lines0)) if lines0[k].strip() and "\t" not in lines0[k])
    block = lines0[i:j]
    pairs = [NUM.findall(line) for line in block if len(NUM.findall(line)) == 2]
    order = ["baseline"] + [f"{a}-{k}" for a in auxes for k in ("ytilde", "yer")]
    assert pairs == [[rows[r]["clean"], rows[r]["aa"]] for r in order]


def test_table8_cells_match_000_table8():
    block = _block(_lines("000_ee39e36853903b80.txt"), "Fine-tuning\tClean\tPGD20", "are ineffective")
    by_row = {line.split("\t")[0]: NUM.findall(line) for line in block[1:]}
    rows = {r["row"]: r for r in csv.DictReader(line for line in open(PUB / "table8.csv") if not line.startswith("#"))}
    assert by_row == {"AT": [rows["at"][c] for c in ("clean", "pgd20", "pgd100")],
                      "TRADES": [rows["trades"][c] for c in ("clean", "pgd20", "pgd100")]}
    assert "released-at" not in rows  # the unpublished cross-check row
